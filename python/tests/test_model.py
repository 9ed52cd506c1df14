"""qkv.Model and Explanation: the same answers as the qkv binary, arrays in the documented shapes,
errors as the documented exceptions."""
import json
import os
import shutil
import subprocess

import numpy as np
import pytest

import qkv
from conftest import qkv_cli, require_shared

PROMPT = "Once upon a time"


@pytest.fixture(scope="module")
def model():
    return qkv.Model()


def run_cli(*args):
    p = subprocess.run([qkv_cli(), *args], capture_output=True, timeout=600)
    assert p.returncode == 0, p.stderr.decode(errors="replace")[-2000:]
    return p.stdout.decode("utf-8", "replace")


def test_builtin_model(model):
    assert model.is_decoder and model.architecture == "gpt2"
    assert model.n_layer > 0 and model.n_head > 0 and model.n_vocab > 0
    assert "gpt2" in model.describe()


def test_tokenize_roundtrip(model):
    ids = model.tokenize(PROMPT)
    assert all(isinstance(i, int) for i in ids) and len(ids) > 1
    assert model.detokenize(ids) == PROMPT
    assert model.tokenize(PROMPT, add_special=False) == ids[-len(model.tokenize(PROMPT, add_special=False)):]
    with pytest.raises(ValueError, match="outside the vocabulary"):
        model.detokenize([model.n_vocab])


def test_special_tokens_in_text(model):
    """As the library and the CLI: special tokens written in the text are single tokens unless
    parse_special=False."""
    eot = "<|endoftext|>"
    ids = model.tokenize("a" + eot + "b", add_special=False)
    plain = model.tokenize("a" + eot + "b", add_special=False, parse_special=False)
    special = [i for i in ids if model.token(i) == eot or model.detokenize([i]) == ""]
    assert len(special) == 1 and len(plain) > len(ids)
    assert model.detokenize(plain) == "a" + eot + "b"


@pytest.mark.parametrize("temperature,seed", [(0.0, 1), (0.8, 7), (1.0, 12345)])
def test_generate_equals_cli(model, temperature, seed):
    text = model.generate(PROMPT, max_new_tokens=24, temperature=temperature, seed=seed,
                          n_threads=2)
    out = run_cli("generate", "-p", PROMPT, "-n", "24", "--temp", str(temperature), "--seed",
                  str(seed), "--threads", "2")
    assert out == PROMPT + text + "\n"


def test_stream_equals_generate(model):
    args = dict(max_new_tokens=30, temperature=0.8, seed=3)
    pieces = list(model.stream(PROMPT, **args))
    assert len(pieces) > 1 and all(isinstance(p, str) for p in pieces)
    assert "".join(pieces) == model.generate(PROMPT, **args)
    # Stopping early: closing the iterator ends the generation thread.
    s = model.stream(PROMPT, max_new_tokens=200, temperature=0.8, seed=3)
    next(s)
    s.close()
    with pytest.raises(StopIteration):
        while True:
            next(s)


def test_generate_from_ids_and_stop_strings(model):
    ids = model.tokenize(PROMPT)
    assert model.generate(ids, max_new_tokens=10, temperature=0) == \
        model.generate(PROMPT, max_new_tokens=10, temperature=0)
    full = model.generate(PROMPT, max_new_tokens=40, temperature=0)
    cut = full[5:8]
    assert model.generate(PROMPT, max_new_tokens=40, temperature=0, stop=[cut]) == \
        full[:full.index(cut)]
    d = model.generate_details(PROMPT, max_new_tokens=5, temperature=0)
    assert d["prompt_ids"] == ids and len(d["ids"]) <= 5
    # One string is one stop string (not one per character), as in the OpenAI API.
    assert len(cut) > 1
    assert model.generate(PROMPT, max_new_tokens=40, temperature=0, stop=cut) == \
        full[:full.index(cut)]
    assert model.generate(np.array(ids, dtype=np.int32), max_new_tokens=10, temperature=0) == \
        model.generate(ids, max_new_tokens=10, temperature=0)


def test_eval_logits_agree_with_greedy(model):
    ids = model.tokenize(PROMPT)
    logits = model.eval(ids)
    assert logits.shape == (len(ids), model.n_vocab) and logits.dtype == np.float32
    nxt = model.generate_details(ids, max_new_tokens=1, temperature=0)["ids"]
    assert nxt == [int(np.argmax(logits[-1]))]
    # Causal: the logits of a prefix are the prefix's rows.
    assert np.allclose(model.eval(ids[:2]), logits[:2], atol=1e-4)


def test_explain_equals_cli_npy(model, tmp_path):
    e = model.explain("The little cat sat on the mat", n_threads=1)
    a = e.attentions
    t = len(e.ids)
    assert a.shape == (model.n_layer, model.n_head, t, t) and a.dtype == np.float32
    assert len(e.tokens) == t and e.layers == list(range(model.n_layer))
    npy = tmp_path / "maps.npy"
    run_cli("explain", "The little cat sat on the mat", "--npy", str(npy), "--threads", "1")
    cli = np.load(npy)
    assert cli.shape == a.shape
    assert np.array_equal(cli, a)
    assert json.loads((tmp_path / "maps.npy.tokens.json").read_text())["ids"] == e.ids
    # Rows are probability distributions, zero right of the diagonal.
    assert np.allclose(a.sum(-1), 1, atol=1e-5)
    assert np.all(np.triu(a, 1) == 0)


def test_explanation_analyses_and_exports(model, tmp_path):
    e = model.explain("One day a girl went to the park", layers=[0, model.n_layer - 1],
                      heads=[1, 0], max_new_tokens=3)
    t = len(e.ids)
    assert e.layers == [0, model.n_layer - 1] and e.heads == [0, 1]
    assert e.attentions.shape == (2, 2, t, t)
    ent = e.entropy()
    assert ent.shape == (2, 2, t) and np.all(ent >= 0)
    # Entropy of row i from the maps themselves.
    p = e.attentions[1, 0, -1].astype(np.float64)
    p = p[p > 0]
    assert abs(ent[1, 0, -1] - float(-(p * np.log(p)).sum())) < 1e-5
    r = e.rollout()
    assert r.shape == (t, t) and np.allclose(r.sum(-1), 1, atol=1e-4)
    s = e.look_scores()
    assert set(s) >= {"previous", "first", "self", "induction", "entropy"}
    assert s["previous"].shape == (2, 2)
    tr = e.to_transformers()
    assert isinstance(tr, tuple) and len(tr) == 2
    assert all(tuple(x.shape) == (1, 2, t, t) for x in tr)
    import torch
    assert all(isinstance(x, torch.Tensor) for x in tr)
    # What bertviz's format_attention does with it.
    stacked = torch.stack([x.squeeze(0) for x in tr])
    assert tuple(stacked.shape) == (2, 2, t, t)
    assert np.array_equal(stacked.numpy(), e.attentions)
    tn = e.to_transformers(as_torch=False)
    assert all(isinstance(x, np.ndarray) and x.shape == (1, 2, t, t) for x in tn)
    html = e.html(tmp_path / "r.html")
    assert html.startswith("<!") and (tmp_path / "r.html").read_text(encoding="utf-8") == html
    e.png(tmp_path / "m.png", model.n_layer - 1, 1)
    assert (tmp_path / "m.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="not captured"):
        e.png(tmp_path / "x.png", 1, 0) if model.n_layer > 2 else e.png(tmp_path / "x.png", 0, 5)


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        qkv.Model(tmp_path / "missing.gguf")
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 60)
    with pytest.raises(qkv.Error):
        qkv.Model(bad)
    m = qkv.Model()
    with pytest.raises(ValueError, match="temperature"):
        m.generate("x", temperature=-1)
    with pytest.raises(ValueError, match="layer"):
        m.explain("x", layers=[99])
    with pytest.raises(qkv.Error, match="encoder"):
        m.embed("x")
    with pytest.raises(ValueError, match="empty"):
        m.eval([])


def test_text_and_argument_errors_name_the_argument(model):
    # A lone surrogate has no UTF-8 form: each text argument names itself and the index.
    bad = "ok \ud800"
    for call, name in [(lambda: model.tokenize(bad), "text"),
                       (lambda: model.generate(bad, max_new_tokens=1), "prompt"),
                       (lambda: model.stream(bad, max_new_tokens=1), "prompt"),
                       (lambda: model.generate("x", max_new_tokens=1, stop=["a", bad]),
                        r"stop\[1\]"),
                       (lambda: model.chat_prompt([{"role": "user", "content": bad}]),
                        r"messages\[0\]\['content'\]"),
                       (lambda: model.chat("x", system=bad), "system"),
                       (lambda: model.explain(bad), "text"),
                       (lambda: model.embed(["x", bad]), r"texts\[1\]")]:
        with pytest.raises(ValueError, match=name + r" is not valid Unicode.*index 3.*U\+D800"):
            call()
    with pytest.raises(TypeError, match=r"prompt\[1\] = 2.5 is not an integer"):
        model.generate([1, 2.5], max_new_tokens=1)
    with pytest.raises(TypeError, match=r"stop\[0\] must be a str, found int"):
        model.generate("x", max_new_tokens=1, stop=[5])
    for seed in (-1, 2**64):
        with pytest.raises(ValueError, match="seed"):
            model.generate("x", max_new_tokens=1, seed=seed)
    assert isinstance(model.generate("x", max_new_tokens=1, seed=2**64 - 1), str)


def test_hf_folder_eval_and_chat(tmp_path):
    fixture = require_shared("fixtures/hf/llama-tiny")
    model = qkv.Model(fixture)
    ids = model.tokenize("Hello there", add_special=False)
    assert model.eval(ids).shape == (len(ids), model.n_vocab)
    with pytest.raises(qkv.Error, match="chat template"):
        model.chat("hi")
    folder = tmp_path / "llama-chat"
    shutil.copytree(fixture, folder)
    cfg = json.loads((folder / "tokenizer_config.json").read_text())
    cfg["chat_template"] = ("{% for m in messages %}{{ m.role | capitalize }}: {{ m.content }}\n"
                            "{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}")
    (folder / "tokenizer_config.json").write_text(json.dumps(cfg))
    chat_model = qkv.Model(folder)
    assert chat_model.chat_prompt("Where is the cat?") == "User: Where is the cat?\nAssistant:"
    reply = chat_model.chat([{"role": "user", "content": "Where is the cat?"}],
                            max_new_tokens=12, temperature=0, stop_at_eos=False, n_threads=1)
    cli = run_cli("generate", "-m", str(folder), "--chat", "-p", "Where is the cat?", "-n", "12",
                  "--temp", "0", "--seed", "1", "--ignore-eos", "--threads", "1")
    assert cli == reply + "\n"


def test_embed_bert():
    fixture = require_shared("fixtures/hf/bert-tiny")
    model = qkv.Model(fixture)
    assert not model.is_decoder
    e = model.embed(["a cat", "a dog", "a cat"])
    assert e.shape == (3, model.n_embd) and e.dtype == np.float32
    assert np.allclose(np.linalg.norm(e, axis=1), 1, atol=1e-5)
    assert np.array_equal(e[0], e[2])
    one = model.embed("a cat", pooling="mean", normalize=False)
    assert one.shape == (model.n_embd,)
    out = json.loads(run_cli("embed", "-m", str(fixture), "a cat", "--json"))
    assert np.allclose(out["embeddings"][0], e[0], atol=1e-6)
    with pytest.raises(ValueError, match="pooling"):
        model.embed("x", pooling="max")
    with pytest.raises(qkv.Error, match="encoder"):
        model.generate("x")


def test_llama2c_model_eval_and_generate_equal_cli(tmp_path):
    """A llama2.c checkpoint with its tokenizer file: eval() is `qkv eval --logits`, generate()
    is `qkv generate`'s text."""
    folder = require_shared("models/stories260K")
    path, tok = str(folder / "stories260K.bin"), str(folder / "tok512.bin")
    model = qkv.Model(path, tokenizer=tok)
    assert model.architecture == "llama" and model.n_head_kv == 4
    ids = model.tokenize(PROMPT)
    logits = model.eval(ids, n_threads=1)
    out = tmp_path / "logits.npy"
    run_cli("eval", "-m", path, "-t", tok, "--ids", ",".join(map(str, ids)), "--logits", str(out),
            "--threads", "1")
    assert np.array_equal(np.load(out), logits)
    text = model.generate(PROMPT, max_new_tokens=30, temperature=0.9, seed=5, n_threads=1)
    cli = run_cli("generate", "-m", path, "-t", tok, "-p", PROMPT, "-n", "30", "--temp", "0.9",
                  "--seed", "5", "--threads", "1")
    assert cli == PROMPT + text + "\n"


def test_gguf_family_eval_equals_cli(tmp_path):
    folder = require_shared("fixtures/gguf-families/qwen2")
    gguf = sorted(p for p in folder.glob("*.gguf") if "f32" in p.name.lower() or "F32" in p.name)
    if not gguf:
        pytest.fail(f"no F32 GGUF in {folder}")
    model = qkv.Model(gguf[0])
    ids = model.tokenize("The quick brown fox", add_special=False)[:8]
    out = tmp_path / "logits.npy"
    run_cli("eval", "-m", str(gguf[0]), "--ids", ",".join(map(str, ids)), "--logits", str(out),
            "--threads", "1")
    assert np.array_equal(np.load(out), model.eval(ids, n_threads=1))


def _rms(a, b):
    return float(np.sqrt(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)))


@pytest.mark.parametrize("qtype", ["Q4_K_M", "Q8_0"])
def test_dot_int8_is_as_exact_as_llama_cpp(qtype):
    """Model(dot="int8") rounds activations to 8-bit blocks as llama.cpp does: against the file's
    exact-arithmetic twin (llama.cpp's logits on the dequantized weights as F32), its error is at
    most 1.25x llama.cpp's own and far above the exact mode's, which shows the mode took effect."""
    folder = require_shared("fixtures/gguf-quant")
    ids = [int(t) for t in (folder / "ids.txt").read_text().split(",")]
    twin = np.load(folder / f"model-{qtype}.twin-logits.npy")
    peer = np.load(folder / f"model-{qtype}.logits.npy")
    path = folder / f"model-{qtype}.gguf"
    exact = qkv.Model(path).eval(ids, n_threads=1)
    int8 = qkv.Model(path, dot="int8").eval(ids, n_threads=1)
    assert exact.shape == int8.shape == twin.shape
    std = float(np.std(twin))
    e_exact, e_int8, e_peer = _rms(exact, twin), _rms(int8, twin), _rms(peer, twin)
    assert e_exact < 1e-4 * std, (e_exact, std)
    assert e_int8 <= 1.25 * e_peer, (e_int8, e_peer)
    assert e_int8 > 20 * e_exact, (e_int8, e_exact)


def test_dot_other_values_are_refused():
    with pytest.raises(ValueError, match="dot"):
        qkv.Model(dot="int4")
