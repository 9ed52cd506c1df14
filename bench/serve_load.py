#!/usr/bin/env python3
"""Aggregate decode throughput and time to first token of `qkv serve` under N concurrent streams.

usage: bench/serve_load.py QKV_BINARY [-m MODEL] [--streams 1,4,8] [--tokens 64] [--threads 2]
                           [--dot exact|int8] [--llama-server PATH]

For each stream count N it starts the server with --parallel N, lets N clients each stream one
greedy completion of --tokens tokens (ignore_eos, different prompts), and prints the aggregate
decode rate (all generated tokens / the wall time from the first request to the last token) and
the time-to-first-token p50/p99 over the clients.

With --llama-server PATH (llama.cpp's server, built outside the repository) the same load runs
against it too, on the same model file and with the same slots (-np N, -c N x ctx, -t threads),
alternating with qkv for each stream count, and the last column gives qkv's rate over its rate.
"""
import argparse
import http.client
import json
import pathlib
import socket
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests" / "serve"))
from serve_test import Server  # noqa: E402


def one_stream(port, prompt, n_tokens, out):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    t0 = time.perf_counter()
    c.request("POST", "/v1/completions", body=json.dumps({
        "prompt": prompt, "max_tokens": n_tokens, "temperature": 0, "ignore_eos": True,
        "stream": True, "stream_options": {"include_usage": True}}),
        headers={"Content-Type": "application/json"})
    r = c.getresponse()
    first, tokens, pieces, buf = None, 0, 0, b""
    while True:
        chunk = r.read1(65536) if hasattr(r, "read1") else r.read(1)
        if not chunk:
            break
        if first is None:
            first = time.perf_counter() - t0
        buf += chunk
        while b"\n\n" in buf:
            line, buf = buf.split(b"\n\n", 1)
            data = line[len(b"data: "):]
            if data.startswith(b"{"):
                j = json.loads(data)
                if j.get("usage"):
                    tokens = j["usage"]["completion_tokens"]
                elif j.get("choices") and j["choices"][0].get("text"):
                    pieces += 1  # a server that sends no usage: one token per text chunk
    out.append((first, tokens or pieces, time.perf_counter()))


class LlamaServer:
    """llama.cpp's llama-server on a free loopback port, until stop()."""

    def __init__(self, path, model, slots, threads, ctx):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.proc = subprocess.Popen(
            [path, "-m", model, "--port", str(self.port), "--host", "127.0.0.1", "-np",
             str(slots), "-t", str(threads), "-tb", str(threads), "-c", str(slots * ctx),
             "--no-webui"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                c.request("GET", "/health")
                if c.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError("llama-server did not become healthy in 120 s")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


def load(port, n, tokens):
    """Aggregate tokens/s and TTFT p50/p99 of n concurrent greedy streams."""
    one_stream(port, "warm up", 4, [])
    out = []
    t0 = time.perf_counter()
    threads = [threading.Thread(target=one_stream,
                                args=(port, f"Story {i}: once upon a time", tokens, out))
               for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = max(e for _, _, e in out) - t0
    ttft = sorted(f for f, _, _ in out)
    p99 = ttft[min(len(ttft) - 1, int(round(0.99 * (len(ttft) - 1))))]
    return sum(k for _, k, _ in out) / wall, statistics.median(ttft), p99


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("qkv")
    ap.add_argument("-m", "--model", default="")
    ap.add_argument("--streams", default="1,4,8")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ctx", type=int, default=0)
    ap.add_argument("--dot", default="exact", choices=["exact", "int8"],
                    help="qkv serve --dot: fp32 or 8-bit activations for quantized weights")
    ap.add_argument("--llama-server", default="", help="llama.cpp's llama-server, run alongside")
    a = ap.parse_args()
    peer = bool(a.llama_server)
    if peer and not a.model:
        sys.exit("--llama-server needs -m MODEL (a GGUF file both servers load)")
    print(f"{'streams':>7} {'tok/s':>9} {'x1':>6} {'ttft p50':>9} {'ttft p99':>9}" +
          (f" {'llama.cpp':>9} {'ttft p50':>9} {'qkv/l.cpp':>9}" if peer else ""))
    base = None
    for n in [int(x) for x in a.streams.split(",")]:
        args = ["--parallel", str(n), "--threads", str(a.threads), "--dot", a.dot]
        if a.model:
            args += ["-m", a.model]
        if a.ctx:
            args += ["--ctx", str(a.ctx)]
        srv = Server(a.qkv, *args)
        try:
            rate, p50, p99 = load(srv.port, n, a.tokens)
        finally:
            srv.stop()
        base = base or rate
        line = f"{n:>7} {rate:>9.1f} {rate / base:>6.2f} {p50:>9.3f} {p99:>9.3f}"
        if peer:
            ls = LlamaServer(a.llama_server, a.model, n, a.threads, a.ctx or 512)
            try:
                l_rate, l_p50, _ = load(ls.port, n, a.tokens)
            finally:
                ls.stop()
            line += f" {l_rate:>9.1f} {l_p50:>9.3f} {rate / l_rate:>9.2f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
