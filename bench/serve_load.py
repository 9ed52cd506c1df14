#!/usr/bin/env python3
"""Aggregate decode throughput and time to first token of `qkv serve` under N concurrent streams.

usage: bench/serve_load.py QKV_BINARY [-m MODEL] [--streams 1,4,8] [--tokens 64] [--threads 2]

For each stream count N it starts the server with --parallel N, lets N clients each stream one
greedy completion of --tokens tokens (ignore_eos, different prompts), and prints the aggregate
decode rate (all generated tokens / the wall time from the first request to the last token) and
the time-to-first-token p50/p99 over the clients.
"""
import argparse
import http.client
import json
import pathlib
import statistics
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
    first, tokens, buf = None, 0, b""
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
            if data != b"[DONE]":
                j = json.loads(data)
                if j.get("usage"):
                    tokens = j["usage"]["completion_tokens"]
    out.append((first, tokens, time.perf_counter()))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("qkv")
    ap.add_argument("-m", "--model", default="")
    ap.add_argument("--streams", default="1,4,8")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ctx", type=int, default=0)
    a = ap.parse_args()
    print(f"{'streams':>7} {'tok/s':>9} {'x1':>6} {'ttft p50':>9} {'ttft p99':>9}")
    base = None
    for n in [int(x) for x in a.streams.split(",")]:
        args = ["--parallel", str(n), "--threads", str(a.threads)]
        if a.model:
            args += ["-m", a.model]
        if a.ctx:
            args += ["--ctx", str(a.ctx)]
        srv = Server(a.qkv, *args)
        try:
            one_stream(srv.port, "warm up", 4, [])
            out = []
            t0 = time.perf_counter()
            threads = [threading.Thread(target=one_stream,
                                        args=(srv.port, f"Story {i}: once upon a time", a.tokens,
                                              out)) for i in range(n)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = max(e for _, _, e in out) - t0
            total = sum(k for _, k, _ in out)
            rate = total / wall
            base = base or rate
            ttft = sorted(f for f, _, _ in out)
            p99 = ttft[min(len(ttft) - 1, int(round(0.99 * (len(ttft) - 1))))]
            print(f"{n:>7} {rate:>9.1f} {rate / base:>6.2f} {statistics.median(ttft):>9.3f} "
                  f"{p99:>9.3f}", flush=True)
        finally:
            srv.stop()


if __name__ == "__main__":
    main()
