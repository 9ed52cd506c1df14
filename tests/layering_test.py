#!/usr/bin/env python3
"""Checks that sources include headers only from their own layer or layers below it.

Layers, lowest first: core -> kernels and chat (chat needs only core) -> formats/tokenizers/cuda
-> model -> runtime -> explain -> train and serve (siblings) -> apps. CMake enforces this for the internal headers under src/ (cmake/layers.cmake: no
target has src/ on its include path, each sees its own and lower layers only); this test checks
the same rule for the public headers (include/qkv), which every target sees: each belongs to the
layer that implements it (PUBLIC below), and a source or public header may include only public
headers of its own layer or lower ones. It also checks the internal includes of src/, so that a
violation is named here as well as by the compiler. Public headers include only other public
headers and the standard library. apps, tests and bench are not checked.
"""
import pathlib
import re
import sys

RANK = {"core": 0, "kernels": 1, "chat": 1, "formats": 2, "tokenizers": 2, "cuda": 2,
        "model": 3, "runtime": 4, "explain": 5, "train": 6, "serve": 6}
# The layer of each public header: where it is implemented (or, for plain data types, the lowest
# layer whose interface uses it).
PUBLIC = {
    "dtype.h": "core", "error.h": "core", "threads.h": "core", "tokenizer_spec.h": "core",
    "attention.h": "kernels", "chat.h": "chat",
    "attention_cuda.h": "cuda", "model_file.h": "formats", "tokenizer.h": "tokenizers",
    "observer.h": "model", "model.h": "model", "convert.h": "model",
    "session.h": "runtime",
    "explain.h": "explain",
    "train.h": "train", "trainer.h": "train",
    "server.h": "serve",
}
INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"', re.M)


def check(path, layer, inc, bad):
    top = inc.split("/")[0]
    target = None
    if top == "qkv":
        name = inc[len("qkv/"):]
        target = PUBLIC.get(name)
        if target is None:
            bad.append(f"{path}: public header '{inc}' has no layer (add it to PUBLIC in "
                       "tests/layering_test.py)")
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
            bad.append(f"{path}: public header has no layer (add it to PUBLIC in "
                       "tests/layering_test.py)")
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
