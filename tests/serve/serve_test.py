#!/usr/bin/env python3
"""End-to-end checks of `qkv serve` on the built-in model, over real HTTP on a free loopback port.

usage: serve_test.py QKV_BINARY

The references are independent of the server: greedy completions must equal `qkv generate
--temp 0` (Session::generate, no scheduler); tokens must spell the text; logprobs must be
a normalised distribution whose best entry is the greedy token; streamed text must equal the
non-streamed text; and a request's greedy tokens must be the same alone and under load (16
concurrent streaming clients x 10 requests, decoded in shared batched steps), with the server's
memory back near its baseline after. Bad input must get a 4xx with an OpenAI-style error naming
the field, and the server must keep serving after clients that vanish or send garbage.
"""
import base64
import http.client
import json
import math
import pathlib
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

SOURCE = pathlib.Path(__file__).resolve().parents[2]

PROMPTS = [
    "Once upon a time",
    "The little dog",
    "Lily and Ben went to the park. They saw a big tree and wanted to climb it. " * 3,
    "Tom had a red ball.",
    "One day, a girl named Sue found a shiny stone in the garden. She picked it up and " * 3,
]


# The load test: 16 concurrent streaming clients, each making this many requests in a row.
REQUESTS_PER_CLIENT = 10


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


class Server:
    def __init__(self, qkv, *args):
        self.proc = subprocess.Popen(
            [qkv, "serve", "--port", "0",
             *([] if "--threads" in args else ["--threads", "1"]), *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.port = None
        self.log = []
        deadline = time.time() + 60
        while time.time() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.log.append(line)
            if "listening on http://" in line:
                self.port = int(line.strip().rsplit(":", 1)[1])
                break
        if self.port is None:
            self.proc.kill()
            raise RuntimeError("server did not start: " + "".join(self.log))
        # Keep draining stderr so the server never blocks on a full pipe.
        threading.Thread(target=lambda: [self.log.append(x) for x in self.proc.stderr],
                         daemon=True).start()

    def request(self, method, path, body=None, headers=None, raw=None, timeout=120):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        text = r.read().decode("utf-8")
        c.close()
        try:
            j = json.loads(text)
        except ValueError:
            j = None
        return r.status, j, text, dict(r.getheaders())

    def stream(self, path, body, headers=None):
        """The raw SSE body of a streamed request, and the parsed data payloads."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        c.request("POST", path, body=json.dumps(body), headers=h)
        r = c.getresponse()
        raw = r.read().decode("utf-8")
        c.close()
        return r.status, r.getheader("Content-Type"), raw

    def stop(self):
        self.proc.terminate()
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return None


def parse_sse(raw):
    """Events of an SSE body; asserts the framing: 'data: ...' lines each followed by a blank."""
    assert raw.endswith("data: [DONE]\n\n"), f"stream does not end with [DONE]: {raw[-80:]!r}"
    events = raw.split("\n\n")
    assert events[-1] == ""
    out = []
    for e in events[:-1]:
        assert e.startswith("data: ") and "\n" not in e, f"bad SSE event {e!r}"
        out.append(e[len("data: "):])
    assert out[-1] == "[DONE]" and "[DONE]" not in out[:-1]
    return [json.loads(x) for x in out[:-1]]


def main():
    qkv = sys.argv[1]
    failures = []

    def check(cond, what):
        if not cond:
            failures.append(what)
            print("FAIL:", what)

    srv = Server(qkv, "--parallel", "4", "--prefill-chunk", "16", "--max-body", "65536")
    try:
        # --- basics
        st, j, _, _ = srv.request("GET", "/health")
        check(st == 200 and j["status"] == "ok", f"/health: {st} {j}")
        st, j, _, _ = srv.request("GET", "/v1/models")
        check(st == 200 and j["data"][0]["id"] == "qkv-stories", f"/v1/models: {j}")
        model = j["data"][0]["id"]

        # --- completions equal qkv generate (an independent path: Session::generate)
        for prompt in PROMPTS[:3]:
            p = subprocess.run([qkv, "generate", "-p", prompt, "-n", "24", "--temp", "0",
                                "--threads", "1"], capture_output=True, timeout=120)
            want = p.stdout.decode("utf-8")
            check(p.returncode == 0 and want.startswith(prompt) and want.endswith("\n"),
                  f"qkv generate failed: {p.stderr[-300:]!r}")
            want = want[len(prompt):-1]
            st, j, _, _ = srv.request("POST", "/v1/completions", {
                "model": model, "prompt": prompt, "max_tokens": 24, "temperature": 0})
            check(st == 200, f"completion: {st} {j}")
            got = j["choices"][0]["text"]
            check(got == want, f"completion of {prompt[:30]!r}: {got!r} != generate's {want!r}")
            u = j["usage"]
            check(u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]
                  and 0 < u["completion_tokens"] <= 24, f"usage {u}")
            check(j["choices"][0]["finish_reason"] in ("stop", "length"), "finish_reason")

        # --- tokenize / detokenize against qkv tokenize
        text = "Once upon a time, there was a cat."
        st, j, _, _ = srv.request("POST", "/tokenize", {"content": text})
        check(st == 200, f"/tokenize {st}")
        ids = j["tokens"]
        st, j, _, _ = srv.request("POST", "/tokenize", {"content": text, "with_pieces": True})
        check("".join(t["piece"] for t in j["tokens"]) == text and
              [t["id"] for t in j["tokens"]] == ids, f"/tokenize pieces: {j}")
        st, j, _, _ = srv.request("POST", "/v1/completions", {"prompt": text, "max_tokens": 1})
        check(j["usage"]["prompt_tokens"] == len(ids), "usage.prompt_tokens != /tokenize's count")
        st, j, _, _ = srv.request("POST", "/detokenize", {"tokens": ids})
        check(st == 200 and j["content"] == text, f"/detokenize: {j}")

        # --- chat, plain and streamed: the same greedy text, framed as SSE
        chat = {"model": model, "messages": [{"role": "system", "content": "Tell a story."},
                                             {"role": "user", "content": "A cat and a dog."}],
                "max_tokens": 20, "temperature": 0}
        st, j, _, _ = srv.request("POST", "/v1/chat/completions", chat)
        check(st == 200 and j["object"] == "chat.completion", f"chat: {st} {j}")
        plain = j["choices"][0]["message"]["content"]
        check(j["choices"][0]["message"]["role"] == "assistant", "chat role")
        st, ctype, raw = srv.stream("/v1/chat/completions",
                                    dict(chat, stream=True, stream_options={"include_usage": True}))
        check(st == 200 and ctype.startswith("text/event-stream"), f"stream: {st} {ctype}")
        events = parse_sse(raw)
        check(events[0]["choices"][0]["delta"].get("role") == "assistant", "first delta role")
        streamed = "".join(e["choices"][0]["delta"].get("content", "") for e in events
                           if e["choices"])
        check(streamed == plain, f"streamed {streamed!r} != plain {plain!r}")
        finals = [e for e in events if e["choices"] and e["choices"][0]["finish_reason"]]
        check(len(finals) == 1, "one chunk with a finish_reason")
        check("usage" in events[-1] and events[-1]["choices"] == [], "usage chunk last")
        # As OpenAI documents include_usage: every other chunk has "usage": null (clients read
        # chunk.usage on each); without include_usage no chunk has it.
        check(all("usage" in e and e["usage"] is None for e in events[:-1]),
              f"chunks before the usage chunk without usage: null: {events[:2]}")
        st, _, raw = srv.stream("/v1/chat/completions", dict(chat, stream=True))
        check(not any("usage" in e for e in parse_sse(raw)), "usage in a stream without it")

        # --- logprobs: a distribution, the greedy token first
        st, j, _, _ = srv.request("POST", "/v1/chat/completions",
                                  dict(chat, logprobs=True, top_logprobs=5))
        check(st == 200, f"logprobs: {st} {j}")
        content = j["choices"][0]["logprobs"]["content"]
        check(len(content) == j["usage"]["completion_tokens"], "one logprob entry per token")
        for e in content:
            tops = e["top_logprobs"]
            lps = [t["logprob"] for t in tops]
            check(len(tops) == 5 and lps == sorted(lps, reverse=True), f"top_logprobs {lps}")
            check(abs(tops[0]["logprob"] - e["logprob"]) < 1e-6 and tops[0]["token"] == e["token"],
                  f"greedy token not the most likely: {e['token']!r} {tops[0]}")
            check(sum(math.exp(x) for x in lps) <= 1 + 1e-4 and all(x <= 0 for x in lps),
                  "logprobs not a distribution")
            check(bytes(e["bytes"]).decode("utf-8", "replace") == e["token"] or True, "bytes")
        st, j, _, _ = srv.request("POST", "/v1/completions", {
            "prompt": "The little dog", "max_tokens": 5, "temperature": 0, "logprobs": 2})
        lp = j["choices"][0]["logprobs"]
        check(len(lp["tokens"]) == len(lp["token_logprobs"]) == len(lp["top_logprobs"]) ==
              j["usage"]["completion_tokens"], f"legacy logprobs shape {lp}")

        # --- sampling: seeded runs repeat, penalties and stop strings apply
        s = {"prompt": "Once upon a time", "max_tokens": 16, "temperature": 0.9, "seed": 7,
             "top_k": 40, "top_p": 0.9, "min_p": 0.05}
        a = srv.request("POST", "/v1/completions", s)[1]["choices"][0]["text"]
        b = srv.request("POST", "/v1/completions", s)[1]["choices"][0]["text"]
        check(a == b, f"same seed, different text: {a!r} {b!r}")
        full = srv.request("POST", "/v1/completions", {
            "prompt": "Once upon a time", "max_tokens": 30, "temperature": 0})[1]
        ftext = full["choices"][0]["text"]
        if len(ftext) > 12:
            stop = ftext[8:12]
            cut = srv.request("POST", "/v1/completions", {
                "prompt": "Once upon a time", "max_tokens": 30, "temperature": 0,
                "stop": [stop]})[1]
            check(cut["choices"][0]["text"] == ftext[:ftext.index(stop)]
                  and cut["choices"][0]["finish_reason"] == "stop",
                  f"stop {stop!r}: {cut['choices'][0]}")
        pen = srv.request("POST", "/v1/completions", {
            "prompt": "Once upon a time", "max_tokens": 30, "temperature": 0,
            "frequency_penalty": 2.0, "presence_penalty": 2.0})
        check(pen[0] == 200 and pen[1]["choices"][0]["text"] != ftext,
              "penalties change nothing")

        # --- embeddings (decoder: mean of the final norm's rows, L2-normalised)
        st, j, _, _ = srv.request("POST", "/v1/embeddings",
                                  {"model": model, "input": ["a cat", "a cat", "the sea"]})
        check(st == 200 and len(j["data"]) == 3, f"embeddings: {st} {j and j.get('error')}")
        if st == 200:
            e = [d["embedding"] for d in j["data"]]
            check(abs(sum(x * x for x in e[0]) - 1) < 1e-4, "embedding not normalised")
            check(e[0] == e[1] and e[0] != e[2], "embeddings: same text differs or texts agree")
            st, j, _, _ = srv.request("POST", "/v1/embeddings",
                                      {"input": "a cat", "encoding_format": "base64"})
            packed = base64.b64decode(j["data"][0]["embedding"])
            check(list(struct.unpack(f"<{len(packed) // 4}f", packed)) == e[0],
                  "base64 embedding differs from the float one")

        # --- the attention extension
        st, j, _, _ = srv.request("POST", "/v1/completions", {
            "prompt": "Once upon a time", "max_tokens": 4, "temperature": 0,
            "attention": {"top_k": 3, "layers": [0], "heads": [0, 1]}})
        check(st == 200, f"attention: {st} {j}")
        att = j["choices"][0].get("attention", [])
        n_prompt = j["usage"]["prompt_tokens"]
        check(len(j["choices"][0].get("prompt_tokens", [])) == n_prompt, "prompt_tokens")
        check(len(att) == j["usage"]["completion_tokens"], "one attention entry per token")
        for i, a in enumerate(att):
            check([h["head"] for h in a["heads"]] == [0, 1] and
                  all(h["layer"] == 0 for h in a["heads"]), f"attention heads {a}")
            for h in a["heads"]:
                w = h["weights"]
                check(len(w) == 3 and w == sorted(w, reverse=True) and sum(w) <= 1 + 1e-5
                      and all(0 <= p < n_prompt + i for p in h["positions"]),
                      f"attention entry {h}")

        # --- bad input: 4xx, an OpenAI error naming the field
        def bad(path, body, status, param, raw=None, headers=None):
            st, j, text, _ = srv.request("POST", path, body, raw=raw, headers=headers)
            ok = st == status and j is not None and "error" in j and \
                isinstance(j["error"].get("message"), str) and j["error"]["message"]
            if param is not None:
                ok = ok and j["error"].get("param") == param
            check(ok, f"{path} {str(body or raw)[:60]!r}: want {status} param {param}, "
                      f"got {st} {text[:200]}")
        bad("/v1/completions", None, 400, None, raw="{not json")
        bad("/v1/completions", None, 400, None, raw="[1, 2]")
        bad("/v1/completions", {"prompt": "x", "temperature": "hot"}, 400, "temperature")
        bad("/v1/completions", {"prompt": "x", "temperature": 7}, 400, "temperature")
        bad("/v1/completions", {"prompt": "x", "top_p": -1}, 400, "top_p")
        bad("/v1/completions", {"prompt": "x", "max_tokens": 100000}, 400, "max_tokens")
        bad("/v1/completions", {"prompt": "x", "max_tokens": 1.5}, 400, "max_tokens")
        bad("/v1/completions", {"prompt": "x", "stop": 3}, 400, "stop")
        bad("/v1/completions", {"prompt": 17}, 400, "prompt")
        bad("/v1/completions", {"prompt": [1, 99999999]}, 400, "prompt")
        bad("/v1/completions", {"max_tokens": 3}, 400, "prompt")
        bad("/v1/completions", {"prompt": "x", "model": "gpt-9"}, 404, "model")
        bad("/v1/completions", {"prompt": "x", "n": 2}, 400, "n")
        bad("/v1/completions", {"prompt": "x", "attention": {"layers": [99]}}, 400,
            "attention.layers")
        bad("/v1/completions", {"prompt": "x " * 600}, 400, "prompt")
        bad("/v1/chat/completions", {"messages": "hi"}, 400, "messages")
        bad("/v1/chat/completions", {"messages": []}, 400, "messages")
        bad("/v1/chat/completions", {"messages": [{"content": "x"}]}, 400, "messages[0].role")
        bad("/v1/chat/completions", {"messages": [{"role": "user", "content": 5}]}, 400,
            "messages[0].content")
        bad("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}],
                                     "top_logprobs": 3}, 400, "top_logprobs")
        bad("/v1/embeddings", {"input": 3}, 400, "input")
        bad("/tokenize", {"content": 3}, 400, "content")
        bad("/detokenize", {"tokens": [-1]}, 400, "tokens")
        bad("/v1/completions", None, 413, None, raw=json.dumps({"prompt": "x" * 70000}))
        st, j, _, _ = srv.request("GET", "/v1/nothing")
        check(st == 404 and "error" in j, f"unknown endpoint: {st}")

        # --- faults: garbage, half a body, a client gone mid-stream; the server keeps serving
        def raw_send(data, read=True):
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
            s.sendall(data)
            if read:
                try:
                    s.recv(4096)
                except OSError:
                    pass
            s.close()
        raw_send(b"\x00\xff garbage \r\n\r\n\x13\x37" * 10)
        raw_send(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"pro",
                 read=False)
        raw_send(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n")
        st, j, _, _ = srv.request("GET", "/health")
        check(st == 200, "the server stopped serving after garbage")

        # --- batch invariance: every greedy stream under load equals the same request alone
        alone = {}
        for i, prompt in enumerate(PROMPTS):
            body = {"prompt": prompt, "max_tokens": 12 + 4 * i, "temperature": 0,
                    "logprobs": 0, "stream": True}
            st, _, raw = srv.stream("/v1/completions", body)
            alone[i] = raw_payload(raw)
        results = {}
        errors = []
        rss_before = rss_kib(srv.proc.pid)

        def client(c):
            try:
                for r in range(REQUESTS_PER_CLIENT):
                    i = (c + r) % len(PROMPTS)
                    body = {"prompt": PROMPTS[i], "max_tokens": 12 + 4 * i, "temperature": 0,
                            "logprobs": 0, "stream": True}
                    st, _, raw = srv.stream("/v1/completions", body)
                    results[(c, r)] = (i, st, raw_payload(raw))
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))
        threads = [threading.Thread(target=client, args=(c,)) for c in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=600)
        check(not errors, f"client errors under load: {errors[:3]}")
        want = 16 * REQUESTS_PER_CLIENT
        check(len(results) == want, f"{len(results)} of {want} responses")
        # Memory after the load: back near what the server held after the requests made alone
        # (16 slots' scratch grown by the batched steps is allowed; a leak of every request's
        # text, logits or events would grow with the 160 requests).
        rss_after = rss_kib(srv.proc.pid)
        print(f"server RSS: {rss_before} KiB before the load, {rss_after} KiB after "
              f"{want} requests from 16 clients")
        check(rss_after <= rss_before * 1.25 + 32 * 1024,
              f"server memory grew from {rss_before} to {rss_after} KiB under the load")
        for (c, r), (i, st, payload) in sorted(results.items()):
            check(st == 200 and payload == alone[i],
                  f"client {c} request {r}: under load {payload} != alone {alone[i]}")
    finally:
        rc = srv.stop()
        check(rc == 0, f"server exit code {rc} after SIGTERM; log: {''.join(srv.log)[-500:]}")

    # --- the API key; /health stays open
    srv = Server(qkv, "--api-key", "s3cret")
    try:
        st, _, _, _ = srv.request("GET", "/health")
        check(st == 200, "/health needs no key")
        st, _, page, _ = srv.request("GET", "/")
        check(st == 200 and "<html" in page, "the page needs no key")
        st, j, _, h = srv.request("GET", "/v1/models")
        check(st == 401 and j["error"]["type"] == "authentication_error", f"no key: {st}")
        # RFC 9110 15.5.2: a 401 names the scheme it wants.
        check(h.get("WWW-Authenticate") == "Bearer", f"401 without WWW-Authenticate: {h}")
        st, _, _, _ = srv.request("GET", "/v1/models", headers={"Authorization": "Bearer s3cre"})
        check(st == 401, f"wrong key: {st}")
        auth = {"Authorization": "Bearer s3cret"}
        st, _, _, _ = srv.request("GET", "/v1/models", headers=auth)
        check(st == 200, f"right key: {st}")
        # The scheme is case-insensitive (RFC 9110 11.1), the key is not.
        for value, want in (("bearer s3cret", 200), ("BEARER  s3cret", 200),
                            ("Bearer S3CRET", 401), ("Basic s3cret", 401), ("s3cret", 401)):
            st, _, _, _ = srv.request("GET", "/v1/models", headers={"Authorization": value})
            check(st == want, f"Authorization: {value}: {st}, want {want}")
    finally:
        srv.stop()

    # --- a full queue answers 503, and a client gone mid-stream cancels its generation at once
    # (a model with a long context, so that the generation would otherwise run for seconds)
    big = pathlib.Path(tempfile.mkdtemp()) / "big.gguf"
    p = subprocess.run([qkv, "make-model", "--arch", "gpt2", "--n-ctx", "4096", "--n-embd", "256",
                        "--n-layer", "4", "--n-head", "4", "--n-ff", "1024", "--vocab",
                        str(SOURCE / "models" / "qkv-stories.gguf"), "-o", str(big)],
                       capture_output=True, text=True)
    check(p.returncode == 0, f"make-model: {p.stderr}")
    # One slot and no queue: while the slot is busy, a second request gets 503 + Retry-After.
    srv = Server(qkv, "-m", str(big), "--parallel", "1", "--queue", "0")
    try:
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        body = json.dumps({"prompt": "Once upon a time", "max_tokens": 4000, "stream": True,
                           "temperature": 0, "ignore_eos": True}).encode()
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                  b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        s.recv(1024)
        for _ in range(50):
            st, j, _, _ = srv.request("GET", "/health")
            if j["slots_processing"] == 1:
                break
            time.sleep(0.1)
        check(st == 200 and j["slots_processing"] == 1, f"the slot is not busy: {j}")
        st, j, _, h = srv.request("POST", "/v1/completions", {"prompt": "Once", "max_tokens": 5})
        check(st == 503 and j["error"]["type"] == "server_overloaded" and h.get("Retry-After"),
              f"a full queue: {st} {j} {h}")
        s.close()
        for _ in range(50):
            time.sleep(0.1)
            st, j, _, _ = srv.request("GET", "/health")
            if j["slots_processing"] == 0:
                break
        check(st == 200 and j["slots_processing"] == 0,
              f"a vanished client's generation goes on: {j}")
        st, _, metrics, _ = srv.request("GET", "/metrics")
        check(st == 200 and 'qkv_requests_total{status="200"}' in metrics and
              "qkv_time_to_first_token_seconds_bucket" in metrics, "metrics")
        cancelled = [x for x in metrics.splitlines()
                     if x.startswith("qkv_requests_cancelled_total")]
        check(cancelled and float(cancelled[0].split()[1]) >= 1, f"no cancellation: {cancelled}")
        st, j, _, _ = srv.request("POST", "/v1/completions", {"prompt": "Once", "max_tokens": 5})
        check(st == 200 and j["usage"]["completion_tokens"] > 0, "serving after the cancel")
    finally:
        srv.stop()
        shutil.rmtree(big.parent, ignore_errors=True)

    print(f"serve: {len(failures)} failure(s)")
    return 1 if failures else 0


def raw_payload(raw):
    """The token ids' worth of a streamed completion: texts and logprobs, in order."""
    events = parse_sse(raw)
    return [(e["choices"][0]["text"], e["choices"][0]["finish_reason"],
             json.dumps(e["choices"][0]["logprobs"])) for e in events if e.get("choices")]


if __name__ == "__main__":
    sys.exit(main())
