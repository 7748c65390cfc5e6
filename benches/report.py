#!/usr/bin/env python3
"""Runs the workload matrix behind README's Performance table and prints medians.

    python3 benches/report.py [--runs 3] [--quick]

Each configuration runs `--runs` times; runs of `ceiling` and `w1` are interleaved so the
w1/ceiling ratio compares figures measured in the same window. Raw JSON lines go to
stderr (keep them), the medians table to stdout. `--quick` skips the 1M-row scale runs.
"""
import argparse
import json
import statistics
import subprocess
import sys

MATRIX = [
    ("ceiling", []),
    ("w1", ["--concurrency", "16"]),
    ("w1", ["--concurrency", "1000"]),
    ("w2", []),
    ("w3", []),
    ("w1", ["--concurrency", "16", "--prefetch", "256"]),
    ("w4", []),
    ("w4", ["--prefetch", "0"]),
    ("w5", ["--concurrency", "1000"]),
    ("w6", []),
    ("w6", ["--target-wait-ms", "0"]),
    ("w6", ["--target-wait-ms", "3", "--concurrency", "1000"]),
    ("w6", ["--target-wait-ms", "0", "--concurrency", "16"]),
    ("w6", ["--target-wait-ms", "0", "--concurrency", "1000"]),
    ("w6", ["--high-interval-ms", "2"]),
]
SCALE = [
    ("ceiling", []),
    ("w1", ["--concurrency", "1000", "--jobs", "1000000"]),
    ("w1", ["--concurrency", "1000", "--jobs", "1000000", "--completed-retention-s", "0"]),
    ("w1", ["--concurrency", "1000", "--jobs", "1000000", "--prefetch", "1000",
            "--completed-retention-s", "0"]),
    ("w1", ["--concurrency", "1000", "--history", "1000000"]),
]


def run(workload, args):
    cmd = ["cargo", "bench", "-q", "--bench", "workloads", "--", workload] + args
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    lines = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
    for l in lines:
        print(json.dumps(l), file=sys.stderr, flush=True)
    return lines


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--quick", action="store_true")
    a = p.parse_args()
    subprocess.run(["cargo", "bench", "-q", "--bench", "workloads", "--no-run"], check=True)
    matrix = MATRIX + ([] if a.quick else SCALE)
    results = {}
    for _ in range(a.runs):
        for workload, args in matrix:
            for line in run(workload, args):
                key = (workload, " ".join(args), line.get("path") or line.get("api") or "")
                results.setdefault(key, []).append(line)
    fields = ["jobs_per_s", "low_jobs_per_s", "p50_ms", "p99_ms", "high_p50_ms", "high_p99_ms",
              "duplicates", "rss_peak_mib", "low_possible_jobs_per_s"]
    print("| workload | args | variant | " + " | ".join(fields) + " |")
    print("|---" * (len(fields) + 3) + "|")
    for (workload, args, variant), lines in results.items():
        cells = []
        for f in fields:
            vals = [l[f] for l in lines if isinstance(l.get(f), (int, float))]
            cells.append(f"{statistics.median(vals):g}" if vals else "")
        print(f"| {workload} | {args} | {variant} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
