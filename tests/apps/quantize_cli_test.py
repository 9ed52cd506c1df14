#!/usr/bin/env python3
"""`qkv quantize --pure` against llama.cpp's quantizer on ../shared/fixtures/gguf-quant.

model-T.gguf there was written from model-f32.gguf by llama.cpp's llama_model_quantize (pure: every
2-D tensor in T). `qkv quantize -m model-f32.gguf --type T --pure` must give every tensor the same
type, shape and bytes, and its file must load and run (`qkv eval`, whose logits equal those of
llama.cpp's file since the weights are the same bytes). The mixing presets (Q4_K_M, Q3_K_M, no
--pure) must give every tensor the type llama-quantize gave it, and their files must load and run
(their RMSE against llama-quantize's: tests/formats/quantize_k_test.cpp). Also: an input already
quantized (refused without --allow-requantize), the errors for an unknown preset and a non-GGUF
input.

usage: quantize_cli_test.py QKV_BINARY SHARED_DIR   (exit 77 = skipped: fixtures absent)
"""
import json
import pathlib
import subprocess
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "common"))
import shared_data  # noqa: E402

TYPES = ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"]


def run(*args):
    p = subprocess.run([str(a) for a in args], capture_output=True, timeout=300)
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")


def tensors(qkv, path):
    rc, out, err = run(qkv, "inspect", "--json", path)
    if rc != 0:
        raise RuntimeError(f"inspect {path}: {err}")
    data = pathlib.Path(path).read_bytes()
    return {t["name"]: (t["dtype"], t["shape"], data[t["offset"]:t["offset"] + t["bytes"]])
            for t in json.loads(out)["tensors"]}


def main():
    qkv, shared = sys.argv[1], pathlib.Path(sys.argv[2])
    folder = shared / "fixtures" / "gguf-quant"
    if not (folder / "model-f32.gguf").is_file():
        return shared_data.missing(folder / "model-f32.gguf")
    failures = []
    ids = (folder / "ids.txt").read_text().strip()
    with tempfile.TemporaryDirectory() as tmp:
        for t in TYPES:
            out = pathlib.Path(tmp) / f"q-{t}.gguf"
            rc, _, err = run(qkv, "quantize", "-m", folder / "model-f32.gguf", "-o", out,
                             "--type", t, "--pure")
            if rc != 0:
                failures.append(f"{t}: rc {rc}: {err}")
                continue
            ours, theirs = tensors(qkv, out), tensors(qkv, folder / f"model-{t}.gguf")
            if sorted(ours) != sorted(theirs):
                failures.append(f"{t}: tensor names differ")
                continue
            same = 0
            for name, (dtype, shape, data) in theirs.items():
                o = ours[name]
                if o[0] != dtype or o[1] != shape:
                    failures.append(f"{t} {name}: {o[0]} {o[1]} vs llama.cpp's {dtype} {shape}")
                elif o[2] != data:
                    first = next(i for i in range(len(data)) if o[2][i] != data[i])
                    failures.append(f"{t} {name} ({dtype}): bytes differ from byte {first} "
                                    f"of {len(data)}")
                else:
                    same += 1
            print(f"{t}: {same}/{len(theirs)} tensors byte-identical to llama.cpp's")
            # The file loads back and gives the same logits as llama.cpp's file.
            logits = []
            for path in [out, folder / f"model-{t}.gguf"]:
                npy = pathlib.Path(tmp) / "l.npy"
                rc, _, err = run(qkv, "eval", "-m", path, "--ids", ids, "--logits", npy,
                                 "--threads", "1")
                logits.append(npy.read_bytes() if rc == 0 else None)
                if rc != 0:
                    failures.append(f"{t}: eval {path}: rc {rc}: {err}")
            if logits[0] is not None and logits[0] != logits[1]:
                failures.append(f"{t}: logits of qkv's file differ from those of llama.cpp's")
        for preset in ["Q4_K_M", "Q3_K_M"]:
            out = pathlib.Path(tmp) / f"q-{preset}.gguf"
            rc, _, err = run(qkv, "quantize", "-m", folder / "model-f32.gguf", "-o", out,
                             "--type", preset)
            if rc != 0:
                failures.append(f"{preset}: rc {rc}: {err}")
                continue
            ours, theirs = tensors(qkv, out), tensors(qkv, folder / f"model-{preset}.gguf")
            for name, (dtype, shape, _) in theirs.items():
                if name not in ours or ours[name][0] != dtype:
                    failures.append(f"{preset} {name}: {ours.get(name, ('absent',))[0]} vs "
                                    f"llama-quantize's {dtype}")
            rc, _, err = run(qkv, "eval", "-m", out, "--ids", ids, "--logits",
                             pathlib.Path(tmp) / "l.npy", "--threads", "1")
            if rc != 0:
                failures.append(f"{preset}: eval: rc {rc}: {err}")
            print(f"{preset}: the types of llama-quantize's file; loads and runs")
        # The preset's name in any case, as llama-quantize takes it: the same file as Q4_K_M's.
        lower = pathlib.Path(tmp) / "q-lower.gguf"
        rc, _, err = run(qkv, "quantize", "-m", folder / "model-f32.gguf", "-o", lower,
                         "--type", "q4_k_m")
        if rc != 0 or lower.read_bytes() != (pathlib.Path(tmp) / "q-Q4_K_M.gguf").read_bytes():
            failures.append(f"--type q4_k_m: rc {rc}: not the file --type Q4_K_M writes: {err}")
        # An input that is already quantized (llama.cpp's Q4_0 file) is refused, naming the
        # tensor and its type, unless --allow-requantize, as llama-quantize (its
        # llama_model_quantize refuses "requantizing from type q4_0" without allow_requantize);
        # nothing is written. Allowed, the file has the types llama-quantize gives each tensor
        # under the preset (its Q4_K_M file, from F32) and runs. A tensor whose type stays the
        # same is copied without the flag, as llama-quantize copies it: Q4_0 --pure of the Q4_0
        # file is that file, byte for byte.
        requant = pathlib.Path(tmp) / "requant.gguf"
        rc, _, err = run(qkv, "quantize", "-m", folder / "model-Q4_0.gguf", "-o", requant,
                         "--type", "Q4_K_M")
        if rc == 0 or requant.exists() or not all(
                w in err for w in ("already quantized (Q4_0)", "--allow-requantize", ".weight")):
            failures.append(f"quantize of a Q4_0 file to Q4_K_M: rc {rc}, written "
                            f"{requant.exists()}: {err!r}")
        rc, _, err = run(qkv, "quantize", "-m", folder / "model-Q4_0.gguf", "-o", requant,
                         "--type", "Q4_K_M", "--allow-requantize")
        if rc != 0:
            failures.append(f"--allow-requantize: rc {rc}: {err}")
        else:
            ours, theirs = tensors(qkv, requant), tensors(qkv, folder / "model-Q4_K_M.gguf")
            types = {n: t[0] for n, t in ours.items()}
            if types != {n: t[0] for n, t in theirs.items()}:
                failures.append(f"--allow-requantize: types {types} are not llama-quantize's")
            rc, _, err = run(qkv, "eval", "-m", requant, "--ids", ids, "--logits",
                             pathlib.Path(tmp) / "l.npy", "--threads", "1")
            if rc != 0:
                failures.append(f"--allow-requantize: eval: rc {rc}: {err}")
        same = pathlib.Path(tmp) / "same.gguf"
        rc, _, err = run(qkv, "quantize", "-m", folder / "model-Q4_0.gguf", "-o", same,
                         "--type", "Q4_0", "--pure")
        if rc != 0 or same.read_bytes() != (folder / "model-Q4_0.gguf").read_bytes():
            failures.append(f"Q4_0 --pure of a Q4_0 file: rc {rc}: not the same file: {err}")
        # Errors name the problem.
        bad = [
            (["--type", "Q3_K_S"], "Q3_K_S"),
            (["--type", "Q9_9", "--pure"], "Q9_9"),
            (["--type", "Q4_0", "--threads", "-1"], "--threads"),
        ]
        for extra, word in bad:
            rc, _, err = run(qkv, "quantize", "-m", folder / "model-f32.gguf", "-o",
                             pathlib.Path(tmp) / "x.gguf", *extra)
            if rc == 0 or word not in err:
                failures.append(f"quantize {extra}: rc {rc}, message {err!r} lacks {word!r}")
        text = pathlib.Path(tmp) / "not.gguf"
        text.write_text("hello")
        rc, _, err = run(qkv, "quantize", "-m", text, "-o", pathlib.Path(tmp) / "y.gguf",
                         "--type", "Q4_0", "--pure")
        if rc == 0 or str(text) not in err:
            failures.append(f"quantize of a text file: rc {rc}: {err!r}")
    for f in failures:
        print("FAIL:", f)
    print(f"quantize: {'failed' if failures else 'passed'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
