#!/usr/bin/env python3
"""Checks the compute-bound model of ring attention (docs/DISTRIBUTED.md) against measurement.

    mpi_crossover.py QKV [--np 2] [--n-q 4096] [--heads 2] [--head-dim 128] [--causal] [--reps 3]

Runs `mpirun -np NP QKV bench attention --mpi --json` without an injected delay (the model's
prediction: a step is bound by its compute t_c until a block's transfer takes longer, so the
crossover delay is D* = t_c) and then with delays from 0.25 D* to 4 D*. The measured ring time
is flat below the crossover and rises by (NP - 1) per unit of delay above it; the measured
crossover is where the flat level (the runs at D <= 0.5 D*) meets the line fitted through the
runs at D >= 2 D*. Prints both and their relative difference (the goal: within 25%).
"""
import argparse
import json
import os
import subprocess
import sys


def run(args, delay_us):
    cmd = ["mpirun", "--oversubscribe", "-np", str(args.np), "--mca", "btl", "self,vader"]
    if os.geteuid() == 0:
        cmd.append("--allow-run-as-root")
    cmd += [args.qkv, "bench", "attention", "--mpi", "--json", "--n-q", str(args.n_q),
            "--heads", str(args.heads), "--head-dim", str(args.head_dim), "--reps", str(args.reps),
            "--mpi-delay-us", str(int(delay_us))]
    if args.kv_heads:
        cmd += ["--kv-heads", str(args.kv_heads)]
    if args.causal:
        cmd.append("--causal")
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True,
                         env=dict(os.environ, OMP_NUM_THREADS="1")).stdout
    return json.loads(out[out.index("{"):])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("qkv")
    p.add_argument("--np", type=int, default=2)
    p.add_argument("--n-q", type=int, default=4096)
    p.add_argument("--heads", type=int, default=2)
    p.add_argument("--kv-heads", type=int, default=0)
    p.add_argument("--head-dim", type=int, default=128)
    p.add_argument("--causal", action="store_true")
    p.add_argument("--reps", type=int, default=3)
    args = p.parse_args()

    base = run(args, 0)
    d_star = base["predicted_crossover_us"]
    print(f"no delay: ring {base['ring_s'] * 1e3:.2f} ms, compute per step {d_star:.0f} us "
          f"(predicted crossover), block {base['block_bytes'] / 2**20:.2f} MiB")
    points = []
    for f in (0.25, 0.5, 2.0, 3.0, 4.0):
        r = run(args, f * d_star)
        points.append((f * d_star, r["ring_s"] * 1e6))
        print(f"delay {f * d_star:9.0f} us: ring {r['ring_s'] * 1e3:9.2f} ms, "
              f"hidden {min(x['hidden'] for x in r['per_rank']):.3f}")
    flat = [t for d, t in points if d <= 0.5 * d_star] + [base["ring_s"] * 1e6]
    t0 = sorted(flat)[len(flat) // 2]
    high = [(d, t) for d, t in points if d >= 2 * d_star]
    n = len(high)
    mx = sum(d for d, _ in high) / n
    my = sum(t for _, t in high) / n
    b = sum((d - mx) * (t - my) for d, t in high) / sum((d - mx) ** 2 for d, _ in high)
    a = my - b * mx
    measured = (t0 - a) / b
    rel = abs(measured - d_star) / d_star
    print(f"flat level {t0 / 1e3:.2f} ms; above: ring = {a / 1e3:.2f} ms + {b:.2f} x delay")
    print(f"crossover: predicted {d_star:.0f} us, measured {measured:.0f} us, "
          f"difference {100 * rel:.1f}% ({'within' if rel <= 0.25 else 'OUTSIDE'} 25%)")
    return 0 if rel <= 0.25 else 1


if __name__ == "__main__":
    sys.exit(main())
