# The simulated board's "screenshot" command (docs/simulator.md), loaded only while it runs.


def save(panel, path):
    """The frame buffer as a PBM (P1) image at path, lit pixels as 1."""
    with open(path, "wb") as f:
        f.write(b"P1\n%d %d\n" % (panel.width, panel.height))
        row = bytearray(panel.width + 1)
        row[-1] = 10  # "\n"
        for y in range(panel.height):
            for x in range(panel.width):
                row[x] = 0x31 if panel.pixel(x, y) else 0x30
            f.write(row)
