# Crash-safe small files on flash (acked seq, boot counter, settings): whole old or whole new, never torn.
#
# LittleFS is copy-on-write: a file's new contents are committed by flush()/close(), and a
# rename() that replaces an existing name is one atomic metadata commit. So "write a temp file,
# close it, rename it over the target" leaves either the complete old or the complete new file
# after a power cut. On the unix port the same holds with POSIX rename(2).
import os

from micropython import const

_TMP = const(".tmp")


def write_atomic(path, data):
    """Replace the file at path with data (bytes/str), crash-safely."""
    tmp = path + _TMP
    f = open(tmp, "wb")
    try:
        f.write(data)
        f.flush()
    finally:
        f.close()
    try:
        os.rename(tmp, path)
    except OSError:
        # FAT (an SD card) refuses to rename over an existing file. A power cut between these
        # two steps loses the file (read_or then gives its default), never tears it.
        remove_if_exists(path)
        os.rename(tmp, path)


def read_or(path, default=None):
    """Contents of path as bytes, or default if it does not exist.

    A leftover temp file is never read: it may be empty or half written (on LittleFS its
    directory entry is committed when it is created, its data only at flush).
    """
    try:
        f = open(path, "rb")
    except OSError:
        return default
    try:
        return f.read()
    finally:
        f.close()


def remove_if_exists(path):
    try:
        os.remove(path)
    except OSError:
        pass
