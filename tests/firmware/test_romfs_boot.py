"""The simulator runs the handheld's code from a ROMFS image, as a board with a ROMFS partition
does (devkit/romfs.py): the code is imported from /rom, and the image read into the unix
port's heap leaves the handheld the heap it was given, not more."""

import subprocess

from devkit import bundle, micropython, romfs
from devkit.handheld import BUILD, boot_command

HEAP = "110K"
ROOM = "import gc\ngc.collect()\nprint(gc.mem_free() + gc.mem_alloc() - {image})\n"


def run(argv, env=None):
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def test_the_code_is_imported_from_the_image_and_its_heap_is_not_the_handhelds(tmp_path):
    image = romfs.build(bundle.build(BUILD), tmp_path / "code.romfs")
    main = tmp_path / "main.py"
    main.write_text(
        ROOM.format(image=image.stat().st_size + romfs.OBJECT_BYTES)
        + "import lazy\nprint(lazy.__file__, __file__)\n"
    )
    exe = micropython.executable()
    env = {"BAGSCAN_ROMFS": str(image), "MICROPYPATH": ".frozen"}
    room, module, main_file = run(boot_command(exe, romfs.heapsize(HEAP, image), main), env)
    plain = tmp_path / "plain.py"
    plain.write_text(ROOM.format(image=0))
    [budget] = run([exe, "-X", f"heapsize={HEAP}", str(plain)])
    assert module == "/rom/lazy.mpy" and main_file == str(main)
    # At most the budget; less by the image object's rounding only.
    assert int(budget) - 512 <= int(room) <= int(budget), (room, budget)
