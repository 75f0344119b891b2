"""Clients that send exactly the bytes a test gives: HTTP/1.1 over a plain socket (Python's
http.client refuses non-ASCII and odd framing), and HTTP/2 with prior knowledge through the
`h2` state machine with its own header validation switched off. Loopback only."""

from __future__ import annotations

import json
import re
import socket
from dataclasses import dataclass
from typing import Any

import h2.config
import h2.connection
import h2.events


@dataclass
class RawResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k == name.lower()]
        return ", ".join(values) if values else None

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name.lower()]

    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"RawResponse({self.status}, {self.headers!r}, {self.body[:300]!r})"


def http1(port: int, request: bytes, host: str = "127.0.0.1", timeout: float = 10.0) -> RawResponse:
    """Send `request` (a whole HTTP/1.1 request, `Connection: close` advised) and read one response."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.append((name.strip().lower(), value.strip()))
        length = next((int(v) for k, v in headers if k == "content-length"), None)
        while length is not None and len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        return RawResponse(status, headers, body)


def get1(port: int, path: bytes = b"/", host: bytes = b"example.com", headers: list[bytes] | None = None,
         method: bytes = b"GET") -> RawResponse:
    """A GET with raw header lines (each `b"Name: value"`)."""
    lines = [method + b" " + path + b" HTTP/1.1", b"Host: " + host, *(headers or []), b"Connection: close"]
    return http1(port, b"\r\n".join(lines) + b"\r\n\r\n")


_STATUS = re.compile(rb"^\d{3}$")


def http2(port: int, headers: list[tuple[bytes, bytes]], host: str = "127.0.0.1",
          timeout: float = 10.0) -> RawResponse | None:
    """One HTTP/2 request (prior knowledge) with exactly these header fields, pseudo-headers
    included. None when Envoy resets the stream or the connection instead of answering."""
    config = h2.config.H2Configuration(client_side=True, header_encoding=None,
                                       validate_outbound_headers=False, normalize_outbound_headers=False,
                                       validate_inbound_headers=False)
    conn = h2.connection.H2Connection(config)
    with socket.create_connection((host, port), timeout=timeout) as sock:
        conn.initiate_connection()
        sock.sendall(conn.data_to_send())
        stream = conn.get_next_available_stream_id()
        conn.send_headers(stream, headers, end_stream=True)
        sock.sendall(conn.data_to_send())
        status, response_headers, body = None, [], b""
        while True:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                return None
            if not data:
                return None
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    for name, value in event.headers:
                        if name == b":status" and _STATUS.match(value):
                            status = int(value)
                        elif not name.startswith(b":"):
                            response_headers.append((name.decode("latin-1"), value.decode("latin-1")))
                elif isinstance(event, h2.events.DataReceived):
                    body += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.StreamEnded) and status is not None:
                    return RawResponse(status, response_headers, body)
                elif isinstance(event, (h2.events.StreamReset, h2.events.ConnectionTerminated)):
                    return None
            sock.sendall(conn.data_to_send())
