#!/usr/bin/env python3
"""The page `qkv serve` serves at /, in headless Chromium: a chat round trip and the attention
view of a generated token, failing on any console message or page error.

usage: page_browser_test.py QKV_BINARY   (exit 77 = skipped: chromium is not installed)

The page (src/serve/page.html) sends ?q=TEXT at once (&stream=0: the whole reply at once, which
the headless browser's virtual clock waits for), then shows token ?select=I; it writes what it drew into data-* attributes of <body>:
state (done), tokens (reply tokens), attention-cells (one per layer and head), highlighted
(context positions tinted, the top-k), map-rows and map-entries (the chosen head's map over the
reply, drawn by the explain report's renderer: a row per reply token, every top-k entry). These must match what the API returns for the same chat.
A second load uses ?follow=0 instead: token 0 is shown as soon as it arrives and the map then grows
a row per token (the streaming path); its pixels (data-map-hash) must equal the map drawn at once.
"""
import json
import math
import pathlib
import re
import shutil
import struct
import subprocess
import sys
import urllib.parse

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from serve_test import Server  # noqa: E402


def main():
    qkv = sys.argv[1]
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        print("skipped: chromium is not installed (Debian package chromium)")
        return 77
    failures = []
    srv = Server(qkv, "--parallel", "2")
    try:
        st, models, _, _ = srv.request("GET", "/v1/models")
        meta = models["data"][0]["meta"]
        question = "Tell me about a cat."
        # The same request the page makes (greedy, 64 tokens, top-8 attention everywhere).
        st, want, _, _ = srv.request("POST", "/v1/chat/completions", {
            "messages": [{"role": "user", "content": question}], "max_tokens": 64,
            "temperature": 0, "attention": {"top_k": 8}})
        n_tokens = want["usage"]["completion_tokens"]
        first = want["choices"][0]["attention"][0]["heads"]

        def load(mode):
            url = f"http://127.0.0.1:{srv.port}/?" + urllib.parse.urlencode(
                {"q": question, mode: 0, "stream": 0})
            p = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                                "--enable-logging=stderr", "--v=0", "--virtual-time-budget=20000",
                                "--dump-dom", url], capture_output=True, text=True, timeout=180)
            dom, err = p.stdout, p.stderr
            body = re.search(r"<body([^>]*)>", dom)
            if not body:
                return dom, None, "no <body> in the dumped DOM; chromium stderr:\n" + err[-3000:]
            console = [x for x in err.splitlines() if "CONSOLE" in x or "Uncaught" in x]
            if console:
                failures.append(f"{mode}: console messages:\n" + "\n".join(console))
            return dom, dict(re.findall(r'data-([a-z-]+)="([^"]*)"', body.group(1))), None

        dom, attrs, error = load("select")
        if error:
            print(error)
            return 1
        _, grown, error = load("follow")
        if error:
            print(error)
            return 1
        for key in ("map-rows", "map-entries", "map-hash", "tokens"):
            if grown.get(key) != attrs.get(key) or not attrs.get(key):
                failures.append(f"map grown token by token: {key} {grown.get(key)!r}, drawn at "
                                f"once {attrs.get(key)!r}")
        if attrs.get("state") != "done":
            failures.append(f"page state {attrs.get('state')!r}, not done; DOM tail {dom[-800:]}")
        if int(attrs.get("tokens", -1)) != n_tokens:
            failures.append(f"page shows {attrs.get('tokens')} tokens, the API {n_tokens}")
        if int(attrs.get("attention-cells", -1)) != meta["n_layer"] * meta["n_head"]:
            failures.append(f"attention cells {attrs.get('attention-cells')}, want "
                            f"{meta['n_layer'] * meta['n_head']}")
        top = next(h for h in first if h["layer"] == 0 and h["head"] == 0)
        if int(attrs.get("highlighted", -1)) != len(top["positions"]):
            failures.append(f"highlighted {attrs.get('highlighted')}, want "
                            f"{len(top['positions'])}")
        # The map of the chosen head (layer 0, head 0) over the reply, drawn by the explain
        # report's renderer: a row per reply token and every top-k entry the API sent for it.
        rows = [next((h for h in a["heads"] if h["layer"] == 0 and h["head"] == 0), None)
                for a in want["choices"][0]["attention"]]
        if int(attrs.get("map-rows", -1)) != len(rows):
            failures.append(f"map rows {attrs.get('map-rows')}, want {len(rows)}")
        entries = sum(len(r["positions"]) for r in rows if r)
        if int(attrs.get("map-entries", -1)) != entries:
            failures.append(f"map entries {attrs.get('map-entries')}, want {entries}")
        # The map's pixels, recomputed here from the API's attention: the canvas holds a row per
        # reply token and a column per position of prompt + max_tokens, each entry coloured as
        # render_common.js's color(w, 1) (w stored as float32), other pixels white, RGBA bytes
        # hashed with FNV-1a as the page does.
        width = len(want["choices"][0]["prompt_tokens"]) + 64
        h = 0x811c9dc5
        for r in rows:
            w = [0.0] * width
            for p_, x in zip(r["positions"] if r else [], r["weights"] if r else []):
                if p_ < width:
                    w[p_] = struct.unpack("f", struct.pack("f", x))[0]
            for v in w:
                t = math.sqrt(min(max(v, 0.0), 1.0))
                for c in (math.floor(255 - t * 247 + 0.5), math.floor(255 - t * 207 + 0.5),
                          math.floor(255 - t * 148 + 0.5), 255):
                    h = ((h ^ c) * 0x01000193) & 0xFFFFFFFF
        if attrs.get("map-hash") != format(h, "x"):
            failures.append(f"map pixels: hash {attrs.get('map-hash')!r}, want {h:x}")
        if "qkvRender" not in dom:
            failures.append("the page does not carry the explain report's renderer")
        text = json.dumps(want["choices"][0]["message"]["content"])
        print("reply:", text[:200])
    finally:
        srv.stop()
    for f in failures:
        print("FAIL:", f)
    print(f"page: {len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
