#!/usr/bin/env python3
"""Q4_K_M files of the family tiny models: `qkv eval` within the quantized tolerance.

tests/data/families-q4km holds llama.cpp's Q4_K_M quantization of make-model's tiny llama,
Llama 3.2, gemma3 and phi3 models, llama.cpp's logits on each and on its exact-arithmetic twin
(every tensor dequantized to F32; see the folder's README). As for ../shared/fixtures/gguf-quant
(eval_parity_test.py), qkv must be at least as close to the twin as llama.cpp is:
RMS(qkv - twin) <= 1.25 x RMS(llama.cpp - twin) and top-1 agreement with the twin >= llama.cpp's.

Self-contained: needs no ../shared.

usage: family_quant_test.py QKV_BINARY
"""
import pathlib
import subprocess
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from eval_parity_test import RATIO_MAX, agreement, read_npy, rms, std, top1  # noqa: E402

DATA = pathlib.Path(__file__).resolve().parents[1] / "data"


def main():
    qkv = sys.argv[1]
    ids = (DATA / "families" / "ids.txt").read_text().strip()
    failures, checked = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        for gguf in sorted((DATA / "families-q4km").glob("*.Q4_K_M.gguf")):
            name = gguf.name[:-len(".gguf")]
            out = pathlib.Path(tmp) / f"{name}.npy"
            p = subprocess.run([qkv, "eval", "-m", str(gguf), "--ids", ids, "--logits", str(out),
                                "--threads", "1"], capture_output=True, text=True, timeout=300)
            if p.returncode != 0:
                failures.append(f"{name}: qkv eval rc {p.returncode}: {p.stderr.strip()}")
                continue
            rows, cols, got = read_npy(out)
            l_rows, l_cols, llama = read_npy(gguf.with_name(f"{name}.logits.npy"))
            _, _, twin = read_npy(gguf.with_name(f"{name}.twin-logits.npy"))
            if (rows, cols) != (l_rows, l_cols):
                failures.append(f"{name}: shape [{rows}, {cols}], llama.cpp [{l_rows}, {l_cols}]")
                continue
            ours, theirs = rms(got, twin), rms(llama, twin)
            twin_top = top1(twin, rows, cols)
            agree_ours = agreement(top1(got, rows, cols), twin_top)
            agree_theirs = agreement(top1(llama, rows, cols), twin_top)
            print(f"{name}: RMS vs twin qkv {ours / std(twin):.2e} x std, llama.cpp "
                  f"{theirs / std(twin):.2e} x std; top-1 qkv {agree_ours:.3f}, llama.cpp "
                  f"{agree_theirs:.3f}")
            checked += 1
            if ours > RATIO_MAX * theirs or agree_ours < agree_theirs:
                failures.append(f"{name}: RMS ratio {ours / theirs:.3f} (max {RATIO_MAX}), top-1 "
                                f"{agree_ours:.3f} vs llama.cpp {agree_theirs:.3f}")
    if checked == 0 and not failures:
        failures.append(f"no *.Q4_K_M.gguf in {DATA / 'families-q4km'}")
    for f in failures:
        print("FAIL:", f)
    print(f"family Q4_K_M: {checked} files, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
