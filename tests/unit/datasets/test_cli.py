from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vigil.cli.main import app
from vigil.errors import UpstreamUnavailable


def test_datasets_lists_what_is_found(data_dir: Path, vigil_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIL_DATA_DIR", str(data_dir))
    result = CliRunner().invoke(app, ["datasets", "--json"])
    assert result.exit_code == 0, result.output
    found = {d["name"]: d for d in json.loads(result.output)["datasets"]}
    assert found["smd"]["format"] == "smd-like" and "machine-1-2" in found["smd"]["entities"]
    assert found["asd"]["entities"][:2] == ["omi-1", "omi-2"]
    assert len(found["nab"]["entities"]) == 24
    text = CliRunner().invoke(app, ["datasets"])
    assert "smd" in text.output and "5 entities" in text.output


def test_fetch_without_network_is_upstream_unavailable(vigil_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # No route to the real hosts: point the requests at a closed local port through a proxy setting.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{port}")
    result = CliRunner().invoke(app, ["datasets", "fetch", "nab"])
    assert isinstance(result.exception, UpstreamUnavailable)
    assert "cannot download nab" in str(result.exception)
    assert not (vigil_home / "datasets" / "nab" / "data").exists()
