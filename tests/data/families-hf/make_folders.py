"""Writes three tiny Hugging Face model folders whose RoPE is scaled as their config.json states it:
llama3-rope (Llama 3.x's rope_scaling "llama3", tied embeddings), phi3-longrope (Phi-3's
"longrope" with long and short factor lists and its attention scale) and mistral-window (a
sliding window on every layer). Random weights from a fixed
seed; numpy only (the safetensors layout is written by hand)."""
import json
import struct
import sys
from pathlib import Path

import numpy as np


def write_safetensors(path, tensors):
    header, offset, blobs = {}, 0, []
    for name, a in tensors.items():
        a = np.ascontiguousarray(a, dtype=np.float32)
        header[name] = {"dtype": "F32", "shape": list(a.shape),
                        "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
        blobs.append(a.tobytes())
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def common(rng, c, fused):
    d, hd, h, hkv, ff, v = (c["hidden_size"], c["head_dim"], c["num_attention_heads"],
                            c["num_key_value_heads"], c["intermediate_size"], c["vocab_size"])
    w = lambda *s: rng.normal(0, 0.2, s).astype(np.float32)
    norm = lambda: (1 + rng.normal(0, 0.1, d)).astype(np.float32)
    t = {"model.embed_tokens.weight": w(v, d)}
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}."
        t[p + "input_layernorm.weight"] = norm()
        if fused:
            t[p + "self_attn.qkv_proj.weight"] = w((h + 2 * hkv) * hd, d)
        else:
            t[p + "self_attn.q_proj.weight"] = w(h * hd, d)
            t[p + "self_attn.k_proj.weight"] = w(hkv * hd, d)
            t[p + "self_attn.v_proj.weight"] = w(hkv * hd, d)
        t[p + "self_attn.o_proj.weight"] = w(d, h * hd)
        t[p + "post_attention_layernorm.weight"] = norm()
        if fused:
            t[p + "mlp.gate_up_proj.weight"] = w(2 * ff, d)
        else:
            t[p + "mlp.gate_proj.weight"] = w(ff, d)
            t[p + "mlp.up_proj.weight"] = w(ff, d)
        t[p + "mlp.down_proj.weight"] = w(d, ff)
    t["model.norm.weight"] = norm()
    return t


def main(out, vocab):
    out = Path(out)
    base = {"hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
            "num_hidden_layers": 2, "intermediate_size": 160, "vocab_size": vocab,
            "rms_norm_eps": 1e-5, "torch_dtype": "float32", "bos_token_id": 1, "eos_token_id": 2}
    # Llama 3.2's scaling (factor 32, low 1, high 4, original context 8192) on base 500000: with
    # head_dim 16 the eight wavelengths span 6 to 6e5 positions, so each of the three cases
    # (kept, blended, divided by the factor) applies to some frequency.
    llama = dict(base, architectures=["LlamaForCausalLM"], model_type="llama",
                 hidden_act="silu", max_position_embeddings=131072, rope_theta=500000.0,
                 tie_word_embeddings=True,
                 rope_scaling={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                               "high_freq_factor": 4.0, "original_max_position_embeddings": 8192})
    rng = np.random.default_rng(19)
    (out / "llama3-rope").mkdir(parents=True, exist_ok=True)
    (out / "llama3-rope" / "config.json").write_text(json.dumps(llama, indent=2) + "\n")
    write_safetensors(out / "llama3-rope" / "model.safetensors", common(rng, llama, False))
    # Mistral with a sliding window of 8 keys (the query's own included) on every layer: the
    # window binds from position 8 of the 32 test ids on.
    rng = np.random.default_rng(29)
    mistral = dict(base, architectures=["MistralForCausalLM"], model_type="mistral",
                   hidden_act="silu", max_position_embeddings=4096, rope_theta=10000.0,
                   tie_word_embeddings=False, sliding_window=8)
    t = common(rng, mistral, False)
    t["lm_head.weight"] = rng.normal(0, 0.2, (vocab, base["hidden_size"])).astype(np.float32)
    (out / "mistral-window").mkdir(parents=True, exist_ok=True)
    (out / "mistral-window" / "config.json").write_text(json.dumps(mistral, indent=2) + "\n")
    write_safetensors(out / "mistral-window" / "model.safetensors", t)
    # Phi-3 LongRoPE: short factors within the original 256-token context, long ones past it;
    # q and k scaled by sqrt(1 + ln(1024 / 256) / ln(256)).
    rng = np.random.default_rng(23)
    half = base["head_dim"] // 2
    phi = dict(base, architectures=["Phi3ForCausalLM"], model_type="phi3", hidden_act="silu",
               max_position_embeddings=1024, original_max_position_embeddings=256,
               rope_theta=10000.0, tie_word_embeddings=False, sliding_window=None,
               rope_scaling={"type": "longrope",
                             "long_factor": [round(float(x), 4) for x in 1 + rng.gamma(2.0, 4.0, half)],
                             "short_factor": [round(float(x), 4) for x in 1 + rng.gamma(1.0, 0.3, half)]})
    t = common(rng, phi, True)
    t["lm_head.weight"] = rng.normal(0, 0.2, (vocab, base["hidden_size"])).astype(np.float32)
    (out / "phi3-longrope").mkdir(parents=True, exist_ok=True)
    (out / "phi3-longrope" / "config.json").write_text(json.dumps(phi, indent=2) + "\n")
    write_safetensors(out / "phi3-longrope" / "model.safetensors", t)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 384)
