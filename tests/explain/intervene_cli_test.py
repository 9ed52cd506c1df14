#!/usr/bin/env python3
"""`qkv explain` with the methods beyond maps: --target/--contrast, --ablate, --patch,
--logit-lens, --norm-attention.

usage: intervene_cli_test.py QKV_BINARY

- On the built-in model with the seed's Winograd sentence: every method's section in --json has
  the documented shape (docs/EXPLAIN.md, "Report data"); the ablation's most decisive head is one
  that attends to "animal"; patching with the clean prompt itself restores nothing; the terminal
  summary lists the top heads and the forward-pass equivalents; the --html report carries every
  section, and in headless Chromium (when installed) draws them and opens on layer 0 head 3.
- On make-model's tiny models of each family (gpt2, llama, qwen2, qwen3, gemma2, gemma3, phi3) and
  a Q4_K_M quantization of one: every method runs and its tables have the model's shape.
- --chat with --template: --patch and --compare put their texts in the same template.
- Errors: a corrupted prompt of another token length, a target that is two tokens, a --token
  position out of range or word not in the text, a --map layer or head out of range or not
  captured (before any output or method runs).
(The numbers themselves are held against independent reruns in lens_test.cpp and
intervene_test.cpp.)
"""
import json
import re
import shutil
import subprocess
import sys
import tempfile

WINOGRAD = "The animal didn't cross the street because it was too tired. It"
WIDE = "The animal didn't cross the street because it was too wide. It"
TEXT = "the cat sat on the mat and the dog ran"
SWAPPED = "the dog sat on the mat and the cat ran"  # the same words: the same token count
ALL = ["--ablate", "zero", "--logit-lens", "--norm-attention"]


def run(qkv, *args):
    if args[0] == "explain":
        args = (*args, "--threads", "1")
    p = subprocess.run([qkv, *args], capture_output=True, timeout=300)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def shape(x):
    out = []
    while isinstance(x, list):
        out.append(len(x))
        x = x[0] if x else None
    return out


def check_sections(j, n_layer, n_head, n_tokens, failures, who):
    def need(cond, what):
        if not cond:
            failures.append(f"{who}: {what}")

    a = j.get("ablation")
    need(a and shape(a["delta"]) == [n_layer, n_head], f"ablation delta shape {a and shape(a['delta'])}")
    if a:
        need(a["target"]["position"] == n_tokens - 1, "ablation target position")
        need("baseline_logprob" in a and "mode" in a and a["cost"]["reruns"] == n_layer * n_head,
             "ablation fields")
    lens = j.get("logit_lens")
    need(lens and shape(lens["top"]) == [n_layer, n_tokens, 5], f"logit_lens shape {lens and shape(lens['top'])}")
    if lens:
        need(all(0 <= t["p"] <= 1 for t in lens["top"][-1][-1]), "lens probabilities")
    d = j.get("direct_logit_attribution")
    need(d and shape(d["heads"]) == [n_layer, n_head] and len(d["mlp"]) == n_layer, "dla shape")
    if d:
        total = sum(map(sum, d["heads"])) + sum(d["mlp"]) + d["embedding"] + d["bias_and_rest"]
        need(abs(total - d["total"]) < 1e-4 * max(1, abs(d["total"])), f"dla parts sum {total} vs {d['total']}")
    na = j.get("norm_attention")
    need(na and shape(na["rows"]) == [n_layer, n_head, n_tokens] and na["position"] == n_tokens - 1,
         f"norm_attention shape {na and shape(na['rows'])}")


def check_page(path, failures):
    """In headless Chromium (when installed): every section draws without a shape error and the
    page opens on the head of the largest |ablation delta|, layer 0 head 3 on the built-in model
    (docs/EXPLAIN.md, "Seed question")."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        print("chromium absent: the page itself is not checked")
        return
    p = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                        "--virtual-time-budget=5000", "--dump-dom", "file://" + path],
                       capture_output=True, timeout=240)
    dom = p.stdout.decode("utf-8", "replace")
    attrs = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', dom))
    if "bad-sections" in attrs:
        failures.append(f"report: {attrs['bad-sections']} sections do not have their shape")
    for tab in ("ablation", "logit-lens", "direct-logit-attribution"):
        if int(attrs.get("tab-" + tab, "0") or 0) <= 0:
            failures.append(f"report: the {tab} tab drew nothing")
    if (attrs.get("open-layer"), attrs.get("open-head")) != ("0", "3"):
        failures.append(f"report opens on layer {attrs.get('open-layer')} head "
                        f"{attrs.get('open-head')}, not the most decisive head 0:3")


def dump_dom(path):
    """The page's DOM after it has drawn, in headless Chromium; None when chromium is absent."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        return None
    p = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                        "--virtual-time-budget=5000", "--dump-dom", "file://" + path],
                       capture_output=True, timeout=240)
    # The drawn text only: the scripts' own source would match the phrases looked for.
    return re.sub(r"<script[^>]*>.*?</script>", "", p.stdout.decode("utf-8", "replace"),
                  flags=re.S)


def check_dla_page(qkv, tmp, failures):
    """Without an ablation the page opens on the head of the largest |direct logit attribution|
    (its `heads` field is the [L][H] table, not a list of head numbers), the tab names that head,
    and with a contrast the ablation tab says its numbers are logit differences."""
    rc, out, err = run(qkv, "explain", WINOGRAD, "--target", "animal", "--contrast", "street",
                       "--logit-lens", "--json")
    if rc != 0:
        failures.append(f"explain --logit-lens --json: {err}")
        return
    heads = json.loads(out)["direct_logit_attribution"]["heads"]
    _, bl, bh = max((abs(v), l, h) for l, row in enumerate(heads) for h, v in enumerate(row))
    rc, _, err = run(qkv, "explain", WINOGRAD, "--target", "animal", "--contrast", "street",
                     "--logit-lens", "--html", f"{tmp}/dla.html")
    dom = dump_dom(f"{tmp}/dla.html") if rc == 0 else None
    if rc != 0:
        failures.append(f"explain --logit-lens --html: {err}")
    elif dom is not None:
        attrs = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', dom))
        if (attrs.get("open-layer"), attrs.get("open-head")) != (str(bl), str(bh)):
            failures.append(f"report with the lens opens on {attrs.get('open-layer')}:"
                            f"{attrs.get('open-head')}, not the largest |DLA| head {bl}:{bh}")
        if f"Largest: layer {bl}, head {bh} (" not in dom or "was not captured" in dom:
            failures.append("the direct logit attribution tab does not name its largest head "
                            + str(re.findall(r"Largest: [^(]*", dom)))
    # The most decisive head (0:3) left out by --layers: the page says so instead of opening
    # elsewhere without a word.
    rc, _, err = run(qkv, "explain", WINOGRAD, "--target", "animal", "--contrast", "street",
                     "--ablate", "zero", "--layers", "2,3", "--html", f"{tmp}/nc.html")
    dom = dump_dom(f"{tmp}/nc.html") if rc == 0 else None
    if rc != 0:
        failures.append(f"explain --ablate --layers 2,3 --html: {err}")
    elif dom is not None and "layer 0 head 3, was not captured" not in dom:
        failures.append("the page does not say the most decisive head was not captured: "
                        + str(re.findall(r'id="opened"[^<]*', dom)))
    rc, _, err = run(qkv, "explain", WINOGRAD, "--target", "animal", "--contrast", "street",
                     "--ablate", "zero", "--html", f"{tmp}/abl.html")
    dom = dump_dom(f"{tmp}/abl.html") if rc == 0 else None
    if rc != 0:
        failures.append(f"explain --ablate --html: {err}")
    elif dom is not None and ("baseline logit difference" not in dom
                              or "baseline log-probability" in dom):
        failures.append("the ablation tab with a contrast does not say logit difference")


CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
          "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def chatml(user):
    """What CHATML makes of one user turn, rendered here."""
    return f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"


def check_chat(qkv, tmp, failures):
    """--chat --template: the texts of --patch and --compare are user turns in the same template
    as the text (the built-in model has none of its own and no special tokens for ChatML's
    markers, so every prompt's tokens spell its rendered text)."""
    template = f"{tmp}/chatml.jinja"
    with open(template, "w", encoding="utf-8") as f:
        f.write(CHATML)
    chat = ["--chat", "--template", template]
    rc, out, err = run(qkv, "explain", WINOGRAD, *chat, "--target", "animal", "--patch", WIDE,
                       "--json")
    if rc != 0:
        failures.append(f"--chat --patch: {err}")
    else:
        j = json.loads(out)
        p = j["patching"]
        if "".join(j["tokens"]) != chatml(WINOGRAD) or "".join(
                p["corrupted_tokens"]) != chatml(WIDE):
            failures.append(f"--chat --patch: prompts {j['tokens']} / {p['corrupted_tokens']}")
    rc, _, err = run(qkv, "explain", WINOGRAD, *chat, "--compare", WIDE, "--html",
                     f"{tmp}/chat.html")
    if rc != 0:
        failures.append(f"--chat --compare: {err}")
    else:
        page = open(f"{tmp}/chat.html", encoding="utf-8").read()
        data = re.search(r'<script type="application/json" id="qkv-data">(.*?)</script>', page,
                         re.S)
        d = json.loads(data.group(1)) if data else {}
        if "".join(d.get("compare", {}).get("tokens", [])) != chatml(WIDE):
            failures.append(f"--chat --compare: second prompt {d.get('compare', {}).get('tokens')}")
    conv = f"{tmp}/conv.json"
    with open(conv, "w", encoding="utf-8") as f:
        json.dump([{"role": "user", "content": WINOGRAD}], f)
    for args, want in ((["--messages", conv, "--template", template, "--patch", WIDE],
                        "with --messages there is no single turn"),
                       ([WINOGRAD, "--template", template], "--template needs --chat")):
        rc, _, err = run(qkv, "explain", *args)
        if rc == 0 or want not in err:
            failures.append(f"{args}: not refused with {want!r}: rc {rc}, {err}")


def main():
    qkv = sys.argv[1]
    failures = []
    # The built-in model and the seed's question.
    rc, out, err = run(qkv, "explain", WINOGRAD, "--target", "animal", "--contrast", "street", *ALL,
                       "--patch", WIDE, "--json")
    if rc != 0:
        print(f"explain --json: {err}")
        return 1
    j = json.loads(out)
    n = j["n_prompt"]
    check_sections(j, 4, 4, n, failures, "built-in")
    if '" animal"' not in err or "as \" animal\"" not in err:
        failures.append(f"the target line does not say which variant was picked: {err}")
    a = j["ablation"]
    flat = [(abs(v), l, h) for l, row in enumerate(a["delta"]) for h, v in enumerate(row)]
    _, bl, bh = max(flat)
    na = j["norm_attention"]["rows"][bl][bh]
    # The head whose ablation hurts the target most carries "animal" (token 1) into "It".
    if a["delta"][bl][bh] >= 0 or max(range(n), key=lambda t: na[t]) != 1:
        failures.append(f"most decisive head {bl}:{bh} (delta {a['delta'][bl][bh]}) does not move"
                        f" 'animal': norm row {na}")
    p = j["patching"]
    if shape(p["layer_position"]) != [4, n] or shape(p["head"]) != [4, 4]:
        failures.append(f"patching shapes {shape(p['layer_position'])} {shape(p['head'])}")
    elif abs(p["layer_position"][3][n - 1] - 1) > 1e-4:
        failures.append(f"patching the last residual restores {p['layer_position'][3][n - 1]}, not 1")
    # Patching with the prompt itself: nothing to restore.
    rc, out, err = run(qkv, "explain", WINOGRAD, "--target", "animal", "--patch", WINOGRAD, "--json")
    p = json.loads(out)["patching"] if rc == 0 else None
    if not p or not p["degenerate"] or any(v != 0 for row in p["layer_position"] for v in row):
        failures.append(f"self-patching: {err if rc else p}")
    # The terminal summary and the report.
    with tempfile.TemporaryDirectory() as tmp:
        rc, out, err = run(qkv, "explain", WINOGRAD, "--target", "animal", "--contrast", "street",
                           "--ablate", "mean", "--logit-lens", "--html", f"{tmp}/r.html")
        if rc != 0:
            failures.append(f"explain --html: {err}")
        else:
            for want in ("head ablation (mean)", "forward-pass equivalents", "heads by |delta|",
                         "logit lens at the last position", "direct logit attribution"):
                if want not in out:
                    failures.append(f"terminal summary lacks {want!r}")
            page = open(f"{tmp}/r.html", encoding="utf-8").read()
            for key in ("\"ablation\"", "\"logit_lens\"", "\"direct_logit_attribution\""):
                if key not in page:
                    failures.append(f"report lacks the {key} section")
            check_page(f"{tmp}/r.html", failures)
        check_dla_page(qkv, tmp, failures)
        check_chat(qkv, tmp, failures)
        # Every family, and a quantized model.
        for arch in ("gpt2", "llama", "qwen2", "qwen3", "gemma2", "gemma3", "phi3", "q4"):
            model = f"{tmp}/{arch}.gguf"
            if arch == "q4":
                rc, _, err = run(qkv, "quantize", "-m", f"{tmp}/llama.gguf", "-o", model,
                                 "--type", "Q4_K_M")
            else:
                rc, _, err = run(qkv, "make-model", "--arch", arch, "-o", model)
            if rc != 0:
                failures.append(f"{arch}: make/quantize: {err}")
                continue
            rc, out, err = run(qkv, "explain", "-m", model, TEXT, *ALL, "--patch", SWAPPED,
                               "--json")
            if rc != 0:
                failures.append(f"{arch}: explain: {err}")
                continue
            j = json.loads(out)
            # --layers/--heads default to all: the capture's lists are the model's.
            check_sections(j, len(j["layers"]), len(j["heads"]), j["n_prompt"], failures, arch)
    # Errors name the problem.
    rc, _, err = run(qkv, "explain", WINOGRAD, "--patch", "The animal was tired. It")
    if rc == 0 or "same token length" not in err:
        failures.append(f"--patch of another length: rc {rc}, {err}")
    rc, _, err = run(qkv, "explain", WINOGRAD, "--target", "tired.")
    if rc == 0 or "is not one token" not in err:
        failures.append(f"--target of two tokens: rc {rc}, {err}")
    # --map is checked against the model (4 layers of 4 heads) and the selections before the
    # methods run: no target is resolved, no ablation printed.
    for spec, extra, want in (("0:9", [], "head 9 is out of range; the model has 4 heads (0..3)"),
                              ("4:mean", [], "layer 4 is out of range; the model has 4 layers"),
                              ("-1:0", [], "layer -1 is out of range"),
                              ("2:1", ["--heads", "0,2"], "head 1 is not captured; add it to --heads"),
                              ("2", [], "expected L:H, L:mean or rollout")):
        rc, out, err = run(qkv, "explain", WINOGRAD, "--ablate", "zero", "--map", spec, *extra)
        if rc == 0 or want not in err or "target" in err or out:
            failures.append(f"--map {spec} {extra}: rc {rc}, out {out[:80]!r}, {err}")
    rc, out, err = run(qkv, "explain", WINOGRAD, "--compare", "The cat sat.", "--token", "animal")
    if rc == 0 or "in the --compare text" not in err or out:
        failures.append(f"--token absent from --compare: rc {rc}, out {out[:80]!r}, {err}")
    # An output that cannot be written fails before the capture and the methods run.
    for flag in ("--html", "--npy", "--png", "--svg", "--safetensors"):
        rc, out, err = run(qkv, "explain", WINOGRAD, "--ablate", "zero", flag,
                           "/nonexistent-dir/out")
        if rc == 0 or "does not exist" not in err or "target" in err or out:
            failures.append(f"unwritable {flag}: rc {rc}, out {out[:80]!r}, {err}")
    # --html-sections is read before the run, and needs --html (else it would be ignored).
    with tempfile.TemporaryDirectory() as tmp:
        bad = f"{tmp}/bad.json"
        with open(bad, "w", encoding="utf-8") as f:
            f.write("[1, 2")
        for args, want in ((["--html", f"{tmp}/r.html", "--html-sections", bad],
                            "is not a JSON object"),
                           (["--html", f"{tmp}/r.html", "--html-sections", f"{tmp}/none.json"],
                            "none.json"),
                           (["--html-sections", bad], "pass --html")):
            rc, out, err = run(qkv, "explain", WINOGRAD, "--ablate", "zero", *args)
            if rc == 0 or want not in err or "target" in err or out:
                failures.append(f"{args}: rc {rc}, out {out[:80]!r}, {err}")
    # A target that no method scores is named as such rather than silently unused.
    rc, _, err = run(qkv, "explain", WINOGRAD, "--target", "animal", "--contrast", "street")
    if rc != 0 or "no method scores the target" not in err:
        failures.append(f"--target without a method: rc {rc}, {err}")
    rc, _, err = run(qkv, "explain", WINOGRAD, "--target", "animal", "--logit-lens")
    if rc != 0 or "no method scores the target" in err:
        failures.append(f"--target with --logit-lens: rc {rc}, {err}")
    # --token is checked before anything runs or is written, whatever the output: a position out
    # of range (negative too: not "the last row") or a word not in the text.
    for token, want in (("#14", "position 14 is out of range"), ("#-1", "position -1"),
                        ("zebra", "is not one of the tokens")):
        for extra in (["--norm-attention", "--json"], ["--json"], ["--html", "/dev/null"]):
            rc, out, err = run(qkv, "explain", WINOGRAD, "--token", token, *extra)
            if rc == 0 or want not in err or out:
                failures.append(f"--token {token} {extra}: rc {rc}, out {out[:80]!r}, {err}")
    for f in failures:
        print("FAIL:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
