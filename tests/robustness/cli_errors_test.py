#!/usr/bin/env python3
"""User-facing errors say what is wrong in the user's terms, and small wrong answers are refused.

usage: cli_errors_test.py QKV_BINARY SHARED_DIR

No raw library text (std::vector's range check, nlohmann's parse errors without the file, API
names such as SessionOptions::n_ctx, a raw filesystem error); unknown commands named; seeds out
of range refused; make-model's documented default works; dropped rows of an exported map are
NaN, not zeros; bench model refuses a prompt past learned positions.
"""
import json
import math
import pathlib
import shutil
import struct
import subprocess
import sys
import tempfile

from robust_util import Checks, run

RAW = ("_M_range_check", "vector::", "basic_string", "terminate called", "[json.exception",
       "filesystem error", "SessionOptions", "LoadOptions", "CaptureOptions", "call reset()")


def clean(c, result, what, *parts):
    rc, out, err = result
    raw = [r for r in RAW if r in err]
    c.check(0 < rc < 128 and not raw and all(p in err for p in parts),
            f"{what}: rc {rc}, raw {raw}, expected {parts}: {err[-400:]}")


def read_npy(path):
    b = pathlib.Path(path).read_bytes()
    (hlen,) = struct.unpack_from("<H", b, 8)
    header = b[10:10 + hlen].decode()
    data = b[10 + hlen:]
    return header, struct.unpack(f"<{len(data) // 4}f", data)


def main():
    qkv = sys.argv[1]
    shared = pathlib.Path(sys.argv[2]) if len(sys.argv) > 2 else pathlib.Path("/nonexistent")
    c = Checks()
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="qkv-cli-errors-"))
    try:
        model = tmp / "tiny.gguf"
        # make-model's help says tiny is the default preset: no --arch needed.
        rc, out, err = run(qkv, "make-model", "-o", model)
        c.check(rc == 0 and model.is_file(), f"make-model with the defaults: {rc} {err}")

        clean(c, run(qkv, "frobnicate"), "unknown command", "frobnicate", "unknown command")
        for spec in ("0:", ":0", "x:y", "all:0", "0:1,2"):
            clean(c, run(qkv, "explain", "-m", model, "the cat", "--map", spec),
                  f"--map {spec}", "--map")
        clean(c, run(qkv, "explain", "-m", model, "the cat", "--token", "#"), "--token #",
              "--token")
        for seed in ("-1", "18446744073709551616", "1e3", ""):
            clean(c, run(qkv, "make-model", "-o", tmp / "s.gguf", "--seed", seed),
                  f"make-model --seed {seed!r}", "--seed")
            clean(c, run(qkv, "generate", "-m", model, "-p", "a", "-n", "1", "--seed", seed),
                  f"generate --seed {seed!r}", "--seed")
        rc, _, err = run(qkv, "make-model", "-o", tmp / "s.gguf", "--seed", "18446744073709551615")
        c.check(rc == 0, f"the largest seed is valid: {err}")

        # The context: the library names the context length, the CLI its option.
        rc, _, err = run(qkv, "generate", "-m", model, "-p", "word " * 200, "-n", "4")
        clean(c, (rc, "", err), "a prompt past the context", "context", "--ctx")

        # train -o an existing file: a sentence, not "filesystem error: ...".
        f = tmp / "afile"
        f.write_text("x")
        clean(c, run(qkv, "train", "-o", f, "--steps", "1"), "train -o FILE", str(f))

        # Invalid JSON names the file.
        bad = tmp / "tokenizer.json"
        bad.write_text('{"model": {"type": "BPE", "vocab": {"a": 0}, ')
        clean(c, run(qkv, "tokenize", "-t", bad, "a"), "invalid tokenizer.json", str(bad),
              "invalid JSON")

        # Errors that quote what the user gave (a file's bytes, an argument, a path) are valid
        # UTF-8, a byte that is no character shown as \xNN: nlohmann's parse error quoted the
        # raw byte of a --messages file, CLI11 and the unknown-command message the raw argument.
        conv = tmp / "conv.json"
        conv.write_bytes(b'[{"role": "user", "content": "caf\xc3 \xff"}]')
        jinja = tmp / "t.jinja"
        jinja.write_text("{{ messages[0].content }}")
        for args, parts in (
                (["template", "--template", jinja, "--messages", conv],
                 ["--messages", str(conv), "ill-formed UTF-8", "\\xc3"]),
                (["explain", "-m", model, "--template", jinja, "--messages", conv],
                 [str(conv), "ill-formed UTF-8", "\\xc3"]),
                ([b"fr\xfeb"], ["unknown command", "fr\\xfeb"]),
                (["make-model", "-o", tmp / "s.gguf", "--seed", b"1\xff"], ["--seed", "1\\xff"]),
                (["tokenize", "-m", model, b"--fr\xe9", "a"], ["--fr\\xe9"]),
                (["generate", "-m", tmp / "nothing\u00e9.gguf", "-p", "a", "-n", "1"],
                 ["nothing\u00e9.gguf"]),
                (["generate", "-m", bytes(tmp) + b"/x\xe9\xff.gguf", "-p", "a", "-n", "1"],
                 ["x\\xe9\\xff.gguf"])):
            p = subprocess.run([qkv, *args], capture_output=True, timeout=120)
            try:
                err = p.stderr.decode("utf-8")
            except UnicodeDecodeError as e:
                c.check(False, f"{args}: stderr is not UTF-8 ({e}): {p.stderr[-300:]!r}")
                continue
            clean(c, (p.returncode, "", err), f"{args}", *parts)

        # bench model: a prompt past a learned-position model's context is refused.
        clean(c, run(qkv, "bench", "model", "-m", model, "--prompt", "4096", "--gen", "1",
                     "--reps", "1"), "bench model --prompt past the context", "positions")
        bert = shared / "fixtures/hf/bert-tiny"
        if c.shared(bert, "bench model on bert-tiny"):
            clean(c, run(qkv, "bench", "model", "-m", bert, "--prompt", "100000", "--reps", "1"),
                  "bench model bert --prompt past the context", "positions")

        # explain --npy with a small budget: dropped rows are NaN and the tokens.json says so.
        npy = tmp / "maps.npy"
        rc, _, err = run(qkv, "explain", "-m", model, "the cat sat on the mat and looked",
                         "--npy", npy, "--max-floats", "64", "--overflow", "rows")
        if c.check(rc == 0, f"explain --npy --max-floats 64: {err}"):
            _, data = read_npy(npy)
            tokens = json.loads(pathlib.Path(str(npy) + ".tokens.json").read_text())
            nan = sum(1 for x in data if math.isnan(x))
            c.check(nan > 0 and tokens.get("dropped_rows", 0) > 0 and "NaN" in
                    tokens.get("dropped_rows_note", ""),
                    f"dropped rows: {nan} NaN values, tokens.json {tokens.get('dropped_rows')}")
            rc, _, _ = run(qkv, "explain", "-m", model, "the cat sat", "--npy", npy)
            _, data = read_npy(npy)
            c.check(rc == 0 and not any(math.isnan(x) for x in data),
                    "NaN in a map with every row kept")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return c.report("cli_errors")


if __name__ == "__main__":
    sys.exit(main())
