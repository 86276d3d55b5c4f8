"""The handheld's screens as images for docs/firmware.md ("Languages"): the tour of
devkit/screen_tour.py in English and in Chinese, each screen saved by the simulator's
screenshot command and written as a PNG (128x64 scaled 2x) to docs/screens/<lang>/<name>.png;
prints the Markdown table that shows them.

    .venv/bin/python -m devkit.screen_images
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from PIL import Image

from devkit import ROOT, screen_tour
from devkit.handheld import SimHandheld

OUT = ROOT / "docs" / "screens"
LANGUAGES = ("en", "zh")
HEAP = "200K"
SCALE = 2  # the panel's 128x64 pixels are too small to read at 1x in a browser


def shoot(language: str, shots: Path) -> list[str]:
    """Run the tour on a handheld speaking language, its screens saved as PBM in shots."""
    # A roomy heap: the screenshot command's module and names come on top of the tour's
    # (tests/firmware/test_screens.py runs the tour at the simulator's heap).
    hh = SimHandheld.with_config(shots / "flash", screen_tour.config(language), HEAP)
    try:
        return [name for name, _ in screen_tour.tour(hh.start(), shots)]
    finally:
        hh.kill()


def to_png(pbm: Path, png: Path) -> None:
    """Lit pixels white on black, as the OLED shows them."""
    image = Image.open(pbm).convert("L").point(lambda v: 255 - v)
    image = image.resize((image.width * SCALE, image.height * SCALE), Image.Resampling.NEAREST)
    png.parent.mkdir(parents=True, exist_ok=True)
    image.convert("1").save(png, optimize=True)


def main() -> None:
    names: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for language in LANGUAGES:
            shots = Path(tmp) / language
            shots.mkdir()
            names = shoot(language, shots)
            for name in names:
                to_png(shots / f"{name}.pbm", OUT / language / f"{name}.png")
    print("| screen | English | 中文 |\n|---|---|---|")
    for name in names:
        cells = " | ".join(f"![{name} {lang}](screens/{lang}/{name}.png)" for lang in LANGUAGES)
        print(f"| {name} | {cells} |")


if __name__ == "__main__":
    main()
