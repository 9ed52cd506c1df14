#!/usr/bin/env python3
"""Checks that sources include headers only from their own layer or layers below it.

Layers, lowest first: core -> kernels and chat (chat needs only core) -> formats/tokenizers
-> cuda -> model -> runtime/explain -> train.
apps, tests and bench may include anything. Public headers (include/qkv) may include only other
public headers and the standard library.
"""
import pathlib
import re
import sys

RANK = {"core": 0, "kernels": 1, "chat": 1, "formats": 2, "tokenizers": 2, "cuda": 2,
        "model": 3, "runtime": 4, "explain": 4, "train": 5}
INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"', re.M)


def main(root: pathlib.Path) -> int:
    bad = []
    src = root / "src"
    for path in sorted(list(src.rglob("*.h")) + list(src.rglob("*.cpp")) + list(src.rglob("*.cu"))
                       + list(src.rglob("*.cuh")) + list(src.rglob("*.inc"))):
        layer = path.relative_to(src).parts[0]
        if layer not in RANK:
            bad.append(f"{path}: unknown layer '{layer}' (add it to tests/layering_test.py)")
            continue
        for inc in INCLUDE.findall(path.read_text(errors="replace")):
            top = inc.split("/")[0]
            if top in RANK and RANK[top] > RANK[layer]:
                bad.append(f"{path}: layer '{layer}' includes '{inc}' from higher layer '{top}'")
            if top in RANK and RANK[top] == RANK[layer] and top != layer:
                bad.append(f"{path}: layer '{layer}' includes '{inc}' from sibling layer '{top}'")
    for path in sorted((root / "include").rglob("*.h")):
        for inc in INCLUDE.findall(path.read_text(errors="replace")):
            if not inc.startswith("qkv/"):
                bad.append(f"{path}: public header includes non-public '{inc}'")
    for line in bad:
        print(line)
    print(f"layering: {len(bad)} violation(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(pathlib.Path(sys.argv[1])))
