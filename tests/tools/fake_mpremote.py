"""A stand-in for mpremote: a "board" that is a folder, with exec/run on the real MicroPython
unix port over that folder mounted at "/" (vfs.VfsPosix), so tools/flash's on-device scripts
run for real. FAKE_BOARD_ROOT is the folder, FAKE_BOARD_PORT the only port that answers."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(os.environ["FAKE_BOARD_ROOT"])
MICROPYTHON = str(Path(sys.executable).with_name("micropython"))
LOG = ROOT.parent / "mpremote.log"


def on_board(remote: str) -> Path:
    return ROOT / remote.lstrip(":").lstrip("/")


def micropython(code: str) -> None:
    prelude = f"import vfs\nvfs.mount(vfs.VfsPosix({str(ROOT)!r}), '/')\n"
    proc = subprocess.run([MICROPYTHON, "-c", prelude + code], capture_output=True, text=True)
    sys.stdout.write(proc.stdout)
    if proc.returncode:
        sys.stdout.write(proc.stderr)
        sys.exit(1)


def main(argv: list[str]) -> None:
    with LOG.open("a") as log:
        log.write(" ".join(argv) + "\n")
    if argv[:1] != ["connect"] or argv[1] != os.environ["FAKE_BOARD_PORT"]:
        sys.exit(f"failed to access {argv[1] if len(argv) > 1 else '?'}")
    commands, cmd = [], []
    for arg in argv[2:]:
        if arg == "+":
            commands.append(cmd)
            cmd = []
        else:
            cmd.append(arg)
    commands.append(cmd)
    for cmd in commands:
        if cmd[0] == "exec":
            micropython(cmd[1])
        elif cmd[0] == "run":
            micropython(Path(cmd[1]).read_text())
        elif cmd[:2] == ["fs", "cp"]:
            src, dest = [a for a in cmd[2:] if not a.startswith("-")]
            if not on_board(dest).parent.is_dir():
                sys.exit(f"cp: no folder for {dest}")
            shutil.copyfile(src, on_board(dest))
        elif cmd[:2] == ["fs", "rm"]:
            target = on_board(cmd[-1])
            if target.is_dir() and "-r" in cmd:
                shutil.rmtree(target)
            else:
                target.unlink()
        elif cmd[:2] == ["romfs", "deploy"]:
            image = Path(cmd[2]).read_bytes()
            if not image.startswith(b"\xd2\xcd\x31"):  # mpremote/romfs.py ROMFS_HEADER
                sys.exit("romfs deploy: not a ROMFS image")
            (ROOT.parent / "romfs.img").write_bytes(image)
        elif cmd == ["reset"]:
            (ROOT.parent / "reset").touch()
        else:
            sys.exit(f"fake mpremote: unknown command {cmd}")


if __name__ == "__main__":
    main(sys.argv[1:])
