"""Screenshot a leaderboard site in headless Chromium (the README's picture of the site).

    python tools/screenshot_site.py results/site/index.html docs/img/site.png [--width 1400 --height 1100]

Needs Debian's ``chromium`` and ``chromium-driver`` and ``selenium`` (the ``test`` extra).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from chromium import INSTALL_HINT, binaries, headless_driver


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("page", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=1100)
    args = parser.parse_args(argv)
    if binaries() is None:
        sys.exit(f"needs chromium and chromedriver: {INSTALL_HINT}")
    if not args.page.is_file():
        sys.exit(f"no page at {args.page}: write it with `benchsuite report --results DIR`")
    driver = headless_driver(args.width, args.height)
    try:
        driver.get(args.page.resolve().as_uri())
        # wait until every picture has loaded, so none is blank in the shot
        driver.execute_async_script(
            "var done = arguments[0]; Promise.all(Array.from(document.images).map(function (im) {"
            " im.loading = 'eager'; return im.complete ? 1 : new Promise(function (r) { im.onload = im.onerror = r; });"
            "})).then(function () { done(); });")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(args.out))
    finally:
        driver.quit()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
