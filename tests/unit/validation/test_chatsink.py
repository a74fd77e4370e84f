"""The campaign's chat endpoint, fed by Apprise's real json:// plugin."""

from __future__ import annotations

import apprise

from vigil.validation.chatsink import ChatSink, parse_message


def test_apprise_json_messages_are_recorded_and_parsed() -> None:
    with ChatSink() as sink:
        client = apprise.Apprise()
        assert client.add(sink.apprise_url)
        body = "CPU saturation on 127.0.0.1:9100 [signature: cpu_saturation, confidence 90%]\n..."
        assert client.notify(title="[FIRING] VigilAnomaly on 127.0.0.1:9100: cpu saturation", body=body)
        assert client.notify(title="[RESOLVED] VigilAnomaly on 127.0.0.1:9100", body="back to normal")
        got = sink.snapshot()
    assert [(m["status"], m["entity"], m["signature"]) for m in got] == [
        ("firing", "127.0.0.1:9100", "cpu_saturation"),
        ("resolved", "127.0.0.1:9100", ""),
    ]
    assert got[0]["t"] <= got[1]["t"]


def test_unrecognised_messages_parse_to_empty_fields() -> None:
    assert parse_message("hello", "no signature here") == {
        "status": "",
        "alertname": "",
        "entity": "",
        "signature": "",
        "dependency": "",
    }
