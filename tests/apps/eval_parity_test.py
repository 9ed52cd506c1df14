#!/usr/bin/env python3
"""`qkv eval` logits against llama.cpp's on ../shared/fixtures/gguf-quant (and gguf-families).

For each quantized file, llama.cpp (v0.5.0) gives two sets of logits for the ids in ids.txt: on
the file itself (model-T.logits.npy) and on its exact-arithmetic twin, the same model with every
tensor replaced by its dequantized F32 values (model-T.twin-logits.npy). llama.cpp rounds the
activations to 8-bit blocks, so its own logits are off the twin's by 1.1-1.7% of their standard
deviation. qkv (fp32 activations, kernels/linear.h) must be at least that close:
  - RMS(qkv - twin) <= 1.25 x RMS(llama.cpp - twin), and
  - top-1 agreement with the twin >= llama.cpp's.
model-f32.gguf against llama.cpp's logits on it: both engines do fp32 arithmetic on the same
weights and differ only in summation order and in their exp/RoPE implementations (relative error
~1e-6 per operation), so RMS <= 1e-4 x the logits' standard deviation and 100% top-1 agreement.
One exception, gemma2 (GELU-tanh gated MLP): llama.cpp's CPU backend computes GELU from a table
indexed by the input rounded to fp16 and returns the fp16 value (GGML_GELU_FP16 in ggml-cpu/vec.h),
a relative error of up to ~5e-4 per activation that qkv does not copy. Against llama.cpp's own
logits its bound is 5e-4 x std (measured 2.4e-4); against llama.cpp rebuilt with exact GELU
(tests/data/gguf-families/gemma2, see its README) the 1e-4 bound holds.

--dot int8: the same bar for `qkv eval --dot int8` on gguf-quant's quantized files, where qkv also
rounds activations to 8-bit blocks (kernels/quant/dot_int8.h): its RMS distance to the twin must
stay within 1.25 x llama.cpp's own, and its top-1 agreement with the twin within one position of
llama.cpp's (both engines round, each its own way; docs/PERFORMANCE.md "Integer dot products"),
counted over the positions where the twin's top-1 leads by at least twice llama.cpp's RMS
distance (the others are near-ties that an 8-bit rounding step flips either way).

usage: eval_parity_test.py QKV_BINARY SHARED_DIR [--report] [--dot int8]
       (exit 77 = skipped: fixtures absent)
"""
import array
import ast
import math
import pathlib
import subprocess
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "common"))
import shared_data  # noqa: E402

F32_REL_TOL = 1e-4
# Architectures whose MLP runs through ggml's fp16 GELU table (see above), and their bound.
FP16_GELU_REL_TOL = {"gemma2": 5e-4}
EXACT_GELU = pathlib.Path(__file__).resolve().parents[1] / "data" / "gguf-families"
RATIO_MAX = 1.25


def read_npy(path):
    data = pathlib.Path(path).read_bytes()
    if data[:6] != b"\x93NUMPY":
        raise ValueError(f"{path}: not a .npy file")
    major = data[6]
    if major == 1:
        hlen = int.from_bytes(data[8:10], "little")
        start = 10
    else:
        hlen = int.from_bytes(data[8:12], "little")
        start = 12
    header = ast.literal_eval(data[start:start + hlen].decode("latin1"))
    if header["descr"] != "<f4" or header["fortran_order"]:
        raise ValueError(f"{path}: expected little-endian float32 in C order, found {header}")
    values = array.array("f")
    values.frombytes(data[start + hlen:])
    rows, cols = header["shape"]
    if len(values) != rows * cols:
        raise ValueError(f"{path}: {len(values)} values for shape {header['shape']}")
    return rows, cols, values


def rms(a, b):
    return math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b)) / len(a))


def std(a):
    m = sum(a) / len(a)
    return math.sqrt(sum((x - m) ** 2 for x in a) / len(a))


def top1(values, rows, cols):
    out = []
    for r in range(rows):
        row = values[r * cols:(r + 1) * cols]
        out.append(max(range(cols), key=row.__getitem__))
    return out


def margin(values, r, cols):
    """How far row r's largest value leads its second largest."""
    top = sorted(values[r * cols:(r + 1) * cols], reverse=True)
    return top[0] - top[1]


def agreement(a, b):
    return sum(x == y for x, y in zip(a, b)) / len(a)


def main():
    qkv, shared = sys.argv[1], pathlib.Path(sys.argv[2])
    report = "--report" in sys.argv
    dot = sys.argv[sys.argv.index("--dot") + 1] if "--dot" in sys.argv else "exact"
    quant = shared / "fixtures" / "gguf-quant"
    if not (quant / "ids.txt").is_file():
        return shared_data.missing(quant / "ids.txt")
    failures, lines = [], []
    folders = [quant] + sorted(p for p in (shared / "fixtures" / "gguf-families").glob("*")
                               if p.is_dir())
    if dot != "exact":
        folders = [quant]
    with tempfile.TemporaryDirectory() as tmp:
        for folder in folders:
            ids = (folder / "ids.txt").read_text().strip()
            for gguf in sorted(folder.glob("model-*.gguf")):
                name = gguf.stem[len("model-"):]
                if dot != "exact" and name == "f32":
                    continue
                out = pathlib.Path(tmp) / f"{folder.name}-{name}.npy"
                p = subprocess.run([qkv, "eval", "-m", str(gguf), "--ids", ids, "--logits",
                                    str(out), "--threads", "2", "--dot", dot],
                                   capture_output=True, text=True, timeout=300)
                where = f"{folder.name}/{gguf.name}"
                if p.returncode != 0:
                    failures.append(f"{where}: qkv eval rc {p.returncode}: {p.stderr.strip()}")
                    continue
                rows, cols, got = read_npy(out)
                n_ids = len(ids.split(","))
                if (rows, cols) != (n_ids, read_npy(folder / f"model-{name}.logits.npy")[1]):
                    failures.append(f"{where}: shape [{rows}, {cols}]")
                    continue
                _, _, llama = read_npy(folder / f"model-{name}.logits.npy")
                if name == "f32":
                    tol = FP16_GELU_REL_TOL.get(folder.name, F32_REL_TOL)
                    err = rms(got, llama) / std(llama)
                    worst = max(abs(x - y) for x, y in zip(got, llama)) / std(llama)
                    agree = agreement(top1(got, rows, cols), top1(llama, rows, cols))
                    lines.append(f"{where}: RMS vs llama.cpp {err:.2e} x std (max abs "
                                 f"{worst:.2e} x std), top-1 {agree:.3f}")
                    if err > tol or agree < 1.0:
                        failures.append(f"{where}: RMS {err:.2e} x std (max {tol}), "
                                        f"top-1 agreement {agree:.3f} (need 1)")
                    exact = EXACT_GELU / folder.name / "model-f32.exact-gelu.logits.npy"
                    if folder.name in FP16_GELU_REL_TOL:
                        if not exact.is_file():
                            failures.append(f"{where}: {exact} is missing")
                            continue
                        _, _, ref = read_npy(exact)
                        err = rms(got, ref) / std(ref)
                        lines.append(f"{where}: RMS vs llama.cpp with exact GELU {err:.2e} x std")
                        if err > F32_REL_TOL:
                            failures.append(f"{where}: RMS vs llama.cpp with exact GELU "
                                            f"{err:.2e} x std (max {F32_REL_TOL})")
                    continue
                _, _, twin = read_npy(folder / f"model-{name}.twin-logits.npy")
                ours, theirs = rms(got, twin), rms(llama, twin)
                twin_top = top1(twin, rows, cols)
                got_top, llama_top = top1(got, rows, cols), top1(llama, rows, cols)
                all_ours, all_theirs = agreement(got_top, twin_top), agreement(llama_top, twin_top)
                if dot != "exact":
                    # Rounding activations to 8 bits turns any change of fp32 summation order
                    # into changes of a rounding step, so the logits move by the mode's own
                    # error (llama.cpp's RMS distance to the twin). Positions where the twin's
                    # top-1 leads its runner-up by less than twice that are near-ties either
                    # engine may flip; agreement counts the others.
                    keep = [r for r in range(rows) if margin(twin, r, cols) >= 2 * theirs]
                    twin_top = [twin_top[r] for r in keep]
                    got_top = [got_top[r] for r in keep]
                    llama_top = [llama_top[r] for r in keep]
                agree_ours = agreement(got_top, twin_top)
                agree_theirs = agreement(llama_top, twin_top)
                ratio = ours / theirs
                lines.append(f"{where}: RMS vs twin qkv {ours:.2e}, llama.cpp {theirs:.2e} "
                             f"(ratio {ratio:.2e}, {ours / std(twin) * 100:.2e}% of std); top-1 "
                             f"qkv {agree_ours:.3f}, llama.cpp {agree_theirs:.3f}"
                             + (f" (all {rows} positions: qkv {all_ours:.3f}, llama.cpp "
                                f"{all_theirs:.3f})" if dot != "exact" else ""))
                # Both engines round activations in int8 mode: a top-1 flip either way is noise.
                slack = 1.0 / rows if dot != "exact" else 0.0
                if ratio > RATIO_MAX or agree_ours < agree_theirs - slack:
                    failures.append(f"{where}: RMS ratio {ratio:.3f} (max {RATIO_MAX}), top-1 "
                                    f"{agree_ours:.3f} vs llama.cpp {agree_theirs:.3f}")
    if report:
        for line in lines:
            print(line)
    for f in failures:
        print("FAIL:", f)
    print(f"eval parity (--dot {dot}): {len(lines)} checks, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
