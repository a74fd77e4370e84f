"""A local chat endpoint for the campaign: where Vigil's explanations land, with their arrival time.

The campaign points the stack's Apprise target at it (``json://127.0.0.1:<port>/chat``, Apprise's
generic JSON webhook), so every message the Alertmanager -> Vigil webhook -> explainer -> Apprise path
posts is recorded, and time-to-chat and the signature Vigil named can be scored per fault. Nothing
real is paged during a campaign.
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# [UPDATE]: another entity joined an incident whose [FIRING] message is already in chat.
TITLE = re.compile(
    r"^\[(?P<status>FIRING|UPDATE|RESOLVED)\] (?P<alertname>\S+) on (?P<entity>.+?)(?:: (?P<label>.*))?$"
)
SIGNATURE = re.compile(r"signature: (?P<signature>[a-z_]+)")
# "...: dependency outage at database (joins incident ...)": the dependency the cause lies at.
AT = re.compile(r": [a-z ]+ at (?P<dependency>[^\s()]+)")


def parse_message(title: str, message: str) -> dict[str, Any]:
    """Status, alert name, entity, signature and the dependency named (if any) of one of the webhook's
    chat messages.

    >>> parse_message("[FIRING] VigilAnomaly on 127.0.0.1:9100: cpu saturation", "... [signature: cpu_saturation, ...")
    {'status': 'firing', 'alertname': 'VigilAnomaly', 'entity': '127.0.0.1:9100', 'signature': 'cpu_saturation', \
'dependency': ''}
    >>> parse_message("[FIRING] VigilAnomaly on demo: dependency outage at database", "[signature: dependency_outage")
    {'status': 'firing', 'alertname': 'VigilAnomaly', 'entity': 'demo', 'signature': 'dependency_outage', \
'dependency': 'database'}
    """
    head = TITLE.match(title.strip())
    sig = SIGNATURE.search(message)
    at = AT.search(title)
    return {
        "status": head["status"].lower() if head else "",
        "alertname": head["alertname"] if head else "",
        "entity": head["entity"] if head else "",
        "signature": sig["signature"] if sig else "",
        "dependency": at["dependency"] if at else "",
    }


class ChatSink:
    """Records JSON POSTs on 127.0.0.1 (context manager; port chosen by the kernel)."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                arrived = time.time()
                raw = self.rfile.read(min(int(self.headers.get("Content-Length") or 0), 1 << 20))
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {}
                title, message = str(body.get("title", "")), str(body.get("message", ""))
                with sink._lock:
                    sink.messages.append({"t": arrived, "title": title, **parse_message(title, message)})
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="chat-sink", daemon=True)

    @property
    def apprise_url(self) -> str:
        return f"json://127.0.0.1:{self._server.server_address[1]}/chat"

    def __enter__(self) -> ChatSink:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.messages)
