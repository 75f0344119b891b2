#!/usr/bin/env python3
"""Echo upstream for jwt-guard's demo and tests: answers every request with 200 and the JSON
{"method": ..., "path": ..., "headers": {lower-case name: value}} of what it received, so a
caller can see exactly what Envoy forwarded. Standard library only. (The Docker Compose demo runs
`jwtg-demo echo` from tools/jwtg-demo instead, which answers the same JSON.)

    python3 scripts/echo_upstream.py [--host 127.0.0.1] [--port 10001]
"""

from __future__ import annotations

import argparse
import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Hit:
    method: str
    path: str
    headers: dict[str, str]
    raw_headers: list[tuple[str, str]]
    body: bytes


class _EchoHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_EchoServer"

    def _handle(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        raw = [(k.lower(), v) for k, v in self.headers.items()]
        merged: dict[str, str] = {}
        for k, v in raw:
            if k in merged:
                merged[k] = merged[k] + ("; " if k == "cookie" else ", ") + v
            else:
                merged[k] = v
        self.server.record(Hit(self.command, self.path, merged, raw, body))
        payload = json.dumps({"method": self.command, "path": self.path, "headers": merged}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = _handle

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep quiet
        if self.server.verbose:
            super().log_message(format, *args)


class _EchoServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr: tuple[str, int], verbose: bool = False):
        super().__init__(addr, _EchoHandler)
        self.verbose = verbose
        self.hits: list[Hit] = []
        self.lock = threading.Lock()

    def record(self, hit: Hit) -> None:
        with self.lock:
            self.hits.append(hit)


class EchoUpstream:
    """The echo server in a background thread; `.hits` lists what it received."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, verbose: bool = False):
        self._server = _EchoServer((host, port), verbose)
        self.host = host
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="echo-upstream", daemon=True)

    def start(self) -> "EchoUpstream":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def hits(self) -> list[Hit]:
        with self._server.lock:
            return list(self._server.hits)

    @property
    def count(self) -> int:
        with self._server.lock:
            return len(self._server.hits)

    def last(self) -> Hit:
        with self._server.lock:
            return self._server.hits[-1]

    def __enter__(self) -> "EchoUpstream":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=10001)
    args = ap.parse_args()
    server = _EchoServer((args.host, args.port), verbose=True)
    print(f"echo upstream on {args.host}:{args.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
