#!/usr/bin/env python3
"""`qkv explain` says which layers are local (sliding window) and which global.

usage: explain_layers_test.py QKV_BINARY

On make-model's tiny gemma2 (window 8 on every other layer, from layer 0), gemma3 (window 8 on 5
layers of every 6) and llama (no window) models, over 20 tokens:
- the report data's layer_windows (--json, --html, --npy's tokens.json) is the families' pattern
  as llama.cpp states it (layer l slides when l % pattern < pattern - 1);
- the captured maps of a local layer put no mass on keys more than window - 1 behind the query,
  and those of a global layer do (so the label describes what the model computed);
- the terminal output names the local and global layers, and says nothing for a model without
  sliding layers.
"""
import json
import pathlib
import struct
import subprocess
import sys
import tempfile

TEXT = "the cat sat on the mat and the dog ran to the park with a ball"
CASES = {"gemma2": (2, 8), "gemma3": (6, 8), "llama": (0, 0)}  # pattern, window


def run(qkv, *args):
    if args[0] == "explain":
        args = (*args, "--threads", "1")
    p = subprocess.run([qkv, *args], capture_output=True, timeout=300)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def read_npy4(path):
    data = pathlib.Path(path).read_bytes()
    hlen = int.from_bytes(data[8:10], "little")
    header = eval(data[10:10 + hlen].decode("latin1"))  # a literal dict (numpy's format)
    shape = header["shape"]
    n = 1
    for s in shape:
        n *= s
    return shape, struct.unpack(f"<{n}f", data[10 + hlen:10 + hlen + 4 * n])


def main():
    qkv = sys.argv[1]
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        for arch, (pattern, window) in CASES.items():
            model = tmp / f"{arch}.gguf"
            rc, _, err = run(qkv, "make-model", "--arch", arch, "-o", str(model))
            if rc != 0:
                failures.append(f"{arch}: make-model: {err}")
                continue
            rc, out, err = run(qkv, "explain", "-m", str(model), TEXT, "--json")
            if rc != 0:
                failures.append(f"{arch}: explain --json: {err}")
                continue
            windows = json.loads(out)["layer_windows"]
            n_layer = len(windows)
            expect = [window if pattern and l % pattern < pattern - 1 else 0
                      for l in range(n_layer)]
            if windows != expect or n_layer == 0:
                failures.append(f"{arch}: layer_windows {windows}, expected {expect}")
            rc, _, err = run(qkv, "explain", "-m", str(model), TEXT, "--npy", str(tmp / "m.npy"))
            if rc != 0:
                failures.append(f"{arch}: explain --npy: {err}")
                continue
            if json.loads((tmp / "m.npy.tokens.json").read_text())["layer_windows"] != windows:
                failures.append(f"{arch}: tokens.json's layer_windows differ from --json's")
            (n_l, n_h, n, _), maps = read_npy4(tmp / "m.npy")
            if n <= 8:
                failures.append(f"{arch}: only {n} tokens; the window is not exercised")
            for layer in range(n_l):
                far = 0.0  # mass on keys j <= i - 8 (outside a window of 8)
                for h in range(n_h):
                    base = (layer * n_h + h) * n * n
                    far += sum(maps[base + i * n + j] for i in range(n) for j in range(i - 7))
                local = windows[layer] > 0
                if (local and far != 0.0) or (not local and far <= 0.0):
                    failures.append(f"{arch} layer {layer} ({'local' if local else 'global'}): "
                                    f"mass {far:.3g} outside the window")
            rc, out, _ = run(qkv, "explain", "-m", str(model), TEXT, "--ascii")
            local = ",".join(str(l) for l in range(n_layer) if windows[l])
            glob = ",".join(str(l) for l in range(n_layer) if not windows[l])
            line = f"local layers (sliding window of {window} keys): {local}; global layers: {glob}"
            if window and line not in out:
                failures.append(f"{arch}: the terminal output lacks {line!r}")
            if not window and "local layers" in out:
                failures.append(f"{arch}: a model without sliding layers got a local/global line")
    for f in failures:
        print("FAIL", f)
    print(f"explain layers: {len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
