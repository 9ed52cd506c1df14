#!/usr/bin/env python3
"""Interrupted and refused training runs never leave a broken or mismatched output folder.

usage: interrupted_test.py QKV_BINARY

* `qkv train` killed (SIGKILL) at several points: every output that exists is whole (no empty
  loss.html, no truncated GGUF), and --resume finishes the run.
* A run refused for too little text leaves an earlier run's tokenizer.gguf untouched, and the
  earlier run resumes with it (it used to be rewritten first, and the resume went on with the
  wrong tokenizer).
* --resume with a tokenizer.gguf that is not the run's own is refused by name.
* --resume at or past --steps reports the last loss, not 0.
* A failed checkpoint write (a read-only state.gguf) leaves no temporary file.
"""
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from robust_util import Checks, run

SMALL = ["--layers", "1", "--heads", "2", "--embd", "32", "--ctx", "32", "--batch", "4",
         "--vocab", "300", "--eval-every", "4", "--eval-batches", "2", "--checkpoint-every", "2",
         "--warmup", "2", "--val-fraction", "0.1", "--threads", "1"]


def text(n_docs=120, salt=""):
    names = ["tom", "mia", "sam", "ana", "ben", "eva"]
    things = ["ball", "cat", "cup", "hat"]
    docs = []
    for d in range(n_docs):
        n, t = names[d % 6], things[(d // 6) % 4]
        docs.append(f"{n} has a {t}{salt}. {n} likes the {t}. the {t} is red.")
    return "\n\n".join(docs) + "\n"


def whole(qkv, out, c, when, killed_pid=None):
    """Every output file present is complete. A SIGKILLed writer cannot remove the temporary
    it was writing (NAME.part-PID-N, renamed over NAME only once whole): those of `killed_pid`
    are allowed and must not have replaced an output; any other temporary is an error."""
    for p in sorted(out.iterdir()):
        m = re.fullmatch(r"(.+)\.part-(\d+)-\d+", p.name)
        if m:
            c.check(killed_pid is not None and int(m.group(2)) == killed_pid,
                    f"{when}: a temporary {p.name} was left by a process that was not killed")
            continue
        c.check(p.stat().st_size > 0, f"{when}: {p.name} is empty")
        if p.suffix == ".gguf":
            rc, _, err = run(qkv, "inspect", p)
            c.check(rc == 0, f"{when}: {p.name} does not open: {err[-300:]}")
        if p.name == "loss.html":
            c.check(p.read_text(errors="replace").rstrip().endswith("</html>"),
                    f"{when}: loss.html is cut short")
        if p.name == "loss.csv":
            c.check(p.read_text().endswith("\n"), f"{when}: loss.csv is cut short")


def main():
    qkv = sys.argv[1]
    c = Checks()
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="qkv-interrupt-"))
    try:
        data = tmp / "text.txt"
        data.write_text(text())

        # ---- killed at several points, then resumed ----
        for delay in (0.05, 0.4, 1.0, 2.0):
            out = tmp / f"killed-{delay}"
            p = subprocess.Popen([qkv, "train", "--text", data, "-o", out, "--steps", "40",
                                  *SMALL], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(delay)
            p.send_signal(signal.SIGKILL)
            p.wait()
            if not out.exists():
                continue
            whole(qkv, out, c, f"killed after {delay}s", killed_pid=p.pid)
            if (out / "state.gguf").exists():
                rc, so, se = run(qkv, "train", "--text", data, "-o", out, "--steps", "40",
                                 "--resume", *SMALL, timeout=600)
                c.check(rc == 0 and "training loss" in so, f"resume after {delay}s: {se[-300:]}")
                whole(qkv, out, c, f"resumed after a kill at {delay}s", killed_pid=p.pid)
            elif (out / "tokenizer.gguf").exists():
                r = run(qkv, "train", "--text", data, "-o", out, "--steps", "40", "--resume",
                        *SMALL)
                c.refused(r, "state.gguf", "does not exist", what="resume without a state")

        # ---- a refused run leaves the earlier run's files alone ----
        out = tmp / "run"
        rc, so, se = run(qkv, "train", "--text", data, "-o", out, "--steps", "4", *SMALL,
                         timeout=600)
        if not c.check(rc == 0, f"first run: {se[-300:]}"):
            return c.report("interrupted")
        before = {p.name: p.read_bytes() for p in out.iterdir()}
        little = tmp / "little.txt"
        little.write_text("a b.\n\nc d.\n")
        c.refused(run(qkv, "train", "--text", little, "-o", out, "--steps", "4", *SMALL),
                  "too little text", what="a run on too little text")
        after = {p.name: p.read_bytes() for p in out.iterdir()}
        c.check(before == after, f"a refused run changed {sorted(k for k in after if before.get(k) != after[k])}")
        rc, so, se = run(qkv, "train", "--text", data, "-o", out, "--steps", "8", "--resume",
                         *SMALL, timeout=600)
        c.check(rc == 0, f"resume after a refused run: {se[-300:]}")
        c.check((out / "tokenizer.gguf").read_bytes() == before["tokenizer.gguf"],
                "the tokenizer changed across a resume")

        # ---- --resume past --steps reports the last loss ----
        rc, so, se = run(qkv, "train", "--text", data, "-o", out, "--steps", "6", "--resume",
                         *SMALL)
        m = re.search(r"training loss ([0-9.naif]+)", so)
        c.check(rc == 0 and m and float(m.group(1)) > 0,
                f"resume past --steps: loss {m.group(1) if m else None}: {so} {se[-200:]}")

        # ---- a tokenizer.gguf from another run is refused on --resume ----
        other = tmp / "other"
        data2 = tmp / "text2.txt"
        data2.write_text(text(salt="s"))
        rc, _, se = run(qkv, "train", "--text", data2, "-o", other, "--steps", "2", *SMALL,
                        timeout=600)
        c.check(rc == 0, f"second run: {se[-300:]}")
        if (other / "tokenizer.gguf").read_bytes() != (out / "tokenizer.gguf").read_bytes():
            shutil.copy(other / "tokenizer.gguf", out / "tokenizer.gguf")
            c.refused(run(qkv, "train", "--text", data, "-o", out, "--steps", "10", "--resume",
                          *SMALL), "tokenizer.gguf", "not the tokenizer",
                      what="resume with another run's tokenizer")
            (out / "tokenizer.gguf").write_bytes(before["tokenizer.gguf"])

        # ---- a failed checkpoint write leaves no temporary file ----
        (out / "state.gguf").chmod(0o444)
        r = run(qkv, "train", "--text", data, "-o", out, "--steps", "12", "--resume", *SMALL,
                timeout=600)
        c.refused(r, "state.gguf", "read-only", what="a checkpoint onto a read-only state.gguf")
        stray = [p.name for p in out.iterdir() if ".part" in p.name]
        c.check(stray == [], f"temporary files left after a failed write: {stray}")
        (out / "state.gguf").chmod(0o644)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return c.report("interrupted")


if __name__ == "__main__":
    sys.exit(main())
