#!/usr/bin/env python3
"""Token labels of partial UTF-8 characters in every output of `qkv explain`.

usage: explain_labels_test.py QKV_BINARY SHARED_DIR   (exit 77 = skipped: ../shared absent)

A prompt of a CJK character and an emoji, on models whose tokenizers split them into bytes:
stories260K (SentencePiece byte fallback, <0xE7> tokens), the HF GPT-2 fixture (byte-level BPE,
" \\xf0\\x9f" is one token) and the qwen2 GGUF fixture. In the terminal text, --json, the --html
report's data, --npy's tokens JSON and --svg:
- every output is valid UTF-8 and holds no U+FFFD (which would hide which byte a token holds);
- a byte outside a complete character is written \\xNN, so that the tokens, with those escapes
  turned back into bytes, spell the prompt's UTF-8 bytes (Python's encoding, not qkv's);
- the methods' sections (a corrupted prompt's tokens, a target that is one byte) say the same;
- --token 猫 finds the character's row (its last byte's) though no token's text is 猫.
"""
import json
import pathlib
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "common"))
import shared_data  # noqa: E402

PROMPT = "\u732b \U0001f431 cat"      # 猫 (e7 8c ab), 🐱 (f0 9f 90 b1)
CORRUPTED = "\u732b \U0001f436 cat"   # 🐶 (f0 9f 90 b6): the same tokens but the last byte


def run(*args):
    p = subprocess.run(list(args), capture_output=True, timeout=240)
    return p.returncode, p.stdout, p.stderr.decode("utf-8", "replace")


def unescape(token):
    """A label's bytes: each \\xNN back to its byte, the rest as UTF-8."""
    out = b""
    for part in re.split(r"(\\x[0-9a-f]{2})", token):
        out += bytes([int(part[2:], 16)]) if re.fullmatch(r"\\x[0-9a-f]{2}", part) else part.encode()
    return out


def strict(data, what, failures):
    """data (bytes) as text, or None after recording why not."""
    try:
        text = data.decode("utf-8", "strict")
    except UnicodeDecodeError as e:
        failures.append(f"{what}: not valid UTF-8 ({e})")
        return None
    if "\ufffd" in text:
        failures.append(f"{what}: holds U+FFFD")
    return text


def check_model(qkv, name, model_args, tmp, failures):
    base = [qkv, "explain", *model_args, PROMPT, "--no-special", "--threads", "1"]
    rc, out, err = run(*base, "--json")
    if rc != 0:
        failures.append(f"{name} --json: rc {rc}: {err}")
        return
    text = strict(out, f"{name} --json", failures)
    if text is None:
        return
    j = json.loads(text)
    tokens = j["tokens"]
    spelled = b"".join(unescape(t) for t in tokens)
    want = PROMPT.encode()
    # SentencePiece adds a space before the text (its dummy prefix).
    if not (spelled.endswith(want) and spelled[: len(spelled) - len(want)].strip() == b""):
        failures.append(f"{name}: the tokens {tokens} spell {spelled!r}, not {want!r}")
    if not any(re.fullmatch(r"(\\x[0-9a-f]{2})+", t.strip()) for t in tokens):
        failures.append(f"{name}: no token is written as bytes: {tokens}")

    # The terminal: the same labels.
    rc, out, err = run(*base, "--ascii")
    term = strict(out, f"{name} terminal", failures) if rc == 0 else None
    if rc != 0:
        failures.append(f"{name} terminal: rc {rc}: {err}")
    elif term is not None and "\\xe7" not in term:
        failures.append(f"{name} terminal: no \\xe7 label:\n{term}")

    # --token names the character, split over byte tokens or not: the row of its last byte.
    last = next((k for k, t in enumerate(tokens) if unescape(t).endswith(b"\xab")), None)
    rc, out, err = run(*base, "--ascii", "--token", "\u732b")
    if rc != 0:
        failures.append(f"{name} --token \u732b: rc {rc}: {err}")
    elif f"token #{last} " not in out.decode():
        failures.append(f"{name} --token \u732b: not the row #{last} of its last byte")

    # The HTML report's data, --npy's tokens JSON, the SVG's labels.
    html, npy, svg = tmp / f"{name}.html", tmp / f"{name}.npy", tmp / f"{name}.svg"
    rc, _, err = run(*base, "--html", str(html), "--npy", str(npy), "--svg", str(svg))
    if rc != 0:
        failures.append(f"{name} --html: rc {rc}: {err}")
        return
    page = strict(html.read_bytes(), f"{name} --html", failures)
    if page is not None:
        m = re.search(r'<script[^>]*id="qkv-data"[^>]*>(.*?)</script>', page, re.S)
        if m is None:
            failures.append(f"{name} --html: no qkv-data element")
        elif json.loads(m.group(1))["tokens"] != tokens:
            failures.append(f"{name} --html: the data's tokens differ from --json's")
    side = strict(pathlib.Path(str(npy) + ".tokens.json").read_bytes(), f"{name} --npy", failures)
    if side is not None and json.loads(side)["tokens"] != tokens:
        failures.append(f"{name} --npy tokens JSON differs from --json's")
    strict(svg.read_bytes(), f"{name} --svg", failures)

    # Sections: patching's corrupted tokens, and a target that is a byte token.
    byte_pos = next((i for i, t in enumerate(tokens) if t == "\\xe7"), None)
    if byte_pos is None:
        failures.append(f"{name}: no token \\xe7 in {tokens}")
        return
    target = f"#{j['ids'][byte_pos]}"
    rc, out, err = run(*base, "--json", "--patch", CORRUPTED, "--target", target, "--ablate",
                       "zero")
    if rc != 0:
        failures.append(f"{name} --patch: rc {rc}: {err}")
        return
    text = strict(out, f"{name} --patch --json", failures)
    if text is None:
        return
    j = json.loads(text)
    spelled = b"".join(unescape(t) for t in j["patching"]["corrupted_tokens"])
    if not spelled.endswith(CORRUPTED.encode()):
        failures.append(f"{name}: corrupted_tokens {j['patching']['corrupted_tokens']} spell "
                        f"{spelled!r}")
    for key in ("patching", "ablation"):
        if j[key]["target"]["text"] != "\\xe7":
            failures.append(f"{name}: {key} target text {j[key]['target']['text']!r}, want \\xe7")


def main():
    qkv, shared = sys.argv[1], pathlib.Path(sys.argv[2])
    stories = shared / "models" / "stories260K"
    gpt2 = shared / "fixtures" / "hf" / "gpt2-tiny"
    qwen2 = shared / "fixtures" / "gguf-families" / "qwen2" / "model-f32.gguf"
    for p in (stories, gpt2, qwen2):
        shared_data.require(str(p))
    models = {
        "stories260K": ["-m", str(stories / "stories260K.bin"), "-t", str(stories / "tok512.bin")],
        "gpt2-tiny": ["-m", str(gpt2)],
        "qwen2": ["-m", str(qwen2)],
    }
    failures = []
    with tempfile.TemporaryDirectory() as d:
        for name, args in models.items():
            check_model(qkv, name, args, pathlib.Path(d), failures)
    for f in failures:
        print("FAILED:", f)
    if not failures:
        print(f"ok: labels of partial characters on {len(models)} models")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
