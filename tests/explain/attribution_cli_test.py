#!/usr/bin/env python3
"""`qkv explain --attribute grad|ig --attention-gradient` end to end.

usage: attribution_cli_test.py QKV_BINARY

On the built-in model with the Winograd sentence, and on make-model's tiny model of every decoder
family (one with q8_0 weights):
- --json carries the `attribution` and `attention_gradient` sections in the layouts of
  docs/EXPLAIN.md ("Report data"): a score per prompt token, [layers][heads] and [layers][heads][T];
- integrated gradients at 128 steps are complete within 1% (the attributions sum to
  f(input) - f(baseline)), --target and --contrast reach the section;
- the terminal names the top source tokens and the forward-pass equivalents it took; --html holds
  both sections;
- --baseline TOKEN (text or #ID) moves the path's start: f(baseline) changes and completeness
  holds within 1% at 128 steps; a baseline of several tokens or an id out of range is refused;
- --steps or --baseline without ig, --steps 0 or negative, and an unknown method are refused with a
  message naming them (encoders are refused by the library: tests/explain/attribution_test.cpp;
  make-model writes no BERT).
"""
import json
import pathlib
import subprocess
import sys
import tempfile

WINOGRAD = "The animal didn't cross the street because it was too tired. It"
TEXT = "the cat sat on the mat and the dog ran to the park"
FAMILIES = ["gpt2", "llama", "qwen2", "qwen3", "gemma2", "gemma3", "phi3"]


def run(qkv, *args):
    if args[0] == "explain":
        args = (*args, "--threads", "1", "--layers", "0", "--heads", "0")
    p = subprocess.run([qkv, *args], capture_output=True, timeout=300)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def check_sections(j, what, failures, n_layer=None):
    a, g = j.get("attribution"), j.get("attention_gradient")
    if a is None or g is None:
        failures.append(f"{what}: sections missing: {sorted(j)}")
        return None
    n_prompt = j["n_prompt"]
    if len(a["scores"]) != n_prompt:
        failures.append(f"{what}: {len(a['scores'])} scores for {n_prompt} prompt tokens")
    if a["target"]["position"] != n_prompt - 1:
        failures.append(f"{what}: target position {a['target']['position']}")
    if n_layer is not None and len(g["scores"]) != n_layer:
        failures.append(f"{what}: attention_gradient has {len(g['scores'])} layers")
    if any(len(r) != n_prompt for layer in g["rows"] for r in layer):
        failures.append(f"{what}: attention_gradient rows are not [L][H][T]")
    return a


def main():
    qkv = sys.argv[1]
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        # The built-in model: integrated gradients with a target and a contrast.
        rc, out, err = run(qkv, "explain", WINOGRAD, "--attribute", "ig", "--steps", "128",
                           "--attention-gradient", "--target", "animal", "--contrast", "street",
                           "--json")
        if rc != 0:
            failures.append(f"built-in --json: {err}")
        else:
            a = check_sections(json.loads(out), "built-in", failures)
            if a:
                c = a["completeness"]
                if abs(c["sum"] - c["delta"]) > 0.01 * abs(c["delta"]):
                    failures.append(f"built-in: not complete at 128 steps: {c}")
                if a["contrast"] is None or a["method"] != "integrated_gradients":
                    failures.append(f"built-in: {a['method']}, contrast {a['contrast']}")
        # --baseline: the path starts from another token's embedding; the default's delta
        # f(x) - f(baseline) changes with it, and completeness holds from there too.
        deltas = {}
        for base in (None, "#5", "the"):
            extra = [] if base is None else ["--baseline", base]
            rc, out, err = run(qkv, "explain", WINOGRAD, "--attribute", "ig", "--steps", "128",
                               "--target", "animal", "--json", *extra)
            if rc != 0:
                failures.append(f"--baseline {base}: {err}")
                continue
            a = json.loads(out)["attribution"]
            c = a["completeness"]
            deltas[base] = c["delta"]
            if abs(c["sum"] - c["delta"]) > 0.01 * abs(c["delta"]):
                failures.append(f"--baseline {base}: not complete at 128 steps: {c}")
            if base == "#5" and "(id 5)" not in a["baseline"]:
                failures.append(f"--baseline #5: the report says {a['baseline']!r}")
        if len(deltas) == 3 and len({round(d, 6) for d in deltas.values()}) != 3:
            failures.append(f"--baseline did not change f(baseline): deltas {deltas}")
        html = tmp / "r.html"
        rc, out, err = run(qkv, "explain", WINOGRAD, "--attribute", "grad",
                           "--attention-gradient", "--html", str(html))
        if rc != 0:
            failures.append(f"built-in terminal/html: {err}")
        else:
            for want in ("top source tokens", "forward-pass equivalents", "attention x gradient"):
                if want not in out:
                    failures.append(f"built-in terminal lacks '{want}':\n{out[-800:]}")
            page = html.read_text(encoding="utf-8")
            if '"attribution"' not in page or '"attention_gradient"' not in page:
                failures.append("built-in --html lacks the sections")

        for arch in FAMILIES + ["llama-q8_0"]:
            model = tmp / f"{arch}.gguf"
            name, dtype = (arch.split("-") + ["f32"])[:2]
            rc, _, err = run(qkv, "make-model", "--arch", name, "--dtype", dtype, "-o", str(model))
            if rc != 0:
                failures.append(f"{arch}: make-model: {err}")
                continue
            rc, out, err = run(qkv, "explain", "-m", str(model), TEXT, "--attribute", "ig",
                               "--steps", "64", "--attention-gradient", "--json")
            if rc != 0:
                failures.append(f"{arch}: explain --attribute ig: {err}")
                continue
            j = json.loads(out)
            a = check_sections(j, arch, failures, len(j["layer_windows"]))
            if a:
                c = a["completeness"]
                if abs(c["sum"] - c["delta"]) > 0.01 * abs(c["delta"]) + 1e-6:
                    failures.append(f"{arch}: not complete at 64 steps: {c}")

        for args, want in ((["--steps", "8"], "--steps needs --attribute ig"),
                           (["--baseline", "#5"], "--baseline needs --attribute ig"),
                           (["--attribute", "ig", "--baseline", "#99999999"], "baseline #99999999"),
                           (["--attribute", "ig", "--baseline", "elephantine giraffes"],
                            "is not one token"),
                           (["--attribute", "shap"], "--attribute"),
                           # 0 is not "the default": a path of no points.
                           (["--attribute", "ig", "--steps", "0"], "needs 1..1024 steps, found 0"),
                           (["--attribute", "ig", "--steps", "-3"], "found -3")):
            rc, _, err = run(qkv, "explain", WINOGRAD, *args)
            if rc == 0 or want not in err:
                failures.append(f"{args}: not refused with '{want}': {err}")
    for f in failures:
        print("FAIL:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
