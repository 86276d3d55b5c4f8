"""The handheld's code as a ROMFS image, as a board with a ROMFS partition runs it: MicroPython
mounts the partition at /rom and executes its .mpy bytecode in place, so only the objects a
module creates take heap (MicroPython docs, "Working with ROMFS"; docs/firmware.md, "Code
outside the heap"). The unix port has no ROM partition: devkit/romfs_boot.py reads the image
into the heap first, and heapsize() adds exactly that much to the heap the handheld is given.
"""

import os
from pathlib import Path

from mpremote.romfs import VfsRomWriter

# What MicroPython's GC keeps of -X heapsize for its allocation tables: 98.75-98.82 % is left
# for objects at 100-200 KB (measured with gc.mem_free() + gc.mem_alloc()). A larger share
# is used so the image's extra heap is never more than it takes (tests/firmware/
# test_romfs_boot.py: a few hundred bytes less).
_USABLE_PER_MILLE = 992
# A bytearray's object and its data's block rounding (measured: 70,358 bytes take 70,432).
OBJECT_BYTES = 96


# In a simulated handheld's code root (devkit/handheld.py code_on_flash): its ROMFS partition,
# with room for a release a little larger than the code flashed (main.py writes a release's
# image there, docs/ota.md); erased flash past the image reads 0xFF.
PARTITION = "romfs.img"
PARTITION_ROOM = 16 * 1024
_SECTOR = 4096


def image(bundle: Path, extra: dict[str, bytes] | None = None) -> bytes:
    """The image of every file of bundle (the code tools/flash puts on a handheld) except
    main.py, which a board runs from its filesystem, and the top-level files of extra."""
    writer = VfsRomWriter()
    _add(writer, bundle, top=True)
    for name, data in sorted((extra or {}).items()):
        writer.mkfile(name, data)
    return writer.finalise()


def build(bundle: Path, out: Path, extra: dict[str, bytes] | None = None, room: int = 0) -> Path:
    """bundle's image (image()) in the file out, followed by room bytes of erased flash up to
    a whole sector; rewritten only when it changed. Safe to run concurrently."""
    data = image(bundle, extra)
    if room:
        size = (len(data) + room + _SECTOR - 1) // _SECTOR * _SECTOR
        data += b"\xff" * (size - len(data))
    if not out.exists() or out.read_bytes() != data:
        tmp = out.with_name(f".{out.name}.{os.getpid()}")
        tmp.write_bytes(data)
        os.replace(tmp, out)
    return out


def _add(writer: VfsRomWriter, folder: Path, top: bool) -> None:
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or top and path.name == "main.py":
            continue
        if path.is_dir():
            writer.opendir(path.name)
            _add(writer, path, top=False)
            writer.closedir()
        else:
            writer.mkfile(path.name, path.read_bytes())


def heapsize(heap: str, image: Path) -> int:
    """-X heapsize in bytes for a handheld given `heap` (e.g. "110K") whose code image is read
    into the heap first: the handheld keeps at most `heap`'s room for itself."""
    cost = image.stat().st_size + OBJECT_BYTES
    return _bytes(heap) + cost * 1000 // _USABLE_PER_MILLE


def _bytes(heap: str) -> int:
    units = {"K": 1024, "M": 1024 * 1024}
    return int(heap[:-1]) * units[heap[-1].upper()] if heap[-1].isalpha() else int(heap)
