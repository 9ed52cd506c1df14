#!/usr/bin/env python3
"""End-to-end checks of `qkv bench model` on models that `qkv make-model` writes (GPT-2 and LLaMA
shapes, seeded random weights), and on the BERT fixture of ../shared when it is there: the --json
fields and the arithmetic behind them (tokens/s from the phase times, the time shares of each
phase summing to one, the ratios to the peaks the same run measured), the text report, the
context rule (learned positions end at the trained context; RoPE runs past it), and clear errors
for bad options.

usage: bench_model_cli_test.py QKV_BINARY [SHARED_DIR]
"""
import json
import pathlib
import subprocess
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "common"))
import shared_data  # noqa: E402

FAILED = []


def check(cond, what):
    if not cond:
        FAILED.append(what)
        print("FAIL:", what)


def run(qkv, *args):
    p = subprocess.run([qkv, *args], capture_output=True, timeout=300)
    return p.returncode, p.stdout.decode("utf-8"), p.stderr.decode("utf-8", "replace")


def bench(qkv, model, *args):
    return run(qkv, "bench", "model", "-m", str(model), "--threads", "1", "--reps", "2", *args)


def close(a, b, rel=1e-6):
    return abs(a - b) <= rel * max(abs(a), abs(b))


def check_json(out, what, prompt, gen, decoder):
    try:
        r = json.loads(out)
    except json.JSONDecodeError:
        check(False, f"{what}: not one JSON object: {out}")
        return
    missing = [k for k in ("model", "describe", "threads", "kernels", "prompt", "gen",
                           "prefill_tokens_per_s", "prefill_gflops", "fma_peak_gflops",
                           "prefill_peak_fraction", "decode_tokens_per_s", "decode_weight_gbps",
                           "read_gbps", "decode_bandwidth_fraction", "prefill_share",
                           "decode_share") if k not in r]
    check(not missing, f"{what}: fields {missing} missing: {out}")
    if missing:
        return
    check(r["prompt"] == prompt and r["gen"] == gen and r["threads"] == 1,
          f"{what}: prompt, gen and threads echoed: {out}")
    check(r["prefill_tokens_per_s"] > 0 and r["prefill_gflops"] > 0, f"{what}: prefill rate")
    check(r["fma_peak_gflops"] > 0 and r["read_gbps"] > 0, f"{what}: no peak measured")
    check(close(r["prefill_peak_fraction"], r["prefill_gflops"] / r["fma_peak_gflops"]),
          f"{what}: prefill_peak_fraction")
    # Each phase's shares are fractions of its measured time: in [0, 1], summing to 1.
    for phase in ("prefill_share", "decode_share"):
        s = r[phase]
        if phase == "decode_share" and (gen == 0 or not decoder):
            check(all(v == 0 for v in s.values()), f"{what}: {phase} of a phase that did not run")
            continue
        check(all(0 <= v <= 1 for v in s.values()) and close(sum(s.values()), 1.0, 1e-9),
              f"{what}: {phase} is not a set of fractions summing to 1: {s}")
    if gen > 0 and decoder:
        check(r["decode_tokens_per_s"] > 0 and r["decode_weight_gbps"] > 0, f"{what}: decode rate")
        check(close(r["decode_bandwidth_fraction"], r["decode_weight_gbps"] / r["read_gbps"]),
              f"{what}: decode_bandwidth_fraction")
    else:
        check(r["decode_tokens_per_s"] == 0 and r["decode_weight_gbps"] == 0,
              f"{what}: decode rates without a decode: {out}")


def main():
    qkv = sys.argv[1]
    shared = pathlib.Path(sys.argv[2]) if len(sys.argv) > 2 else None
    with tempfile.TemporaryDirectory() as tmp:
        gpt2, llama = pathlib.Path(tmp) / "gpt2.gguf", pathlib.Path(tmp) / "llama.gguf"
        for arch, path in (("gpt2", gpt2), ("llama", llama)):
            rc, out, err = run(qkv, "make-model", "--arch", arch, "--n-ctx", "64", "-o", str(path))
            check(rc == 0, f"make-model {arch}: exit {rc}: {err}")
        if FAILED:
            return 1

        for model in (gpt2, llama):
            rc, out, err = bench(qkv, model, "--prompt", "24", "--gen", "5", "--json")
            check(rc == 0, f"{model.name} --json: exit {rc}: {err}")
            if rc == 0:
                check_json(out, model.name, 24, 5, True)
        # --dot: echoed, default exact; int8 on a Q8_0 model (make-model --dtype q8_0) runs.
        q8 = pathlib.Path(tmp) / "llama-q8_0.gguf"
        rc, out, err = run(qkv, "make-model", "--arch", "llama", "--n-ctx", "64", "--dtype", "q8_0",
                           "-o", str(q8))
        check(rc == 0, f"make-model q8_0: exit {rc}: {err}")
        for dot in ("exact", "int8"):
            rc, out, err = bench(qkv, q8, "--prompt", "8", "--gen", "3", "--json", "--dot", dot)
            check(rc == 0, f"--dot {dot}: exit {rc}: {err}")
            if rc == 0:
                check_json(out, f"--dot {dot}", 8, 3, True)
                check(json.loads(out).get("dot") == dot, f"--dot {dot} not echoed: {out}")
        rc, out, err = bench(qkv, gpt2, "--prompt", "8", "--gen", "0", "--json", "--kv", "f16")
        check(rc == 0, f"--gen 0: exit {rc}: {err}")
        if rc == 0:
            check_json(out, "--gen 0", 8, 0, True)

        # The text report: the model, the machine's limits, both phases with their shares.
        rc, out, err = bench(qkv, llama, "--prompt", "16", "--gen", "4")
        check(rc == 0, f"text report: exit {rc}: {err}")
        lines = {ln.split()[0]: ln for ln in out.splitlines() if ln.strip()}
        check("llama" in lines.get("model", ""), f"model line: {out}")
        check("FMA peak" in lines.get("machine", "") and "read bandwidth" in lines["machine"],
              f"machine line: {out}")
        check("16 tokens" in lines.get("prefill", "") and "% of peak" in lines["prefill"] and
              "matmul" in lines["prefill"], f"prefill line: {out}")
        check("4 tokens" in lines.get("decode", "") and "% of bandwidth" in lines["decode"],
              f"decode line: {out}")

        # Learned positions (GPT-2) end at the trained context; RoPE (LLaMA) runs past it.
        rc, out, err = bench(qkv, gpt2, "--prompt", "60", "--gen", "10")
        check(0 < rc < 128 and "70" in err and "64 positions" in err,
              f"GPT-2 past its context: exit {rc}: {err}")
        rc, out, err = bench(qkv, llama, "--prompt", "60", "--gen", "10", "--json")
        check(rc == 0, f"LLaMA past its trained context: exit {rc}: {err}")

        # Bad options: a message naming the problem and a normal non-zero exit, never a crash.
        for bad, words in [(["--threads", "-1"], ["--threads", "-1"]),
                           (["--prompt", "0"], ["--prompt"]),
                           (["--gen", "-2"], ["--gen"]),
                           (["--reps", "0"], ["--reps"]),
                           (["--kv", "f8"], ["--kv", "f32, f16 or q8_0"]),
                           (["--dot", "int4"], ["--dot", "exact or int8"])]:
            rc, out, err = run(qkv, "bench", "model", "-m", str(gpt2), "--prompt", "4", "--gen",
                               "1", *bad)
            check(0 < rc < 128, f"{bad}: exit {rc}")
            for w in words:
                check(w in err, f"{bad}: '{w}' not in the error: {err}")
        missing = pathlib.Path(tmp) / "absent.gguf"
        rc, out, err = bench(qkv, missing, "--prompt", "4")
        check(0 < rc < 128 and "absent.gguf" in err, f"a missing model file: exit {rc}: {err}")

    # An encoder (BERT) has one phase: encode, no decode.
    bert = shared / "fixtures" / "hf" / "bert-tiny" if shared else None
    if bert and bert.is_dir():
        rc, out, err = bench(qkv, bert, "--prompt", "12", "--json")
        check(rc == 0, f"BERT: exit {rc}: {err}")
        if rc == 0:
            check_json(out, "bert", 12, 128, False)  # --gen keeps its default, 128, unused
        rc, out, err = bench(qkv, bert, "--prompt", "12")
        check(rc == 0 and "encode" in out and "decode" not in out.split("machine")[1],
              f"BERT text report: {out}")
        rc, out, err = bench(qkv, bert, "--prompt", "200")
        check(0 < rc < 128 and "200 tokens" in err and "128 positions" in err,
              f"BERT past its learned positions: exit {rc}: {err}")
    elif shared_data.shared_required():
        check(False, f"{bert}: absent and QKV_REQUIRE_SHARED is set")
    else:
        print("bench_model_cli_test: ../shared/fixtures/hf/bert-tiny absent; encoder part skipped")

    if FAILED:
        print(f"{len(FAILED)} checks failed")
        return 1
    print("bench_model_cli_test: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
