"""A real HTTP server on 127.0.0.1 that records requests: the far side of webhooks we cannot reach here.

It speaks plain HTTP for real (sockets, headers, bodies); tests choose its status, body and delay to
play a Slack/Apprise webhook endpoint, a hung upstream or a failing one.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class HTTPPeer:
    def __init__(self, *, status: int = 200, body: bytes = b'{"ok": true}', delay_s: float = 0.0) -> None:
        self.status = status
        self.body = body
        self.delay_s = delay_s
        self.requests: list[Recorded] = []
        self._cond = threading.Condition()
        peer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(length) if length else b""
                with peer._cond:
                    peer.requests.append(Recorded(self.command, self.path, dict(self.headers.items()), data))
                    peer._cond.notify_all()
                if peer.delay_s:
                    time.sleep(peer.delay_s)
                try:
                    self.send_response(peer.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(peer.body)))
                    self.end_headers()
                    self.wfile.write(peer.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> HTTPPeer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def wait_for(self, n: int, timeout_s: float = 10.0) -> list[Recorded]:
        """Block until at least ``n`` requests arrived; returns them all."""
        with self._cond:
            self._cond.wait_for(lambda: len(self.requests) >= n, timeout=timeout_s)
            return list(self.requests)
