#!/usr/bin/env python3
"""Every architecture `qkv make-model` writes, against llama.cpp's logits on the same file.

tests/data/families/ARCH.PRESET.logits.npy holds llama.cpp's logits of every position of one
forward pass (no BOS, the ids in ids.txt, F32 cache, flash attention off) on the model that
`qkv make-model --arch ARCH --preset PRESET --seed 3 --std 0.2` writes (see its README for how
they were produced: llama.cpp v0.5.0 with exact GELU). The file is written again here (make-model is deterministic: each value is a pure
function of seed, tensor index and element index) and `qkv eval` must give llama.cpp's logits:
RMS difference <= 1e-4 x their standard deviation and the same top-1 token at every position. A
change in make-model's tensor list, keys or values, or in the forward pass of any family, fails.

Self-contained: needs no ../shared.

usage: family_oracle_test.py QKV_BINARY
"""
import pathlib
import subprocess
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from eval_parity_test import read_npy, rms, std, top1, agreement  # noqa: E402

DATA = pathlib.Path(__file__).resolve().parents[1] / "data" / "families"
REL_TOL = 1e-4


def main():
    qkv = sys.argv[1]
    ids = (DATA / "ids.txt").read_text().strip()
    failures, checked = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        for ref in sorted(DATA.glob("*.logits.npy")):
            arch, preset = ref.name[:-len(".logits.npy")].split(".", 1)
            model = pathlib.Path(tmp) / f"{arch}.{preset}.gguf"
            out = pathlib.Path(tmp) / f"{arch}.{preset}.npy"
            for cmd in ([qkv, "make-model", "--arch", arch, "--preset", preset, "--seed", "3",
                         "--std", "0.2", "-o", str(model)],
                        [qkv, "eval", "-m", str(model), "--ids", ids, "--logits", str(out),
                         "--threads", "1"]):
                p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
                if p.returncode != 0:
                    failures.append(f"{arch}: {' '.join(cmd[1:3])} rc {p.returncode}: "
                                    f"{p.stderr.strip()}")
                    break
            else:
                rows, cols, got = read_npy(out)
                r_rows, r_cols, want = read_npy(ref)
                if (rows, cols) != (r_rows, r_cols):
                    failures.append(f"{arch}: shape [{rows}, {cols}], llama.cpp [{r_rows}, {r_cols}]")
                    continue
                err = rms(got, want) / std(want)
                worst = max(abs(a - b) for a, b in zip(got, want)) / std(want)
                agree = agreement(top1(got, rows, cols), top1(want, rows, cols))
                print(f"{arch} {preset}: RMS {err:.2e} x std, max abs {worst:.2e} x std, top-1 {agree:.3f}")
                checked += 1
                if err > REL_TOL or agree < 1.0:
                    failures.append(f"{arch}: RMS {err:.2e} x std (max {REL_TOL}), top-1 {agree:.3f}")
    for f in failures:
        print("FAIL:", f)
    if checked == 0 and not failures:
        print(f"FAIL: no *.logits.npy under {DATA}")
        return 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
