"""Building blocks of benches/bench.py (`make bench`).

    tokens   signing keys and token pools, kept on disk under build/bench/ between runs
    filters  the contenders: Envoy HTTP filter chains, one listener per (filter, algorithm)
    wrk      wrk's Lua scripts (token rotation, pacing, answer checks) and its output
    envoys   Envoy processes for the bench (any --concurrency) and the answer checks
    plan     workloads, tables, rows, comparisons and the issue's targets
    report   tables, ratios, target verdicts, results.json and benches/RESULTS.md (--baseline:
             "this build vs baseline", build/bench/baseline.md)
"""
