"""A report page as a real browser lays it out: Debian's ``chromium``, headless, driven by Playwright.

Playwright for Python drives the system's Chromium (``executable_path``); Playwright's own browser
downloads are never used. Every session gets a fresh profile (``--user-data-dir``) and the flags that keep
Chromium from reaching the network on its own (updates, sync, field trials). A window size is a real
viewport (Chromium's own ``--window-size`` stops at 500 px wide in headless mode; a phone is 390).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

INSTALL_HINT = "install Chromium to run it: apt-get install -y --no-install-recommends chromium"
CANDIDATES = ("chromium", "chromium-browser")
FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
PHONE, DESK = (390, 844), (1280, 800)

# Runs in the laid-out page. An element counts as too wide when it reaches past the viewport and no
# ancestor clips it into a scrolling box that itself fits (a wide table scrolling inside its own box).
_MEASURE = """() => {
  const vw = document.documentElement.clientWidth, wide = [];
  const clipped = (el) => {
    for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
      const o = getComputedStyle(p).overflowX;
      if (o === 'auto' || o === 'scroll' || o === 'hidden') {
        const r = p.getBoundingClientRect();
        return r.left >= -0.5 && r.right <= vw + 0.5;
      }
    }
    return false;
  };
  for (const el of document.body.querySelectorAll('*')) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    if ((r.right > vw + 0.5 || r.left < -0.5) && !clipped(el)) {
      const name = el.tagName.toLowerCase() + (el.className ? '.' + el.className : '');
      wide.push(`${name} ${Math.round(r.left)}..${Math.round(r.right)}`);
    }
  }
  const verdict = document.querySelector('#verdict, .verdict');
  const vr = verdict ? verdict.getBoundingClientRect() : null;
  return {
    viewport_width: vw,
    viewport_height: window.innerHeight,
    page_width: document.documentElement.scrollWidth,
    too_wide: wide,
    verdict: verdict ? verdict.innerText : null,
    verdict_top: vr ? Math.round(vr.top + window.scrollY) : null,
    verdict_bottom: vr ? Math.round(vr.bottom + window.scrollY) : null,
    links: [...document.links].map((a) => a.href),
    text: document.body.innerText,
  };
}"""


@dataclass(frozen=True)
class Layout:
    """What Chromium measured of a page at one viewport size; ``links`` are resolved (absolute) URLs."""

    viewport_width: int
    viewport_height: int
    page_width: int
    too_wide: list[str]
    verdict: str | None
    verdict_top: int | None
    verdict_bottom: int | None
    links: list[str]
    text: str


def find_chromium() -> str | None:
    """The system's Chromium (``CHROMIUM`` overrides), or None when it is not installed."""
    given = os.environ.get("CHROMIUM")
    if given:
        return shutil.which(given) or (given if Path(given).is_file() else None)
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def missing() -> str | None:
    """Why a page cannot be checked in a browser here (one line with the fix), or None when it can."""
    if find_chromium() is None:
        return f"no Chromium on this machine: {INSTALL_HINT}"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is missing: make install"
    return None


def _address(page: Path | str) -> str:
    return page.resolve().as_uri() if isinstance(page, Path) else page


class Browser:
    """One headless Chromium; ``measure`` and ``screenshot`` open a page in a viewport of a given size."""

    def __init__(self, playwright: Any, chromium: str, profile: str) -> None:
        self._context = playwright.chromium.launch_persistent_context(
            profile, executable_path=chromium, headless=True, args=list(FLAGS), viewport={"width": 1280, "height": 800}
        )

    def _open(self, page: Path | str, width: int, height: int) -> Any:
        tab = self._context.new_page()
        tab.set_viewport_size({"width": width, "height": height})
        tab.goto(_address(page), wait_until="load")
        return tab

    def measure(self, page: Path | str, width: int, height: int) -> Layout:
        """Lay ``page`` (a file or a URL) out in a ``width`` × ``height`` viewport and measure it."""
        tab = self._open(page, width, height)
        try:
            return Layout(**tab.evaluate(_MEASURE))
        finally:
            tab.close()

    def status(self, url: str) -> int:
        """The HTTP status a link answers with (a GET, as a click would make it)."""
        return int(self._context.request.get(url).status)

    def screenshot(self, page: Path | str, out: Path, width: int, height: int, full_page: bool = False) -> Path:
        """Save ``page`` at ``width`` × ``height`` as a PNG (its first screen, or all of it)."""
        out.parent.mkdir(parents=True, exist_ok=True)
        tab = self._open(page, width, height)
        try:
            tab.screenshot(path=str(out), full_page=full_page)
        finally:
            tab.close()
        return out

    def close(self) -> None:
        self._context.close()


@contextmanager
def browser() -> Iterator[Browser]:
    """A headless Chromium for the ``with`` block, on a fresh profile removed afterwards.

    Raises ``RuntimeError`` with the one-line fix when Chromium or Playwright is missing (``missing()``).
    """
    why = missing()
    if why:
        raise RuntimeError(why)
    from playwright.sync_api import sync_playwright

    chromium = find_chromium()
    assert chromium is not None
    with sync_playwright() as playwright, tempfile.TemporaryDirectory(prefix="rostersync-chromium-") as profile:
        opened = Browser(playwright, chromium, profile)
        try:
            yield opened
        finally:
            opened.close()
