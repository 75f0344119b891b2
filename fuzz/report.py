#!/usr/bin/env python3
"""Writes benches/FUZZ.md from one run of fuzz/run.sh (`make fuzz`): its per-target results
(build/fuzz/results.tsv, written by run.sh from libFuzzer's final stats) and logs. Nothing in the
file is typed by hand; findings of earlier runs are described in fuzz/FINDINGS.md."""

import argparse
import os
import re
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def count_files(path):
    return sum(len(files) for _, _, files in os.walk(path)) if path.exists() else 0


def number(text):
    return f"{int(text):,}" if text and text.isdigit() else (text or "?")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", required=True)
    parser.add_argument("--seconds", required=True)
    parser.add_argument("--timeout", required=True)
    parser.add_argument("--started", required=True)
    parser.add_argument("--rustc", required=True)
    parser.add_argument("--cargo-fuzz", required=True)
    parser.add_argument("--out", default="benches/FUZZ.md")
    args = parser.parse_args()

    rows, findings, total = [], [], 0
    for line in Path(args.results).read_text().splitlines():
        target, runs, rate, before, after, status, seconds, artifact = (line.split("\t") + [""] * 8)[:8]
        total += int(seconds or 0)
        seeds = count_files(ROOT / "fuzz" / "seeds" / target)
        result = "ok" if status == "0" else f"**FAILED** (exit {status})"
        rows.append(f"| `{target}` | {number(runs)} | {number(rate)} | {seeds} | {number(before)} "
                    f"| {number(after)} | {seconds} | {result} |")
        if status != "0":
            log = ROOT / "build" / "fuzz" / "logs" / f"{target}.log"
            lines = [l for l in log.read_text(errors="replace").splitlines()
                     if re.search(r"WRONG DECISION|panicked|ERROR: libFuzzer|SUMMARY", l)][:10]
            findings.append(f"- `{target}`: exit {status}; input `{artifact or 'none written'}`")
            findings += [f"  - `{l.strip()}`" for l in lines]

    written = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    text = [
        "# Fuzzing results",
        "",
        "Written by `fuzz/report.py` at the end of `make fuzz` (`fuzz/run.sh`) from that run's "
        "libFuzzer statistics; not edited by hand. Each `make fuzz` replaces it.",
        "",
        f"- command: `make fuzz FUZZ_SECONDS={args.seconds}` ({args.seconds} s per target, "
        f"`-timeout={args.timeout}`; one process on one core per target)",
        f"- run started {args.started.replace('T', ' ').replace('Z', ' UTC')}, written {written}; "
        f"{total} s wall time for the {len(rows)} targets",
        f"- {args.cargo_fuzz}, {args.rustc}, AddressSanitizer, `-O`, debug assertions and "
        "overflow checks on",
        f"- machine: {os.cpu_count()} CPUs, load average at the end {load} (1 / 5 / 15 min): the "
        "rates are what the machine had left, not what the targets can do",
        "",
        "*corpus before/after*: inputs libFuzzer kept in `build/fuzz/corpus/<target>` (kept "
        "between runs, not committed) before and after this run; *seeds*: the committed inputs "
        "in `fuzz/seeds/<target>`, read too. *wall seconds*: the whole `cargo fuzz run` of the "
        "target, which includes loading the corpus and any rebuild cargo-fuzz does first.",
        "",
        "| target | executions | exec/s | seeds | corpus before | corpus after | wall seconds | result |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
        *rows,
        "",
        "## Findings of this run",
        "",
        *(findings or ["None: no crash, no panic, no overflow, no input slower than the timeout, "
                       "no `WRONG DECISION`."]),
        "",
        "Findings of earlier runs, and how they were fixed: `fuzz/FINDINGS.md`. What each target "
        "checks: docs/benchmarks.md, *Fuzzing*.",
        "",
    ]
    (ROOT / args.out).write_text("\n".join(text))
    print(f"{args.out} written")


if __name__ == "__main__":
    main()
