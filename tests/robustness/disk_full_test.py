#!/usr/bin/env python3
"""Every writer on a full file system: a non-zero exit naming the file and the reason, and no
empty or partial file left behind (nor a temporary one); a file that was there stays as it was.

usage: disk_full_test.py QKV_BINARY

A small tmpfs (or a loop-mounted image) is filled where mounting is permitted; otherwise the
writes go to /dev/full, which fails every write with ENOSPC (then only the exit code and message
are checked: there is no file to leave behind).
"""
import os
import pathlib
import shutil
import sys
import tempfile

from robust_util import Checks, SmallFs, run


def writers(model, out):
    text = "the cat sat on the mat"
    return [
        (("explain", "-m", model, text, "--png", out), "explain --png"),
        (("explain", "-m", model, text, "--npy", out), "explain --npy"),
        (("explain", "-m", model, text, "--html", out), "explain --html"),
        (("explain", "-m", model, text, "--svg", out), "explain --svg"),
        (("explain", "-m", model, text, "--safetensors", out), "explain --safetensors"),
        (("explain", "-m", model, text, "--npy-stream", out), "explain --npy-stream"),
        (("train", "--write-corpus", out, "--stories", "200"), "train --write-corpus"),
        (("convert", "-m", model, "-o", out), "convert"),
        (("make-model", "-o", out), "make-model"),
    ]


def main():
    qkv = sys.argv[1]
    c = Checks()
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="qkv-full-"))
    fs = SmallFs(256)
    try:
        model = tmp / "tiny.gguf"
        rc, _, err = run(qkv, "make-model", "-o", model)
        if not c.check(rc == 0, f"make-model: {err}"):
            return c.report("disk_full")
        if fs.ok:
            previous = b"an earlier version of the file"
            pathlib.Path(fs.path("keep.out")).write_bytes(previous)
            fs.fill()
            for i in range(len(writers(model, ""))):
                args, what = writers(model, fs.path(f"new{i}.out"))[i]
                r = run(qkv, *args)
                c.refused(r, f"new{i}.out", "no space left", what=f"{what} on a full disk")
                left = sorted(p for p in os.listdir(fs.dir) if p not in ("filler", "keep.out"))
                c.check(left == [], f"{what}: left behind on the full disk: {left}")
            for args, what in writers(model, fs.path("keep.out")):
                run(qkv, *args)
                c.check(pathlib.Path(fs.path("keep.out")).read_bytes() == previous,
                        f"{what}: replaced an existing file with a partial one")
        else:
            print(f"note: no small file system here ({fs.why}); writing to /dev/full instead")
        # /dev/full: a device, written directly; every write fails with ENOSPC.
        for args, what in writers(model, "/dev/full"):
            if "--npy-stream" in args or "--npy" in args:
                continue  # a regular file (--npy-stream) or a FILE.tokens.json beside it (--npy)
            c.refused(run(qkv, *args), "/dev/full", "no space left", what=f"{what} to /dev/full")
    finally:
        fs.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return c.report("disk_full")


if __name__ == "__main__":
    sys.exit(main())
