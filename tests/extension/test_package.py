"""The extension's package, without a browser: the manifest asks for no more than it needs, every file it names is
there, nothing is loaded from elsewhere, and the icons are what ``tests/extension/icons.py`` draws."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from tests.extension.browser import EXTENSION_DIR, extension_id
from tests.extension.icons import SIZES, icon_files


def manifest() -> dict[str, Any]:
    return dict(json.loads((EXTENSION_DIR / "manifest.json").read_text()))


def test_manifest_v3_with_minimal_permissions() -> None:
    m = manifest()
    assert m["manifest_version"] == 3
    # storage: settings; scripting: content scripts on the listed sites only; activeTab: the popup's "use on this
    # site" reads the current tab's address when the person opens it. No tabs, no webRequest, no <all_urls>.
    assert sorted(m["permissions"]) == ["activeTab", "scripting", "storage"]
    assert m["host_permissions"] == ["http://127.0.0.1/*", "http://localhost/*"]  # the service, by default
    assert sorted(m["optional_host_permissions"]) == ["http://*/*", "https://*/*"]  # asked for site by site
    assert "content_scripts" not in m  # registered at run time for the listed sites (background.js)
    assert "<all_urls>" not in json.dumps(m)
    assert "web_accessible_resources" not in m  # pages cannot fetch anything of the extension


def referenced_files() -> set[str]:
    """Every extension file named by the manifest, the popup page and the service worker."""
    m = manifest()
    names = {m["background"]["service_worker"], m["action"]["default_popup"]}
    names |= set(m["icons"].values()) | set(m["action"]["default_icon"].values())
    popup = (EXTENSION_DIR / "popup.html").read_text()
    names |= set(re.findall(r'(?:src|href)="([^"]+)"', popup))
    worker = (EXTENSION_DIR / "background.js").read_text()
    names |= set(re.findall(r'importScripts\("([^"]+)"\)', worker))
    for js in re.findall(r"js: \[([^\]]+)\]", worker):  # the content scripts it registers
        names |= set(re.findall(r'"([^"]+)"', js))
    names |= set(re.findall(r'"(icons/[^"]+\.png)"', worker))
    return names


def test_every_file_named_exists() -> None:
    names = referenced_files()
    assert {"mirada-client.js", "page.js", "shared.js", "bridge.js", "popup.js", "icons/mirada-off-16.png"} <= names
    missing = [name for name in names if not (EXTENSION_DIR / name).is_file()]
    assert not missing


def test_nothing_is_loaded_from_elsewhere() -> None:
    # Manifest V3 forbids remote code anyway; this also keeps out remote styles, images and fonts.
    for path in EXTENSION_DIR.rglob("*"):
        if path.suffix not in {".js", ".html", ".css"}:
            continue
        text = path.read_text()
        urls = [u for u in re.findall(r"https?://[^\s\"'`)]+", text) if not u.startswith("http://127.0.0.1:8000")]
        assert not urls, (path, urls)
        assert "eval(" not in text, path
        assert "new Function" not in text, path


def test_icons_are_the_drawn_ones() -> None:
    files = icon_files()
    assert {f"mirada-{size}.png" for size in SIZES} <= set(files)
    for name, expected in files.items():
        stored = cv2.imread(str(EXTENSION_DIR / "icons" / name), cv2.IMREAD_UNCHANGED)
        assert stored is not None, name
        rgba = cv2.cvtColor(stored, cv2.COLOR_BGRA2RGBA)
        assert rgba.shape == expected.shape, name
        assert int(np.abs(rgba.astype(np.int16) - expected.astype(np.int16)).max()) <= 2, name


def test_extension_id_is_derived_from_the_path() -> None:
    # Chromium's rule for unpacked extensions, which the browser tests use to open the popup.
    ext_id = extension_id(Path("/tmp/extx"))
    assert ext_id == "iimhiopejpkeckhfmciofpmflhgjmppg"
    assert re.fullmatch(r"[a-p]{32}", extension_id())
