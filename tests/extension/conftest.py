"""Fixtures of the extension's browser tests: the service on a stand-in network that visibly changes the eyes, the
test call page on a second loopback server, and one headless Chromium with the extension loaded and pointed at the
service, shared by the module's tests (starting a browser is the slow part)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import uvicorn
from fastapi import FastAPI
from numpy.typing import NDArray
from pydantic import SecretStr
from selenium import webdriver

from engine.runtime.corrector import Corrector
from engine.runtime.samples import fit_to_frame, sample_face
from engine.runtime.settings import Settings
from server.config import ServerSettings
from server.rtc.session import Session
from tests.extension.browser import EXTENSION_DIR, Extension, configure, grab, poll, serve_directory
from tests.server.browser import chromium, still_face_y4m
from tests.server.conftest import free_port, start_server
from tests.server.fakes import BrightEyesBackend

# Keep the stand-in correction at full strength whatever head pose is read off the photo.
FULL = {"head_start_deg": 70, "head_end_deg": 80, "look_away_start_deg": 70, "look_away_end_deg": 80, "ramp_frames": 1}


@dataclass
class Service:
    """A Mirada service on a loopback port (uvicorn in a thread), on the stand-in network."""

    url: str
    server: uvicorn.Server

    @property
    def app(self) -> FastAPI:
        app = self.server.config.app
        if not isinstance(app, FastAPI):
            raise TypeError(f"unexpected app {app!r}")
        return app

    def sessions(self) -> list[Session]:
        """The service's open sessions."""
        return self.app.state.mirada.registry.sessions()  # type: ignore[no-any-return]

    def stop(self) -> None:
        self.server.should_exit = True


@contextmanager
def running_service(max_sessions: int = 4, api_key: str | None = None) -> Iterator[Service]:
    """A service for the block; stopped after it (if the block has not stopped it already)."""
    port = free_port()
    config = ServerSettings(port=port, max_sessions=max_sessions, api_key=SecretStr(api_key) if api_key else None)
    server, thread = start_server(config, BrightEyesBackend())
    try:
        yield Service(f"http://127.0.0.1:{port}", server)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="module")
def service() -> Iterator[Service]:
    with running_service() as live:
        yield live


@dataclass
class Browser:
    """Chromium with the extension, and where the test call page is: on a listed site and on an unlisted one."""

    chrome: webdriver.Chrome
    ext: Extension
    page_url: str  # http://127.0.0.1:PORT/ (listed: Mirada runs there)
    unlisted_url: str  # http://localhost:PORT/ (the same page where Mirada does not run)
    home: str  # the window that stays open

    @contextmanager
    def page(self, query: str = "?start&call=0") -> Iterator[str]:
        """The test call page in a window of its own for the block; yields its window handle."""
        yield from self._window(self.page_url + query)

    @contextmanager
    def unlisted_page(self, query: str = "?start&call=0") -> Iterator[str]:
        """The same page on a site Mirada is not listed for."""
        yield from self._window(self.unlisted_url + query)

    def _window(self, url: str) -> Iterator[str]:
        chrome = self.chrome
        chrome.switch_to.new_window("window")
        handle = chrome.current_window_handle
        chrome.get(url)
        try:
            yield handle
        finally:
            if handle in chrome.window_handles:
                chrome.switch_to.window(handle)
                chrome.close()
            chrome.switch_to.window(self.home)

    def use_service(self, url: str, api_key: str = "") -> None:
        """Point the extension at another service address (and key), through the popup."""
        with self.ext.in_popup() as chrome:
            if not chrome.find_element("id", "service-url").is_displayed():
                chrome.find_element("css selector", "#connection summary").click()
            for field_id, value in (("service-url", url), ("api-key", api_key)):
                field = chrome.find_element("id", field_id)
                field.clear()
                field.send_keys(value)
            chrome.find_element("id", "save-connection").click()
            poll(
                chrome,
                "return chrome.storage.local.get(['serviceUrl', 'apiKey'])"
                f".then(s => s.serviceUrl === {url!r} && s.apiKey === {api_key!r});",
            )


@pytest.fixture(scope="module")
def browser(service: Service, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    y4m = still_face_y4m(tmp_path_factory.mktemp("camera"))
    with serve_directory() as port, chromium(y4m, width=900, height=700, extension=EXTENSION_DIR) as chrome:
        ext = Extension(chrome)
        home = chrome.current_window_handle
        configure(ext, service.url, ["127.0.0.1"], FULL)
        chrome.switch_to.window(home)
        yield Browser(chrome, ext, f"http://127.0.0.1:{port}/", f"http://localhost:{port}/", home)


@dataclass
class Reference:
    """The camera's picture as a page gets it without Mirada, and where the eyes are in it."""

    frame: NDArray[np.uint8]
    eye_boxes: list[tuple[int, int, int, int]]
    track_label: str
    devices: list[dict[str, Any]]
    sessions_opened: int


@pytest.fixture(scope="module")
def reference(browser: Browser, service: Service) -> Reference:
    """Open the test page where Mirada is not listed: its frame is the raw camera's, through the same browser."""
    frame = fit_to_frame(sample_face("astronaut"), 640, 480)  # what still_face_y4m plays
    with Corrector(BrightEyesBackend(), video=False) as corrector:
        _, telemetry = corrector.process(frame, Settings.model_validate(FULL))
    boxes = [tuple(int(v) for v in box) for box in telemetry.faces[0].eye_boxes]
    before = len(service.sessions())
    with browser.unlisted_page():
        chrome = browser.chrome
        poll(chrome, "return window.testPage.frames.local > 10", 20, "frames on the unlisted page")
        raw = grab(chrome)
        label = str(chrome.execute_script("return window.testPage.label;"))
        devices = list(chrome.execute_script("return window.testPage.devices;"))
        opened = len(service.sessions()) - before
    return Reference(raw, boxes, label, devices, opened)  # type: ignore[arg-type]


def screenshots_dir(default: Path) -> Path:
    """Where the tests save what they saw (MIRADA_SCREENSHOTS, to look at them; else a temporary folder)."""
    return Path(os.environ.get("MIRADA_SCREENSHOTS", default))
