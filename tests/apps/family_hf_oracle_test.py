#!/usr/bin/env python3
"""Hugging Face folders whose RoPE scaling is stated in config.json, against llama.cpp.

tests/data/families-hf holds two tiny random-weight folders written by make_folders.py:
llama3-rope (rope_scaling "llama3": factor 32, low 1, high 4, original context 8192) and
phi3-longrope (rope_scaling "longrope" with long and short factor lists, original context 256 of
1024). llama.cpp's own converter (convert_hf_to_gguf.py) turned each folder into a GGUF and
llama.cpp computed the logits of every position for ids.txt (README.md there); for Phi-3 twice:
with a 256-token context (short factors) and a 512-token one (long factors and the attention
scale). qkv must give those logits from the folder itself (`qkv eval -m FOLDER --ctx N`) and from
the GGUF that `qkv convert` writes of it: RMS <= 1e-4 x std and the same top-1 everywhere. Bad
scaling parameters are refused with an error naming them.

Self-contained: needs no ../shared.

usage: family_hf_oracle_test.py QKV_BINARY
"""
import json
import pathlib
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from eval_parity_test import read_npy, rms, std, top1, agreement  # noqa: E402

DATA = pathlib.Path(__file__).resolve().parents[1] / "data" / "families-hf"
IDS = (pathlib.Path(__file__).resolve().parents[1] / "data" / "families" / "ids.txt")
REL_TOL = 1e-4
# (folder, context, llama.cpp's logits)
CASES = [("llama3-rope", 64, "llama3-rope.logits.npy"),
         ("phi3-longrope", 256, "phi3-longrope.ctx256.logits.npy"),
         ("phi3-longrope", 512, "phi3-longrope.ctx512.logits.npy")]


def run(cmd):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def compare(name, got_path, ref_path, failures):
    rows, cols, got = read_npy(got_path)
    r_rows, r_cols, want = read_npy(ref_path)
    if (rows, cols) != (r_rows, r_cols):
        failures.append(f"{name}: shape [{rows}, {cols}], llama.cpp [{r_rows}, {r_cols}]")
        return
    err = rms(got, want) / std(want)
    agree = agreement(top1(got, rows, cols), top1(want, rows, cols))
    print(f"{name}: RMS {err:.2e} x std, top-1 {agree:.3f}")
    if err > REL_TOL or agree < 1.0:
        failures.append(f"{name}: RMS {err:.2e} x std (max {REL_TOL}), top-1 {agree:.3f}")


def refused(qkv, tmp, folder, edit, expect, failures):
    """A copy of `folder` with config.json edited by `edit` must be refused naming `expect`."""
    d = pathlib.Path(tmp) / f"bad-{len(failures)}-{expect.replace(' ', '_')}"
    shutil.copytree(DATA / folder, d)
    cfg = json.loads((d / "config.json").read_text())
    edit(cfg)
    (d / "config.json").write_text(json.dumps(cfg))
    p = run([qkv, "eval", "-m", str(d), "--ids", "1,2,3", "--logits", str(d / "x.npy")])
    print(f"refused ({expect}): rc {p.returncode}: {p.stderr.strip()}")
    if p.returncode == 0 or expect not in p.stderr or "Traceback" in p.stderr:
        failures.append(f"{folder} with a bad config: rc {p.returncode}, expected an error "
                        f"naming '{expect}', got: {p.stderr.strip()}")


def main():
    qkv = sys.argv[1]
    ids = IDS.read_text().strip()
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        converted = {}
        for folder, ctx, ref in CASES:
            out = pathlib.Path(tmp) / f"{folder}.{ctx}.npy"
            p = run([qkv, "eval", "-m", str(DATA / folder), "--ids", ids, "--ctx", str(ctx),
                     "--logits", str(out), "--threads", "1"])
            if p.returncode != 0:
                failures.append(f"{folder}: eval rc {p.returncode}: {p.stderr.strip()}")
                continue
            compare(f"{folder} (HF folder, ctx {ctx})", out, DATA / ref, failures)
            gguf = converted.get(folder)
            if gguf is None:
                gguf = pathlib.Path(tmp) / f"{folder}.gguf"
                p = run([qkv, "convert", "-m", str(DATA / folder), "-o", str(gguf)])
                if p.returncode != 0:
                    failures.append(f"{folder}: convert rc {p.returncode}: {p.stderr.strip()}")
                    continue
                converted[folder] = gguf
            out = pathlib.Path(tmp) / f"{folder}.{ctx}.gguf.npy"
            p = run([qkv, "eval", "-m", str(gguf), "--ids", ids, "--ctx", str(ctx),
                     "--logits", str(out), "--threads", "1"])
            if p.returncode != 0:
                failures.append(f"{folder}.gguf: eval rc {p.returncode}: {p.stderr.strip()}")
                continue
            compare(f"{folder} (converted to GGUF, ctx {ctx})", out, DATA / ref, failures)

        def short_list(c):
            c["rope_scaling"]["long_factor"] = c["rope_scaling"]["long_factor"][:5]

        def no_short(c):
            del c["rope_scaling"]["short_factor"]

        def yarn(c):
            c["rope_scaling"] = {"rope_type": "yarn", "factor": 4.0}

        def inverted(c):
            c["rope_scaling"]["high_freq_factor"] = 0.5

        refused(qkv, tmp, "phi3-longrope", short_list, "long_factor", failures)
        refused(qkv, tmp, "phi3-longrope", no_short, "short_factor", failures)
        refused(qkv, tmp, "llama3-rope", yarn, "yarn", failures)
        refused(qkv, tmp, "llama3-rope", inverted, "high_freq_factor", failures)
    for f in failures:
        print("FAIL:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
