"""Headless Chromium (Debian's `chromium`) for tests of offline HTML pages: the DOM it builds, a screenshot."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CHROMIUM_TIMEOUT_S = 60


def chromium(page: Path, out: Path, *args: str) -> bytes:
    """Runs Debian's chromium headless on `page` (file://) with networking denied (a dead proxy and a host
    resolver that resolves nothing); returns its stdout. Fails naming the package when chromium is missing."""
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("chromium is not installed: apt-get install -y chromium (.ci/run installs it)")
    cmd = [
        path,
        "--headless",
        "--no-sandbox",  # CI runs as root
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-extensions",
        "--proxy-server=127.0.0.1:9",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--force-device-scale-factor=1",
        "--hide-scrollbars",
        f"--user-data-dir={out / 'profile'}",
        *args,
        page.as_uri(),
    ]
    with open(out / "chromium.log", "wb") as log, open(out / "stdout", "wb") as stdout:
        proc = subprocess.Popen(cmd, stdout=stdout, stderr=log, start_new_session=True)
        try:
            code = proc.wait(CHROMIUM_TIMEOUT_S)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    assert code == 0, (out / "chromium.log").read_text(errors="replace")[-2000:]
    return (out / "stdout").read_bytes()


def colour_runs(png: Path, colour: str) -> list[tuple[int, int]]:
    """(first row, width in px) of each horizontal band of `colour` in the screenshot, top to bottom: the
    bars are horizontal and never side by side, so each band is one bar (or one legend swatch)."""
    rgb = np.asarray(Image.open(png).convert("RGB")).astype(int)
    target = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])
    mask = np.abs(rgb - target).max(axis=2) <= 2
    rows = mask.any(axis=1)
    runs, y = [], 0
    while y < len(rows):
        if rows[y]:
            top = y
            while y < len(rows) and rows[y]:
                y += 1
            runs.append((top, int(mask[top:y].sum(axis=1).max())))
        y += 1
    return runs


class Page(HTMLParser):
    """Tags (with attributes), the text, and each <svg>'s rects and title, as html.parser sees them."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.svgs: list[dict] = []
        self._in_title = False
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "svg":
            self.svgs.append({"attrs": dict(attrs), "rects": [], "title": "", "texts": []})
        elif tag == "rect" and self.svgs:
            self.svgs[-1]["rects"].append(dict(attrs))
        self._in_title = tag == "title"

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False

    def handle_data(self, data):
        self.text.append(data)
        if self.svgs and self._in_title and not self.svgs[-1]["title"]:
            self.svgs[-1]["title"] = data

    @property
    def all_text(self) -> str:
        return " ".join(" ".join(self.text).split())
