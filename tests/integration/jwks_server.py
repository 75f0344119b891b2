"""A stand-in identity provider for the remote-JWKS tests: a real HTTP server on 127.0.0.1 that
serves a JWKS (and an OIDC discovery document) whose behaviour a test controls while Envoy
runs, and counts the requests it sees.

    idp = JwksServer().start()
    idp.jwks = {"keys": [...]}      # what GET /jwks.json answers
    idp.mode = "down"               # ok | down (503) | slow | malformed | oversized
    idp.count("/jwks.json")         # requests seen for that path
    idp.since_last("/jwks.json")    # seconds since the last of them arrived (None: none yet)
    idp.unreachable()               # connections refused (and open ones dropped) ...
    idp.reachable()                 # ... until this: listening again on the same port
    idp.stop()

Any path ending in /jwks.json serves the key set; any ending in
/.well-known/openid-configuration serves the discovery document (`discovery`, JSON).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        idp = self.server.idp
        path = self.path.split("?", 1)[0]
        with idp.lock:
            idp.hits[path] += 1
            idp.last_hit[path] = time.monotonic()
            idp.authorities.append(self.headers.get("host", ""))
            mode, delay = idp.mode, idp.delay
            jwks, discovery = idp.jwks, idp.discovery
        if mode == "unreachable":
            # A connection Envoy opened before the IdP went away: closed without an answer.
            self.close_connection = True
            return None
        if mode == "down":
            return self._send(503, b'{"error": "unavailable"}')
        if mode == "slow":
            time.sleep(delay)
        if path.endswith("/.well-known/openid-configuration"):
            if discovery is None:
                return self._send(404, b"{}")
            return self._send(200, json.dumps(discovery).encode())
        if not path.endswith("/jwks.json"):
            return self._send(404, b"{}")
        if mode == "malformed":
            return self._send(200, b'{"keys": [{"kty": "EC", "crv": "P-256", "x": "AA"')
        if mode == "oversized":
            # A valid key set padded past the filter's 256 KiB limit.
            body = json.dumps(jwks).encode()
            return self._send(200, body[:-1] + b" " * (300 * 1024) + b"}")
        self._send(200, json.dumps(jwks).encode())

    def _send(self, status: int, body: bytes) -> None:
        try:
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # Envoy gave up (timeout): exactly what the slow mode is for

    def log_message(self, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    idp: "JwksServer"


class JwksServer:
    def __init__(self, jwks: dict | None = None, port: int = 0) -> None:
        self.lock = threading.Lock()
        self.jwks: dict = jwks or {"keys": []}
        self.discovery: dict | None = None
        self.mode = "ok"
        self.delay = 0.0
        self.hits: Counter[str] = Counter()
        self.last_hit: dict[str, float] = {}
        self.authorities: list[str] = []
        self.port = port
        self._listen()

    def _listen(self) -> None:
        self._server = _Server(("127.0.0.1", self.port), _Handler)  # HTTPServer sets SO_REUSEADDR
        self._server.idp = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> "JwksServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def unreachable(self) -> None:
        """The IdP's host goes away: the port stops listening (connection refused), and a
        request on a connection opened before is dropped without an answer."""
        self.set(mode="unreachable")
        self.stop()

    def reachable(self, mode: str = "ok") -> None:
        """Listening again on the same port (retried: the port is free, but a bind can race a
        closing socket)."""
        for attempt in range(50):
            try:
                self._listen()
                break
            except OSError:
                if attempt == 49:
                    raise
                time.sleep(0.1)
        self.set(mode=mode)
        self.start()

    def count(self, suffix: str = "/jwks.json") -> int:
        with self.lock:
            return sum(n for path, n in self.hits.items() if path.endswith(suffix))

    def since_last(self, suffix: str = "/jwks.json") -> float | None:
        """Seconds since the last request for a path ending in `suffix` arrived; None before
        the first."""
        with self.lock:
            times = [t for path, t in self.last_hit.items() if path.endswith(suffix)]
        return time.monotonic() - max(times) if times else None

    def set(self, **changes: Any) -> None:
        with self.lock:
            for name, value in changes.items():
                setattr(self, name, value)
