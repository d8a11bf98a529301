"""Profile torchvision's ResNet-18 on the CPU and take a screenshot of its HTML report with headless
Chromium: docs/html_report.png, the picture the README shows. The HTML itself is not kept.

    .venv/bin/python scripts/html_screenshot.py [--output docs/html_report.png] [--height 2300]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torchvision

import torchprof_lab

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=str(ROOT / "docs" / "html_report.png"))
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=2300, help="pixels of the page shown, from its top")
    args = parser.parse_args()
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        print("chromium is not installed: apt-get install -y --no-install-recommends chromium", file=sys.stderr)
        return 1
    report = torchprof_lab.profile(torchvision.models.resnet18(), (3, 224, 224), batch_sizes=[1, 4, 16],
                                   device="cpu", min_time=0.3, per_layer=True, memory=True)
    with tempfile.TemporaryDirectory() as folder:
        page = Path(folder) / "report.html"
        page.write_text(report.to_html(depth=2))
        subprocess.run([browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        "--force-device-scale-factor=1", f"--user-data-dir={folder}/profile",
                        f"--window-size={args.width},{args.height}", f"--screenshot={Path(args.output).resolve()}",
                        page.as_uri()], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=120)
    _shrink(Path(args.output))
    print(f"wrote {args.output} ({Path(args.output).stat().st_size / 1e3:.0f} KB)")
    return 0


def _shrink(path: Path) -> None:
    """A 256-colour PNG where Pillow is installed (a third of the size, the same to the eye)."""
    try:
        from PIL import Image
    except ImportError:
        return
    with Image.open(path) as image:
        small = image.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    small.save(path, optimize=True)


if __name__ == "__main__":
    sys.exit(main())
