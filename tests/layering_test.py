#!/usr/bin/env python3
"""Checks that sources include headers only from their own layer or layers below it.

Layers, lowest first: core -> kernels and chat (chat needs only core) -> formats/tokenizers/cuda/distributed
-> model -> runtime -> explain -> train and serve (siblings) -> apps. CMake enforces this (cmake/layers.cmake): no
target of a layer has src/ or all of include/ on its include path; each sees links to their own and
lower layers' directories under src/ and to their public headers (include/qkv, each assigned to
the layer that implements it by the QKV_PUBLIC_<layer> lists there, which this test reads). This
test checks the same rules by reading the includes, so that a violation is named even in code
that is not built here (CUDA). Public headers include only other public headers and the standard
library. apps, tests and bench are not checked here (apps/ sees no src/ at all: CMake).
"""
import pathlib
import re
import sys

RANK = {"core": 0, "kernels": 1, "chat": 1, "formats": 2, "tokenizers": 2, "cuda": 2,
        "distributed": 2, "model": 3, "runtime": 4, "explain": 5, "train": 6, "serve": 6}
# The layer of each public header, from cmake/layers.cmake (QKV_PUBLIC_<layer>: the one list,
# which CMake also uses to give each layer's targets only the public headers they may include).
def public_layers(root: pathlib.Path):
    text = (root / "cmake" / "layers.cmake").read_text()
    out = {}
    for layer, names in re.findall(r"set\(QKV_PUBLIC_(\w+)\s+([^)]*)\)", text):
        for name in names.split():
            out[name] = layer
    return out


PUBLIC = {}
INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"', re.M)


def check(path, layer, inc, bad):
    top = inc.split("/")[0]
    target = None
    if top == "qkv":
        name = inc[len("qkv/"):]
        target = PUBLIC.get(name)
        if target is None:
            bad.append(f"{path}: public header '{inc}' has no layer (add it to a QKV_PUBLIC_<layer> list in "
                       "cmake/layers.cmake)")
            return
    elif top in RANK:
        target = top
    if target is None or target == layer:
        return
    what = f"'{inc}' (layer '{target}')"
    if RANK[target] > RANK[layer]:
        bad.append(f"{path}: layer '{layer}' includes {what} from a higher layer")
    elif RANK[target] == RANK[layer]:
        bad.append(f"{path}: layer '{layer}' includes {what} from a sibling layer")


def main(root: pathlib.Path) -> int:
    PUBLIC.update(public_layers(root))
    bad = []
    src = root / "src"
    for path in sorted(list(src.rglob("*.h")) + list(src.rglob("*.cpp")) + list(src.rglob("*.cu"))
                       + list(src.rglob("*.cuh")) + list(src.rglob("*.inc"))):
        layer = path.relative_to(src).parts[0]
        if layer not in RANK:
            bad.append(f"{path}: unknown layer '{layer}' (add it to tests/layering_test.py)")
            continue
        for inc in INCLUDE.findall(path.read_text(errors="replace")):
            check(path, layer, inc, bad)
    for path in sorted((root / "include").rglob("*.h")):
        name = path.relative_to(root / "include" / "qkv").as_posix()
        layer = PUBLIC.get(name)
        if layer is None:
            bad.append(f"{path}: public header has no layer (add it to a QKV_PUBLIC_<layer> list in "
                       "cmake/layers.cmake)")
            continue
        for inc in INCLUDE.findall(path.read_text(errors="replace")):
            if not inc.startswith("qkv/"):
                bad.append(f"{path}: public header includes non-public '{inc}'")
            else:
                check(path, layer, inc, bad)
    for line in bad:
        print(line)
    print(f"layering: {len(bad)} violation(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(pathlib.Path(sys.argv[1])))
