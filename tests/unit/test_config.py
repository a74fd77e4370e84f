"""Settings: secrets from files, and secrets never in a repr."""

from __future__ import annotations

from pathlib import Path

import pytest

from vigil.config import load_settings
from vigil.errors import ConfigError


def test_secrets_come_from_files_and_stay_out_of_reprs(vigil_home: Path, tmp_path: Path) -> None:
    (tmp_path / "token").write_text("s3cret-token\n")
    (tmp_path / "key").write_text("sk-local\n")
    settings = load_settings(
        home=vigil_home,
        api_token_file=str(tmp_path / "token"),
        llm={"api_key_file": str(tmp_path / "key")},
        chatops={"webhook_token_file": str(tmp_path / "token")},
        apprise_urls=["slack://T000/B000/XXXX"],
    )
    assert settings.api_token == "s3cret-token" and settings.llm.api_key == "sk-local"
    assert settings.chatops.webhook_token == "s3cret-token"
    shown = repr(settings)
    assert "s3cret" not in shown and "sk-local" not in shown and "XXXX" not in shown
    assert (
        load_settings(home=vigil_home, api_token="inline", api_token_file=str(tmp_path / "token")).api_token == "inline"
    )


@pytest.mark.parametrize("content", [None, ""])
def test_a_missing_or_empty_secret_file_is_a_config_error_naming_it(
    vigil_home: Path, tmp_path: Path, content: str | None
) -> None:
    path = tmp_path / "slack-secret"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match="slack_signing_secret_file"):
        load_settings(home=vigil_home, slack_signing_secret_file=str(path))


def test_maintenance_windows_need_a_timezone_and_an_end_after_their_start(vigil_home: Path) -> None:
    settings = load_settings(
        maintenance=[{"start": "2026-12-08T02:00:00Z", "end": "2026-12-08T03:00:00+00:00", "entities": ["db-1:9100"]}]
    )
    start = 1796695200.0  # 2026-12-08T02:00:00Z
    assert settings.in_maintenance("db-1:9100", start) and settings.in_maintenance("db-1:9100", start + 3599)
    assert not settings.in_maintenance("db-1:9100", start + 3600) and not settings.in_maintenance("web-1", start)
    everyone = load_settings(maintenance=[{"start": "2026-12-08T02:00:00Z", "end": "2026-12-08T03:00:00Z"}])
    assert everyone.in_maintenance("web-1", start)
    for bad, reason in (
        ({"start": "2026-12-08T02:00:00", "end": "2026-12-08T03:00:00Z"}, "need a timezone"),
        ({"start": "2026-12-08T03:00:00Z", "end": "2026-12-08T02:00:00Z"}, "end after it starts"),
        ({"start": "2026-12-08T02:00:00Z", "end": "2026-12-08T03:00:00Z", "hosts": ["x"]}, "hosts"),
    ):
        with pytest.raises(ConfigError, match=reason):
            load_settings(maintenance=[bad])
