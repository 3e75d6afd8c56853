"""Check in a real browser that an explorer works on a built page, and take screenshots.

    pip install playwright            # the Python package only; it drives Chromium
    python tools/browser_check.py _build/html/book/ch01_quiet_failure.html --shots out/

It opens the page in headless Chromium (``/usr/bin/chromium``, or ``CHROMIUM`` if set),
waits for MathJax, screenshots the page, then, for each explorer (matplotlib's JavaScript
player), records the picture shown, moves the slider to the last frame and checks that the
picture changed. Exits 1 if a page has no explorer or a slider does not change its picture.
Not part of the tests: the test suite checks the built HTML for the players' frames and
links (``tests/test_book.py``); this is the check by eye and by browser behind it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def check_page(page, path: Path, shots: Path | None) -> list[str]:
    page.goto(path.resolve().as_uri())
    page.wait_for_load_state("load")
    page.wait_for_timeout(1500)  # MathJax and the players' setTimeout(0) start-up
    if shots:
        page.screenshot(path=str(shots / f"{path.stem}.png"), full_page=False)
    sliders = page.locator("input.anim-slider")
    results = []
    for i in range(sliders.count()):
        slider = sliders.nth(i)
        image = page.locator("div.animation img").nth(i)
        slider.scroll_into_view_if_needed()
        before = image.get_attribute("src")
        last = slider.get_attribute("max")
        slider.evaluate("(s, v) => { s.value = v; s.dispatchEvent(new Event('input')); }",
                        last)
        page.wait_for_timeout(200)
        after = image.get_attribute("src")
        changed = bool(before) and bool(after) and before != after
        results.append(f"{path.name} explorer {i + 1}: {int(last) + 1} frames, "
                       f"slider to the last frame changes the picture: {changed}")
        if shots:
            image.screenshot(path=str(shots / f"{path.stem}_explorer{i + 1}_last.png"))
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pages", nargs="+", type=Path, help="built HTML pages")
    parser.add_argument("--shots", type=Path, help="folder for screenshots")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    if args.shots:
        args.shots.mkdir(parents=True, exist_ok=True)
    failed = False
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=os.environ.get("CHROMIUM",
                                                                   "/usr/bin/chromium"))
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        for path in args.pages:
            lines = check_page(page, path, args.shots)
            print("\n".join(lines) or f"{path.name}: no explorer")
            failed |= not lines or any(line.endswith("False") for line in lines)
        browser.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
