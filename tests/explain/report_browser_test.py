#!/usr/bin/env python3
"""The explain report with every tab, in headless Chromium, at 2k and 32k tokens.

usage: report_browser_test.py QKV_BINARY [sanitize|release [LONG_WORDS]]
       (exit 77 = skipped: chromium absent; LONG_WORDS: words of the long case, for trying the
       test quickly; about 3.5 tokens a word)

A tiny model written by `qkv make-model` (2 layers of 2 heads, a long context) runs a text with
newlines, tabs and runs of spaces; the report gets every section of the data contract
(docs/EXPLAIN.md, "Report data") from JSON built here with --html-sections; the Winograd pair
runs with --compare. The page writes what it drew into data-* attributes of <body>; the test
checks them against what the data implies:
- no console error, no page error, no section rejected as malformed;
- one tab per section, each drawing the cells its shape implies;
- the opening view: --map L:H and --token, or without --map the head with the largest
  |ablation delta|; the report and the terminal name the same row;
- no blank token label (whitespace and control tokens are drawn visibly);
- at 32k tokens: rows mode (block summaries, rows loaded from the sidecar folder by <script>
  elements, which file:// allows), "where did this come from" drawn for the focused token, and
  the time to first paint, printed and asserted loosely (< 20 s: CI is a loaded 2-core VM).
Under the sanitizers (second argument "sanitize") the long case runs 8k tokens: the run itself is
an order of magnitude slower there, and the page is the same code. The long case uses a model of
one layer (two heads): its cost is the attention over 32k tokens, in the forward pass and again
in the capture's exact rows.
"""
import json
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time

WORDS = ["The", "animal", "didn't", "cross", "the", "street", "because", "it", "was", "too",
         "tired", ".", "It", "lay", "down", "\n", "\t", "  ", "river", "and", "\n\n"]


def run(*args, timeout=300):
    p = subprocess.run([str(a) for a in args], capture_output=True, timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def text_of(n_words):
    out = []
    for i in range(n_words):
        w = WORDS[(i * 7 + i // 5) % len(WORDS)]
        out.append(w if w.isspace() else " " + w)
    return "".join(out)


def sections(n_layer, n_head, n_tok):
    """Every section of the data contract, with values whose largest |.| is known."""
    lh = lambda f: [[f(l, h) for h in range(n_head)] for l in range(n_layer)]
    target = {"id": 5, "text": " animal", "position": n_tok - 1}
    ablation = lh(lambda l, h: -0.1 * (l + 1) * (h + 1))
    ablation[1][0] = -3.0  # the most decisive head: layer 1, head 0
    return {
        "attribution": {"title": "Attribution", "note": "grad x input (test data)",
                        "method": "grad_x_input", "steps": 1, "baseline": "zeros",
                        "target": target, "contrast": None,
                        "scores": [((i % 7) - 3) / 3 for i in range(n_tok)],
                        "completeness": {"sum": 1.0, "delta": 1.0}},
        "attention_gradient": {"title": "Attention x gradient", "note": "test data",
                               "target": target, "layers": list(range(n_layer)),
                               "heads": list(range(n_head)),
                               "scores": lh(lambda l, h: 0.5 * l - h),
                               "rows": [[[((i + l + h) % 5) / 5 for i in range(n_tok)]
                                         for h in range(n_head)] for l in range(n_layer)]},
        "norm_attention": {"title": "Norm-based attention", "note": "test data",
                           "layers": list(range(n_layer)), "heads": list(range(n_head)),
                           "position": n_tok - 1,
                           "rows": [[[((i * 3 + h) % 11) / 11 for i in range(n_tok)]
                                     for h in range(n_head)] for l in range(n_layer)]},
        "ablation": {"title": "Head ablation", "note": "test data", "mode": "zero",
                     "target": target, "baseline_logprob": -2.5, "delta": ablation},
        "patching": {"title": "Activation patching", "note": "test data",
                     "corrupted_text": "The street didn't cross", "corrupted_tokens": [1, 2],
                     "clean_diff": 2.0, "corrupted_diff": -1.0,
                     "layer_position": [[((i + l) % 4) / 4 for i in range(n_tok)]
                                        for l in range(n_layer)],
                     "head": lh(lambda l, h: 0.25 * h)},
        "logit_lens": {"title": "Logit lens", "note": "test data",
                       "positions": [0, n_tok - 1], "layers": list(range(n_layer)),
                       "top": [[[{"id": 1, "text": "\n", "p": 0.5}, {"id": 2, "text": " it", "p": 0.25}]
                                for _ in range(2)] for _ in range(n_layer)]},
        "direct_logit_attribution": {"title": "Direct logit attribution",
                                     "note": "final-norm scale frozen at the clean run (test data)",
                                     "target": target, "heads": lh(lambda l, h: l - h * 0.5),
                                     "mlp": [0.5] * n_layer, "embedding": 0.1,
                                     "bias_and_rest": 0.2, "total": 1.0},
    }


def count_tokens(base, text):
    """Tokens the model runs for `text` (BOS included): a run that stores no maps says."""
    rc, _, err = run(*base, text, "--max-floats", "0", "--layers", "0", "--heads", "0")
    m = re.search(r"run with capture: (\d+) tokens", err)
    if rc != 0 or not m:
        raise SystemExit("explain (counting tokens): " + err)
    return int(m.group(1))


def want_cells(n_layer, n_head, n_tok):
    lh = n_layer * n_head
    return {"tabAttribution": n_tok, "tabAttentionGradient": lh + lh * n_tok,
            "tabNormAttention": lh * n_tok, "tabAblation": lh,
            "tabPatching": n_layer * n_tok + lh, "tabLogitLens": n_layer * 2,
            "tabDirectLogitAttribution": lh + n_layer}


def open_page(chromium, html):
    """Loads the page, returns (data-* attributes of <body>, console lines, seconds)."""
    t0 = time.monotonic()
    rc, dom, err = run(chromium, "--headless", "--no-sandbox", "--disable-gpu",
                       "--enable-logging=stderr", "--v=0", "--allow-file-access-from-files",
                       "--dump-dom", html.as_uri(), timeout=240)
    seconds = time.monotonic() - t0
    body = re.search(r"<body([^>]*)>", dom)
    if not body:
        return None, ["no <body> in the dumped DOM; chromium stderr:\n" + err[-3000:]], seconds
    attrs = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', body.group(1)))
    camel = {re.sub(r"-([a-z])", lambda m: m.group(1).upper(), k): v for k, v in attrs.items()}
    console = [l for l in err.splitlines() if "CONSOLE" in l or "Uncaught" in l]
    return camel, console, seconds


def check_page(name, camel, console, failures):
    if camel is None:
        failures.append(f"{name}: {console}")
        return False
    if camel.get("ready") != "1":
        failures.append(f"{name}: report did not finish drawing: {camel}")
    if camel.get("errors") != "0" or console:
        failures.append(f"{name}: page errors {camel.get('errors')}, console:\n" + "\n".join(console))
    if camel.get("badSections"):
        failures.append(f"{name}: sections rejected as malformed: {camel.get('badSections')}")
    if camel.get("blankLabels") != "0":
        failures.append(f"{name}: {camel.get('blankLabels')} blank token labels")
    return True


def main():
    qkv = sys.argv[1]
    sanitize = len(sys.argv) > 2 and sys.argv[2] == "sanitize"
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        print("skipped: chromium is not installed (Debian package chromium)")
        return 77
    tmp = pathlib.Path(tempfile.mkdtemp())
    failures = []
    n_layer, n_head = 2, 2
    long_words = 2300 if sanitize else 9200  # about 3.5 tokens a word: 8k and 32k tokens
    if len(sys.argv) > 3:
        long_words = int(sys.argv[3])
    model = tmp / "tiny.gguf"
    rc, _, err = run(qkv, "make-model", "--arch", "llama", "--n-embd", "16", "--n-head", "2",
                     "--n-head-kv", "2", "--n-layer", str(n_layer), "--n-ff", "32",
                     "--n-ctx", "40000", "--seed", "7", "-o", model)
    if rc != 0:
        print("make-model:", err)
        return 1
    base = [qkv, "explain", "-m", model, "--threads", "2"]

    # --- 2k tokens: rows mode (past 8 MiB of maps), every tab, --map and --token -----------
    text = text_of(570)
    n = count_tokens(base, text)
    print(f"short case: {n} tokens")
    secs = tmp / "sections.json"
    secs.write_text(json.dumps(sections(n_layer, n_head, n)))
    html = tmp / "short.html"
    other = text.replace("tired", "wide", 1)
    rc, out, err = run(*base, text, "--map", "0:1", "--token", "#100", "--html", html,
                       "--html-sections", secs)
    if rc != 0:
        print("explain --html:", err)
        return 1
    # The terminal names the --token row with its visible text, as the page labels it.
    m = re.search(r'token #100 "([^"]*)" attends most to', out)
    if not m or m.group(1).strip() == "":
        failures.append(f"terminal --token line missing or blank: {out[-400:]}")
    camel, console, seconds = open_page(chromium, html)
    if check_page("2k", camel, console, failures):
        print("2k page:", {k: camel.get(k) for k in ("tokens", "mode", "tabs", "drawnMs", "paintMs")},
              f"chromium ran {seconds:.1f} s")
        expect = {"tokens": str(n), "mode": "rows", "tabs": "8", "openLayer": "0", "openHead": "1",
                  "focus": "100", "whereLayers": str(n_layer)}
        for k, v in expect.items():
            if camel.get(k) != v:
                failures.append(f"2k: data-{k} = {camel.get(k)}, expected {v}")
        for k, v in want_cells(n_layer, n_head, n).items():
            if camel.get(k) != str(v):
                failures.append(f"2k: {k} drew {camel.get(k)}, expected {v}")

    # Without --map, a section with a target opens on its most decisive head (ablation: 1:0);
    # --compare with the Winograd pair: the second prompt beside the first, and their difference
    # over the positions that pair up (all but " tired" / " wide" when those are one token each).
    html2 = tmp / "decisive.html"
    a = "The animal didn't cross the street because it was too tired. It"
    rc, out, err = run(*base, a, "--html", html2, "--html-sections", secs, "--token", "It",
                       "--compare", a.replace("tired", "wide"))
    if rc != 0:
        failures.append(f"explain --html-sections --compare (short): {err}")
    else:
        if "compared with" not in out or "attends most to, second prompt" not in out:
            failures.append(f"--compare printed no second map: {out[-600:]}")
        camel, console, _ = open_page(chromium, html2)
        if check_page("decisive", camel, console, failures):
            if (camel.get("openLayer"), camel.get("openHead")) != ("1", "0"):
                failures.append(f"decisive head: opened on {camel.get('openLayer')}:"
                                f"{camel.get('openHead')}, expected the largest |ablation delta| at 1:0")
            t = int(camel.get("tokens", 0))
            if camel.get("tabs") != "9" or not t or int(camel.get("compareCells", 0)) < (t - 2) ** 2:
                failures.append(f"compare: {camel.get('tabs')} tabs, {camel.get('compareCells')} "
                                f"difference cells for {t} tokens")

    # --- 32k tokens: rows mode, rows from the sidecar on demand -------------------------------
    # One layer of two heads: the run's cost is the attention over 32k tokens, twice (the
    # forward pass, then the capture's exact rows).
    model = tmp / "tiny1.gguf"
    rc, _, err = run(qkv, "make-model", "--arch", "llama", "--n-embd", "16", "--n-head", "2",
                     "--n-head-kv", "2", "--n-layer", "1", "--n-ff", "32", "--n-ctx", "40000",
                     "--seed", "7", "-o", model)
    if rc != 0:
        print("make-model:", err)
        return 1
    base = [qkv, "explain", "-m", model, "--threads", "2"]
    text = text_of(long_words)
    html3 = tmp / "long.html"
    t0 = time.monotonic()
    # A small budget: most rows are kept as their top 32 keys (the report keeps 32 per row).
    rc, out, err = run(*base, text, "--html", html3, "--token", f"#{long_words * 2}",
                       "--max-floats", str(1 << 24), "--top-k", "32", "--map", "0:1",
                       timeout=600)
    run_s = time.monotonic() - t0
    if rc != 0:
        failures.append(f"explain at {long_words} words: {err}")
    else:
        chunks = sorted((tmp / "long.html.rows").glob("rows-*.js"))
        size = html3.stat().st_size
        camel, console, seconds = open_page(chromium, html3)
        if check_page("long", camel, console, failures):
            t = int(camel.get("tokens", 0))
            paint = int(camel.get("paintMs", camel.get("drawnMs", "-1")))
            print(f"long page: {t} tokens, page {size / 1e6:.1f} MB + {len(chunks)} row chunks, "
                  f"qkv explain {run_s:.1f} s, first paint {paint} ms "
                  f"(drawn {camel.get('drawnMs')} ms), chromium ran {seconds:.1f} s")
            if t < long_words * 3:
                failures.append(f"long: only {t} tokens")
            if camel.get("mode") != "rows" or not chunks:
                failures.append(f"long: mode {camel.get('mode')}, {len(chunks)} chunk files")
            if camel.get("whereLayers") != "1" or int(camel.get("chunksLoaded", 0)) < 1:
                failures.append(f"long: where view {camel.get('whereLayers')} layers, "
                                f"{camel.get('chunksLoaded')} chunks loaded")
            if camel.get("focus") != str(long_words * 2):
                failures.append(f"long: focused {camel.get('focus')}")
            nb = (t + 63) // 64
            if int(camel.get("heatmapCells", 0)) < nb:
                failures.append(f"long: block heatmap drew {camel.get('heatmapCells')} cells")
            if not 0 <= paint < 20000:
                failures.append(f"long: first paint {paint} ms")
    for f in failures:
        print("FAIL:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
