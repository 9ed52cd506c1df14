#!/usr/bin/env python3
"""Mutated model and tokenizer files, each with its expected outcome: refused naming what is
wrong, or accepted with output identical to the unmutated file's.

usage: mutated_headers_test.py QKV_BINARY SHARED_DIR   (the HF / llama2.c cases skip without it)

GGUF (written by `qkv make-model`), safetensors and config.json (../shared/fixtures/hf),
tokenizer.json, llama2.c: hyper-parameters that no longer match the tensors (unused tensors),
NaN / inf / zero / negative epsilon and RoPE base, a NaN weight (the layer is named), header
lengths off by one, tokenizers of another model.
"""
import json
import math
import os
import pathlib
import shutil
import struct
import sys
import tempfile

from robust_util import ARRAY, F32, STRING, U32, Checks, Gguf, run

GEN = ("-p", "the cat", "-n", "6", "--temp", "0")


def generate(qkv, model, *extra):
    return run(qkv, "generate", "-m", model, *GEN, *extra)


def gguf_cases(qkv, c, tmp, arch):
    base = tmp / f"{arch}.gguf"
    rc, _, err = run(qkv, "make-model", "--arch", arch, "-o", base)
    if not c.check(rc == 0, f"make-model {arch}: {err}"):
        return
    rc0, ref, err = generate(qkv, base)
    c.check(rc0 == 0 and ref, f"{arch}: the unmutated model: {err}")
    g = Gguf(base)

    def mutated(name, edit):
        m = Gguf(base)
        edit(m)
        path = tmp / f"{arch}-{name}.gguf"
        m.write(path)
        return path

    # Accepted, identical output: an extra metadata key; the same file rewritten by this tool.
    p = mutated("same", lambda m: None)
    c.check(generate(qkv, p)[1] == ref, f"{arch}: rewritten file: different output")
    p = mutated("comment", lambda m: m.set("general.comment", STRING, "a note"))
    c.check(generate(qkv, p)[1] == ref, f"{arch}: an extra metadata key changed the output")

    # Fewer layers than tensors: the last layer's tensors are unused.
    n_layer = g.kv[f"{arch}.block_count"][1]
    p = mutated("layers", lambda m: m.set(f"{arch}.block_count", U32, n_layer - 1))
    c.refused(generate(qkv, p), "not used", f"blk.{n_layer - 1}.",
              what=f"{arch}: block_count lowered")
    # A renamed tensor: refused, not silently replaced (an untied head by the tied embedding).
    renamed = "output.weight" if any(t["name"] == "output.weight" for t in g.tensors) \
        else "output_norm.weight"

    def rename(m):
        m.tensor(renamed)["name"] = renamed + "x"
    p = mutated("renamed", rename)
    c.refused(generate(qkv, p), renamed, what=f"{arch}: {renamed} renamed")

    # Epsilon and RoPE base: NaN, inf, 0, -1 are refused naming the key.
    eps_key = next(k for k in g.kv if "epsilon" in k)
    for v in (math.nan, math.inf, 0.0, -1.0):
        p = mutated(f"eps{v}", lambda m, v=v: m.set(eps_key, F32, v))
        c.refused(generate(qkv, p), eps_key, what=f"{arch}: {eps_key} = {v}")
    if arch == "llama":
        for v in (math.nan, -math.inf, 0.0):
            p = mutated(f"rope{v}", lambda m, v=v: m.set("llama.rope.freq_base", F32, v))
            c.refused(generate(qkv, p), "rope.freq_base", what=f"llama: rope.freq_base = {v}")

    # A NaN weight in layer 1: the error names the layer where non-finite values appear.
    # (attn_output: its product goes straight into the residual stream.)
    def poison(m):
        struct.pack_into("<f", m.tensor("blk.1.attn_output.weight")["data"], 0, math.nan)
    p = mutated("nan", poison)
    c.refused(generate(qkv, p), "non-finite", "layer 1", what=f"{arch}: a NaN weight in layer 1")

    # The tokenizer's vocabulary no longer matches the model's.
    def fewer_tokens(m):
        et, items = m.kv["tokenizer.ggml.tokens"][1]
        m.set("tokenizer.ggml.tokens", ARRAY, (et, items[:-1]))
        for k in ("tokenizer.ggml.scores", "tokenizer.ggml.token_type"):
            if k in m.kv:
                et2, it2 = m.kv[k][1]
                m.set(k, ARRAY, (et2, it2[:-1]))
        if f"{arch}.vocab_size" in m.kv:
            pass  # the embedding's rows stay: the model's vocabulary is unchanged
    if "tokenizer.ggml.tokens" in g.kv:
        p = mutated("tokens", fewer_tokens)
        # gpt2 GGUF files state no vocab_size: the token list sets it, and the embedding's rows
        # then disagree with it; llama files state it, and the tokenizer disagrees.
        expect = "token_embd.weight" if arch == "gpt2" else "tokens but the model's vocabulary"
        c.refused(generate(qkv, p), expect, what=f"{arch}: a tokenizer one token short")


def safetensors_cases(qkv, c, tmp, shared):
    src = shared / "fixtures/hf/gpt2-tiny"
    if not c.shared(src / "model.safetensors", "the safetensors / config.json cases"):
        return
    rc0, ref, err = generate(qkv, src)
    c.check(rc0 == 0 and ref, f"gpt2-tiny: {err}")
    raw = (src / "model.safetensors").read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])

    def folder(name, weights=None, config=None, tokenizer=None):
        d = tmp / name
        d.mkdir()
        for f in src.iterdir():
            if f.name in ("model.safetensors", "config.json", "tokenizer.json"):
                continue
            os.symlink(f, d / f.name)
        if weights is not None:
            (d / "model.safetensors").write_bytes(weights)
        else:
            os.symlink(src / "model.safetensors", d / "model.safetensors")
        cfg = json.loads((src / "config.json").read_text())
        if config:
            config(cfg)
        (d / "config.json").write_text(json.dumps(cfg))
        tok = (src / "tokenizer.json").read_text()
        (d / "tokenizer.json").write_text(tokenizer(tok) if tokenizer else tok)
        return d

    def with_length(delta):
        return struct.pack("<Q", n + delta) + raw[8:]

    c.refused(generate(qkv, folder("short", with_length(-1))), "model.safetensors",
              what="safetensors header length one byte short")
    c.refused(generate(qkv, folder("long", with_length(1))), "model.safetensors",
              what="safetensors header length one byte long")
    c.refused(generate(qkv, folder("tail", raw + b"\0" * 8)), "data section",
              what="safetensors with 8 stray bytes at the end")
    # Accepted: another __metadata__ entry, the header re-laid out (data untouched).
    h2 = dict(header)
    h2["__metadata__"] = dict(header.get("__metadata__", {}), note="mutated")
    text = json.dumps(h2).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    p = folder("meta", struct.pack("<Q", len(text)) + text + raw[8 + n:])
    c.check(generate(qkv, p)[1] == ref, "safetensors: a metadata entry changed the output")
    # config.json: fewer layers than the weights hold; epsilon 0; an untied head that is absent.
    p = folder("layers", config=lambda j: j.update(n_layer=j["n_layer"] - 1))
    c.refused(generate(qkv, p), "not used", what="config.json n_layer lowered")
    p = folder("eps", config=lambda j: j.update(layer_norm_epsilon=0))
    c.refused(generate(qkv, p), "layer_norm_epsilon", what="config.json layer_norm_epsilon 0")
    p = folder("untied", config=lambda j: j.update(tie_word_embeddings=False))
    c.refused(generate(qkv, p), "lm_head", what="config.json untied head without lm_head")

    # tokenizer.json: an unknown pre-tokenizer changes tokenization: refused.
    def digits(t):
        j = json.loads(t)
        j["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": True}, j["pre_tokenizer"]]}
        return json.dumps(j)
    p = folder("digits", tokenizer=digits)
    c.refused(run(qkv, "tokenize", "-t", p / "tokenizer.json", "abc 123"), "Digits",
              what="tokenizer.json with a Digits pre-tokenizer")
    # invalid JSON says which file and where
    bad = tmp / "bad-config"
    bad.mkdir()
    for f in src.iterdir():
        if f.name != "config.json":
            os.symlink(f, bad / f.name)
    (bad / "config.json").write_text('{"n_layer": 2,')
    c.refused(generate(qkv, bad), "config.json", "invalid JSON", what="invalid config.json")

    # Mismatched tokenizers: caught at load, before any output.
    bert = shared / "fixtures/hf/bert-tiny"
    if c.shared(bert, "bert-tiny with gpt2's tokenizer"):
        c.refused(run(qkv, "embed", "-m", bert, "-t", src / "tokenizer.json", "hello"),
                  "tokenizer", "vocabulary", what="embed bert-tiny with gpt2's tokenizer")


def llama2c_cases(qkv, c, shared):
    tok = shared / "models/stories260K/tok512.bin"
    builtin = pathlib.Path(__file__).resolve().parents[2] / "models/qkv-stories.gguf"
    if c.shared(tok, "qkv-stories.gguf with tok512.bin") and builtin.is_file():
        rc, out, err = generate(qkv, builtin, "-t", tok)
        c.refused((rc, out, err), "tokens but the model's vocabulary",
                  what="qkv-stories.gguf with tok512.bin")
        c.check(out == "", f"partial output before the tokenizer error: {out!r}")


def main():
    qkv = sys.argv[1]
    shared = pathlib.Path(sys.argv[2]) if len(sys.argv) > 2 else pathlib.Path("/nonexistent")
    c = Checks()
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="qkv-mutated-"))
    try:
        for arch in ("gpt2", "llama"):
            gguf_cases(qkv, c, tmp, arch)
        safetensors_cases(qkv, c, tmp, shared)
        llama2c_cases(qkv, c, shared)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return c.report("mutated_headers")


if __name__ == "__main__":
    sys.exit(main())
