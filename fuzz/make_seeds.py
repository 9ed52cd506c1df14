#!/usr/bin/env python3
"""Writes the small seed corpus in fuzz/corpus/ (independent of qkv's own writers)."""
import json
import pathlib
import struct

ROOT = pathlib.Path(__file__).parent / "corpus"


def gguf_str(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def gguf(kvs, tensors, alignment=32):
    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs))
    for key, typ, payload in kvs:
        out += gguf_str(key) + struct.pack("<I", typ) + payload
    off = 0
    datas = []
    for name, dims, ggml_type, data in tensors:
        out += gguf_str(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<q", d) for d in dims)
        out += struct.pack("<IQ", ggml_type, off)
        datas.append(data)
        off += (len(data) + alignment - 1) // alignment * alignment
    out += b"\0" * (-len(out) % alignment)
    for d in datas:
        out += d + b"\0" * (-len(d) % alignment)
    return out


def arr(elem_type, items):
    return struct.pack("<IQ", elem_type, len(items)) + b"".join(items)


def main():
    for d in ["gguf", "safetensors", "llama2c", "tokenizer_json", "encode", "chat_template", "hf_config"]:
        (ROOT / d).mkdir(parents=True, exist_ok=True)
    tokens = ["<unk>", "<s>", "</s>", "\u2581", "a", "b", "\u2581a", "ab", "<0x41>", "c"]
    kvs = [
        ("general.architecture", 8, gguf_str("llama")),
        ("llama.block_count", 4, struct.pack("<I", 1)),
        ("llama.attention.head_count", 4, struct.pack("<I", 2)),
        ("tokenizer.ggml.model", 8, gguf_str("llama")),
        ("tokenizer.ggml.tokens", 9, arr(8, [gguf_str(t) for t in tokens])),
        ("tokenizer.ggml.scores", 9, arr(6, [struct.pack("<f", -i) for i in range(len(tokens))])),
        ("tokenizer.ggml.token_type", 9, arr(5, [struct.pack("<i", t) for t in [2, 3, 3, 1, 1, 1, 1, 1, 6, 1]])),
        ("tokenizer.ggml.bos_token_id", 4, struct.pack("<I", 1)),
        ("nested", 9, arr(9, [arr(0, [b"\x01", b"\x02"])])),
        ("f64", 12, struct.pack("<d", 0.5)),
    ]
    q8 = struct.pack("<e", 0.5) + bytes(range(32))
    tensors = [("w.f32", [4, 2], 0, struct.pack("<8f", *range(8))), ("w.q8_0", [32], 8, q8),
               ("w.f16", [2], 1, struct.pack("<2e", 1.0, -2.0))]
    (ROOT / "gguf" / "spm.gguf").write_bytes(gguf(kvs, tensors))
    bpe_kvs = [("tokenizer.ggml.model", 8, gguf_str("gpt2")),
               ("tokenizer.ggml.tokens", 9, arr(8, [gguf_str(t) for t in ["a", "b", "ab", "\u0120"]])),
               ("tokenizer.ggml.merges", 9, arr(8, [gguf_str("a b")]))]
    (ROOT / "gguf" / "bpe.gguf").write_bytes(gguf(bpe_kvs, []))
    # One tensor in each quantized block format (ggml type id, values per block, bytes per
    # block): byte patterns with a scale of 0.5 (f16 0x3800) in the block's first two bytes.
    quant = [("q4_0", 2, 32, 18), ("q4_1", 3, 32, 20), ("q5_0", 6, 32, 22), ("q5_1", 7, 32, 24),
             ("q2_k", 10, 256, 84), ("q3_k", 11, 256, 110), ("q4_k", 12, 256, 144),
             ("q5_k", 13, 256, 176), ("q6_k", 14, 256, 210), ("iq4_nl", 20, 32, 18),
             ("iq4_xs", 23, 256, 136)]
    qtensors = [(f"w.{name}", [block, 2], tid, (struct.pack("<e", 0.5) + bytes((7 * i + 3) % 256 for i in range(nbytes - 2))) * 2)
                for name, tid, block, nbytes in quant]
    (ROOT / "gguf" / "quant.gguf").write_bytes(gguf([], qtensors))
    # general.alignment 1 puts tensor data at odd offsets (read through aligned copies).
    align1 = [("general.alignment", 4, struct.pack("<I", 1))]
    (ROOT / "gguf" / "align1.gguf").write_bytes(gguf(align1, tensors + qtensors, alignment=1))

    header = {"__metadata__": {"format": "pt"},
              "a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
              "b": {"dtype": "BF16", "shape": [2], "data_offsets": [16, 20]},
              "c": {"dtype": "I32", "shape": [1], "data_offsets": [20, 24]}}
    h = json.dumps(header).encode()
    (ROOT / "safetensors" / "small.safetensors").write_bytes(struct.pack("<Q", len(h)) + h + bytes(24))

    dim, hidden, layers, heads, kv, vocab, seq = 4, 8, 1, 2, 1, 3, 2
    n = vocab * dim + layers * (dim + 4 * 4 + 2 * 4 * 2 + 4 * 4 + dim + 3 * hidden * dim) + dim + seq * (dim // heads)
    v0 = struct.pack("<7i", dim, hidden, layers, heads, kv, vocab, seq) + bytes(4 * n)
    (ROOT / "llama2c" / "v0.bin").write_bytes(v0)
    v1 = struct.pack("<Ii7iB", 0x616B3432, 1, dim, hidden, layers, heads, kv, vocab, seq, 1)
    v1 += bytes(256 - len(v1)) + bytes(4 * (n - seq * (dim // heads)))
    (ROOT / "llama2c" / "v1.bin").write_bytes(v1)
    tok = struct.pack("<i", 8)
    for t in ["<unk>", "\n<s>\n", "\n</s>\n", "<0x41>", " ", "a", " a"]:
        tok += struct.pack("<fi", -1.0, len(t.encode())) + t.encode()
    (ROOT / "llama2c" / "tokenizer.bin").write_bytes(tok)

    bpe = {"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "\u0120": 3, "<|endoftext|>": 4},
                     "merges": ["a b", ["\u0120", "a"]]},
           "added_tokens": [{"id": 4, "content": "<|endoftext|>", "special": True}],
           "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False}}
    (ROOT / "tokenizer_json" / "bpe.json").write_text(json.dumps(bpe))
    wp = {"model": {"type": "WordPiece", "unk_token": "[UNK]", "vocab": {"[UNK]": 0, "[CLS]": 1, "[SEP]": 2, "hello": 3, "##lo": 4}},
          "normalizer": {"type": "BertNormalizer", "lowercase": True, "strip_accents": None},
          "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "[CLS]"}}, {"Sequence": {"id": "A"}}, {"SpecialToken": {"id": "[SEP]"}}]}}
    (ROOT / "tokenizer_json" / "wordpiece.json").write_text(json.dumps(wp))

    configs = {
        "gpt2": {"model_type": "gpt2", "vocab_size": 5, "n_embd": 8, "n_layer": 1, "n_head": 2,
                 "n_positions": 16, "n_inner": None, "layer_norm_epsilon": 1e-5,
                 "activation_function": "gelu_new", "tie_word_embeddings": True},
        "llama": {"model_type": "llama", "vocab_size": 5, "hidden_size": 8, "num_hidden_layers": 1,
                  "num_attention_heads": 2, "num_key_value_heads": 1, "max_position_embeddings": 16,
                  "intermediate_size": 16, "hidden_act": "silu", "rms_norm_eps": 1e-6,
                  "rope_theta": 10000.0, "rope_scaling": {"rope_type": "default"}},
        "bert": {"model_type": "bert", "vocab_size": 5, "hidden_size": 8, "num_hidden_layers": 1,
                 "num_attention_heads": 2, "max_position_embeddings": 16, "intermediate_size": 16,
                 "hidden_act": "gelu", "layer_norm_eps": 1e-12, "type_vocab_size": 2},
    }
    for name, cfg in configs.items():
        (ROOT / "hf_config" / f"{name}.json").write_text(json.dumps(cfg))

    for i, text in enumerate(["Hello world", " ab  ab\n\t", "caf\u00e9 \u4f60\u597d \U0001F999", "<s>a</s>", "'s 've 123"]):
        (ROOT / "encode" / f"text{i}.txt").write_bytes(text.encode())

    chat = [
        "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'system' %}"
        "{{ raise_exception('System role not supported') }}{% endif %}"
        "{{ '<|' + m.role + '|>\\n' + m['content'] | trim + '<|end|>\\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}",
        "{%- set ns = namespace(i=0, last=messages|length - 1) %}\n"
        "{%- for m in messages[::-1] if m.role != 'tool' %}\n"
        "    {%- set ns.i = ns.i + loop.index0 %}\n"
        "    {{- m.content.split('</think>')[-1].lstrip('\\n') ~ loop.last }}\n"
        "{%- else %}none{% endfor %}\n{{ ns.i }} {{ tools | tojson(indent=2) }}",
        "{% macro fmt(x, esc=True) -%}\n  {%- if x is string %}'{{ x }}'{% elif x is mapping %}"
        "{% for k, v in x | dictsort %}{{ k }}:{{ fmt(v, esc=esc) }}{% endfor %}"
        "{% elif x is sequence %}[{% for i in x %}{{ fmt(i) }}{{ ',' if not loop.last }}{% endfor %}]"
        "{% else %}{{ x }}{% endif %}\n{%- endmacro %}{{ fmt(messages[2].tool_calls) }}"
        "{{ strftime_now('%d %b %Y') }}{# comment #}",
        "{% set x = {'a': [1, 2.5, none, true], 'b': 'c' ~ 1} %}{{ x.a[1:] }}{{ x|items|list }}"
        "{{ (1, 2) + (3,) }}{{ 7 // 2 }}{{ -7 % 3 }}{{ 2 ** 10 }}{{ 'ab' * 3 }}{{ range(2, 9, 3)|list }}"
        "{{ messages|selectattr('role', 'equalto', 'user')|map(attribute='content')|join(', ') }}",
    ]
    for i, text in enumerate(chat):
        (ROOT / "chat_template" / f"template{i}.jinja").write_text(text)


if __name__ == "__main__":
    main()
