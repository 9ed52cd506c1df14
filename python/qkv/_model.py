"""qkv.Model: a GGUF file, a Hugging Face folder or a llama2.c checkpoint, with its tokenizer."""
import json as _json
import operator as _operator
import os as _os

import numpy as _np

from . import _qkv
from ._explain import Explanation

TextStream = _qkv.TextStream

_BUILTIN = _os.path.join(_os.path.dirname(__file__), "data", "qkv-stories.gguf")


def _text(name, s):
    """s, when it is a str that encodes as UTF-8; else TypeError / ValueError naming `name` (a
    lone surrogate such as '\\ud800' has no UTF-8 form)."""
    if not isinstance(s, str):
        raise TypeError(f"{name} must be a str, found {type(s).__name__}")
    try:
        s.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(f"{name} is not valid Unicode: {e.reason} at index {e.start} "
                         f"(U+{ord(s[e.start]):04X}); qkv takes text that has a UTF-8 form") from None
    return s


def _token_ids(name, ids):
    """ids as a list of Python ints (operator.index: 2 and np.int32(2) pass, 2.5 and '2' do not)."""
    out = []
    for i, v in enumerate(ids):
        try:
            out.append(_operator.index(v))
        except TypeError:
            raise TypeError(f"{name}[{i}] = {v!r} is not an integer token id") from None
    return out


class Model(_qkv._Model):
    """Model(path=None, *, tokenizer=None, dot="exact"). Without a path: the built-in model (a
    small GPT-2 trained on stories, the default of `qkv generate`). tokenizer: a tokenizer file
    when the model has none in or beside it. dot: products with quantized weights, "exact" (fp32
    activations) or "int8" (activations rounded to 8-bit blocks and multiplied in integers, as
    llama.cpp does: faster decode, logits off by about 1-2% of their standard deviation; the CLI's
    --dot). Raises FileNotFoundError for a missing path, ValueError for another dot, and
    qkv.Error for a file qkv cannot read."""

    def __init__(self, path=None, *, tokenizer=None, dot="exact"):
        if path is None:
            path = _BUILTIN
        super().__init__(_os.fspath(path), "" if tokenizer is None else _os.fspath(tokenizer),
                         dot)

    def __repr__(self):
        return f"qkv.Model({self.describe()!r})"

    # Sampling defaults are those of the C++ SamplingParams (and of `qkv generate`).
    def _gen_args(self, prompt, max_new_tokens=256, temperature=0.8, top_k=40, top_p=0.95,
                  min_p=0.05, repeat_penalty=1.0, repeat_last_n=64, seed=0, stop=None,
                  stop_at_eos=True, add_special=True, parse_special=True, n_ctx=0, kv_type="f32",
                  n_threads=0):
        if isinstance(prompt, str):
            _text("prompt", prompt)
        else:
            prompt = _token_ids("prompt", prompt)
        # One string is one stop string (as in the OpenAI API), not a list of its characters.
        stop = [stop] if isinstance(stop, str) else list(stop or [])
        for i, s in enumerate(stop):
            _text(f"stop[{i}]", s)
        seed = _operator.index(seed)
        if not 0 <= seed < 2**64:
            raise ValueError(f"seed = {seed}; expected 0 <= seed < 2**64")
        return (prompt, int(max_new_tokens), float(temperature), int(top_k), float(top_p),
                float(min_p), float(repeat_penalty), int(repeat_last_n), seed, stop,
                bool(stop_at_eos), bool(add_special), bool(parse_special), int(n_ctx),
                str(kv_type), int(n_threads))

    def generate(self, prompt, **sampling):
        """The text generated after `prompt` (a string, or token ids). Keyword arguments:
        max_new_tokens=256, temperature=0.8 (0: greedy), top_k=40, top_p=0.95, min_p=0.05,
        repeat_penalty=1.0, repeat_last_n=64, seed=0 (0 <= seed < 2**64), stop=None (a string or
        a list of strings), stop_at_eos=True, add_special=True (BOS), parse_special=True (special
        tokens written in the prompt are single tokens), n_ctx=0 (the model's),
        kv_type='f32'|'f16'|'q8_0', n_threads=0 (all)."""
        return self._generate(*self._gen_args(prompt, **sampling))["text"]

    def generate_details(self, prompt, **sampling):
        """generate() as a dict: text, ids, prompt_ids, stop_reason, prefill_seconds,
        decode_seconds."""
        return self._generate(*self._gen_args(prompt, **sampling))

    def stream(self, prompt, **sampling):
        """An iterator of text pieces as they are generated (complete UTF-8 characters); the same
        text as generate() with the same arguments. Closing or dropping it stops generation."""
        return self._stream(*self._gen_args(prompt, **sampling))

    def tokenize(self, text, *, add_special=True, parse_special=True):
        """Token ids of `text` (add_special: the model's BOS/CLS...; parse_special: special tokens
        written in the text are single tokens)."""
        return super().tokenize(_text("text", text), add_special=add_special,
                                parse_special=parse_special)

    def chat_prompt(self, messages, *, system=None, add_generation_prompt=True, variables=None):
        """The prompt text the model's chat template makes of `messages` (a string is one user
        turn; else a list of {"role", "content"} dicts or (role, content) pairs), as
        transformers' apply_chat_template renders it."""
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        msgs = []
        if system is not None:
            msgs.append({"role": "system", "content": _text("system", system)})
        for i, m in enumerate(messages):
            if not isinstance(m, dict):
                role, content = m
                m = {"role": role, "content": content}
            for key, value in m.items():
                if isinstance(value, str):
                    _text(f"messages[{i}][{key!r}]", value)
            msgs.append(m)
        return self._chat_prompt(_json.dumps(msgs, ensure_ascii=False), add_generation_prompt,
                                 "" if variables is None else _json.dumps(variables))

    def chat(self, messages, *, system=None, variables=None, **sampling):
        """The assistant's reply to `messages` (see chat_prompt), generated as `qkv generate
        --chat` does: the rendered text is tokenized without an added BOS, with special tokens
        in it matched. Sampling keywords as generate()."""
        text = self.chat_prompt(messages, system=system, variables=variables)
        ids = self.tokenize(text, add_special=False, parse_special=True)
        return self.generate(ids, **sampling)

    def embed(self, texts, *, pooling="cls", normalize=True, parse_special=True, n_threads=0):
        """Sentence embeddings of an encoder (BERT): [n_embd] for one string, [len(texts), n_embd]
        for a list. pooling: 'cls', 'mean' or 'pooler'; normalize: L2."""
        single = isinstance(texts, str)
        texts = [texts] if single else list(texts)
        for i, t in enumerate(texts):
            _text("texts" if single else f"texts[{i}]", t)
        arr = self._embed(texts, pooling, bool(normalize),
                          bool(parse_special), int(n_threads))
        return arr[0] if single else arr

    def explain(self, text, layers=None, heads=None, *, max_new_tokens=0, add_special=True,
                parse_special=True, max_floats=0, n_threads=0):
        """Runs `text` (then max_new_tokens greedy tokens) with exact attention capture:
        an Explanation whose .attentions is [layers, heads, T, T], the numbers of
        `qkv explain --npy`. layers / heads: model indices to keep (default: all)."""
        return Explanation(_qkv._explain(self, _text("text", text), list(layers or []), list(heads or []),
                                         int(max_new_tokens), bool(add_special),
                                         bool(parse_special), int(max_floats), int(n_threads)))
