"""The harness itself: Envoy binds its own ports (nothing to collide on), and an Envoy never
outlives the process that started it, even one killed with SIGKILL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness import REPO_ROOT, Envoy, bootstrap, listener, request

HERE = Path(__file__).resolve().parent


def test_envoys_bind_their_own_ports(upstream, tmp_path):
    """Two Envoys from the very same bootstrap (every port 0) run side by side; each listener
    answers on the port read back from its admin."""
    cfg = bootstrap([listener("one"), listener("two")], upstream.port)
    envoys = [Envoy(cfg, workdir=tmp_path / str(i), name=f"ports{i}") for i in range(2)]
    try:
        for e in envoys:
            e.start()
        ports = [e.listener_ports() for e in envoys]
        every = [e.admin_port for e in envoys] + [p for d in ports for p in d.values()]
        assert all(every) and len(set(every)) == len(every), every
        for d in ports:
            assert sorted(d) == ["one", "two"]
            for port in d.values():
                assert request(port, "/x").status == 200  # the echo upstream, through that Envoy
    finally:
        for e in envoys:
            e.cleanup()


# The starter: a Python process that starts an Envoy through the harness, prints its pid, then
# either waits to be SIGKILLed or exits without calling cleanup(). With fake, the "Envoy" is a
# script that only sleeps: Envoy 1.40 sets PR_SET_PDEATHSIG(SIGTERM) on itself at start-up
# (strace shows it), so only a process that does not can show the harness's own safeguard.
STARTER = """
import os, sys, time
sys.path.insert(0, {here!r})
from harness import Envoy, bootstrap, listener
env = Envoy(bootstrap([listener("l")], {upstream}), workdir={workdir!r}, name="orphan")
if {fake!r}:
    fake = os.path.join({workdir!r}, "fake-envoy")
    with open(fake, "w") as f:
        f.write("#!/bin/sh\\nexec sleep 600\\n")
    os.chmod(fake, 0o755)
    env._spawn([fake] + env.command()[1:], None)  # start() would wait for an admin that never comes
else:
    env.start()
print(env.proc.pid, flush=True)
sys.stdin.readline()  # until the reaper has seen the process running
if {how!r} == "exit":
    sys.exit(0)
time.sleep(600)
"""

# The reaper: a child subreaper (PR_SET_CHILD_SUBREAPER) that runs the starter, so a process
# orphaned by the starter's death is re-parented to it, not to PID 1 (whatever PID 1 does with
# orphans cannot hide or fake the outcome). It reports whether the process is still running some
# seconds later, kills it if so (that pid only) and reaps it.
REAPER = """
import ctypes, os, signal, subprocess, sys, time
PR_SET_CHILD_SUBREAPER = 36
assert ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
starter = subprocess.Popen([sys.executable, "-c", sys.argv[1]], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           text=True)
line = starter.stdout.readline()
if not line.strip().isdigit():
    starter.kill()
    print("no-envoy", line, flush=True)
    sys.exit(1)
pid = int(line)

def running():
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has ended
    except FileNotFoundError:
        return False

assert running(), "the started process is not running"
if sys.argv[2] == "sigkill":
    starter.send_signal(signal.SIGKILL)
else:
    starter.stdin.write("exit now\\n")
    starter.stdin.flush()
starter.wait()
deadline = time.monotonic() + 10
while running() and time.monotonic() < deadline:
    time.sleep(0.05)
alive = running()
print("envoy", pid, "alive" if alive else "gone", flush=True)
if alive:
    os.kill(pid, signal.SIGKILL)
for _ in range(200):  # reap whatever was re-parented here, without blocking
    try:
        if os.waitpid(-1, os.WNOHANG) == (0, 0):
            time.sleep(0.05)
    except ChildProcessError:
        break
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")
@pytest.mark.parametrize("how, fake", [("sigkill", False), ("exit", False), ("sigkill", True), ("exit", True)],
                         ids=["envoy-sigkill", "envoy-exit", "no-own-pdeathsig-sigkill", "no-own-pdeathsig-exit"])
def test_envoy_does_not_outlive_its_starter(upstream, tmp_path, how, fake):
    """The starter is SIGKILLed (none of its code runs: only the kernel's parent-death signal
    can stop Envoy) or exits without cleanup (atexit, or the parent-death signal): either way the
    process it started must be gone."""
    starter = STARTER.format(here=str(HERE), upstream=upstream.port, workdir=str(tmp_path), how=how, fake=fake)
    proc = subprocess.run([sys.executable, "-c", REAPER, starter, how], capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    words = proc.stdout.split()
    assert words[:1] == ["envoy"] and words[2:] == ["gone"], f"it outlived its starter ({how}): {proc.stdout}"
