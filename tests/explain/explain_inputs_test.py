#!/usr/bin/env python3
"""`qkv explain`'s inputs: what --json records of them, and what it does with bad ones.

usage: explain_inputs_test.py QKV_BINARY

- --json is self-describing: its "inputs" object records every input that determines the result
  (the text and the text run, the --compare and --patch texts, the chat template, the target and
  contrast as given and as resolved, each method and its parameters, the model file, the
  selections, the capture budget, -n), each checked against the value passed here; the --compare
  text's own tokens and maps are under "compare"; the --html report's data carries the same
  "inputs".
- Bad inputs are refused with exit code 1 and a message naming the problem, before anything is
  written: two outputs on one path, an output on a file the command reads, an option given an
  empty value, a text or -n past the model's context, a text argument that is not UTF-8,
  --map rollout without the rows the budget left out (and a note where other maps lack them),
  --map and --token #N values that are not whole numbers as written, a chat template that renders
  nothing (and a note when it drops the text), --html-sections keys that the report or a method
  of the run writes.
"""
import json
import pathlib
import re
import subprocess
import sys
import tempfile

WINOGRAD = "The animal didn't cross the street because it was too tired. It"
WIDE = "The animal didn't cross the street because it was too wide. It"


def run(qkv, *args, stdin=None):
    p = subprocess.run([qkv, *args], capture_output=True, timeout=240, input=stdin)
    # stderr must be UTF-8 (check_not_utf8 tests it strictly); "replace" keeps the others going.
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def check_inputs(qkv, tmp, failures):
    def need(cond, what):
        if not cond:
            failures.append(f"--json inputs: {what}")

    args = ["explain", WINOGRAD, "--compare", WIDE, "--patch", WIDE, "--target", "animal",
            "--contrast", "street", "--ablate", "mean", "--attribute", "ig", "--steps", "8",
            "--baseline", "#0", "--attention-gradient", "--logit-lens", "--norm-attention",
            "--layers", "0,2", "--heads", "1,3", "--map", "2:3", "--token", "It", "--kv", "f16",
            "--max-floats", "100000", "--overflow", "rows", "--top-k", "4", "--threads", "1",
            "--no-parse-special"]
    rc, out, err = run(qkv, *args, "--json")
    if rc != 0:
        failures.append(f"--json: rc {rc}: {err}")
        return
    j = json.loads(out)
    i = j.get("inputs")
    if not isinstance(i, dict):
        failures.append(f"--json has no inputs object; keys {sorted(j)}")
        return
    want = {"model_file": "built-in", "text": WINOGRAD, "prompt": WINOGRAD, "compare": WIDE,
            "compare_prompt": WIDE, "patch": WIDE, "patch_prompt": WIDE, "target": "animal",
            "contrast": "street", "ablate": "mean", "attribute": "ig", "steps": 8,
            "baseline": "#0", "attention_gradient": True, "logit_lens": True,
            "norm_attention": True, "layers": [0, 2], "heads": [1, 3], "map": "2:3",
            "token": "It", "kv": "f16", "max_floats": 100000, "overflow": "rows", "top_k": 4,
            "threads": 1, "n_predict": 0, "add_special": True, "parse_special": False,
            "chat": False}
    for key, value in want.items():
        need(i.get(key) == value, f"{key} = {i.get(key)!r}, want {value!r}")
    # The target as resolved: the same token the methods' sections scored.
    r = i.get("resolved_target") or {}
    need(r.get("id") == j["ablation"]["target"]["id"] and r.get("text") == " animal",
         f"resolved_target {r} vs the ablation's {j['ablation']['target']}")
    need(r.get("contrast_text") == " street", f"resolved contrast {r}")
    # The compared text's own document: its tokens spell it, its maps have its length.
    c = j.get("compare")
    need(isinstance(c, dict) and "".join(c.get("tokens", [])) == WIDE,
         f"compare tokens {c and c.get('tokens')}")
    if isinstance(c, dict):
        need(c["shape"] == [2, 2, len(c["ids"]), len(c["ids"])], f"compare shape {c['shape']}")

    # Defaults are recorded too, and a chat prompt is recorded as run.
    template = tmp / "t.jinja"
    template.write_text("{% for m in messages %}<{{ m.role }}>{{ m.content }}\n{% endfor %}")
    rc, out, err = run(qkv, "explain", "hello there", "--chat", "--system", "be brief",
                       "--template", str(template), "--json", "-n", "2", "--threads", "1")
    if rc != 0:
        failures.append(f"--chat --json: rc {rc}: {err}")
        return
    i = json.loads(out)["inputs"]
    need(i["text"] == "hello there" and i["system"] == "be brief" and i["chat"] is True,
         f"chat inputs {i}")
    need(i["prompt"] == "<system>be brief\n<user>hello there\n", f"chat prompt {i['prompt']!r}")
    need(i["template_file"] == str(template.resolve()), f"template_file {i['template_file']}")
    need(i["n_predict"] == 2 and i["compare"] is None and i["layers"] == "all"
         and i["map"] == "default" and i["kv"] == "f32" and i["overflow"] == "top-k",
         f"defaults {i}")

    # The HTML report's data carries the same inputs.
    html = tmp / "r.html"
    rc, out, err = run(qkv, "explain", WINOGRAD, "--compare", WIDE, "--html", str(html),
                       "--threads", "1")
    if rc != 0:
        failures.append(f"--html: rc {rc}: {err}")
        return
    m = re.search(r'<script[^>]*id="qkv-data"[^>]*>(.*?)</script>', html.read_text(), re.S)
    data = json.loads(m.group(1)) if m else {}
    need(data.get("inputs", {}).get("compare") == WIDE, "the --html data has no inputs")


def refused(qkv, tmp, failures, args, expect, *, stdin=None):
    """`qkv explain ARGS` fails with exit code 1 (not a crash, not 0) and a stderr line that
    contains each of `expect`."""
    rc, out, err = run(qkv, "explain", *args, "--threads", "1", stdin=stdin)
    line = " ".join(map(str, args))[:120]
    if rc != 1:
        failures.append(f"{line}: rc {rc}, want 1 (refused): {err[-300:]}")
        return
    for e in expect:
        if e not in err:
            failures.append(f"{line}: stderr lacks {e!r}: {err[-300:]}")


def check_outputs(qkv, tmp, failures):
    """Two outputs on one path, or an output on a file the command reads, are refused before
    anything runs: nothing is written, and the model is left as it was."""
    x = tmp / "x.out"
    model = tmp / "m.gguf"
    model.write_bytes(b"not a model")
    template = tmp / "t.jinja"
    template.write_text("{{ messages[0].content }}")
    cases = [
        (["--html", str(x), "--npy", str(x)], ["--html and --npy both write"]),
        (["--png", str(x), "--svg", str(tmp / "." / "x.out")], ["--png and --svg both write"]),
        (["--npy", str(x), "--npy-stream", str(x)], ["--npy and --npy-stream both write"]),
        (["--npy", str(x), "--safetensors", str(x) + ".tokens.json"],
         ["--npy's tokens JSON and --safetensors both write"]),
        (["--html", str(model), "-m", str(model)], ["--html would overwrite the model (-m)"]),
        (["--svg", str(template), "--chat", "--template", str(template)],
         ["--svg would overwrite --template"]),
    ]
    for args, expect in cases:
        refused(qkv, tmp, failures, ["the cat sat", *args], expect)
        if x.exists():
            failures.append(f"{args}: wrote {x} although refused")
            x.unlink()
    if model.read_bytes() != b"not a model":
        failures.append("--html overwrote the model file")


def check_empty_values(qkv, tmp, failures):
    """An option given an empty value (a shell variable left unset) is refused, naming it, rather
    than read as the option left out (no patching, no report, the built-in model)."""
    for flag in ["--patch", "--compare", "--target", "--contrast", "--baseline", "--token",
                 "--map", "--html", "--png", "--svg", "--npy", "--npy-stream", "--safetensors",
                 "--system", "--template", "-m", "-t"]:
        name = {"-m": "--model", "-t": "--tokenizer"}.get(flag, flag)
        refused(qkv, tmp, failures, ["the cat sat", flag, ""], [f"{name} was given an empty value"])


def check_context(qkv, tmp, failures):
    """Texts and generations past the context (the built-in model's is 128 tokens) are refused
    with the counts and, for the second text, saying which one; nothing suggests raising a
    context length that qkv explain has no option for."""
    long = "the cat sat on the mat. " * 60
    refused(qkv, tmp, failures, [long], ["past the model's context of 128 tokens"])
    refused(qkv, tmp, failures, ["the cat sat", "--compare", long],
            ["past the model's context of 128 tokens", "(in the --compare text)"])
    refused(qkv, tmp, failures, ["the cat sat", "-n", "500"], ["max_new_tokens = 500", "fit"])
    # A count whose sum with the prompt's overflows is refused the same way.
    refused(qkv, tmp, failures, ["the cat sat", "-n", "9223372036854775807"],
            ["max_new_tokens = 9223372036854775807", "fit"])


def check_not_utf8(qkv, tmp, failures):
    """A command-line text that is not UTF-8 is refused naming the argument, its bad bytes shown
    as \\xNN so that the message itself is valid UTF-8."""
    bad = b"a\xffb"
    for flag in ["--compare", "--patch", "--target", "--contrast", "--baseline", "--token",
                 "--system"]:
        refused(qkv, tmp, failures, ["the cat sat", flag, bad], [f'{flag}: "a\\xffb" is not UTF-8'])
    refused(qkv, tmp, failures, [b"the ca\xe7\x8ct"], ['the text: "the ca\\xe7\\x8ct" is not UTF-8'])
    p = subprocess.run([qkv, "explain", "the cat", "--token", bad], capture_output=True,
                       timeout=60)
    try:
        p.stderr.decode("utf-8", "strict")
    except UnicodeDecodeError:
        failures.append(f"--token with a bad byte: stderr is not UTF-8: {p.stderr!r}")


def check_budget(qkv, tmp, failures):
    """Rows the capture's budget left out are never shown as attention: rollout, which multiplies
    every layer's maps, is refused without them (it drew the identity: every token on itself);
    other maps draw them blank and say so, and so does --token for its row."""
    refused(qkv, tmp, failures, ["the cat sat on the mat", "--max-floats", "0", "--map", "rollout"],
            ["--map rollout", "left out 144 rows", "raise --max-floats"])
    rc, out, err = run(qkv, "explain", "the cat sat on the mat", "--max-floats", "0", "--map",
                       "1:1", "--token", "cat", "--threads", "1")
    if rc != 0:
        failures.append(f"--max-floats 0 --map 1:1: rc {rc}: {err}")
        return
    if "9 of 9 rows of the map drawn were not stored" not in err:
        failures.append(f"--max-floats 0: no note on the rows left out: {err}")
    if "its row was not stored" not in out:
        failures.append(f"--max-floats 0 --token cat: no word on its row: {out[-400:]}")
    rc, out, err = run(qkv, "explain", "the cat sat on the mat", "--map", "rollout", "--threads",
                       "1")
    if rc != 0 or "not stored" in err:
        failures.append(f"rollout within the budget: rc {rc}: {err}")


def check_indices(qkv, tmp, failures):
    """--map and --token #N take whole numbers as written: the messages name the flag's own form
    (not another flag's "all or indices like 0,3"), and a position too large for an int is out of
    range rather than a conversion error."""
    for spec in ["1:mean ", "+1:1", "1: 1", "1:1,2", "1:0x1", "99999999999:1"]:
        refused(qkv, tmp, failures, ["the cat", "--map", spec],
                [f'--map: expected L:H, L:mean or rollout with L and H numbers; got "{spec}"'])
    refused(qkv, tmp, failures, ["the cat", "--token", "#1e0"],
            ['--token: "#1e0" is not one of the tokens or words'])
    refused(qkv, tmp, failures, ["the cat", "--token", "#99999999999999999999"],
            ["--token: position 99999999999999999999 is out of range; the text has"])


def check_templates(qkv, tmp, failures):
    """A chat template that renders nothing is refused naming it (it was "the text gives no
    tokens; pass some text" though a text was passed); one that drops the user's text gets a note,
    as the maps would be of another prompt."""
    empty, const = tmp / "empty.jinja", tmp / "const.jinja"
    empty.write_text("")
    const.write_text("a fixed prompt")
    refused(qkv, tmp, failures, ["the cat", "--chat", "--template", str(empty)],
            [f"--template {empty} rendered an empty prompt"])
    rc, _, err = run(qkv, "explain", "the cat", "--chat", "--template", str(const), "--threads",
                     "1")
    if rc != 0 or 'does not contain the text "the cat"' not in err:
        failures.append(f"a template that drops the text: rc {rc}, no note: {err[-300:]}")


def check_html_sections(qkv, tmp, failures):
    """--html-sections keys that the report writes itself, or that a method of the same run
    writes, are refused before the capture (they failed when the page was assembled, after every
    method had run); a key of a method not run is a section like any other."""
    for key, extra, what in [("tokens", [], "which the report writes itself"),
                             ("inputs", [], "which the report writes itself"),
                             ("ablation", ["--ablate", "zero"], "which a method of this run")]:
        f = tmp / f"{key}.json"
        f.write_text(json.dumps({key: {"title": "t", "note": "n"}}))
        args = ["the cat", "--html", str(tmp / "s.html"), "--html-sections", str(f), *extra]
        refused(qkv, tmp, failures, args, [f'has the key "{key}", {what}'])
        _, _, err = run(qkv, "explain", *args, "--threads", "1")
        if "run with capture" in err:
            failures.append(f"--html-sections {key}: refused only after the capture")
    f = tmp / "ablation.json"
    rc, _, err = run(qkv, "explain", "the cat", "--html", str(tmp / "s.html"), "--html-sections",
                     str(f), "--threads", "1")
    if rc != 0:
        failures.append(f"--html-sections with a method's key, method not run: rc {rc}: {err}")


def main():
    qkv = sys.argv[1]
    failures = []
    with tempfile.TemporaryDirectory() as d:
        check_inputs(qkv, pathlib.Path(d), failures)
        check_outputs(qkv, pathlib.Path(d), failures)
        check_empty_values(qkv, pathlib.Path(d), failures)
        check_context(qkv, pathlib.Path(d), failures)
        check_not_utf8(qkv, pathlib.Path(d), failures)
        check_budget(qkv, pathlib.Path(d), failures)
        check_indices(qkv, pathlib.Path(d), failures)
        check_templates(qkv, pathlib.Path(d), failures)
        check_html_sections(qkv, pathlib.Path(d), failures)
    for f in failures:
        print("FAILED:", f)
    if not failures:
        print("ok")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
