#!/usr/bin/env python3
"""The install route the README documents: a virtual environment that sees Debian's packages
(--system-site-packages: numpy, torch), then `python -m pip install .` with pip's default build
isolation and no index (the in-tree backend needs nothing from PyPI). The wheel is made from this
build's module (QKV_PIP_FROM_BUILD, python/build_backend), then imported from the venv, outside the
source and build trees, and used.

usage: pip_venv.py PYTHON SOURCE_DIR BUILD_DIR
"""
import os
import subprocess
import sys
import tempfile

SMOKE = r"""
import os, sys
import numpy as np
import qkv
assert "site-packages" in qkv.__file__, qkv.__file__
q = np.random.default_rng(0).random((1, 8, 2, 16), dtype=np.float32)
out = qkv.attention(q, q, q, causal=True)
assert out.shape == (1, 8, 2, 16)
m = qkv.Model()
assert m.detokenize(m.tokenize("Once upon a time")) == "Once upon a time"
assert len(m.generate("Once", max_new_tokens=3, temperature=0)) > 0
import importlib.resources as r
assert (r.files("qkv") / "__init__.pyi").is_file() and (r.files("qkv") / "py.typed").is_file()
print("ok", qkv.__file__)
"""


def main():
    python, source, build = sys.argv[1:4]
    with tempfile.TemporaryDirectory() as tmp:
        venv = os.path.join(tmp, "venv")
        subprocess.run([python, "-m", "venv", "--system-site-packages", venv], check=True)
        vpy = os.path.join(venv, "bin", "python")
        env = dict(os.environ, QKV_PIP_FROM_BUILD=build, PIP_NO_INDEX="1",
                   PIP_DISABLE_PIP_VERSION_CHECK="1")
        env.pop("PYTHONPATH", None)
        subprocess.run([vpy, "-m", "pip", "install", "--no-deps", source], check=True, env=env,
                       cwd=tmp)
        subprocess.run([vpy, "-c", SMOKE], check=True, env=env, cwd=tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
