#!/usr/bin/env python3
"""Special files as inputs and outputs of every subcommand that reads or writes one.

usage: special_files_test.py QKV_BINARY SHARED_DIR

Inputs: a FIFO (must be refused by name at once, never block), a directory, a device node.
Outputs: a device node (written directly, never replaced by a regular file), a FIFO without a
reader, a directory, a read-only file and a read-only directory (refused; nothing changed).
"""
import os
import pathlib
import shutil
import stat
import subprocess
import sys
import tempfile

from robust_util import Checks, SmallFs, is_char_device, make_device_node, run


def main():
    qkv = sys.argv[1]
    shared = pathlib.Path(sys.argv[2]) if len(sys.argv) > 2 else None
    c = Checks()
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="qkv-special-"))
    try:
        model = tmp / "tiny.gguf"
        rc, _, err = run(qkv, "make-model", "-o", model)
        if not c.check(rc == 0, f"make-model: {err}"):
            return c.report("special_files")

        # ---- inputs ----
        fifo = tmp / "f.gguf"
        os.mkfifo(fifo)
        # A FIFO must be refused at once: a hang is a failure (the timeout turns it into one).
        for args, what in [
            (("inspect", fifo), "inspect FIFO"),
            (("generate", "-m", fifo, "-p", "x", "-n", "1"), "generate -m FIFO"),
            (("generate", "-m", model, "-t", fifo, "-p", "x", "-n", "1"), "generate -t FIFO"),
            (("tokenize", "-t", fifo, "hello"), "tokenize -t FIFO"),
            (("train", "--text", fifo, "-o", tmp / "run-fifo", "--steps", "1"), "train --text FIFO"),
        ]:
            try:
                c.refused(run(qkv, *args, timeout=30), str(fifo), "FIFO", what=what)
            except subprocess.TimeoutExpired:
                c.check(False, f"{what}: blocked on the FIFO")
        hf = tmp / "hf-fifo"
        if shared and c.shared(shared / "fixtures/hf/gpt2-tiny/config.json", "a FIFO config.json"):
            hf.mkdir()
            for f in (shared / "fixtures/hf/gpt2-tiny").iterdir():
                if f.name != "config.json":
                    os.symlink(f, hf / f.name)
            os.mkfifo(hf / "config.json")
            try:
                c.refused(run(qkv, "inspect", hf, timeout=30), "config.json", "FIFO",
                          what="a FIFO config.json")
            except subprocess.TimeoutExpired:
                c.check(False, "inspect: blocked on a FIFO config.json")
        c.refused(run(qkv, "generate", "-m", model, "-t", tmp, "-p", "x", "-n", "1"),
                  what="generate -t DIRECTORY")
        c.refused(run(qkv, "inspect", "/dev/null"), "/dev/null", "character device",
                  what="inspect /dev/null")
        c.refused(run(qkv, "train", "--text", "/dev/zero", "-o", tmp / "run-zero", "--steps", "1"),
                  "/dev/zero", "character device", what="train --text /dev/zero")

        # ---- outputs: device nodes are written to, never replaced ----
        dev = tmp / "fakenull"
        if make_device_node(dev):
            for args, what in [
                (("convert", "-m", model, "-o", dev), "convert -o DEVICE"),
                (("make-model", "-o", dev), "make-model -o DEVICE"),
                (("explain", "-m", model, "the cat sat", "--png", dev), "explain --png DEVICE"),
                (("explain", "-m", model, "the cat sat", "--html", dev), "explain --html DEVICE"),
                (("train", "--write-corpus", dev, "--stories", "5"), "train --write-corpus DEVICE"),
            ]:
                rc, _, err = run(qkv, *args)
                c.check(rc == 0 and is_char_device(dev),
                        f"{what}: rc {rc}, still a device: {is_char_device(dev)}: {err[-300:]}")
            c.check(sorted(p.name for p in tmp.iterdir() if "fakenull" in p.name) == ["fakenull"],
                    f"files left beside the device: {list(tmp.iterdir())}")
        else:
            print("note: mknod is not permitted here; /dev/null stands in for a device node")
        rc, _, err = run(qkv, "make-model", "-o", "/dev/null")
        c.check(rc == 0 and is_char_device("/dev/null"), f"make-model -o /dev/null: {rc} {err}")

        # ---- outputs: FIFO without a reader, directory, read-only file and folder ----
        out_fifo = tmp / "out.fifo"
        os.mkfifo(out_fifo)
        try:
            c.refused(run(qkv, "make-model", "-o", out_fifo, timeout=30), "no reader",
                      what="make-model -o FIFO without reader")
        except subprocess.TimeoutExpired:
            c.check(False, "make-model -o FIFO blocked")
        c.check(stat.S_ISFIFO(os.lstat(out_fifo).st_mode), "the FIFO was replaced")
        c.refused(run(qkv, "make-model", "-o", tmp), "is a directory", what="make-model -o DIR")
        c.refused(run(qkv, "explain", "-m", model, "the cat", "--svg", tmp), "is a directory",
                  what="explain --svg DIR")
        ro = tmp / "ro.gguf"
        ro.write_bytes(b"keep")
        ro.chmod(0o444)
        c.refused(run(qkv, "convert", "-m", model, "-o", ro), "read-only", what="convert -o RO")
        c.check(ro.read_bytes() == b"keep", "a read-only output was changed")
        c.refused(run(qkv, "make-model", "-o", tmp / "no" / "such" / "x.gguf"), "does not exist",
                  what="make-model -o MISSING_DIR/x")
        # A read-only folder: root may write into a 0555 folder, so mount one read-only there.
        rofs = SmallFs(64)
        try:
            if rofs.ok:
                subprocess.run(["mount", "-o", "remount,ro", rofs.dir], capture_output=True)
            else:
                os.chmod(rofs.dir, 0o555)
            probe = os.access(rofs.dir, os.W_OK) and not rofs.ok
            if probe:
                print(f"note: cannot make a read-only folder here ({rofs.why}); skipped")
            else:
                c.refused(run(qkv, "make-model", "-o", rofs.path("x.gguf")), "x.gguf",
                          what="make-model into a read-only folder")
                c.check(not os.path.exists(rofs.path("x.gguf")), "file created in a read-only dir")
        finally:
            rofs.close()
        # train -o an existing file: refused in words, not with a raw filesystem error.
        afile = tmp / "afile"
        afile.write_text("x")
        c.refused(run(qkv, "train", "-o", afile, "--steps", "1"), str(afile), "not a folder",
                  what="train -o FILE")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return c.report("special_files")


if __name__ == "__main__":
    sys.exit(main())
