#!/usr/bin/env python3
"""Batch invariance of `qkv serve --dot int8` on quantized weights (../shared/fixtures/gguf-quant).

usage: serve_int8_test.py QKV_BINARY SHARED_DIR   (exit 77 = skipped: fixtures absent)

In the int8 mode the linear layers round activations to 8-bit blocks and multiply the quantized
weights in integers (kernels/quant/repack.h: one fp32 chain per output, whatever the number of
rows). A request's greedy tokens and their logprobs must therefore be bitwise the same whether it
runs alone or while other requests share its batched decode steps and its prompt is prefilled in
chunks between them, and its text must equal `qkv generate --dot int8 --temp 0` (Session::generate:
the whole prompt in one prefill, then one row per step: other row counts than the server's). A
kernel whose result moved with the batch would change some logprob's bits, or a token.
Files: the legacy formats (Q4_0, Q8_0, Q5_1, IQ4_NL) and the K formats (Q4_K_M = Q4_K + Q6_K, Q5_K,
IQ4_XS), so every interleaved layout serves.
"""
import pathlib
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "common"))
from serve_test import PROMPTS, Server, raw_payload  # noqa: E402
import shared_data  # noqa: E402
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "robustness"))
from robust_util import Gguf  # noqa: E402

FILES = ["Q4_K_M", "Q4_0", "Q8_0", "Q5_1", "IQ4_NL", "Q5_K", "IQ4_XS"]
CLIENTS = 6
REQUESTS_PER_CLIENT = 3


def main():
    qkv, shared = sys.argv[1], pathlib.Path(sys.argv[2])
    folder = shared / "fixtures" / "gguf-quant"
    shared_data.require(folder / "model-Q4_K_M.gguf", "gguf-quant fixtures")
    failures = []

    def check(cond, what):
        if not cond:
            failures.append(what)
            print("FAIL:", what)

    for name in FILES:
        model = str(folder / f"model-{name}.gguf")
        # Session::generate: the prompt in one prefill, then one row per decode step.
        generated = {}
        for i in (0, 2):
            p = subprocess.run([qkv, "generate", "-m", model, "--dot", "int8", "-p", PROMPTS[i],
                                "-n", "12", "--temp", "0", "--threads", "2"],
                               capture_output=True, timeout=120)
            out = p.stdout.decode("utf-8")
            check(p.returncode == 0 and out.startswith(PROMPTS[i]),
                  f"{name}: qkv generate failed: {p.stderr[-300:]!r}")
            generated[i] = out[len(PROMPTS[i]):].rstrip("\n")
        srv = Server(qkv, "-m", model, "--dot", "int8", "--parallel", "4", "--prefill-chunk", "8",
                     "--threads", "2")
        try:
            for i, want in generated.items():
                st, j, _, _ = srv.request("POST", "/v1/completions", {
                    "prompt": PROMPTS[i], "max_tokens": 12, "temperature": 0})
                got = j["choices"][0]["text"] if st == 200 else None
                check(got == want, f"{name}: completion of {PROMPTS[i][:30]!r} {got!r} != "
                                   f"generate's {want!r}")

            def body(i):
                return {"prompt": PROMPTS[i], "max_tokens": 8 + 3 * i, "temperature": 0,
                        "logprobs": 0, "stream": True}
            alone = {}
            for i in range(len(PROMPTS)):
                st, _, raw = srv.stream("/v1/completions", body(i))
                check(st == 200, f"{name}: alone {i}: status {st}")
                alone[i] = raw_payload(raw)
            results, errors = {}, []

            def client(c):
                try:
                    for r in range(REQUESTS_PER_CLIENT):
                        i = (c + r) % len(PROMPTS)
                        st, _, raw = srv.stream("/v1/completions", body(i))
                        results[(c, r)] = (i, st, raw_payload(raw))
                except Exception as e:  # noqa: BLE001
                    errors.append(repr(e))
            threads = [threading.Thread(target=client, args=(c,)) for c in range(CLIENTS)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=300)
            check(not errors, f"{name}: client errors under load: {errors[:3]}")
            check(len(results) == CLIENTS * REQUESTS_PER_CLIENT,
                  f"{name}: {len(results)} of {CLIENTS * REQUESTS_PER_CLIENT} responses")
            same = 0
            for (c, r), (i, st, payload) in sorted(results.items()):
                ok = st == 200 and payload == alone[i]
                same += ok
                check(ok, f"{name}: client {c} request {r}: under load {payload} != alone "
                          f"{alone[i]}")
            print(f"{name}: {same} of {len(results)} requests under load bitwise equal to alone")
        finally:
            rc = srv.stop()
            check(rc == 0, f"{name}: server exit code {rc}; log: {''.join(srv.log)[-500:]}")
    poisoned_token(qkv, folder, check)
    print(f"serve int8: {len(failures)} failure(s)")
    return 1 if failures else 0


def poisoned_token(qkv, folder, check):
    """One token makes the activations non-finite (its embedding row's first block has an
    infinite scale), and requests whose logit_bias makes it their first generated token run it in
    the decode step they share with another stream: that step fails, and the scheduler must end
    only the poisoned requests; the stream beside them goes on, bitwise as alone."""
    g = Gguf(folder / "model-Q8_0.gguf")
    emb = g.tensor("token_embd.weight")
    n_embd = emb["dims"][0]
    bad = 700
    row = n_embd // 32 * 34  # Q8_0: 34 bytes per 32 values
    emb["data"][bad * row:bad * row + 2] = struct.pack("<H", 0x7C00)  # f16 +inf
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "poisoned.gguf"
        g.write(path)
        srv = Server(qkv, "-m", str(path), "--dot", "int8", "--parallel", "2", "--prefill-chunk",
                     "8", "--threads", "2")
        try:
            body = {"prompt": PROMPTS[0], "max_tokens": 240, "temperature": 0, "logprobs": 0,
                    "stream": True, "ignore_eos": True}
            st, _, raw = srv.stream("/v1/completions", body)
            check(st == 200, f"poisoned model: the healthy stream alone: status {st}")
            alone = raw_payload(raw)
            # Poisoned requests one after another for as long as the healthy stream runs, so
            # that their prompts share rounds with its decode steps.
            done = threading.Event()
            answers = []

            def poison():
                i = 0
                while not done.is_set() or not answers:
                    ids = [1] + [40 + (i + k) % 50 for k in range(3)]
                    st3, j, _, _ = srv.request("POST", "/v1/completions", {
                        "prompt": ids, "max_tokens": 4, "temperature": 0,
                        "logit_bias": {str(bad): 100}})
                    answers.append(st3 == 500 and "non-finite" in j["error"]["message"])
                    i += 1
            t = threading.Thread(target=poison)
            t.start()
            while not answers:
                time.sleep(0.001)
            st2, _, raw2 = srv.stream("/v1/completions", body)
            done.set()
            t.join(timeout=120)
            check(answers and all(answers),
                  f"poisoned model: {sum(answers)} of {len(answers)} poisoned requests got the "
                  "non-finite error")
            check(st2 == 200 and raw_payload(raw2) == alone,
                  "poisoned model: the healthy stream beside the poisoned requests ended or "
                  f"changed: status {st2}, {raw2[-300:]!r}")
            print(f"poisoned token: {len(answers)} requests refused while a stream ran beside "
                  "them")
        finally:
            rc = srv.stop()
            check(rc == 0, f"poisoned model: server exit code {rc}")


if __name__ == "__main__":
    sys.exit(main())
