#!/usr/bin/env python3
"""Compares `qkv bench attention` between builds by alternating them, shape by shape.

Single runs on a shared VM vary by +-15% and the speed drifts over minutes, so a build measured
after another is compared with a different machine. Here every round runs each build once on the
same shape, one after the other; the report gives each build's median and the median of the
per-round ratios to the first build, which cancels the drift that is slower than a round.

    bench/ab_attention.py --rounds 5 OLD_QKV NEW_QKV
    bench/ab_attention.py --rounds 5 --metric gbps OLD NEW --shape "--n-q 1 --n-kv 32768 --dtype f16"

Without --shape, the prefill shapes of docs/PERFORMANCE.md run. Each extra argument of a shape is
passed to `qkv bench attention`, with `--threads` (default 2), `--json` and `--no-reference`.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

PREFILL_SHAPES = [
    "--n-q 2048 --heads 12 --head-dim 64",
    "--n-q 2048 --heads 12 --head-dim 64 --causal",
    "--n-q 8192 --heads 12 --head-dim 64",
    "--n-q 8192 --heads 12 --head-dim 64 --causal",
    "--n-q 2048 --heads 8 --head-dim 128",
    "--n-q 2048 --heads 8 --head-dim 128 --causal",
    "--n-q 8192 --heads 8 --head-dim 128",
    "--n-q 8192 --heads 8 --head-dim 128 --causal",
    "--n-q 2048 --heads 32 --kv-heads 8 --head-dim 128 --causal",
]


def run_once(binary, shape, threads):
    cmd = [binary, "bench", "attention", *shape.split(), "--threads", str(threads), "--json",
           "--no-reference"]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({out.returncode}): {out.stderr.strip()}")
    return json.loads(out.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("binaries", nargs="+", help="qkv executables; the first is the baseline")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--metric", choices=["gflops", "gbps"], default="gflops",
                    help="gflops (against the FMA peak) or gbps (against the read bandwidth)")
    ap.add_argument("--shape", action="append", help="arguments of one shape (repeatable)")
    args = ap.parse_args()
    if args.rounds < 1:
        sys.exit("--rounds must be at least 1")
    for b in args.binaries:
        if not os.access(b, os.X_OK):
            sys.exit(f"not an executable: {b}")
    peak_key = "peak_gflops" if args.metric == "gflops" else "peak_gbps"
    names = [os.path.basename(os.path.dirname(os.path.abspath(b))) + "/" + os.path.basename(b)
             for b in args.binaries]
    print(f"{args.rounds} rounds, {args.threads} threads, metric {args.metric}; "
          "median (median % of the peak the same run measured), median ratio to the first")
    for shape in args.shape or PREFILL_SHAPES:
        value = {b: [] for b in args.binaries}
        frac = {b: [] for b in args.binaries}
        for _ in range(args.rounds):
            for b in args.binaries:
                j = run_once(b, shape, args.threads)
                value[b].append(j[args.metric])
                frac[b].append(100.0 * j[args.metric] / j[peak_key])
        base = value[args.binaries[0]]
        cells = []
        for b, name in zip(args.binaries, names):
            ratio = statistics.median(x / y for x, y in zip(value[b], base))
            cells.append(f"{name}: {statistics.median(value[b]):.1f} "
                         f"({statistics.median(frac[b]):.1f}%) x{ratio:.3f}")
        print(f"{shape:60s} | " + " | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
