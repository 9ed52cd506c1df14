#!/usr/bin/env python3
"""End-to-end checks of `qkv bench attention`: the --json object's fields and the arithmetic behind
them (GFLOP/s from the counted FLOPs and the time, GB/s from the bytes of q, k, v and out, the
ratios to the peaks the same run measured, the stream-read ceiling of decode shapes), the text
report, and clear errors for bad options.

usage: bench_cli_test.py QKV_BINARY
"""
import json
import os
import subprocess
import sys

FAILED = []


def check(cond, what):
    if not cond:
        FAILED.append(what)
        print("FAIL:", what)


def run(qkv, *args, env=None):
    p = subprocess.run([qkv, "bench", "attention", "--threads", "1", *args],
                       capture_output=True, timeout=300, env=env)
    return p.returncode, p.stdout.decode("utf-8"), p.stderr.decode("utf-8", "replace")


def close(a, b, rel=1e-6):
    return abs(a - b) <= rel * max(abs(a), abs(b))


def main():
    qkv = sys.argv[1]
    shapes = [
        # batch, n_q, n_kv, heads, kv_heads, head_dim, causal, dtype, precision
        (1, 48, 48, 4, 2, 32, True, "f16", "bf16"),
        (2, 3, 200, 2, 1, 16, False, "f32", "f32"),
        (1, 2, 300, 4, 2, 64, True, "q8_0", "f32"),  # 34 bytes per 32 K/V values
    ]
    library = None  # the GEMM library the build has, as the --json reports name it
    for b, nq, nkv, h, hk, d, causal, dtype, prec in shapes:
        args = ["--batch", str(b), "--n-q", str(nq), "--n-kv", str(nkv), "--heads", str(h),
                "--kv-heads", str(hk), "--head-dim", str(d), "--dtype", dtype,
                "--precision", prec, "--reps", "3", "--json"] + (["--causal"] if causal else [])
        rc, out, err = run(qkv, *args)
        check(rc == 0, f"exit {rc} for {args}: {err}")
        if rc != 0:
            continue
        r = json.loads(out)
        for k in ("ms", "gflops", "peak_gflops", "gbps", "peak_gbps", "target", "bf16_path",
                  "reference_ms", "reps"):
            check(k in r, f"field {k} missing: {out}")
        flops = 4.0 * b * h * nq * nkv * d * (0.5 if causal and nq == nkv else 1.0)
        check(close(r["gflops"], flops / (r["ms"] * 1e-3) * 1e-9, 1e-3),
              f"gflops {r['gflops']} != flops / time for {args}")
        es = {"f32": 4, "f16": 2, "bf16": 2, "q8_0": 34 / 32}[dtype]
        nbytes = 4.0 * 2 * b * nq * h * d + 2.0 * es * b * nkv * hk * d
        check(close(r["gbps"], nbytes / (r["ms"] * 1e-3) * 1e-9, 1e-3),
              f"gbps {r['gbps']} != bytes / time for {args}")
        check(r["peak_gflops"] > 0 and r["peak_gbps"] > 0, f"no peak measured: {out}")
        check(close(r["peak_fraction"], r["gflops"] / r["peak_gflops"], 1e-6), "peak_fraction")
        check(close(r["bandwidth_fraction"], r["gbps"] / r["peak_gbps"], 1e-6),
              "bandwidth_fraction")
        # Decode shapes (n_q <= 16) also time a plain read of their K and V bytes.
        if nq <= 16:
            check(r["stream_gbps"] > 0 and
                  close(r["stream_fraction"], r["gbps"] / r["stream_gbps"], 1e-6),
                  f"stream read of a decode shape: {out}")
        else:
            check(r["stream_gbps"] == 0 and r["stream_fraction"] == 0,
                  f"stream read timed for a prefill shape: {out}")
        check(r["reference_ms"] > 0 and close(r["speedup_vs_reference"],
                                              r["reference_ms"] / r["ms"], 1e-6),
              "reference timed in the same run")
        # The materialised peer (GEMM library) runs in the fp32 mode when the build has one, on
        # f32, f16 and bf16 K/V (not on q8_0 blocks).
        library = r["materialised_library"]
        if prec == "f32" and dtype != "q8_0" and r["materialised_library"] != "none":
            check(r["materialised_ms"] > 0 and close(r["speedup_vs_materialised"],
                                                     r["materialised_ms"] / r["ms"], 1e-6),
                  f"materialised peer timed in the same run: {out}")
            check(close(r["materialised_gflops"], flops / (r["materialised_ms"] * 1e-3) * 1e-9,
                        1e-3), "materialised_gflops != flops / its time")
            check(r["materialised_batch"] == b and r["materialised_kv_heads"] == hk,
                  f"a small problem is timed whole by the peer: {out}")
        else:
            check(r["materialised_ms"] == 0, f"materialised peer ran for {prec}, {dtype}")
        check(r["reps"] == 3, "--reps")
        check(r["target"] in ("avx512", "avx2", "generic"), f"target {r['target']}")
        check(r["bf16_path"] in ("amx", "avx512_bf16", "rounding"), f"bf16_path {r['bf16_path']}")
        check(r["shape"] == {"batch": b, "n_q": nq, "n_kv": nkv, "heads": h, "kv_heads": hk,
                             "head_dim": d, "causal": causal, "dtype": dtype, "precision": prec,
                             "int8_scores": False},
              f"shape echoed: {r['shape']}")

    # Over its FLOP budget the peer times sequence 1 and whole query groups of the first kv heads,
    # and says so.
    if library != "none":
        env = dict(os.environ, QKV_PEER_GFLOP="0.0001")
        args = ["--batch", "2", "--n-q", "64", "--heads", "4", "--kv-heads", "2", "--head-dim",
                "32", "--reps", "3"]
        rc, out, err = run(qkv, *args, "--json", env=env)
        check(rc == 0, f"sliced peer exit {rc}: {err}")
        if rc == 0:
            r = json.loads(out)
            check(r["materialised_batch"] == 1 and r["materialised_kv_heads"] == 1 and
                  r["materialised_ms"] > 0, f"sliced peer: {out}")
        rc, out, err = run(qkv, *args, env=env)
        check("sequence 1 of 2, kv heads 1 of 2 timed, scaled by FLOPs" in out,
              f"sliced peer report: {out}")

    # The text report names the shape, the machine's peaks and, in the bf16 mode, its arithmetic.
    rc, out, err = run(qkv, "--n-q", "32", "--heads", "2", "--head-dim", "32", "--precision",
                       "bf16", "--reps", "3", "--no-reference")
    check(rc == 0, f"text report exit {rc}: {err}")
    check("heads 2/2  head_dim 32" in out and "precision bf16" in out, f"shape line: {out}")
    check("FMA peak" in out and "read bandwidth" in out, f"machine line: {out}")
    check("bf16 mode  prefill products on " in out, f"bf16 line: {out}")
    check("% of peak" in out and "% of bandwidth" in out, f"ratios: {out}")
    check("reference" not in out.split("machine")[1], "--no-reference still timed the reference")
    check("materialised" not in out, "--no-reference still timed the materialised peer")

    # A decode shape's text report has the stream-read line; a prefill shape's has not.
    rc, out, err = run(qkv, "--n-q", "1", "--n-kv", "4096", "--heads", "4", "--head-dim", "64",
                       "--dtype", "f16", "--reps", "3", "--no-reference")
    check(rc == 0, f"decode report exit {rc}: {err}")
    line = [x for x in out.splitlines() if x.startswith("stream")]
    check(len(line) == 1 and "GB/s; qkv reaches" in line[0], f"stream line: {out}")
    check("stream" not in run(qkv, "--n-q", "32", "--heads", "2", "--head-dim", "32", "--reps",
                              "1", "--no-reference")[1], "stream line in a prefill report")

    # --int8-scores (q8_0 K scored in integers in decode) is echoed in the JSON and the shape line.
    args = ["--n-q", "1", "--n-kv", "512", "--heads", "4", "--head-dim", "64", "--dtype", "q8_0",
            "--int8-scores", "--reps", "3", "--no-reference"]
    rc, out, err = run(qkv, *args, "--json")
    check(rc == 0 and json.loads(out)["shape"]["int8_scores"] is True,
          f"--int8-scores json: {out} {err}")
    rc, out, err = run(qkv, *args)
    check(rc == 0 and "int8 scores (decode rows)" in out, f"--int8-scores shape line: {out} {err}")

    # Without --no-reference the fp32 mode's report has the peer's line, with its ratio.
    rc, out, err = run(qkv, "--n-q", "64", "--heads", "2", "--head-dim", "32", "--reps", "3")
    check(rc == 0, f"peer report exit {rc}: {err}")
    line = [x for x in out.splitlines() if x.startswith("materialised")]
    if library != "none":
        check(len(line) == 1 and library in line[0] and "qkv is" in line[0] and
              "% of peak" in line[0], f"materialised line: {out}")
    else:
        check(not line, f"a materialised line without a GEMM library: {out}")

    # Bad options: a message naming the problem and a normal non-zero exit, never a crash.
    for bad, words in [(["--dtype", "f8"], ["f8"]),
                       (["--precision", "fp8"], ["--precision", "fp8"]),
                       (["--heads", "3", "--kv-heads", "2"], ["n_head = 3", "n_head_kv = 2"]),
                       (["--n-q", "0"], ["positive"]),
                       (["--backward", "--dtype", "f16"], ["--backward", "f16"]),
                       (["--dtype", "q8_0", "--head-dim", "48"], ["q8_0", "--head-dim 48"]),
                       (["--int8-scores", "--dtype", "f16"], ["--int8-scores", "q8_0"]),
                       (["--threads", "-3"], ["--threads", "-3"]),
                       (["--batch", "9223372036854775807"], ["overflows a 64-bit size"]),
                       (["--n-kv", "2000000000", "--heads", "64"], ["GiB", "the machine has"])]:
        base = [] if "--n-q" in bad else ["--n-q", "8"]
        rc, out, err = run(qkv, *base, "--reps", "1", *bad)
        check(0 < rc < 128, f"{bad}: exit {rc}")
        for w in words:
            check(w in err, f"{bad}: '{w}' not in the error: {err}")
    if FAILED:
        print(f"{len(FAILED)} checks failed")
        return 1
    print("bench_cli_test: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
