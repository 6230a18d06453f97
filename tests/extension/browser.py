"""Driving the browser extension (``web/extension/``) in headless Chromium: its id, its popup opened as a page,
its storage, the test call page served from ``web/extension/test-page/``, and frames read back from that page.

``python -m tests.extension.browser docs`` starts the service with the bundled weights and saves the README's
screenshots of the popup and of the test call page (``docs/extension_popup.png``, ``docs/extension_page.png``).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import http.server
import logging
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray
from selenium import webdriver

from tests.server.browser import bundled_service, chromium, still_face_y4m

logger = logging.getLogger(__name__)

EXTENSION_DIR = Path(__file__).resolve().parents[2] / "web" / "extension"
TEST_PAGE_DIR = EXTENSION_DIR / "test-page"


def extension_id(path: Path = EXTENSION_DIR) -> str:
    """The id Chromium gives an unpacked extension: the SHA-256 of its absolute path, first 32 hex digits written
    with the letters a-p."""
    digest = hashlib.sha256(os.fsencode(os.path.realpath(path))).hexdigest()[:32]
    return "".join(chr(ord("a") + int(digit, 16)) for digit in digest)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("test page server: " + format, *args)


@contextmanager
def serve_directory(directory: Path = TEST_PAGE_DIR) -> Iterator[int]:
    """Serve ``directory`` over HTTP on a free loopback port (yielded) while the block runs."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="test-page", daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def poll(chrome: webdriver.Chrome, script: str, timeout: float = 30.0, what: str = "") -> Any:
    """Run ``script`` (a function body; it may return a promise) until its result is truthy; return it."""
    deadline = time.monotonic() + timeout
    while True:
        value = chrome.execute_script(script)
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what or script!r}")
        time.sleep(0.1)


class Extension:
    """The extension inside one Chromium: opens its popup as a page and reads and writes its storage there."""

    def __init__(self, chrome: webdriver.Chrome, path: Path = EXTENSION_DIR) -> None:
        self.chrome = chrome
        self.id = extension_id(path)
        self.popup_handle: str | None = None

    @property
    def popup_url(self) -> str:
        """The popup as a page of its own."""
        return f"chrome-extension://{self.id}/popup.html"

    def open_popup(self) -> str:
        """Open the popup in a window of its own (left current); returns its window handle."""
        chrome = self.chrome
        chrome.switch_to.new_window("window")
        chrome.get(self.popup_url)
        poll(chrome, "return window.miradaPopup && window.miradaPopup.ready", what="the popup")
        self.popup_handle = chrome.current_window_handle
        return self.popup_handle

    @contextmanager
    def in_popup(self) -> Iterator[webdriver.Chrome]:
        """Switch to the popup's window (opening it if needed) for the block, then back."""
        back = self.chrome.current_window_handle
        if self.popup_handle is None or self.popup_handle not in self.chrome.window_handles:
            self.open_popup()
        else:
            self.chrome.switch_to.window(self.popup_handle)
        try:
            yield self.chrome
        finally:
            self.chrome.switch_to.window(back)

    def storage(self) -> dict[str, Any]:
        """chrome.storage.local."""
        with self.in_popup() as chrome:
            return dict(chrome.execute_script("return chrome.storage.local.get(null);"))

    def set_storage(self, values: dict[str, Any]) -> None:
        """Write to chrome.storage.local (as the popup's controls do)."""
        with self.in_popup() as chrome:
            chrome.execute_script("return chrome.storage.local.set(arguments[0]).then(() => true);", values)

    def tabs(self) -> dict[str, Any]:
        """The service worker's per-tab status (chrome.storage.session)."""
        with self.in_popup() as chrome:
            return dict(chrome.execute_script("return chrome.storage.session.get('tabs').then(s => s.tabs || {});"))

    def streams(self) -> list[dict[str, Any]]:
        """Every camera stream the extension reported, with its tab id."""
        return [
            {**stream, "tab": int(tab_id)}
            for tab_id, entry in self.tabs().items()
            for stream in entry.get("streams", {}).values()
        ]

    def badge(self, tab_id: int) -> dict[str, str]:
        """The toolbar badge text and title for a tab."""
        with self.in_popup() as chrome:
            return dict(
                chrome.execute_script(
                    "const tabId = arguments[0];"
                    "return Promise.all([chrome.action.getBadgeText({tabId}), chrome.action.getTitle({tabId})])"
                    ".then(([text, title]) => ({text, title}));",
                    tab_id,
                )
            )

    def wait_registered(self, host: str, timeout: float = 10.0) -> None:
        """Until the service worker has registered the content scripts for ``host``."""
        with self.in_popup() as chrome:
            poll(
                chrome,
                "return chrome.scripting.getRegisteredContentScripts().then(s => s.length === 2 && "
                f"s.every(c => c.matches.some(m => m.includes({host!r}))));",
                timeout,
                f"content scripts on {host}",
            )


def grab(chrome: webdriver.Chrome, which: str = "local") -> NDArray[np.uint8]:
    """The test page's newest ``local`` (what getUserMedia gave) or ``remote`` (the call's far end) frame, RGB."""
    url = chrome.execute_script("return window.testPage.grab(arguments[0]);", which)
    data = base64.b64decode(str(url).split(",", 1)[1])
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise RuntimeError(f"the test page's {which} video has no frame yet")
    return np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), dtype=np.uint8)


def region_diffs(
    a: NDArray[np.uint8], b: NDArray[np.uint8], boxes: list[tuple[int, int, int, int]]
) -> tuple[float, float]:
    """Mean |a - b| inside the eye boxes, and in a control band below them (cheeks and nose, never touched)."""
    if a.shape != b.shape:
        raise ValueError(f"frames of different sizes: {a.shape} and {b.shape}")
    diff = np.abs(a.astype(np.float32) - b.astype(np.float32)).mean(axis=2)
    eyes = float(np.mean([diff[y0:y1, x0:x1].mean() for x0, y0, x1, y1 in boxes]))
    x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    x1, y1 = max(b[2] for b in boxes), max(b[3] for b in boxes)
    h = y1 - y0
    return eyes, float(diff[y1 + 2 * h : y1 + 5 * h, x0:x1].mean())


def configure(ext: Extension, service_url: str, sites: list[str], settings: dict[str, Any] | None = None) -> None:
    """Point the extension at ``service_url`` and list ``sites`` through the popup's own controls."""
    with ext.in_popup() as chrome:
        chrome.find_element("css selector", "#connection summary").click()
        field = chrome.find_element("id", "service-url")
        field.clear()
        field.send_keys(service_url)
        chrome.find_element("id", "save-connection").click()
        poll(chrome, f"return chrome.storage.local.get('serviceUrl').then(s => s.serviceUrl === {service_url!r});")
        chrome.find_element("css selector", "#sites-card summary").click()
        for site in sites:
            chrome.find_element("id", "site-input").send_keys(site)
            chrome.find_element("id", "add-site").click()
            poll(chrome, f"return chrome.storage.local.get('sites').then(s => s.sites.includes({site!r}));")
    if settings:
        current = ext.storage().get("settings", {})
        ext.set_storage({"settings": {**current, **settings}})
    for site in sites:
        ext.wait_registered(site)


def main(out_dir: Path) -> None:
    """Serve the bundled model and save the README's screenshots of the popup and of a corrected test call."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with (
        bundled_service() as port,
        tempfile.TemporaryDirectory() as tmp,
        serve_directory() as page_port,
        chromium(still_face_y4m(Path(tmp)), width=1200, height=740, extension=EXTENSION_DIR) as chrome,
    ):
        page = chrome.current_window_handle
        ext = Extension(chrome)
        configure(ext, f"http://127.0.0.1:{port}", ["127.0.0.1"])
        chrome.switch_to.window(page)
        chrome.get(f"http://127.0.0.1:{page_port}/?start&camera=mirada-eye-contact")
        poll(chrome, "return window.testPage.frames.remote > 30", 60, "the call")
        # Wait for the corrector to settle (face tracking, strength ramp).
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if any(s["state"] == "live" and s.get("fps", 0) > 5 for s in ext.streams()):
                break
            time.sleep(0.5)
        time.sleep(3.0)
        chrome.save_screenshot(str(out_dir / "extension_page.png"))
        with ext.in_popup() as popup:
            popup.set_window_size(420, 1000)
            popup.execute_script(
                "document.getElementById('sites-card').open = false;"
                "document.getElementById('message').textContent = '';"
            )
            time.sleep(1.5)  # the status refreshes every second
            popup.find_element("id", "popup").screenshot(str(out_dir / "extension_popup.png"))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs"))
