#!/usr/bin/env python3
"""End-to-end checks of `qkv inspect` and `qkv tokenize` against the references in ../shared.

usage: cli_test.py QKV_BINARY SHARED_DIR     (exit 77 = skipped: ../shared absent)
"""
import json
import pathlib
import subprocess
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "common"))
import shared_data  # noqa: E402


def run(qkv, *args):
    p = subprocess.run([qkv, *args], capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout, p.stderr


def main():
    qkv, shared = sys.argv[1], pathlib.Path(sys.argv[2])
    if not (shared / "vocab-gguf").is_dir():
        return shared_data.missing(shared / "vocab-gguf")
    failures = []

    def check(cond, what):
        if not cond:
            failures.append(what)

    # tokenize: HF fixtures reproduce transformers' ids (BERT with [CLS]/[SEP], GPT-2 without BOS).
    for name in ["gpt2-tiny", "llama-tiny", "bert-tiny"]:
        folder = shared / "fixtures" / "hf" / name
        ref = json.loads((folder / "outputs.json").read_text())
        for p in ref["prompts"]:
            rc, out, err = run(qkv, "tokenize", "-m", str(folder), "--json", p["prompt"])
            check(rc == 0 and json.loads(out)["ids"] == p["ids"], f"tokenize {name}: {p['prompt']}: {out}{err}")
    # tokenize: special tokens written in the text are single tokens (as transformers gives
    # 50256 for <|endoftext|>); --no-special only leaves out BOS/EOS/CLS/SEP, --no-parse-special
    # reads them as text.
    gpt2 = shared / "fixtures" / "hf" / "gpt2-tiny"
    rc, out, err = run(qkv, "tokenize", "-m", str(gpt2), "--no-special", "--json", " is special")
    rest = json.loads(out)["ids"] if rc == 0 else None
    rc, out, err = run(qkv, "tokenize", "-m", str(gpt2), "--no-special", "--json", "<|endoftext|> is special")
    check(rc == 0 and rest and json.loads(out)["ids"] == [50256] + rest, f"tokenize <|endoftext|>: {out}{err}")
    rc, out, err = run(qkv, "tokenize", "-m", str(gpt2), "--no-special", "--no-parse-special", "--json",
                       "<|endoftext|> is special")
    check(rc == 0 and 50256 not in json.loads(out)["ids"] and json.loads(out)["pieces"][0] == "<",
          f"tokenize --no-parse-special: {out}{err}")
    bert = shared / "vocab-gguf" / "ggml-vocab-bert-bge.gguf"
    rc, out, err = run(qkv, "tokenize", "-m", str(bert), "--json", "Hello world")
    check(rc == 0 and json.loads(out)["ids"] == [101, 7592, 2088, 102], f"tokenize bert-bge: {out}{err}")

    # tokenize: llama2.c prompts as run.c printed them (BOS included), and --no-special.
    ref = json.loads((shared / "models" / "stories260K" / "reference.json").read_text())
    model = shared / "models" / "stories260K" / "stories260K.bin"
    tok = shared / "models" / "stories260K" / "tok512.bin"
    for case in ref["cases"]:
        rc, out, err = run(qkv, "tokenize", "-m", str(model), "-t", str(tok), "--json", case["prompt"])
        check(rc == 0 and json.loads(out)["ids"] == case["prompt_ids_with_bos"], f"tokenize stories: {out}{err}")
        rc, out, err = run(qkv, "tokenize", "-m", str(model), "--no-special", "--json", case["prompt"])
        check(rc == 0 and json.loads(out)["ids"] == case["prompt_ids_with_bos"][1:], f"--no-special: {out}{err}")
    rc, out, err = run(qkv, "tokenize", "-m", str(shared / "vocab-gguf" / "ggml-vocab-llama-spm.gguf"),
                       "--json", "Hello world")
    check(rc == 0 and json.loads(out) == {"ids": [1, 15043, 3186], "pieces": ["<s>", "\u2581Hello", "\u2581world"]},
          f"tokenize gguf: {out}{err}")

    # inspect --json: hyper-parameters as the files state them.
    expect = {
        "models/stories260K/stories260K.bin": {"n_embd": 64, "n_ff": 172, "n_layer": 5, "n_head": 8, "n_head_kv": 4, "n_vocab": 512, "n_ctx": 512},
        "models/aidreams260K/aidreams260K.bin": {"n_layer": 4, "n_head": 4, "n_head_kv": 4, "n_ctx": 128},
        "fixtures/hf/llama-tiny": {"n_embd": 32, "n_layer": 2, "n_head": 4, "n_head_kv": 2, "head_dim": 8, "rope_theta": 10000.0, "tied_embeddings": True},
        "fixtures/hf/gpt2-tiny": {"n_embd": 32, "n_layer": 2, "n_head": 4, "n_ctx": 256, "tied_embeddings": True},
        "fixtures/hf/bert-tiny": {"n_embd": 32, "n_layer": 2, "n_head": 2, "causal": False},
        "vocab-gguf/ggml-vocab-llama-spm.gguf": {"n_embd": 4096, "n_layer": 32, "n_vocab": 32000},
        "vocab-gguf/ggml-vocab-gpt-2.gguf": {"n_embd": 768, "n_layer": 12, "n_vocab": 50257},
        "vocab-gguf/ggml-vocab-bert-bge.gguf": {"n_embd": 384, "causal": False},
    }
    for rel, want in expect.items():
        rc, out, err = run(qkv, "inspect", "--json", str(shared / rel))
        if rc != 0:
            failures.append(f"inspect {rel}: rc {rc}: {err}")
            continue
        cfg = json.loads(out)["config"]
        for k, v in want.items():
            check(cfg.get(k) == v, f"inspect {rel}: {k} = {cfg.get(k)}, expected {v}")
    # Tensor tables agree with the bytes on disk: the sum of tensor bytes fits in the file.
    for rel in ["fixtures/hf/gpt2-tiny/model.safetensors", "models/stories260K/stories260K.bin"]:
        rc, out, err = run(qkv, "inspect", "--json", str(shared / rel))
        j = json.loads(out)
        size = (shared / rel).stat().st_size
        check(rc == 0 and 0 < j["tensor_bytes"] <= size, f"inspect {rel}: tensor bytes {j.get('tensor_bytes')} vs {size}")
    # Every model and tokenizer file in ../shared is described (exit 0).
    for path in sorted(shared.rglob("*")):
        if path.suffix in {".gguf", ".safetensors", ".bin"} or path.name in {"tokenizer.json", "vocab.txt", "config.json", "vocab.json", "merges.txt"}:
            rc, out, err = run(qkv, "inspect", str(path))
            check(rc == 0 and str(path) in out, f"inspect {path}: rc {rc}: {err}")

    # Malformed input: exit 1 with a message naming the file, never a crash.
    with tempfile.TemporaryDirectory() as d:
        bad = pathlib.Path(d) / "bad.gguf"
        bad.write_bytes(b"GGUF" + (3).to_bytes(4, "little") + (1 << 60).to_bytes(8, "little") * 2)
        rc, out, err = run(qkv, "inspect", str(bad))
        check(rc == 1 and str(bad) in err and "expected" in err, f"malformed gguf: rc {rc}: {err}")
        rc, out, err = run(qkv, "tokenize", "-m", str(shared / "fixtures" / "hf" / "gpt2-tiny"), "\udcff")
        check(rc in (1, 2) and "Traceback" not in err, f"bad text: rc {rc}: {err}")

    for f in failures:
        print("FAIL:", f)
    print(f"cli: {0 if failures else 1} passed, {1 if failures else 0} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
