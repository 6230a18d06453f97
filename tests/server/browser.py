"""Driving the demo page in headless Chromium (Debian's chromium and chromedriver, found on PATH or through
``MIRADA_CHROMIUM`` / ``MIRADA_CHROMEDRIVER``) with a fake camera fed from a Y4M file of a real face.

``python -m tests.server.browser docs/demo.png`` starts the service with the bundled weights and saves a
screenshot of the page for the README.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import cv2
import numpy as np
from numpy.typing import NDArray
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> tuple[str | None, str | None]:
    """(browser, driver) paths, None where missing."""
    browser = os.environ.get("MIRADA_CHROMIUM") or next(filter(None, map(shutil.which, CHROMIUM_NAMES)), None)
    driver = os.environ.get("MIRADA_CHROMEDRIVER") or shutil.which("chromedriver")
    return browser, driver


def in_ci() -> bool:
    """Whether this is CI (``CI=true``, which .ci/run sets): there a missing tool fails a test instead of skipping."""
    return os.environ.get("CI", "").lower() == "true"


def browser_missing() -> bool:
    """True where the browser tests may skip: no Chromium here, and not CI (where a missing browser fails)."""
    browser, driver = find_chromium()
    return (browser is None or driver is None) and not in_ci()


def write_y4m(path: Path, frames: list[NDArray[np.uint8]], fps: int = 30) -> None:
    """Write RGB frames as a YUV4MPEG2 (4:2:0) file, the format Chromium's fake camera reads."""
    height, width = frames[0].shape[:2]
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for rgb in frames:
            out.write(b"FRAME\n")
            out.write(np.ascontiguousarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)).tobytes())


@contextmanager
def chromium(
    y4m: Path, width: int = 1440, height: int = 1000, extension: Path | None = None
) -> Iterator[webdriver.Chrome]:
    """A headless Chromium whose camera plays ``y4m``, with the unpacked ``extension`` loaded if given. Nothing
    leaves the machine (background networking off)."""
    browser, driver = find_chromium()
    if browser is None or driver is None:
        raise FileNotFoundError("chromium and chromedriver are needed (apt-get install chromium chromium-driver)")
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must never try to download a browser or driver
    profile = tempfile.mkdtemp(prefix="mirada-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-features=WebRtcHideLocalIpsWithMdns",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={y4m}",
        "--autoplay-policy=no-user-gesture-required",
        f"--window-size={width},{height}",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    if extension is not None:
        # Extensions need the new headless mode (above); some builds load command-line extensions only when they
        # are also the exception to --disable-extensions-except.
        options.add_argument(f"--load-extension={extension}")
        options.add_argument(f"--disable-extensions-except={extension}")
    chrome = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    try:
        yield chrome
    finally:
        chrome.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_for(chrome: webdriver.Chrome, script: str, timeout: float = 30.0) -> Any:
    """Poll ``script`` (a JS expression) until it is truthy; return its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = chrome.execute_script(f"return {script};")
        if value:
            return value
        if time.monotonic() > deadline:
            state = chrome.execute_script("return JSON.stringify(window.mirada)")
            message = chrome.execute_script("return document.getElementById('message').textContent")
            raise TimeoutError(f"timed out waiting for {script!r}; page state {state}, message {message!r}")
        time.sleep(0.1)


T = TypeVar("T")


def measure_until(measure: Callable[[], T], condition: Callable[[T], bool], timeout: float = 10.0) -> T:
    """``measure()`` as soon as ``condition`` holds for it, or its last value after ``timeout`` seconds.

    For pictures that change a moment after the change that causes them (frames in flight, a codec settling,
    longer on a loaded machine): the caller's assertions, not this wait, decide, with their own thresholds.
    """
    deadline = time.monotonic() + timeout
    while True:
        found = measure()
        if condition(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.25)


# Mean |difference| between the camera preview and the corrected video inside the newest eye boxes, and in a
# control band below the eyes (cheeks and nose: never touched). Both videos show the same still frame.
REGION_DIFF_JS = """
const boxes = arguments[0];
const grab = (video) => {
  const canvas = document.createElement('canvas');
  canvas.width = video.videoWidth; canvas.height = video.videoHeight;
  const ctx = canvas.getContext('2d');
  ctx.drawImage(video, 0, 0);
  return ctx.getImageData(0, 0, canvas.width, canvas.height);
};
const a = grab(document.getElementById('original'));
const b = grab(document.getElementById('corrected'));
if (a.width !== b.width || a.height !== b.height) return null;
const mean = ([x0, y0, x1, y1]) => {
  let sum = 0, n = 0;
  for (let y = Math.max(0, y0); y < Math.min(a.height, y1); y++) {
    for (let x = Math.max(0, x0); x < Math.min(a.width, x1); x++) {
      const i = (y * a.width + x) * 4;
      for (let c = 0; c < 3; c++) sum += Math.abs(a.data[i + c] - b.data[i + c]) / 3;
      n++;
    }
  }
  return n ? sum / n : null;
};
const eyes = boxes.map(mean);
const [x0, y0, x1, y1] = [Math.min(...boxes.map(b => b[0])), Math.min(...boxes.map(b => b[1])),
                          Math.max(...boxes.map(b => b[2])), Math.max(...boxes.map(b => b[3]))];
const h = y1 - y0;
return {eyes: eyes.reduce((s, v) => s + v, 0) / eyes.length, control: mean([x0, y1 + 2 * h, x1, y1 + 5 * h])};
"""


def region_diff(chrome: webdriver.Chrome, boxes: list[list[int]]) -> dict[str, float]:
    """Eye-region and control-region differences between what the camera shows and what Mirada returns."""
    result = chrome.execute_script(REGION_DIFF_JS, boxes)
    if not isinstance(result, dict):
        raise RuntimeError(f"the two videos have different sizes: {result}")
    return {k: float(v) for k, v in result.items()}


def still_face_y4m(directory: Path, width: int = 640, height: int = 480) -> Path:
    """A short Y4M of the astronaut photo, still (the page's two videos then show the same picture)."""
    from engine.runtime.samples import fit_to_frame, sample_face

    frame = fit_to_frame(sample_face("astronaut"), width, height)
    path = directory / "face.y4m"
    write_y4m(path, [frame] * 10)
    return path


@contextmanager
def bundled_service() -> Iterator[int]:
    """The service with the bundled weights (what ``make run`` serves) on a free loopback port, yielded."""
    import threading

    import uvicorn

    from server.config import ServerSettings
    from server.main import create_app
    from tests.server.conftest import free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(ServerSettings(port=port)), port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.1)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)


def main(out: Path) -> None:
    """Serve the bundled model and screenshot the demo page with the default settings (what ``make run`` shows)."""
    with (
        bundled_service() as port,
        tempfile.TemporaryDirectory() as tmp,
        chromium(still_face_y4m(Path(tmp)), height=1250) as chrome,
    ):
        chrome.get(f"http://127.0.0.1:{port}/")
        chrome.find_element("id", "start").click()
        wait_for(chrome, "window.mirada.telemetry > 150", 90)
        time.sleep(1.0)
        out.parent.mkdir(parents=True, exist_ok=True)
        chrome.save_screenshot(str(out))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/demo.png"))
