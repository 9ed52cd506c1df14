#!/usr/bin/env python3
"""Writes types.json: llama-quantize's type of every tensor of GGUF models under each preset.

usage: make_types.py QKV_BINARY LLAMA_QUANTIZE OUT.json NAME=MODEL.gguf...

For each model, `qkv inspect --json` gives the tensors (file order, shapes, dtypes) and the
hyper-parameters; `llama-quantize --dry-run MODEL PRESET` gives the type it would write for each
tensor ("... type = f16, size = ... -> ... (q5_0)"; no arrow: the tensor keeps its type).
"""
import json
import re
import subprocess
import sys

PRESETS = ["Q2_K", "Q3_K_M", "Q4_K_M", "Q5_K_M", "Q6_K", "IQ4_NL", "IQ4_XS", "Q4_0", "Q8_0"]
LINE = re.compile(r"^\[\s*\d+/\s*\d+\]\s+(\S+)\s+- \[[^\]]*\], type =\s+(\S+), size =.*?"
                  r"(?:\((\w+)\))?\s*$")


def main():
    qkv, quantize, out = sys.argv[1:4]
    models = []
    for arg in sys.argv[4:]:
        name, path = arg.split("=", 1)
        info = json.loads(subprocess.run([qkv, "inspect", "--json", path], check=True,
                                         capture_output=True).stdout)
        cfg = info["config"]
        model = {"name": name, "architecture": cfg["architecture"], "n_layer": cfg["n_layer"],
                 "n_head": cfg["n_head"], "n_head_kv": cfg["n_head_kv"],
                 "tensors": [{"name": t["name"], "dtype": t["dtype"], "shape": t["shape"]}
                             for t in info["tensors"]],
                 "types": {}}
        for preset in PRESETS:
            log = subprocess.run([quantize, "--dry-run", path, preset], check=True,
                                 capture_output=True, text=True)
            found = {}
            for line in (log.stdout + log.stderr).splitlines():
                m = LINE.match(line.strip())
                if m:
                    found[m.group(1)] = (m.group(3) or m.group(2)).upper()
            model["types"][preset] = [found[t["name"]] for t in model["tensors"]]
        models.append(model)
    with open(out, "w") as f:
        json.dump({"llama_quantize": "llama.cpp v0.5.0 (node-llama-cpp 3.22.1), --dry-run",
                   "models": models}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
