# Run by the MicroPython unix port, not CPython: the start-up of a board with a ROMFS
# partition, which MicroPython mounts at /rom and puts first on sys.path before it runs
# main.py from the filesystem (MicroPython docs, "Working with ROMFS"). The unix port has no
# ROM partition, so the partition's file (devkit/romfs.py) is read into the heap before
# anything else: one block at the heap's start, held by the mount, which devkit/romfs.heapsize
# added to the heap. argv: main.py's path; BAGSCAN_ROMFS: the partition's file. main.py runs
# in this module. Only names MicroPython has built in, and rom_ioctl, which the ESP32 port has
# built in: every other one is interned for good (docs/firmware.md, "Few interned names").
import os
import sys

import vfs

path = os.getenv("BAGSCAN_ROMFS")
data = bytearray(os.stat(path)[6])
with open(path, "rb") as file:
    file.readinto(data)


class vfs:  # noqa: N801 - in place of the module, under its name
    """The board's vfs module as the firmware sees it: vfs.rom_ioctl serves one segment, the
    partition, which main.py rewrites for a firmware update (docs/ota.md). Writes go to the
    copy in the heap and to the file at once, so a power cut (SIGKILL) leaves the file as a
    cut leaves the flash. The commands are extmod/vfs_rom_ioctl.c's, as the ESP32 port serves
    them: 1 segments, 2 the segment, 3 erase (offset, length or length), 4 write, 5 done."""

    mount = vfs.mount
    umount = vfs.umount
    VfsRom = vfs.VfsRom
    file = path
    data = data

    def rom_ioctl(*args):
        if args[0] == 1:
            return 1
        if args[0] == 2:
            return memoryview(vfs.data)
        if args[0] == 3:
            start = args[2] if len(args) == 4 else 0
            end = start + args[-1]
            if end > len(vfs.data):
                raise OSError(28)  # ENOSPC: the image is larger than the partition
            vfs.write(start, b"\xff" * (end - start))  # erased flash reads 0xFF
            return 4
        if args[0] == 4:
            vfs.write(args[2], args[3])
        return 0

    def write(start, buf):
        vfs.data[start : start + len(buf)] = buf
        with open(vfs.file, "r+b") as file:
            file.seek(start)
            file.write(buf)


sys.modules["vfs"] = vfs
vfs.mount(vfs.VfsRom(data), "/rom")
sys.path[0] = "/rom"  # in place of this file's folder, which the unix port puts first
# main.py finds the code's root (its ota/ folder) beside its own file, as on the board.
__file__ = sys.argv[1]
del path, data, file
execfile(__file__)  # noqa: F821 - the unix port's builtin
