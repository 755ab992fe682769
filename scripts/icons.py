"""Draw the installable page's PNG icons from static/rooms/icon.svg with Chromium (run once;
the PNGs are committed): `.venv/bin/python scripts/icons.py`.

- icon-192.png, icon-512.png: the round icon on a transparent square ("any" in the manifest).
- icon-maskable-512.png: the icon inside the central 80 % safe zone on a full-bleed background
  of its own orange, so a launcher's circle or squircle mask never cuts into it ("maskable").
- apple-touch-icon.png (180): the same full-bleed square; iOS fills transparency with black.
"""

from __future__ import annotations

import base64
from pathlib import Path

from playwright.sync_api import sync_playwright

STATIC = Path(__file__).resolve().parent.parent / "static" / "rooms"
CHROMIUM = "/usr/bin/chromium"
BACKGROUND = "#e8603c"  # the circle's own colour in icon.svg

# (file, size, icon diameter as a share of the square, background)
ICONS = [
    ("icon-192.png", 192, 1.0, "transparent"),
    ("icon-512.png", 512, 1.0, "transparent"),
    ("icon-maskable-512.png", 512, 0.8, BACKGROUND),
    ("apple-touch-icon.png", 180, 0.8, BACKGROUND),
]


def main() -> None:
    svg = base64.b64encode((STATIC / "icon.svg").read_bytes()).decode()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        for name, size, share, background in ICONS:
            page = browser.new_page(viewport={"width": size, "height": size})
            inner = round(size * share)
            page.set_content(
                f"<body style='margin:0;background:{background};display:grid;"
                f"place-items:center;width:{size}px;height:{size}px'>"
                f"<img src='data:image/svg+xml;base64,{svg}' width={inner} height={inner}>"
            )
            page.screenshot(path=str(STATIC / name), omit_background=background == "transparent")
            page.close()
            print(f"{name}: {size}x{size}")
        browser.close()


if __name__ == "__main__":
    main()
