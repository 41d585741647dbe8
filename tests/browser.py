"""Opening a page in real headless Chromium (Debian's), for tests and docs screenshots.

python -m tests.browser PAGE.html SCREENSHOT.png
"""

from __future__ import annotations

import dataclasses
import pathlib
import sys
import tempfile

from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
# The machine's network is closed: without these, Chromium keeps trying Google's hosts.
_QUIET_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclasses.dataclass(frozen=True)
class PageVisit:
    """What a person opening the page would have met."""

    console_errors: list[str]
    plots: dict[str, int]  # plot div id -> points drawn in it
    text: str


def visit(page_path: pathlib.Path, screenshot: pathlib.Path | None = None) -> PageVisit:
    """Loads `page_path` from disk, waits for its Plotly plots, counts what they draw."""
    errors: list[str] = []
    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
        browser = playwright.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=_QUIET_FLAGS,
            viewport={"width": 1200, "height": 900},
        )  # fmt: skip
        page = browser.new_page()
        page.on("console", lambda message: message.type == "error" and errors.append(message.text))
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(page_path.resolve().as_uri())
        page.wait_for_selector(".js-plotly-plot .main-svg", timeout=60_000)
        plots = page.evaluate(
            """() => Object.fromEntries([...document.querySelectorAll('.js-plotly-plot')].map(
                plot => [plot.id, plot._fullData.reduce((sum, trace) => sum + trace._length, 0)]))"""
        )
        if screenshot is not None:
            page.screenshot(path=str(screenshot), full_page=True)
        text = page.inner_text("body")
        browser.close()
    return PageVisit(errors, plots, text)


if __name__ == "__main__":
    print(visit(pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])).plots)
