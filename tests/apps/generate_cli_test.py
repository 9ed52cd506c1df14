#!/usr/bin/env python3
"""End-to-end checks of `qkv generate` and `qkv embed` against the references in ../shared.

usage: generate_cli_test.py QKV_BINARY SHARED_DIR     (exit 77 = skipped: ../shared absent)

stdout of `qkv generate` must be exactly what llama2.c's run.c prints: the prompt, the generated
text, a newline. Bad options must fail with a message and a normal non-zero exit, never a crash.
"""
import json
import math
import pathlib
import struct
import subprocess
import tempfile
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "common"))
import shared_data  # noqa: E402


def run(qkv, *args):
    # One thread unless the test says otherwise: the models are tiny, and OpenMP's spinning
    # barriers make 2 threads ~90x slower than 1 on a loaded 2-core CI machine.
    if args[0] in ("generate", "embed") and "--threads" not in args:
        args = (*args, "--threads", "1")
    p = subprocess.run([qkv, *args], capture_output=True, timeout=300)
    return p.returncode, p.stdout.decode("utf-8"), p.stderr.decode("utf-8", "replace")


def read_safetensors(path):
    data = pathlib.Path(path).read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    out = {}
    for name, t in header.items():
        if name == "__metadata__" or t["dtype"] != "F32":
            continue
        a, b = t["data_offsets"]
        raw = data[8 + n + a:8 + n + b]
        out[name] = list(struct.unpack(f"<{len(raw) // 4}f", raw))
    return out


def main():
    qkv, shared = sys.argv[1], pathlib.Path(sys.argv[2])
    stories = shared / "models" / "stories260K"
    if not (stories / "reference.json").is_file():
        return shared_data.missing(stories / "reference.json")
    failures = []

    def check(cond, what):
        if not cond:
            failures.append(what)

    model, tok = str(stories / "stories260K.bin"), str(stories / "tok512.bin")
    ref = json.loads((stories / "reference.json").read_text())
    for case in ref["cases"]:
        # run.c -n 200 runs 200 positions: the prompt after BOS and then the new tokens.
        n = 200 - (len(case["prompt_ids_with_bos"]) - 1)
        rc, out, err = run(qkv, "generate", "-m", model, "-t", tok, "-p", case["prompt"],
                           "--temp", "0", "-n", str(n), "--threads", "0")
        check(rc == 0 and out == case["run_c_stdout"] + "\n",
              f"generate {case['prompt']!r}: rc {rc}\n{out!r}\n{err}")
        check("tokens/s" in err and "stop: length" in err, f"timings on stderr: {err}")

    # The tokenizer beside the model is found without -t; f16 KV cache; a stop string.
    case = ref["cases"][0]
    full = case["run_c_stdout"]
    rc, out, err = run(qkv, "generate", "-m", model, "-p", case["prompt"], "--temp", "0",
                       "-n", "40", "--kv", "f16", "--seed", "1")
    check(rc == 0 and full.startswith(out[:-1]) and len(out) > 100, f"f16: {rc} {out!r} {err}")
    rc, out, err = run(qkv, "generate", "-m", model, "-t", tok, "-p", case["prompt"],
                       "--temp", "0", "-n", "196", "--stop", "park", "--stop", "zebra")
    check(rc == 0 and out == full[:full.index("park")] + "\n" and "stop: stop_string" in err,
          f"--stop: {rc} {out!r} {err}")
    # --explain: the same text on stdout, and an HTML report with a map row for every token run
    # (the 4 prompt tokens after BOS, BOS, and the 30 generated ones: 35).
    with tempfile.TemporaryDirectory() as tmp:
        html = pathlib.Path(tmp) / "gen.html"
        rc, out, err = run(qkv, "generate", "-m", model, "-t", tok, "-p", case["prompt"],
                           "--temp", "0", "-n", "30", "--explain", str(html))
        check(rc == 0 and full.startswith(out[:-1]) and len(out) > 60, f"--explain: {rc} {out!r}")
        check(html.is_file() and "<canvas" in html.read_text(errors="replace"),
              f"--explain wrote no report: {err}")
        check("35 tokens" in err, f"--explain: 35 tokens captured: {err}")
    # Context full: 16 positions, the last sampled token is still printed.
    rc, out, err = run(qkv, "generate", "-m", model, "-t", tok, "-p", case["prompt"],
                       "--temp", "0", "-n", "100", "--ctx", "16")
    check(rc == 0 and "stop: context_full" in err and full.startswith(out[:-1]),
          f"--ctx 16: {rc} {out!r} {err}")
    # Sampling with a seed repeats; the default sampler runs.
    a = run(qkv, "generate", "-m", model, "-t", tok, "-p", "Lily", "-n", "50", "--seed", "5")
    b = run(qkv, "generate", "-m", model, "-t", tok, "-p", "Lily", "-n", "50", "--seed", "5")
    check(a[0] == 0 and a[1] == b[1] and a[1].startswith("Lily"), f"seeded: {a} {b}")

    # Bad options: a message naming the problem, exit code 1-127, nothing on stdout.
    bad = [
        (["--temp", "-1"], "temperature"),
        (["--top-p", "1.5"], "top_p"),
        (["--min-p", "-0.1"], "min_p"),
        (["--top-k", "-2"], "top_k"),
        (["--repeat-penalty", "0"], "repeat_penalty"),
        (["--kv", "q4"], "kv"),
        (["--ctx", "-5"], "context length -5"),
        (["--threads", "-1"], "--threads"),  # refused by the shared range check
        (["-n", "-3"], "max_new_tokens"),
        (["--stop", ""], "stop string"),
        (["--temp", "abc"], "temp"),
    ]
    for args, word in bad:
        rc, out, err = run(qkv, "generate", "-m", model, "-t", tok, "-p", "Once", "--seed", "1",
                           *args)
        check(0 < rc < 128 and out == "" and word in err, f"{args}: rc {rc} {out!r} {err}")
    # Comma-separated integer lists: an empty or malformed item is refused by position, never
    # read as token 0 or dropped (eval --ids); "all" does not mix with indices (explain).
    for ids, word in [("", "item 1 is empty"), ("1,,2", "item 2 is empty"),
                      ("1,2,", "item 3 is empty"), ("1,x", 'item 2: expected a whole number, found "x"'),
                      ("99999999999999999999", "expected a whole number"),
                      ("1,600", "token id 600 (item 2) is outside the vocabulary")]:
        rc, out, err = run(qkv, "eval", "-m", model, "-t", tok, "--ids", ids, "--json")
        check(0 < rc < 128 and out == "" and word in err, f"eval --ids {ids!r}: rc {rc} {err}")
    rc, out, err = run(qkv, "eval", "-m", model, "-t", tok, "--ids", "1, 2", "--json")
    check(rc == 0 and [p["id"] for p in json.loads(out)] == [1, 2], f"eval --ids '1, 2': {rc} {err}")
    for layers, word in [("", "empty item"), ("all,1", '"all" cannot be combined')]:
        rc, out, err = run(qkv, "explain", "-m", model, "-t", tok, "Once", "--layers", layers,
                           "-n", "0", "--threads", "1")
        check(0 < rc < 128 and word in err, f"explain --layers {layers!r}: rc {rc} {err}")
    rc, out, err = run(qkv, "generate", "-m", model, "-t", tok, "-p", "Once " * 600, "--temp", "0")
    check(0 < rc < 128 and "context full" in err and "--ctx" in err, f"long prompt: {rc} {err}")
    rc, out, err = run(qkv, "generate", "-m", str(stories / "missing.bin"), "-p", "x")
    check(0 < rc < 128 and "missing.bin" in err, f"missing model: {rc} {err}")

    # embed: bert-tiny, each pooling L2-normalised; the pooler against transformers.
    bert = shared / "fixtures" / "hf" / "bert-tiny"
    prompts = json.loads((bert / "outputs.json").read_text())["prompts"]
    ref_t = read_safetensors(bert / "outputs.safetensors")
    texts = [p["prompt"] for p in prompts]
    for pooling in ["cls", "mean", "pooler"]:
        rc, out, err = run(qkv, "embed", "-m", str(bert), "--json", "--pooling", pooling, *texts)
        ok = rc == 0
        if ok:
            j = json.loads(out)
            ok = j["n_embd"] == 32 and len(j["embeddings"]) == len(texts) and all(
                abs(math.sqrt(sum(x * x for x in e)) - 1) < 1e-5 for e in j["embeddings"])
        check(ok, f"embed --pooling {pooling}: {rc} {out[:200]} {err}")
    rc, out, err = run(qkv, "embed", "-m", str(bert), "--pooling", "pooler", "--no-normalize", *texts)
    lines = out.strip().split("\n") if rc == 0 else []
    check(len(lines) == len(texts), f"embed plain: {rc} {out[:200]} {err}")
    for i, line in enumerate(lines):
        got = [float(x) for x in line.split()]
        want = ref_t[f"p{i}.pooler"]
        check(len(got) == len(want) and max(abs(g - w) for g, w in zip(got, want)) < 1e-4,
              f"embed pooler p{i}: {got[:4]} vs {want[:4]}")
    rc, out, err = run(qkv, "embed", "-m", model, "-t", tok, "hello")
    check(0 < rc < 128 and "decoder" in err, f"embed on a decoder: {rc} {err}")
    rc, out, err = run(qkv, "embed", "-m", str(bert), "--pooling", "max", "x")
    check(0 < rc < 128 and "pooling" in err, f"embed --pooling max: {rc} {err}")

    for f in failures:
        print("FAIL:", f)
    print(f"{len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
