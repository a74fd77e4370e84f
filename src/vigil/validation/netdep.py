"""The watched service's network dependency and the user-space delay proxy in front of it.

``python -m vigil.validation.netdep serve --port P`` is a small inventory service (the dependency the
demo service calls through ``demo.downstream_url``). ``python -m vigil.validation.netdep proxy
--listen HOST:P --upstream HOST:P --delay-file F`` forwards TCP and holds every chunk for the number
of milliseconds written in ``F``: this kernel has no netem, so delay is added in user space.
Both run inside the validation network namespace (see :mod:`vigil.validation.network`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

WAREHOUSES = ("ams-1", "fra-2", "lon-1", "nyc-3", "sfo-2", "sin-1")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out separately; Nagle would add ~40 ms to each

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        url = urlparse(self.path)
        if url.path == "/blob":
            size = min(int(parse_qs(url.query).get("bytes", ["100000"])[0]), 50_000_000)
            body = b"x" * size
            ctype = "application/octet-stream"
        elif url.path in ("/", "/healthz"):
            body, ctype = b"ok\n", "text/plain"
        else:
            # Any other path answers like an inventory service: stock per warehouse for the whole
            # catalogue (~6 KB), so a starved link slows every answer, as it would a real one.
            item = url.path.rstrip("/").rsplit("/", 1)[-1] or "all"
            catalogue = [
                {"sku": f"SKU-{i:03d}", "warehouses": {w: random.randint(0, 500) for w in WAREHOUSES}}
                for i in range(40)
            ]
            body = json.dumps({"item": item, "t": time.time(), "stock": catalogue}).encode()
            ctype = "application/json"
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's signature
        pass


def serve(host: str, port: int) -> None:
    server = ThreadingHTTPServer((host, port), _Handler)
    server.daemon_threads = True
    print("ready", flush=True)
    server.serve_forever()


class _Delay:
    """Current delay in seconds, re-read from the control file at most every 100 ms."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._value = 0.0
        self._checked = 0.0

    def get(self) -> float:
        now = time.monotonic()
        if now - self._checked > 0.1:
            self._checked = now
            try:
                self._value = max(0.0, float(self.path.read_text().strip() or 0)) / 1000
            except (OSError, ValueError):
                self._value = 0.0
        return self._value


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: _Delay | None) -> None:
    try:
        while chunk := await reader.read(65536):
            if delay is not None and (d := delay.get()) > 0:
                await asyncio.sleep(d)
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def _proxy(listen: tuple[str, int], upstream: tuple[str, int], delay: _Delay) -> None:
    async def handle(c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        try:
            u_reader, u_writer = await asyncio.open_connection(*upstream)
        except OSError:
            c_writer.close()
            return
        for w in (c_writer, u_writer):
            sock = w.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # Delay only the request direction: one added latency per request, as a slow link would add.
        await asyncio.gather(_pipe(c_reader, u_writer, delay), _pipe(u_reader, c_writer, None))

    server = await asyncio.start_server(handle, *listen)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


def _addr(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "0.0.0.0", int(port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_serve = sub.add_parser("serve")
    p_serve.add_argument("--host", default="0.0.0.0")
    p_serve.add_argument("--port", type=int, required=True)
    p_proxy = sub.add_parser("proxy")
    p_proxy.add_argument("--listen", required=True)
    p_proxy.add_argument("--upstream", required=True)
    p_proxy.add_argument("--delay-file", required=True)
    args = parser.parse_args(argv)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    if args.cmd == "serve":
        serve(args.host, args.port)
    else:
        asyncio.run(_proxy(_addr(args.listen), _addr(args.upstream), _Delay(Path(args.delay_file))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
