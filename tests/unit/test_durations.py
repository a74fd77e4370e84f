"""One duration grammar for the CLI, the console and chat."""

from __future__ import annotations

import pytest

from vigil.durations import parse_duration
from vigil.errors import BadRequest


def test_every_form_people_type() -> None:
    assert parse_duration("90s") == 90 and parse_duration("30m") == 1800 and parse_duration("1d") == 86400
    assert parse_duration("1h30m") == parse_duration("1.5h") == 5400
    assert parse_duration(" 7D ") == 7 * 86400 and parse_duration("2w") == 14 * 86400
    assert parse_duration("15 m") == parse_duration("1h 30m") - 4500


@pytest.mark.parametrize("bad", ["", "soon", "30", "m", "-5m", "0m", "30m1h", "30m; rm -rf /", "1e3s", "9" * 400 + "s"])
def test_what_is_not_a_duration_is_refused_with_the_text(bad: str) -> None:
    with pytest.raises(BadRequest):
        parse_duration(bad)


def test_a_limit_names_itself() -> None:
    assert parse_duration("7d", maximum_s=7 * 86400) == 7 * 86400
    with pytest.raises(BadRequest, match="longer than the limit of 7 days"):
        parse_duration("8d", maximum_s=7 * 86400)
