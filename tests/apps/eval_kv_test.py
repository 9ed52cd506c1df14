#!/usr/bin/env python3
"""`--kv q8_0`: the quantized KV cache end to end, against llama.cpp's own Q8_0 cache.

On ../shared/fixtures/gguf-quant/model-f32.gguf (head_dim 64) and its ids:
  - `qkv eval --kv q8_0` logits against llama.cpp's F32-cache logits (the fixture's
    model-f32.logits.npy): RMS at most llama.cpp's own Q8_0-cache distance to them
    (tests/data/kv-q8_0: 4.1e-3 x std) and top-1 agreement at least llama.cpp's (0.984). Each K/V
    value is rounded to 8 bits of its block's scale (relative error ~0.3% per value); qkv keeps q
    in fp32 where llama.cpp's flash attention also rounds q to 8-bit blocks, so qkv should be
    closer, never farther;
  - and they must differ from `--kv f32` (the cache really is quantized): RMS > 1e-4 x std, above
    the f32 engines' 1e-4 agreement (eval_parity_test.py);
  - `--kv f16` stays within 1e-3 x std of `--kv f32` (f16 rounds each value by 2^-11);
  - `qkv explain --kv q8_0` writes maps whose rows sum to one and differ from the f32 cache's by
    less than 0.01 in any probability;
  - bad values (`--kv q4`) and a model whose head_dim is not a multiple of 32 (stories260K,
    head_dim 8) give errors that name the option and the reason.

usage: eval_kv_test.py QKV_BINARY SHARED_DIR   (exit 77 = skipped: fixtures absent)
"""
import json
import pathlib
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "common"))
sys.path.insert(0, str(HERE))
import shared_data  # noqa: E402
from eval_parity_test import agreement, read_npy, rms, std, top1  # noqa: E402

LLAMA_Q8 = HERE.parent / "data" / "kv-q8_0" / "model-f32.kv-q8_0.logits.npy"


def run(args, timeout=300):
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout)


def main():
    qkv, shared = sys.argv[1], pathlib.Path(sys.argv[2])
    quant = shared / "fixtures" / "gguf-quant"
    model = quant / "model-f32.gguf"
    if not model.is_file():
        return shared_data.missing(model)
    ids = (quant / "ids.txt").read_text().strip()
    failures = []
    _, cols, ref = read_npy(quant / "model-f32.logits.npy")
    _, _, llama_q8 = read_npy(LLAMA_Q8)
    sd = std(ref)
    rows = len(ids.split(","))
    ref_top = top1(ref, rows, cols)
    with tempfile.TemporaryDirectory() as tmp:
        got = {}
        for kv in ("f32", "f16", "q8_0"):
            out = pathlib.Path(tmp) / f"{kv}.npy"
            p = run([qkv, "eval", "-m", str(model), "--ids", ids, "--logits", str(out),
                     "--kv", kv, "--threads", "2"])
            if p.returncode != 0:
                failures.append(f"eval --kv {kv}: rc {p.returncode}: {p.stderr.strip()}")
                continue
            got[kv] = read_npy(out)[2]
        if "q8_0" in got and "f32" in got and "f16" in got:
            ours, theirs = rms(got["q8_0"], ref) / sd, rms(llama_q8, ref) / sd
            agree_ours = agreement(top1(got["q8_0"], rows, cols), ref_top)
            agree_theirs = agreement(top1(llama_q8, rows, cols), ref_top)
            moved = rms(got["q8_0"], got["f32"]) / sd
            f16 = rms(got["f16"], got["f32"]) / sd
            print(f"q8_0 cache: RMS vs llama.cpp f32 cache qkv {ours:.2e} x std, llama.cpp's own "
                  f"q8_0 cache {theirs:.2e}; top-1 qkv {agree_ours:.3f}, llama.cpp "
                  f"{agree_theirs:.3f}; qkv q8_0 vs qkv f32 {moved:.2e}, f16 vs f32 {f16:.2e}")
            if ours > theirs or agree_ours < agree_theirs:
                failures.append(f"--kv q8_0: RMS {ours:.2e} x std, top-1 {agree_ours:.3f}; "
                                f"llama.cpp's q8_0 cache: {theirs:.2e}, {agree_theirs:.3f}")
            if moved <= 1e-4:
                failures.append(f"--kv q8_0 logits equal the f32 cache's ({moved:.2e} x std): "
                                "is the cache quantized?")
            if f16 > 1e-3:
                failures.append(f"--kv f16: {f16:.2e} x std from --kv f32 (max 1e-3)")

        maps = {}
        for kv in ("f32", "q8_0"):
            out = pathlib.Path(tmp) / f"maps-{kv}.npy"
            p = run([qkv, "explain", "-m", str(model), "Once upon a time there was a cat", "-n",
                     "4", "--kv", kv, "--npy", str(out), "--threads", "2"])
            if p.returncode != 0:
                failures.append(f"explain --kv {kv}: rc {p.returncode}: {p.stderr.strip()}")
                continue
            maps[kv] = out.read_bytes()
        if len(maps) == 2:
            a, b = maps["f32"], maps["q8_0"]
            if len(a) != len(b):
                failures.append(f"explain maps: {len(a)} bytes with --kv f32, {len(b)} with q8_0")
            else:
                fa, fb = read_maps(pathlib.Path(tmp) / "maps-f32.npy"), read_maps(
                    pathlib.Path(tmp) / "maps-q8_0.npy")
                worst = max(abs(x - y) for x, y in zip(fa[1], fb[1]))
                n = fb[0][-1]
                sums = [sum(fb[1][r * n:(r + 1) * n]) for r in range(len(fb[1]) // n)]
                bad_rows = [s for s in sums if abs(s - 1) > 1e-4 and abs(s) > 1e-6]
                print(f"explain q8_0 maps: max |p - p_f32| {worst:.2e}, {len(sums)} rows")
                if worst > 0.01 or bad_rows:
                    failures.append(f"explain --kv q8_0: max difference {worst:.2e} (max 0.01), "
                                    f"{len(bad_rows)} rows not summing to 1")

    p = run([qkv, "eval", "-m", str(model), "--ids", "1,2", "--json", "--kv", "q4"])
    if p.returncode == 0 or "--kv" not in p.stderr or "q8_0" not in p.stderr:
        failures.append(f"eval --kv q4: rc {p.returncode}, stderr {p.stderr.strip()!r}")
    stories = shared / "models" / "stories260K" / "stories260K.bin"
    if stories.is_file():
        p = run([qkv, "eval", "-m", str(stories), "-t", str(stories.parent / "tok512.bin"),
                 "--ids", "1,2", "--json", "--kv", "q8_0"])
        if p.returncode == 0 or "head_dim is 8" not in p.stderr:
            failures.append(f"eval --kv q8_0 on stories260K (head_dim 8): rc {p.returncode}, "
                            f"stderr {p.stderr.strip()!r}")
    else:
        failures.append(f"{stories} is absent")
    p = run([qkv, "serve", "--kv", "q5", "--port", "0"], timeout=60)
    if p.returncode == 0 or "--kv" not in p.stderr:
        failures.append(f"serve --kv q5: rc {p.returncode}, stderr {p.stderr.strip()!r}")

    for f in failures:
        print("FAIL:", f)
    return 1 if failures else 0


def read_maps(path):
    """(shape, values) of a float32 .npy of any rank."""
    import array
    import ast
    data = path.read_bytes()
    hlen = int.from_bytes(data[8:10], "little")
    header = ast.literal_eval(data[10:10 + hlen].decode("latin1"))
    values = array.array("f")
    values.frombytes(data[10 + hlen:])
    return header["shape"], values


if __name__ == "__main__":
    sys.exit(main())
