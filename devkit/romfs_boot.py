# Run by the MicroPython unix port, not CPython: the start-up of a board with a ROMFS
# partition, which MicroPython mounts at /rom and puts first on sys.path before it runs
# main.py from the filesystem (MicroPython docs, "Working with ROMFS"). The unix port has no
# ROM partition, so the image (devkit/romfs.py) is read into the heap before anything else:
# one block at the heap's start, held by the mount, which devkit/romfs.heapsize added to the
# heap. argv: main.py's path; BAGSCAN_ROMFS: the image's. Only names MicroPython has built
# in: main.py runs in this module, and every other name is interned for good (docs/firmware.md,
# "Few interned names").
import os
import sys

import vfs

path = os.getenv("BAGSCAN_ROMFS")
data = bytearray(os.stat(path)[6])
with open(path, "rb") as file:
    file.readinto(data)
vfs.mount(vfs.VfsRom(data), "/rom")
sys.path[0] = "/rom"  # in place of this file's folder, which the unix port puts first
# main.py finds the code's root (its ota/ folder) beside its own file, as on the board.
__file__ = sys.argv[1]
del path, data, file
execfile(__file__)  # noqa: F821 - the unix port's builtin
