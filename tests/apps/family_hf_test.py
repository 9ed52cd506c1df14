#!/usr/bin/env python3
"""Hugging Face folders (config.json + model.safetensors) of qwen2, qwen3, gemma2 and gemma3.

transformers is not installed here, so the HF folder is written from a GGUF that both qkv and
llama.cpp run: `qkv make-model --arch ARCH --preset tiny --seed 3 --std 0.2` (the files of
tests/data/families, whose llama.cpp logits are committed there), its tensors renamed as
transformers names them, Gemma's RMSNorm weights stored as HF does (the GGUF converter adds 1),
and config.json written with the keys transformers' configs use (head_dim; Gemma's
attn_logit_softcapping, final_logit_softcapping, sliding_window, query_pre_attn_scalar; Gemma 3's
model_type gemma3_text, sliding_window_pattern, rope_local_base_freq and linear rope_scaling).
Both are independent spellings of the same numbers, so qkv on the folder must give
  qkv(HF folder) == qkv(GGUF) (RMS <= 1e-6 x std) and == llama.cpp(GGUF) (RMS <= 1e-4 x std),
with the same top-1 token everywhere. A config key the loader drops (a soft-cap, the window, the
query scale, a RoPE base) moves the logits by far more.

Self-contained: needs no ../shared.

usage: family_hf_test.py QKV_BINARY
"""
import json
import pathlib
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from eval_parity_test import agreement, read_npy, rms, std, top1  # noqa: E402

DATA = pathlib.Path(__file__).resolve().parents[1] / "data" / "families"
ARCHS = ["qwen2", "qwen3", "gemma2", "gemma3"]

# GGUF value types (gguf spec): scalar struct formats; 8 = string, 9 = array.
SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q",
          11: "<q", 12: "<d"}


def read_gguf(path):
    """An F32 GGUF: its metadata and {name: (shape, row-major f32 bytes)}."""
    d = pathlib.Path(path).read_bytes()
    off = 4

    def take(fmt):
        nonlocal off
        (v,) = struct.unpack_from(fmt, d, off)
        off += struct.calcsize(fmt)
        return v

    def text():
        nonlocal off
        n = take("<Q")
        off += n
        return d[off - n:off].decode()

    def value(t):
        if t in SCALAR:
            return take(SCALAR[t])
        if t == 8:
            return text()
        if t == 9:
            et, n = take("<I"), take("<Q")
            return [value(et) for _ in range(n)]
        raise ValueError(f"{path}: GGUF value type {t}")

    assert d[:4] == b"GGUF", path
    take("<I")  # version
    n_tensors, n_kv = take("<Q"), take("<Q")
    md = {}
    for _ in range(n_kv):
        key = text()
        md[key] = value(take("<I"))
    infos = []
    for _ in range(n_tensors):
        name = text()
        dims = [take("<Q") for _ in range(take("<I"))]
        infos.append((name, dims, take("<I"), take("<Q")))
    align = md.get("general.alignment", 32)
    base = (off + align - 1) // align * align
    out = {}
    for name, dims, t, o in infos:
        assert t == 0, f"{name}: F32 only"
        n = 1
        for x in dims:
            n *= x
        out[name] = (list(reversed(dims)), d[base + o:base + o + 4 * n])
    return md, out


LAYER = {
    "attn_norm": "input_layernorm", "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj",
    "attn_q_norm": "self_attn.q_norm", "attn_k_norm": "self_attn.k_norm",
    "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj",
}
GLOBAL = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
          "output.weight": "lm_head.weight"}


def hf_name(arch, name):
    if name in GLOBAL:
        return GLOBAL[name]
    _, i, rest = name.split(".", 2)
    part, kind = rest.rsplit(".", 1)
    if arch in ("gemma2", "gemma3"):
        special = {"post_attention_norm": "post_attention_layernorm",
                   "ffn_norm": "pre_feedforward_layernorm", "post_ffw_norm": "post_feedforward_layernorm"}
    else:
        special = {"ffn_norm": "post_attention_layernorm"}
    hf = special.get(part) or LAYER[part]
    return f"model.layers.{i}.{hf}.{kind}"


def write_hf_folder(src, dst):
    """The GGUF at src as an HF folder at dst."""
    md, tensors = read_gguf(src)
    arch = md["general.architecture"]
    a = lambda k, d=None: md.get(f"{arch}.{k}", d)
    n_embd, n_head = a("embedding_length"), a("attention.head_count")
    head_dim = a("attention.key_length", n_embd // n_head)
    cfg = {"model_type": arch, "vocab_size": len(md["tokenizer.ggml.tokens"]),
           "hidden_size": n_embd, "num_hidden_layers": a("block_count"),
           "num_attention_heads": n_head, "num_key_value_heads": a("attention.head_count_kv", n_head),
           "head_dim": head_dim, "intermediate_size": a("feed_forward_length"),
           "max_position_embeddings": a("context_length"),
           "rms_norm_eps": a("attention.layer_norm_rms_epsilon"),
           "rope_theta": a("rope.freq_base", 10000.0),
           "tie_word_embeddings": "output.weight" not in tensors,
           "hidden_act": "silu"}
    if arch in ("gemma2", "gemma3"):
        cfg.update({"hidden_activation": "gelu_pytorch_tanh", "hidden_act": "gelu_pytorch_tanh",
                    "attn_logit_softcapping": a("attn_logit_softcapping"),
                    "final_logit_softcapping": a("final_logit_softcapping"),
                    "sliding_window": a("attention.sliding_window"),
                    "query_pre_attn_scalar": head_dim})
    if arch == "gemma3":
        cfg.update({"model_type": "gemma3_text",
                    "sliding_window_pattern": a("attention.sliding_window_pattern"),
                    "rope_local_base_freq": a("rope.freq_base_swa"),
                    "rope_scaling": {"rope_type": a("rope.scaling.type"),
                                     "factor": a("rope.scaling.factor")}})
    header, blobs, off = {}, [], 0
    for name, (shape, raw) in tensors.items():
        if arch in ("gemma2", "gemma3") and name.endswith("norm.weight"):
            vals = struct.unpack(f"<{len(raw) // 4}f", raw)
            raw = struct.pack(f"<{len(vals)}f", *[v - 1.0 for v in vals])
        header[hf_name(arch, name)] = {"dtype": "F32", "shape": shape, "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    dst.mkdir(parents=True, exist_ok=True)
    with open(dst / "model.safetensors", "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for b in blobs:
            f.write(b)
    (dst / "config.json").write_text(json.dumps(cfg, indent=1))



def main():
    qkv = sys.argv[1]
    ids = (DATA / "ids.txt").read_text().strip()
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        for arch in ARCHS:
            gguf, folder = tmp / f"{arch}.gguf", tmp / f"{arch}-hf"
            p = subprocess.run([qkv, "make-model", "--arch", arch, "--preset", "tiny", "--seed",
                                "3", "--std", "0.2", "-o", str(gguf)], capture_output=True,
                               text=True, timeout=300)
            if p.returncode != 0:
                failures.append(f"{arch}: make-model rc {p.returncode}: {p.stderr.strip()}")
                continue
            write_hf_folder(gguf, folder)
            logits = {}
            for name, model in (("gguf", gguf), ("hf", folder)):
                out = tmp / f"{arch}.{name}.npy"
                p = subprocess.run([qkv, "eval", "-m", str(model), "--ids", ids, "--logits",
                                    str(out), "--threads", "1"], capture_output=True, text=True,
                                   timeout=300)
                if p.returncode != 0:
                    failures.append(f"{arch} {name}: eval rc {p.returncode}: {p.stderr.strip()}")
                    break
                logits[name] = read_npy(out)
            if len(logits) != 2:
                continue
            rows, cols, hf = logits["hf"]
            _, _, gg = logits["gguf"]
            _, _, llama = read_npy(DATA / f"{arch}.tiny.logits.npy")
            top = top1(hf, rows, cols)
            for what, ref, tol in (("qkv GGUF", gg, 1e-6), ("llama.cpp GGUF", llama, 1e-4)):
                err = rms(hf, ref) / std(ref)
                agree = agreement(top, top1(ref, rows, cols))
                print(f"{arch}: HF folder vs {what}: RMS {err:.2e} x std, top-1 {agree:.3f}")
                if err > tol or agree < 1.0:
                    failures.append(f"{arch}: HF folder vs {what}: RMS {err:.2e} x std (max {tol}), "
                                    f"top-1 {agree:.3f}")
    for f in failures:
        print("FAIL:", f)
    print(f"family HF folders: {len(ARCHS)} architectures, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
