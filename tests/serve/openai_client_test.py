#!/usr/bin/env python3
"""Runs the official `openai` npm client (openai_client.cjs) against `qkv serve`.

usage: openai_client_test.py QKV_BINARY NPM_DIR

The client comes from $QKV_NPM_PREFIX/node_modules/openai (.ci/run installs it there, outside the
source tree), else NPM_DIR (this test's build folder), where it is installed with `npm install`
when absent. Without node, npm or the network the test skips (exit 77), or fails when
QKV_REQUIRE_SHARED is set, as CI sets it.
"""
import os
import pathlib
import shutil
import subprocess
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "common"))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import shared_data  # noqa: E402
from serve_test import Server  # noqa: E402

OPENAI_VERSION = "4"


def find_module(npm_dir):
    for prefix in (os.environ.get("QKV_NPM_PREFIX"), npm_dir):
        if prefix and (pathlib.Path(prefix) / "node_modules" / "openai" / "package.json").is_file():
            return pathlib.Path(prefix) / "node_modules" / "openai"
    if shutil.which("npm") is None:
        return None
    pathlib.Path(npm_dir).mkdir(parents=True, exist_ok=True)
    p = subprocess.run(["npm", "install", "--prefix", npm_dir, "--no-audit", "--no-fund",
                        f"openai@{OPENAI_VERSION}"], capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        print("npm install openai failed:", p.stderr[-500:])
        return None
    return pathlib.Path(npm_dir) / "node_modules" / "openai"


def main():
    qkv, npm_dir = sys.argv[1], sys.argv[2]
    if shutil.which("node") is None:
        return shared_data.missing("node", "the node program")
    module = find_module(npm_dir)
    if module is None:
        return shared_data.missing(f"{npm_dir}/node_modules/openai", "the openai npm package")
    srv = Server(qkv, "--parallel", "2")
    try:
        env = dict(os.environ, OPENAI_MODULE=str(module))
        p = subprocess.run(["node", str(pathlib.Path(__file__).parent / "openai_client.cjs"),
                            f"http://127.0.0.1:{srv.port}/v1", "qkv-stories"],
                           capture_output=True, text=True, timeout=300, env=env)
        print(p.stdout, p.stderr)
        ok = p.returncode == 0 and p.stdout.strip().endswith("ok")
    finally:
        srv.stop()
    print("openai client:", "ok" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
