#!/usr/bin/env python3
"""Writes benches/MUTANTS.md from cargo-mutants' output (tools/mutants.sh, `make mutants`).

Reads, for each file of the security core, build/mutants/<file>/run.json (what tools/mutants.sh
ran) and build/mutants/<file>/mutants.out/outcomes.json (cargo-mutants' own record), and merges:

  benches/mutants-equivalent.txt  surviving mutants that no test can kill, with the reason
  benches/mutants-killed.txt      mutants that survived an earlier run, with the test added to
                                  kill them (this run shows whether it does)

Both files: a line `src/<file>.rs: <mutant>` (cargo-mutants' name without line and column, so
an entry survives code moving), then indented lines (the reason, or `killed by <test>`).
Nothing here is typed by hand: a file with no run is reported as not run.
"""

import argparse
import json
import re
import sys
from collections import Counter
from datetime import datetime
from pathlib import Path

CORE = ("src/token/jws.rs src/authn/verify.rs src/authn/signature.rs src/authn/cache.rs src/authn/authenticator.rs src/authz/policy.rs "
        "src/authn/claims.rs src/authz/address.rs src/token/extract.rs src/identity.rs src/request/mod.rs "
        "src/request/route.rs").split()
KINDS = {"CaughtMutant": "caught", "MissedMutant": "missed", "Timeout": "timeout",
         "Unviable": "unviable"}
NAME = re.compile(r"^(?P<file>[^:]+):\d+:\d+: (?P<text>.*)$")


def read_notes(path):
    """{(file, text): [lines]} from the equivalence or killed file."""
    notes, key = {}, None
    if not path.exists():
        return notes
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        if line[0].isspace():
            if key is None:
                sys.exit(f"{path}:{number}: an indented line before any mutant")
            notes[key].append(line.strip())
            continue
        file, sep, text = line.partition(": ")
        if not sep:
            sys.exit(f"{path}:{number}: expected `src/<file>.rs: <mutant>`")
        key = (file, text)
        notes[key] = []
    for key, lines in notes.items():
        if not lines:
            sys.exit(f"{path}: {key[0]}: {key[1]}: no reason / test given")
    return notes


def key_of(name):
    match = NAME.match(name)
    return (match["file"], match["text"]) if match else (None, name)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benches/MUTANTS.md")
    parser.add_argument("--runs", default="build/mutants")
    parser.add_argument("--equivalent", default="benches/mutants-equivalent.txt")
    parser.add_argument("--killed", default="benches/mutants-killed.txt")
    parser.add_argument("--files", nargs="*", default=CORE)
    args = parser.parse_args()
    root = Path(__file__).resolve().parent.parent
    runs = root / args.runs
    equivalent = read_notes(root / args.equivalent)
    killed = read_notes(root / args.killed)

    rows, missed, outcome_of, versions, not_run, unused = [], [], {}, set(), [], []
    commands, timeouts = [], []
    totals = Counter()
    for file in args.files:
        name = file.removeprefix("src/").removesuffix(".rs").replace("/", "_")
        run_path = runs / name / "run.json"
        outcomes_path = runs / name / "mutants.out" / "outcomes.json"
        if not run_path.exists() or not outcomes_path.exists():
            not_run.append(file)
            rows.append(f"| `{file}` | not yet run | | | | | | |")
            continue
        run = json.loads(run_path.read_text())
        data = json.loads(outcomes_path.read_text())
        versions.add(run["version"])
        counts = Counter()
        baseline = "not run"
        for outcome in data["outcomes"]:
            scenario = outcome["scenario"]
            if scenario == "Baseline":
                baseline = "ok" if outcome["summary"] == "Success" else outcome["summary"]
                continue
            mutant = scenario["Mutant"]["name"]
            kind = KINDS.get(outcome["summary"], outcome["summary"])
            counts[kind] += 1
            outcome_of.setdefault(key_of(mutant), []).append(kind)
            if kind == "missed":
                missed.append(mutant)
            elif kind == "timeout":
                timeouts.append(mutant)
        tested = sum(counts.values())
        total = data.get("total_mutants", tested)
        untested = total - tested
        totals.update(counts)
        totals["mutants"] += total
        totals["untested"] += untested
        started = datetime.fromisoformat(run["started"].replace("Z", "+00:00"))
        ended = datetime.fromisoformat(run["ended"].replace("Z", "+00:00"))
        minutes = (ended - started).total_seconds() / 60
        note = f"{run['started'][:16].replace('T', ' ')} UTC, {minutes:.0f} min"
        if run.get("interrupted"):
            note += ", interrupted by MUTANTS_MINUTES"
        if baseline != "ok":
            note += f", baseline {baseline}"
        rows.append(
            f"| `{file}` | {total} | {counts['caught']} | {counts['missed']} | {counts['timeout']}"
            f" | {counts['unviable']} | {untested} | {note} |")
        commands.append(run)

    lines = [
        "# Mutation testing of the security core",
        "",
        "Written by `tools/mutants-report.py` from cargo-mutants' own output (`make mutants`, "
        "`tools/mutants.sh`; `build/mutants/<file>/mutants.out/`), not by hand. Each mutant is one "
        "deliberate bug (an operator, a condition, a returned value replaced) built into a copy "
        "of the tree; the unit tests (`cargo test --lib`) must fail on it. *caught*: a test "
        "failed; *missed*: every test passed; *timeout*: the tests ran longer than the time "
        "bound; *unviable*: the mutant does not compile (no test needed).",
        "",
        "Outside `src/authn/signature.rs` and `src/token/jws.rs` the Wycheproof vector tests (about three "
        "quarters of the unit tests' time, exercising signature checks and key parsing only) are "
        "skipped (`--skip wycheproof --skip vectors::`): that can only make a mutant look "
        "missed, never caught.",
        "",
        f"Tool: {', '.join(sorted(versions)) or 'none run'}. Surviving mutants are each either "
        "killed by a test added for them (listed below, with the run that shows them caught) or "
        "listed in `benches/mutants-equivalent.txt` with the reason no test can tell them from "
        "the real code.",
        "",
        "| file | mutants | caught | missed | timeout | unviable | not tested | run |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
        *rows,
        f"| **total** | **{totals['mutants']}** | **{totals['caught']}** | **{totals['missed']}** "
        f"| **{totals['timeout']}** | **{totals['unviable']}** | **{totals['untested']}** | |",
        "",
        "Commands (from the repository root, each with `CARGO_TARGET_DIR=build/mutants/target`):",
        "",
    ]
    for run in commands:
        source = f", source {run['commit']}" if run.get("commit") else ""
        lines.append(f"- `{run['command']}` (exit {run['exit']}, started {run['started']}{source})")
    if not_run:
        lines += ["", "Not yet run: " + ", ".join(f"`{f}`" for f in not_run)
                  + " (`make mutants MUTANTS_FILES=\"" + " ".join(not_run) + "\"`)."]

    lines += ["", "## Surviving mutants", ""]
    unexplained = 0
    if not missed:
        lines.append("None in the files run.")
    for mutant in missed:
        key = key_of(mutant)
        if key in equivalent:
            lines.append(f"- `{mutant}` — equivalent: {' '.join(equivalent[key])}")
        else:
            unexplained += 1
            why = ""
            if key in killed:
                why = (f" (benches/mutants-killed.txt: {' '.join(killed[key])}; this run "
                       "predates that test, or the test does not kill it)")
            lines.append(f"- `{mutant}` — **not explained**{why}")

    if timeouts:
        lines += ["", "## Timeouts", "",
                  "The unit tests did not finish within the time bound: the mutant makes them hang "
                  "(the decoding loop never ends), which the tests detect — it is not a survivor.", ""]
        lines += [f"- `{t}`" for t in timeouts]

    lines += ["", "## Killed by tests added for them", ""]
    if not killed:
        lines.append("None.")
    for (file, text), note in killed.items():
        kinds = outcome_of.get((file, text))
        if kinds is None:
            state = "not in this run"
        else:
            state = ", ".join(f"{n} {k}" for k, n in sorted(Counter(kinds).items()))
        lines.append(f"- `{file}: {text}` — {' '.join(note)}; this run: {state}")
    for (file, text) in equivalent:
        if (file, text) not in outcome_of and file not in not_run:
            unused.append(f"{file}: {text}")
    if unused:
        lines += ["", "Entries of `benches/mutants-equivalent.txt` that no mutant of this run "
                  "matched (the code changed; check them):", ""]
        lines += [f"- `{u}`" for u in unused]
    lines.append("")
    out = root / args.out
    out.write_text("\n".join(lines))
    print(f"{args.out}: {totals['mutants']} mutants, {totals['caught']} caught, "
          f"{totals['missed']} missed ({unexplained} not explained), {totals['timeout']} timeout, "
          f"{totals['unviable']} unviable; not run: {' '.join(not_run) or 'none'}")
    return 1 if unexplained else 0


if __name__ == "__main__":
    sys.exit(main())
