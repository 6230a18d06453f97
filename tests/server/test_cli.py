"""``mirada serve``: refuses an exposed port without a key; the other commands do not load the service stack."""

from __future__ import annotations

import re
import subprocess
import sys

from typer.testing import CliRunner

from engine.cli import app


def test_serve_refuses_a_public_address_without_an_api_key() -> None:
    result = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0"], env={"MIRADA_API_KEY": "", "COLUMNS": "300"})
    assert result.exit_code != 0
    words = " ".join(re.sub(r"[│╭╮╰╯─]", " ", result.output).split())  # the message may be boxed and wrapped
    assert "refusing to listen on 0.0.0.0 without an API key" in words


def test_serve_is_listed() -> None:
    result = CliRunner().invoke(app, ["serve", "--help"])
    assert result.exit_code == 0
    assert "--max-sessions" in result.output


def test_other_commands_do_not_import_aiortc_or_uvicorn() -> None:
    heavy = "{'aiortc', 'uvicorn', 'av', 'fastapi'}"
    code = f"import sys, engine.cli; print(sorted(m for m in sys.modules if m.split('.')[0] in {heavy}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
