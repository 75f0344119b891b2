"""A peer's test vectors as a regression suite, in real Envoy: every vector of
tests/parity/vectors.json (the public test vectors of google/jwt_verify_lib, the library behind
Envoy's jwt_authn, and of Envoy's own jwt_authn tests, each with its upstream test's expected
Status) is sent to one Envoy that runs, side by side, Envoy's native jwt_authn (listener
`authn`) and jwt-guard (listener `guard`, the runtime JWTG_RUNTIME selects), one provider and
one path per vector in each.

The upstream tests judge most tokens at a fixed clock (`verifyJwt(jwt, jwks, 1)`) or have tokens
that expired years ago; Envoy has no fixed clock. So vectors are grouped by the time they are
judged at (`judge_at`) and each group's Envoy runs with its wall clock shifted there, by a small
LD_PRELOAD shim (tests/parity/wallclock_shift.c, built here with the C compiler the Rust
toolchain already needs); monotonic clocks are left alone. Both filters read that one clock.

Asserted:
  - jwt_authn's answer (2xx = accept, 401/403 = refuse) is the upstream expectation for every
    vector: the vectors and their clock are right, and Envoy's filter agrees with its library;
  - jwt-guard never accepts a vector upstream refuses (no exception list);
  - jwt-guard's answer is the upstream expectation unless tests/parity/differences.json lists
    the vector, with a reason and a doc anchor; a listed vector that no longer differs fails too,
    so the list stays exact.
A provider jwt-guard refuses at configuration (its key set, say) counts as jwt-guard refusing
that vector: `jwt-guard check` finds those before Envoy starts, and they are left out of its
configuration so the rest still runs. The tally (agree, differ per reason) is printed (-s).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections import Counter
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest

from conftest import CRASH_PATTERNS, in_ci
from harness import REPO_ROOT, Envoy, bootstrap, envoy_binary, listener, wasm_filter
from harness import request as http_get

PARITY = REPO_ROOT / "tests" / "parity"
VECTORS = json.loads((PARITY / "vectors.json").read_text())["vectors"]
DIFFERENCES = {d["id"]: d for d in json.loads((PARITY / "differences.json").read_text())["differences"]}
CLI = Path(os.environ.get("JWT_GUARD_CLI", REPO_ROOT / "target" / "cli" / "jwt-guard"))
JWT_AUTHN_TYPE = "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication"
COMPARISON = REPO_ROOT / "docs" / "comparison.md"
# jwt-guard requires an issuer; a vector whose token carries no string `iss` gets this one, which
# no token names (jwt_verify_lib never checks `iss`: see "iss required" in differences.json).
NO_ISSUER = "https://no-iss.invalid"


def path_of(vector: dict) -> str:
    return "/v/" + vector["id"]


def verdict(status: int) -> str:
    if 200 <= status < 300:
        return "accept"
    if status in (401, 403):
        return "refuse"
    raise AssertionError(f"unexpected status {status}")


# ------------------------------------------------------------------ configurations


def authn_filter(vectors: list[dict]) -> dict:
    """Envoy's jwt_authn with one provider and one rule per vector, as the upstream test set it up."""
    providers, rules = {}, []
    for v in vectors:
        p: dict = {"local_jwks": {"inline_string": json.dumps(v["jwks"])},
                   "clock_skew_seconds": v["clock_skew_seconds"]}
        if v["upstream_checks_issuer"]:
            p["issuer"] = v["issuer"]
        if v["audiences"]:
            p["audiences"] = v["audiences"]
        if v["require_expiration"]:
            p["require_expiration"] = True
        providers[v["id"]] = p
        rules.append({"match": {"path": path_of(v)}, "requires": {"provider_name": v["id"]}})
    return {"name": "envoy.filters.http.jwt_authn",
            "typed_config": {"@type": JWT_AUTHN_TYPE, "providers": providers, "rules": rules}}


def guard_config(vectors: list[dict]) -> dict:
    """jwt-guard's nearest configuration: the same key set, issuer, audiences, skew and
    require_expiration (jwt-guard's default is true, jwt_authn's false: always written out)."""
    providers, rules = {}, []
    for v in vectors:
        p: dict = {"issuer": v["issuer"] or NO_ISSUER, "jwks": v["jwks"],
                   "clock_skew_seconds": v["clock_skew_seconds"], "require_expiration": v["require_expiration"]}
        if v["audiences"]:
            p["audiences"] = v["audiences"]
        providers[v["id"]] = p
        rules.append({"match": {"path": path_of(v)}, "provider": v["id"]})
    # The verified-token cache is off: several vectors share a token under different providers.
    return {"realm": "parity", "token_cache_size": 0, "providers": providers, "rules": rules}


def refused_at_configuration(vectors: list[dict], workdir: Path) -> dict[str, str]:
    """{vector id: jwt-guard's error} for the providers `jwt-guard check` refuses, one at a time
    (the filter names the first bad field and stops)."""
    if not CLI.exists():
        pytest.fail(f"{CLI} is missing: run `make cli`", pytrace=False)
    refused: dict[str, str] = {}
    left = list(vectors)
    while True:
        path = workdir / "guard-check.json"
        path.write_text(json.dumps(guard_config(left)))
        done = subprocess.run([str(CLI), "check", str(path)], capture_output=True, text=True, timeout=60,
                              stdin=subprocess.DEVNULL)
        if done.returncode == 0:
            return refused
        found = re.search(r"providers\.([A-Za-z0-9_-]+)", done.stderr)
        assert done.returncode == 1 and found and found.group(1) in {v["id"] for v in left}, done.stderr
        refused[found.group(1)] = done.stderr.strip().splitlines()[-1]
        left = [v for v in left if v["id"] != found.group(1)]


# ------------------------------------------------------------------ Envoy with a shifted wall clock


@pytest.fixture(scope="module")
def wallclock_shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        message = "no C compiler (cc) to build tests/parity/wallclock_shift.c"
        if in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    out = tmp_path_factory.mktemp("shim") / "wallclock_shift.so"
    subprocess.run([compiler, "-shared", "-fPIC", "-O2", "-o", str(out), str(PARITY / "wallclock_shift.c"), "-ldl"],
                   check=True, timeout=120, stdin=subprocess.DEVNULL)
    return out


class ShiftedEnvoy(Envoy):
    """An Envoy whose wall clock reads `at` (Unix seconds) when it starts, and runs on from there."""

    def __init__(self, *args, shim: Path, at: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.shim, self.at = shim, at

    def _spawn(self, args: list[str], cwd) -> None:
        saved = {k: os.environ.get(k) for k in ("LD_PRELOAD", "JWTG_WALLCLOCK_SHIFT")}
        os.environ["LD_PRELOAD"] = str(self.shim)
        os.environ["JWTG_WALLCLOCK_SHIFT"] = str(self.at - int(time.time()))
        try:
            super()._spawn(args, cwd)
        finally:
            for k, value in saved.items():
                if value is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = value


def run_group(request: pytest.FixtureRequest, upstream, shim: Path, at: int, vectors: list[dict],
              workdir: Path) -> dict[str, tuple[str, str, str]]:
    """{id: (jwt_authn's answer, jwt-guard's answer, jwt-guard's refusal)} for vectors judged at `at`."""
    refused = refused_at_configuration(vectors, workdir)
    guarded = [v for v in vectors if v["id"] not in refused]
    listeners = [listener("authn", http_filters=[authn_filter(vectors)]),
                 listener("guard", http_filters=[wasm_filter(guard_config(guarded))])]
    env = ShiftedEnvoy(bootstrap(listeners, upstream.port), name=f"parity-{at}", shim=shim, at=at)

    def finish() -> None:
        env.stop()
        log = env.log()
        env.cleanup()
        crashes = [ln for ln in log.splitlines() if any(p in ln for p in CRASH_PATTERNS)]
        assert not crashes, "Envoy log shows jwt-guard failing:\n" + "\n".join(crashes[:20])

    request.addfinalizer(finish)
    env.start()
    ports = env.listener_ports()
    # The shim only works on a dynamically linked Envoy: read Envoy's clock back from the Date
    # of a local reply (jwt_authn's 401 for a missing token), so a clock that did not move says so.
    seen = http_get(ports["authn"], path_of(vectors[0])).header("date")
    assert seen and abs(parsedate_to_datetime(seen).timestamp() - at) < 600, (
        f"Envoy's wall clock reads {seen!r}, not near {at}: is {envoy_binary()} dynamically linked?")
    answers = {}
    for v in vectors:
        headers = [("authorization", "Bearer " + v["token"])]
        a = verdict(http_get(ports["authn"], path_of(v), headers=headers).status)
        if v["id"] in refused:
            answers[v["id"]] = (a, "refuse", "configuration refused: " + refused[v["id"]])
            continue
        resp = http_get(ports["guard"], path_of(v), headers=headers)
        g = verdict(resp.status)
        answers[v["id"]] = (a, g, "" if g == "accept" else f"{resp.status} {resp.json()['reason']}")
    return answers


# ------------------------------------------------------------------ the test


def test_vectors_are_well_formed() -> None:
    ids = [v["id"] for v in VECTORS]
    assert len(ids) == len(set(ids))
    for v in VECTORS:
        assert v["expected"] in ("accept", "refuse"), v["id"]
        assert v["upstream_status"] and v["source"]["repo"] and v["source"]["path"] and v["source"]["test"], v["id"]
        assert isinstance(v["judge_at"], int) and v["jwks"]["keys"], v["id"]
    anchors = re.findall(r"^#+ (.*)$", COMPARISON.read_text(), re.M)
    slugs = {re.sub(r"[^a-z0-9 -]", "", a.lower()).replace(" ", "-") for a in anchors}
    for vid, d in DIFFERENCES.items():
        assert vid in ids, f"differences.json names an unknown vector {vid}"
        assert d["reason"], vid
        doc, _, anchor = d["doc"].partition("#")
        assert (REPO_ROOT / doc).exists(), d["doc"]
        if doc == "docs/comparison.md":
            assert anchor in slugs, f"{vid}: no heading for #{anchor} in {doc}"


def test_vectors_in_envoy(request: pytest.FixtureRequest, wasm: str, upstream, wallclock_shim: Path,
                          tmp_path: Path) -> None:
    answers: dict[str, tuple[str, str, str]] = {}
    for at in sorted({v["judge_at"] for v in VECTORS}):
        group = [v for v in VECTORS if v["judge_at"] == at]
        answers.update(run_group(request, upstream, wallclock_shim, at, group, tmp_path))

    authn_wrong, guard_accepts_refused, new_differences, stale, differing = [], [], [], [], []
    tally: Counter = Counter()
    for v in VECTORS:
        a, g, why = answers[v["id"]]
        line = (f"{v['id']}: upstream {v['expected']} ({v['upstream_status']}), jwt_authn {a}, jwt-guard {g}"
                + (f" ({why})" if why else ""))
        if a != v["expected"]:
            authn_wrong.append(line)
        if v["expected"] == "refuse" and g == "accept":
            guard_accepts_refused.append(line)
        listed = DIFFERENCES.get(v["id"])
        if g == v["expected"]:
            tally["agree"] += 1
            if listed:
                stale.append(f"{line}  [listed: {listed['reason']}]")
        else:
            tally["differ: " + (listed["reason"] if listed else "NOT LISTED")] += 1
            differing.append(line)
            if not listed:
                new_differences.append(line)

    total = len(VECTORS)
    print(f"\nparity vectors: {total}; jwt-guard agrees with the upstream expectation on {tally['agree']}, "
          f"differs on {total - tally['agree']}; jwt_authn agrees on {total - len(authn_wrong)}")
    for reason, count in sorted(tally.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  {count:3d}  {reason}")
    for line in differing:
        print("    " + line)

    assert not guard_accepts_refused, "jwt-guard accepts what upstream refuses:\n" + "\n".join(guard_accepts_refused)
    assert not authn_wrong, "jwt_authn does not give the upstream expectation:\n" + "\n".join(authn_wrong)
    assert not new_differences, ("new disagreements (fix them, or list them with a reason in "
                                 "tests/parity/differences.json):\n" + "\n".join(new_differences))
    assert not stale, "listed in tests/parity/differences.json but no longer different:\n" + "\n".join(stale)
