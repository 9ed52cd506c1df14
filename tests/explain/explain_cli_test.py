#!/usr/bin/env python3
"""End-to-end checks of `qkv explain` on stories260K, and its HTML report in headless Chromium.

usage: explain_cli_test.py QKV_BINARY SHARED_DIR   (exit 77 = skipped: ../shared or chromium absent)

The report must load without any console error and draw, for a known input, the number of
elements its data implies: the model view one map per (layer, head), the heatmap one cell per
non-zero weight, the head view one line per pair of visible tokens with weight >= 0.01. The page
writes those counts into data-* attributes of <body> once it has drawn.
"""
import json
import pathlib
import re
import shutil
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "common"))
import shared_data  # noqa: E402

TEXT = "Once upon a time, there was a little cat. The cat liked to play."


def run(*args):
    p = subprocess.run(list(args), capture_output=True, timeout=240)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def gen_base(qkv, model, tok):
    return [qkv, "generate", "-m", str(model), "-t", tok, "-p", "Once upon a time", "-n", "20",
            "--temp", "0", "--ignore-eos", "--threads", "1"]


def numpy_python():
    """An interpreter with numpy: this one, else Debian's (python3-numpy), else None."""
    for py in (sys.executable, "/usr/bin/python3"):
        if shutil.which(py) and subprocess.run([py, "-c", "import numpy"],
                                               capture_output=True).returncode == 0:
            return py
    return None


def check_generate_stream(explain_base, gen, tmp):
    ids = json.loads(pathlib.Path(str(gen) + ".tokens.json").read_text())["ids"]
    t = len(ids)
    failures = []
    py = numpy_python()
    if py is None:
        print("numpy absent (Debian python3-numpy): generate --npy-stream not loaded by numpy")
    else:
        check = ("import numpy as np, sys; a = np.load(sys.argv[1]); t = int(sys.argv[2]); "
                 "assert a.dtype == np.float32 and a.shape == (5, 8, t, t), a.shape; "
                 "assert np.allclose(a.sum(-1), 1, atol=1e-5), 'rows do not sum to 1'; "
                 "assert np.all(np.triu(a, 1) == 0), 'not causal'")
        rc, _, err = run(py, "-c", check, str(gen), str(t))
        if rc != 0:
            failures.append(f"numpy on generate --npy-stream: {err}")
    ref = tmp / "e.npy"
    rc, _, err = run(*explain_base, "Once upon a time", "-n", "20", "--ignore-eos", "--threads",
                     "1", "--npy", str(ref))
    if rc != 0:
        return failures + [f"explain for comparison: {err}"]
    if json.loads(pathlib.Path(str(ref) + ".tokens.json").read_text())["ids"] != ids:
        failures.append("generate and explain ran different tokens")
    elif ref.read_bytes() != gen.read_bytes():
        failures.append("generate --npy-stream differs from qkv explain --npy of the same tokens")
    return failures


# Tokens of GPT-2's vocabulary that draw nothing: no-break space, zero-width space, line
# separator (its bytes split over tokens), ideographic space; and a bidi override that would
# reverse the label after it.
INVISIBLE = "a\u00a0b\u200bc\u3000d\u202eef"


def check_invisible(qkv, shared, chromium, tmp, failures):
    """Characters that draw nothing are escaped (\\uXXXX) in the terminal labels and in the
    page's labels alike, so that no token's label is blank."""
    model = shared / "fixtures/hf/gpt2-tiny"
    if not model.exists():
        print(f"{model} absent: invisible characters not checked")
        return
    html = tmp / "invisible.html"
    rc, out, err = run(qkv, "explain", "-m", str(model), INVISIBLE, "--threads", "1",
                       "--token", "#1", "--html", str(html))
    if rc != 0:
        failures.append(f"explain with invisible characters: {err}")
        return
    for esc in ("\\u00a0", "\\u200b"):
        if esc not in out:
            failures.append(f"terminal: no {esc} label:\n{out[:600]}")
    if "\u00a0" in out or "\u200b" in out or "\u202e" in out:
        failures.append("terminal: an invisible character printed as itself")
    if chromium is None:
        return
    _, dom, _ = run(chromium, "--headless", "--no-sandbox", "--disable-gpu",
                    "--virtual-time-budget=10000", "--dump-dom", html.as_uri())
    dom = re.sub(r"<script[^>]*>.*?</script>", "", dom, flags=re.S)  # the drawn text only
    body = re.search(r"<body([^>]*)>", dom)
    attrs = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', body.group(1))) if body else {}
    if attrs.get("ready") != "1" or attrs.get("blank-labels") != "0":
        failures.append(f"page with invisible characters: {attrs}")
    for esc in ("\\u00a0", "\\u200b"):
        if esc not in dom:
            failures.append(f"page: no {esc} label")
    if "\u00a0" in dom or "\u200b" in dom or "\u202e" in dom:
        failures.append("page: an invisible character drawn as itself")


def main():
    qkv, shared = sys.argv[1], pathlib.Path(sys.argv[2])
    model = shared / "models/stories260K/stories260K.bin"
    if not model.exists():
        return shared_data.missing(model)
    tok = str(model.parent / "tok512.bin")
    base = [qkv, "explain", "-m", str(model), "-t", tok, TEXT, "--threads", "1"]
    tmp = pathlib.Path(tempfile.mkdtemp())
    failures = []

    # Terminal output (not a TTY here: ASCII), the --token summary, and the exports.
    npy, png, svg, html = tmp / "m.npy", tmp / "m.png", tmp / "m.svg", tmp / "r.html"
    rc, out, err = run(*base, "--token", "cat", "--npy", str(npy), "--png", str(png),
                       "--svg", str(svg), "--html", str(html))
    if rc != 0:
        print(err)
        return 1
    if "\x1b[" in out:
        failures.append("colour escapes written to a pipe")
    if "attends most to" not in out or "where each head looks" not in out:
        failures.append("missing summary:\n" + out)
    token_row = re.search(r"\ntoken #(\d+) ", out)
    token_row = int(token_row.group(1)) if token_row else -1
    header = npy.read_bytes()[:128]
    if not header.startswith(b"\x93NUMPY") or b"'shape': (5, 8," not in header:
        failures.append(f"npy header {header!r}")
    if png.read_bytes()[:8] != b"\x89PNG\r\n\x1a\n":
        failures.append("png signature")
    if "<svg" not in svg.read_text():
        failures.append("svg")
    rc, _, err = run(*base, "--layers", "9")
    if rc != 1 or "layer 9 is out of range" not in err:
        failures.append(f"bad --layers: rc {rc}, {err}")
    # -1 is an index out of range, not another spelling of "all".
    for flag, what in (("--layers", "layer"), ("--heads", "head")):
        rc, _, err = run(*base, flag, "-1")
        if rc != 1 or f"{what} -1 is out of range" not in err:
            failures.append(f"{flag} -1: rc {rc}, {err}")
    rc, _, err = run(*base, "-n", "-3")
    if rc != 1 or "max_new_tokens = -3" not in err:
        failures.append(f"negative -n: rc {rc}, {err}")
    # A budget that keeps no rows: the look table says so instead of printing zeros, and a budget
    # that keeps some rows scores those rows and says how many.
    rc, out, err = run(*base, "--max-floats", "0")
    if rc != 0 or out.count("no rows stored") != 5 * 8 or " 0.000 " in out.split("looks")[1]:
        failures.append(f"--max-floats 0 look table: rc {rc}, {out}")
    rc, out, err = run(*base, "--max-floats", "2000", "--overflow", "rows")
    if rc != 0 or "rows stored)" not in out:
        failures.append(f"--max-floats 2000 look table: rc {rc}, {out}")

    # --npy-stream: every row written to disk as it is produced; the same bytes as --npy of the
    # same run, a line saying where the maps went, and no .part file left behind.
    stream = tmp / "s.npy"
    rc, _, err = run(*base, "--npy", str(npy), "--npy-stream", str(stream))
    if rc != 0 or f"attention maps streamed to {stream}" not in err:
        failures.append(f"explain --npy-stream: rc {rc}, {err}")
    elif stream.read_bytes() != npy.read_bytes():
        failures.append("explain --npy-stream differs from --npy of the same run")
    if pathlib.Path(str(stream) + ".part").exists() or not pathlib.Path(
            str(stream) + ".tokens.json").exists():
        failures.append("explain --npy-stream: .part left or .tokens.json missing")
    bad = tmp / "no-such-dir" / "s.npy"
    for cmd in (base, gen_base(qkv, model, tok)):
        rc, out, err = run(*cmd, "--npy-stream", str(bad))
        if rc == 0 or str(bad) not in err or "does not exist" not in err or out:
            failures.append(f"unwritable --npy-stream ({cmd[1]}): rc {rc}, out {out!r}, {err}")

    # qkv generate --npy-stream alone: loads in numpy with the shape of the tokens run, causal rows
    # that sum to 1, equal to qkv explain's maps for the same greedy tokens.
    gen = tmp / "g.npy"
    rc, _, err = run(*gen_base(qkv, model, tok), "--npy-stream", str(gen))
    if rc != 0 or f"attention maps streamed to {gen}" not in err:
        failures.append(f"generate --npy-stream: rc {rc}, {err}")
    else:
        failures += check_generate_stream(base[:6], gen, tmp)

    # The report's expected counts, from the JSON export of the same run.
    rc, out, _ = run(*base, "--json")
    data = json.loads(out)
    n = len(data["ids"])
    nl, nh = len(data["layers"]), len(data["heads"])
    maps = data["maps"]
    last = [sum(maps[(nl - 1) * nh + h][k] for h in range(nh)) / nh for k in range(n * n)]
    want = {
        "tokens": n,
        "modelviewMaps": nl * nh,
        "heatmapCells": sum(1 for w in last if w > 0),
    }
    # The report opens on the --token row, the one the terminal summary names: the head view
    # draws that row's lines only.
    focus = token_row
    top = max(0, min(n - 40, focus - 20))
    want["focus"] = focus
    want["headviewLines"] = sum(1 for j in range(top, min(n, top + 40))
                                if last[focus * n + j] >= 0.01)

    # An encoder generates nothing: -n is refused rather than ignored.
    bert = shared / "fixtures/hf/bert-tiny"
    if bert.exists():
        rc, out, err = run(qkv, "explain", "-m", str(bert), "a cat", "-n", "3")
        if rc == 0 or "is an encoder; it generates no tokens" not in err or out:
            failures.append(f"-n on an encoder: rc {rc}, {err}")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    check_invisible(qkv, shared, chromium, tmp, failures)
    if not chromium:
        for f in failures:
            print("FAIL:", f)
        print("skipped: chromium is not installed (Debian package chromium)")
        return 1 if failures else 77
    rc, dom, err = run(chromium, "--headless", "--no-sandbox", "--disable-gpu",
                       "--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000",
                       "--dump-dom", html.as_uri())
    body = re.search(r"<body([^>]*)>", dom)
    if not body:
        print("no <body> in the dumped DOM; chromium stderr:\n" + err[-3000:])
        return 1
    attrs = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', body.group(1)))
    camel = {re.sub(r"-([a-z])", lambda m: m.group(1).upper(), k): v for k, v in attrs.items()}
    if camel.get("ready") != "1":
        failures.append(f"report did not finish drawing: {camel}")
    if camel.get("errors") != "0":
        failures.append(f"page errors: {camel.get('errors')}")
    console = [l for l in err.splitlines() if "CONSOLE" in l or "Uncaught" in l]
    if console:
        failures.append("console messages:\n" + "\n".join(console))
    for k, v in want.items():
        got = int(camel.get(k, -1))
        # The report stores sqrt(p) in 16 bits: a weight within 1e-6 of the 0.01 line may land
        # on the other side, so the line count may differ by a few.
        slack = 2 if k == "headviewLines" else 0
        if abs(got - v) > slack:
            failures.append(f"{k}: page drew {got}, expected {v}")
    for f in failures:
        print("FAIL:", f)
    print("counts:", {k: camel.get(k) for k in want})
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
