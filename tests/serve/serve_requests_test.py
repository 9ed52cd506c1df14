#!/usr/bin/env python3
"""Request shapes and hostile bodies against `qkv serve` on the built-in model, over real HTTP.

usage: serve_requests_test.py QKV_BINARY SHARED_DIR

What real clients send today (content parts, max_completion_tokens, logit_bias, response_format,
tools) and what hostile ones send (bodies nested a hundred thousand levels deep, unknown roles,
wrong types inside nested objects, 200 connections that stall mid-request, a 64 MiB chunked
body): every request either does what the field asks, checked
against an independent reference (the logprobs of the same request without the field), or gets a
4xx with an OpenAI-style error naming the field; and the server keeps serving.
"""
import json
import math
import pathlib
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time

from serve_test import Server, parse_sse, rss_kib

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "common"))
import shared_data  # noqa: E402

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"


def main():
    qkv, shared = sys.argv[1], pathlib.Path(sys.argv[2])
    failures = []

    def check(cond, what):
        if not cond:
            failures.append(what)
            print("FAIL:", what)

    srv = Server(qkv, "--parallel", "2")

    def bad(path, status, param, body=None, raw=None, words=()):
        """A 4xx naming `param` (None: no field), whose message has each of `words`."""
        st, j, text, _ = srv.request("POST", path, body, raw=raw)
        ok = st == status and j is not None and "error" in j and j["error"].get("message")
        ok = ok and j["error"].get("param") == param
        ok = ok and all(w in j["error"]["message"] for w in words)
        check(ok, f"{path} {str(body or raw)[:70]!r}: want {status} param {param} {words}, "
                  f"got {st} {text[:300]}")

    def alive(what):
        st, j, _, _ = srv.request("GET", "/health")
        check(st == 200 and j["status"] == "ok", f"the server stopped serving after {what}")
        return st == 200

    try:
        # --- deep nesting: the parser copes, but copying and rendering the value recursed once
        # per level and a few hundred KB of brackets inside a message overflowed the stack.
        for depth in (65, 1000, 100000):
            deep = b"[" * depth + b"]" * depth
            bad(CHAT, 400, None, raw=b'{"messages":[{"role":"user","content":"Hi","x":' + deep +
                b'}],"max_tokens":2}', words=("deeper than 64",))
            if not alive(f"a message nested {depth} deep"):
                return 1
        bad(COMPLETIONS, 400, None, raw=b'{"prompt":"x","stop":' + b"[" * 300000, words=("deeper",))
        # A number JSON allows but a double cannot hold was a 500 (the parser's overflow error).
        for num in (b"1e400", b"-1e400", b"1" + b"0" * 400):
            bad(COMPLETIONS, 400, None, raw=b'{"prompt": "x", "max_tokens": ' + num + b'}',
                words=("number out of range", "overflow"))
        bad("/tokenize", 400, None, raw=b'{"content":' + b'{"a":' * 100000 + b"1" +
            b"}" * 100001, words=("deeper",))
        # Brackets inside strings are text, not nesting; 64 levels (3 + 61) are allowed.
        st, j, _, _ = srv.request("POST", "/tokenize", {"content": "[{\\\"" * 5000})
        check(st == 200 and len(j["tokens"]) >= 5000, f"brackets in a string refused: {st}")
        st, j, _, _ = srv.request("POST", CHAT, {
            "messages": [{"role": "user", "content": "Hi", "x": json.loads("[" * 61 + "]" * 61)}],
            "max_tokens": 2})
        check(st == 200, f"64 levels refused: {st} {j}")
        alive("deep bodies")

        # --- logit_bias, against the logprobs of the same request without it (the model's own,
        # before any bias): banning the greedy token picks the runner-up, +100 on a token forces it.
        def token_id(piece):
            st, j, _, _ = srv.request("POST", "/tokenize", {"content": piece})
            return j["tokens"][0] if st == 200 and len(j["tokens"]) == 1 else None

        base = {"messages": [{"role": "user", "content": "Tell me a story."}], "max_tokens": 3,
                "temperature": 0, "logprobs": True, "top_logprobs": 5}
        st, j, _, _ = srv.request("POST", CHAT, base)
        first = j["choices"][0]["logprobs"]["content"][0]
        tops = first["top_logprobs"]
        ids = [token_id(t["token"]) for t in tops]
        check(st == 200 and None not in ids, f"top tokens are not single tokens: {tops}")
        for bias, want in ((-100, 1), (100, 4), (30, 3)):
            target = 0 if bias < 0 else want
            st, j, _, _ = srv.request("POST", CHAT, dict(base, logit_bias={str(ids[target]): bias}))
            got = j["choices"][0]["logprobs"]["content"][0] if st == 200 else {}
            check(got.get("token") == tops[want]["token"] and
                  math.isclose(got["logprob"], tops[want]["logprob"], abs_tol=1e-6),
                  f"logit_bias {bias} on {tops[target]['token']!r}: first token {got} != "
                  f"{tops[want]}")
        # A ban holds at every step and under sampling: the banned token never comes.
        st, j, _, _ = srv.request("POST", COMPLETIONS, {
            "prompt": "Once upon a time", "max_tokens": 40, "temperature": 1.5, "seed": 3,
            "logprobs": 0, "logit_bias": {str(token_id(" the")): -100, str(token_id(".")): -100}})
        toks = j["choices"][0]["logprobs"]["tokens"] if st == 200 else []
        check(st == 200 and len(toks) > 0 and " the" not in toks and "." not in toks,
              f"banned tokens generated: {st} {toks}")
        n_vocab = srv.request("GET", "/v1/models")[1]["data"][0]["meta"]["n_vocab"]
        msg = {"messages": [{"role": "user", "content": "x"}], "max_tokens": 1}
        bad(CHAT, 400, "logit_bias", dict(msg, logit_bias=[[1, 2]]), words=("an object",))
        bad(CHAT, 400, "logit_bias", dict(msg, logit_bias={"abc": 1}), words=('"abc"',))
        bad(CHAT, 400, "logit_bias", dict(msg, logit_bias={"-1": 1}), words=('"-1"',))
        bad(CHAT, 400, "logit_bias", dict(msg, logit_bias={str(n_vocab): 1}),
            words=(str(n_vocab),))
        bad(CHAT, 400, "logit_bias", dict(msg, logit_bias={"5": 101}), words=("[-100, 100]",))
        bad(CHAT, 400, "logit_bias", dict(msg, logit_bias={"5": "1"}), words=("[-100, 100]",))
        bad(CHAT, 400, "logit_bias", dict(msg, logit_bias={str(i): -100 for i in range(n_vocab)}),
            words=("every token",))
        alive("logit_bias")

        # --- slow senders: 200 connections opened at once that send half their headers or half
        # their body and stall. Each holds a thread until the read timeout (30 s); the server had
        # 74 and answered nobody else meanwhile. And a burst of connections overflowed the listen
        # backlog of 5: every sixth client waited a second for its SYN's retry.
        t0 = time.time()
        stalled = []
        for i in range(200):
            c = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
            c.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n" if i % 2 else
                      b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 900\r\n"
                      b"Content-Type: application/json\r\n\r\n{\"prompt\": \"Once")
            stalled.append(c)
        check(time.time() - t0 < 5, f"200 connections took {time.time() - t0:.1f} s to open")
        time.sleep(0.5)
        try:
            t0 = time.time()
            st, j, _, _ = srv.request("GET", "/health", timeout=10)
            st2, j2, _, _ = srv.request("POST", COMPLETIONS, {"prompt": "Once", "max_tokens": 3},
                                        timeout=10)
            check(st == 200 and st2 == 200 and j2["usage"]["completion_tokens"] > 0 and
                  time.time() - t0 < 5, f"with 200 stalled clients: {st} {st2} after "
                  f"{time.time() - t0:.1f} s")
        except OSError as e:
            check(False, f"no answer with 200 stalled clients: {e!r}")
        for c in stalled:
            c.close()
        alive("slow senders")

        # --- the body limit (1 MiB by default) holds for chunked bodies too: httplib's limit
        # covered Content-Length bodies only, and a chunked body of any size was read into memory
        # and served.
        def count_413():
            metrics = srv.request("GET", "/metrics")[2]
            lines = [x for x in metrics.splitlines() if x.startswith('qkv_requests_total{status="413"}')]
            return int(lines[0].split()[1]) if lines else 0

        before, rss_before = count_413(), rss_kib(srv.proc.pid)
        reply = b""
        c = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        try:
            c.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                      b"Content-Type: application/json\r\n\r\n")
            piece = b'{"prompt": "Once", "max_tokens": 1, "pad": "' + b"y" * 65536
            for _ in range(1024):  # 64 MiB
                c.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
                piece = b"y" * 65536
            c.sendall(b'3\r\n"}\n\r\n0\r\n\r\n')
            reply = c.recv(4096)
        except OSError:
            pass  # the server answered 413 and closed while the body was still coming
        c.close()
        time.sleep(0.2)
        grown = rss_kib(srv.proc.pid) - rss_before
        check(count_413() == before + 1 and not reply.startswith(b"HTTP/1.1 200") and
              grown < 16 * 1024, f"a 64 MiB chunked body: {reply[:100]!r}, server memory grew "
              f"{grown} KiB")
        # A Content-Length over the limit is answered as soon as the head is read: the whole
        # declared body was read and dropped first (10 GB here; a client that sends only a few
        # bytes of it waited for the read timeout, 30 s). The body is not read, so the
        # connection is closed after the answer.
        before = count_413()
        for target in (COMPLETIONS, "/nowhere"):
            c = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
            t0 = time.time()
            c.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 10000000000\r\n\r\n{\"pro" % target.encode())
            reply = b""
            c.settimeout(5)
            try:
                while True:
                    got = c.recv(65536)
                    if not got:
                        break
                    reply += got
            except OSError:
                pass
            took = time.time() - t0
            c.close()
            head, _, text = reply.partition(b"\r\n\r\n")
            j = json.loads(text) if text.startswith(b"{") else {}
            check(head.startswith(b"HTTP/1.1 413") and took < 2 and
                  b"\r\nConnection: close" in head and b"Keep-Alive" not in head and
                  j.get("error", {}).get("type") == "request_too_large" and
                  "1048576" in j["error"].get("message", ""),
                  f"Content-Length: 10 GB to {target}: {reply[:300]!r} after {took:.1f} s "
                  "(want a 413 naming the limit at once, then the connection closed)")
        check(count_413() == before + 2, f"413s counted: {count_413() - before}, want 2")
        # Past the limit the rest of a chunked body is read and dropped, so the connection's
        # next request is read from where the body ends: a 2 MiB chunked body, then a request on
        # the same connection.
        def response(c):
            data = b""
            while b"\r\n\r\n" not in data:
                data += c.recv(65536)
            head, _, rest = data.partition(b"\r\n\r\n")
            n = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            while len(rest) < n:
                rest += c.recv(65536)
            return head + b"\r\n\r\n" + rest

        body = json.dumps({"prompt": "Once", "max_tokens": 2}).encode()
        big = b'{"pad": "' + b"y" * (2 << 20) + b'"}'
        c = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
        c.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                  b"\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(big), big))
        first = response(c)
        c.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
                  % (len(body), body))
        second = response(c)
        c.close()
        check(first.startswith(b"HTTP/1.1 413") and b"request_too_large" in first and
              second.startswith(b"HTTP/1.1 200") and b'"completion_tokens":2' in second,
              f"2 MiB chunked body, then a request: {first[:300]!r} {second[:300]!r}")
        # Bodies in other forms: multipart (a 500 'bad_function_call' once bodies went through
        # the content reader) and compressed ones get a 400 that says what to send.
        for headers, raw, words in (
                ({"Content-Type": "multipart/form-data; boundary=xyz"},
                 b'--xyz\r\nContent-Disposition: form-data; name="prompt"\r\n\r\nOnce\r\n--xyz--'
                 b'\r\n', ("multipart",)),
                ({"Content-Type": "multipart/form-data"}, b"garbage", ("multipart",)),
                ({"Content-Encoding": "gzip"}, b'{"prompt": "Once"}', ("gzip",))):
            st, j, text, _ = srv.request("POST", COMPLETIONS, raw=raw, headers=headers)
            check(st == 400 and j and all(w in j["error"]["message"] for w in words),
                  f"{headers}: {st} {text[:200]}")
        alive("large bodies")

        # --- seeds: without one, repeated requests are different samples (every request used
        # seed 0 and gave the same text); with one, they repeat.
        sample = {"prompt": "Once upon a time", "max_tokens": 24, "temperature": 1.5}
        texts = [srv.request("POST", COMPLETIONS, sample)[1]["choices"][0]["text"]
                 for _ in range(4)]
        check(len(set(texts)) >= 2, f"4 unseeded samples are all the same: {texts[0]!r}")
        seeded = [srv.request("POST", COMPLETIONS, dict(sample, seed=s))[1]["choices"][0]["text"]
                  for s in (11, 11, 12)]
        check(seeded[0] == seeded[1] != seeded[2], f"seeds 11, 11, 12: {seeded}")

        # --- a prompt of token ids that ends inside a UTF-8 character: its bytes are the
        # prompt's; the reply's text is its own tokens' text (they leaked in as U+FFFD)
        st, j, _, _ = srv.request("POST", "/tokenize", {"content": "Once upon a time \U0001F431"})
        ids = j["tokens"]
        check(len(ids) >= 3, f"the cat emoji is one token: {ids}")
        for cut in (1, 2, 3):
            body = {"prompt": ids[:-cut], "max_tokens": 4, "temperature": 0, "logprobs": 0}
            st, j, text, _ = srv.request("POST", COMPLETIONS, body)
            c = j["choices"][0] if st == 200 else {}
            check(st == 200 and c["text"] == "".join(c["logprobs"]["tokens"]) and
                  "\ufffd" not in c["text"], f"prompt ending {cut} byte(s) short of a character: {text[:300]}")
            st, _, raw = srv.stream(COMPLETIONS, dict(body, stream=True))
            streamed = "".join(e["choices"][0]["text"] for e in parse_sse(raw) if e["choices"])
            check(c and streamed == c["text"], f"streamed {streamed!r} != {c.get('text')!r}")

        # --- request shapes of current clients, each against the plain request it stands for
        def greedy(body, path=CHAT):
            st, j, text, _ = srv.request("POST", path, dict(body, temperature=0))
            check(st == 200, f"{str(body)[:80]}: {st} {text[:300]}")
            if st != 200:
                return None, None, None
            return (j["choices"][0]["message"]["content"], j["usage"]["prompt_tokens"],
                    j["usage"]["completion_tokens"])

        story = {"messages": [{"role": "system", "content": "Tell a story."},
                              {"role": "user", "content": "A cat and a dog."}], "max_tokens": 12}
        want = greedy(story)
        parts = {"messages": [{"role": "system", "content": [{"type": "text", "text": "Tell a"},
                                                             {"type": "text", "text": "story."}]},
                              {"role": "user", "content": [{"type": "text",
                                                            "text": "A cat and a dog."}]}],
                 "max_tokens": 12}
        # Text parts are joined one per line, as llama-server and vLLM join them (they were
        # run together: "Tell astory.").
        lines = {"messages": [dict(story["messages"][0], content="Tell a\nstory."),
                              story["messages"][1]], "max_tokens": 12}
        check(greedy(parts) == greedy(lines), "content parts differ from their text, one per line")
        # "developer" is the newer name of "system".
        dev = {"messages": [dict(story["messages"][0], role="developer"), story["messages"][1]],
               "max_tokens": 12}
        check(greedy(dev) == want, "a developer message differs from the same system message")
        # max_completion_tokens is the newer name of max_tokens and wins when both are given.
        both = dict(story, max_tokens=9, max_completion_tokens=3, ignore_eos=True)
        check(greedy(both)[2] == 3, "max_completion_tokens is not the limit")
        bad(CHAT, 400, "max_completion_tokens", dict(story, max_completion_tokens=100000),
            words=("'max_completion_tokens' = 100000", "context"))
        # Fields that are accepted and have no effect on the text.
        check(greedy(dict(story, user="user-1234", response_format={"type": "text"},
                          tools=[], tool_choice="none")) == want, "accepted fields change the text")
        check(greedy(dict(story, tools=[{"type": "function", "function": {"name": "f"}}],
                          tool_choice="none")) == want, "tools with tool_choice none")

        # --- a last assistant message: by default it is a finished turn and the reply is a new
        # one (OpenAI's API, vLLM); with continue_final_message (vLLM's and llama-server's field,
        # transformers' argument) the reply continues it. The prompts are ChatML written out
        # here (the built-in model has no template), the replies compared with completions of
        # those prompts' tokens.
        def chat_ml(turns, open_last):
            text = "".join(f"<|im_start|>{r}\n{c}<|im_end|>\n" for r, c in turns[:-1])
            r, c = turns[-1]
            return text + (f"<|im_start|>{r}\n{c}" if open_last else
                           f"<|im_start|>{r}\n{c}<|im_end|>\n<|im_start|>assistant\n")

        turns = [("user", "Tell me a story."), ("assistant", "Once upon a time, a little")]
        convo = {"messages": [{"role": r, "content": c} for r, c in turns], "max_tokens": 8,
                 "temperature": 0, "ignore_eos": True}
        for extra, open_last in (({}, False), ({"continue_final_message": True}, True),
                                 ({"continue_final_message": True,
                                   "add_generation_prompt": False}, True)):
            ids = srv.request("POST", "/tokenize", {"content": chat_ml(turns, open_last)})[1][
                "tokens"]
            ref = srv.request("POST", COMPLETIONS, {"prompt": ids, "max_tokens": 8,
                                                    "temperature": 0, "ignore_eos": True})[1]
            st, j, text, _ = srv.request("POST", CHAT, dict(convo, **extra))
            check(st == 200 and j["usage"]["prompt_tokens"] == len(ids) and
                  j["choices"][0]["message"]["content"] == ref["choices"][0]["text"],
                  f"last assistant message, {extra}: {text[:300]} vs {ref}")
        # Continuing an empty message is replying: the generation prompt, no empty turn.
        st, j, _, _ = srv.request("POST", CHAT, dict(convo, continue_final_message=True, messages=[
            {"role": "user", "content": "Tell me a story."}, {"role": "assistant", "content": ""}]))
        st2, j2, _, _ = srv.request("POST", CHAT, dict(convo, messages=[
            {"role": "user", "content": "Tell me a story."}]))
        check(st == st2 == 200 and j["choices"] == j2["choices"] and
              j["usage"]["prompt_tokens"] == j2["usage"]["prompt_tokens"],
              f"continuing an empty assistant message: {j} vs {j2}")
        bad(CHAT, 400, "continue_final_message", dict(convo, continue_final_message=True,
                                                      messages=convo["messages"][:1]),
            words=("user",))
        bad(CHAT, 400, "continue_final_message", dict(convo, continue_final_message=True,
                                                      add_generation_prompt=True))
        bad(CHAT, 400, "continue_final_message", dict(convo, continue_final_message="yes"))

        # --- fields the server cannot honour, and wrong types inside nested objects: a 400
        # naming the field (they were ignored: a client asking for JSON got prose)
        msg = {"messages": [{"role": "user", "content": "x"}], "max_tokens": 1}
        for role in ("alien", "System", "model", ""):
            bad(CHAT, 400, "messages[0].role",
                {"messages": [{"role": role, "content": "x"}], "max_tokens": 1}, words=("tool",))
        bad(CHAT, 400, "messages[1].role", {"messages": [{"role": "user", "content": "x"},
                                                          {"role": "bot", "content": "y"}]})
        bad(CHAT, 400, "response_format.type", dict(msg, response_format={"type": "json_object"}),
            words=("json_object", "constrained"))
        bad(CHAT, 400, "response_format.type", dict(msg, response_format={
            "type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}))
        bad(CHAT, 400, "response_format.type", dict(msg, response_format={}))
        bad(CHAT, 400, "response_format", dict(msg, response_format="json"))
        tool = {"type": "function", "function": {"name": "get_weather", "parameters": {}}}
        bad(CHAT, 400, "tools", dict(msg, tools=[tool]), words=("tool calls",))
        bad(CHAT, 400, "tools", dict(msg, tools=[tool], tool_choice="auto"))
        bad(CHAT, 400, "tools", dict(msg, tools={"a": 1}))
        bad(CHAT, 400, "tool_choice", dict(msg, tool_choice="required"))
        bad(CHAT, 400, "tool_choice", dict(msg, tools=[tool], tool_choice={
            "type": "function", "function": {"name": "get_weather"}}))
        bad(CHAT, 400, "user", dict(msg, user=5))
        for part in ({"type": 5, "text": "x"}, {"type": None, "text": "x"}, {"type": ["text"]},
                     {"text": "x"}, {"type": "text", "text": 5}, {"type": "image_url"}):
            bad(CHAT, 400, "messages[0].content", dict(msg, messages=[
                {"role": "user", "content": [part]}]), words=("parts",))
        # The deprecated names of tools (functions, function_call) were ignored whatever they
        # held: a client that offered functions waited for a call that could not come.
        fn = {"name": "get_weather", "parameters": {"type": "object"}}
        bad(CHAT, 400, "functions", dict(msg, functions=[fn]), words=("function calls",))
        bad(CHAT, 400, "functions", dict(msg, functions=[fn], function_call="auto"))
        bad(CHAT, 400, "functions", dict(msg, functions="get_weather"))
        bad(CHAT, 400, "function_call", dict(msg, function_call={"name": "get_weather"}))
        bad(CHAT, 400, "function_call", dict(msg, function_call=1))
        bad(CHAT, 400, "parallel_tool_calls", dict(msg, parallel_tool_calls="yes"))
        check(greedy(dict(story, functions=[fn], function_call="none",
                          parallel_tool_calls=False)) == want,
              "functions with function_call none change the text")
        bad("/v1/embeddings", 400, "user", {"input": "a cat", "user": ["x"]})
        bad(CHAT, 400, "stream_options.include_usage",
            dict(msg, stream=True, stream_options={"include_usage": "yes"}))
        bad(CHAT, 400, "attention.top_k", dict(msg, attention={"top_k": 0}),
            words=("'attention.top_k' = 0",))
        # Completions and embeddings: a batch of prompts, fill in the middle, best_of and
        # shortened embeddings were served as something else (the first text, a plain
        # completion, one completion, full-size vectors) or with a misleading error.
        comp = {"prompt": "Once", "max_tokens": 1}
        bad(COMPLETIONS, 400, "prompt", dict(comp, prompt=["a", "b"]), words=("2 prompts",))
        bad(COMPLETIONS, 400, "prompt", dict(comp, prompt=[[1, 2], [3]]), words=("2 prompts",))
        bad(COMPLETIONS, 400, "suffix", dict(comp, suffix=" the end."))
        bad(COMPLETIONS, 400, "best_of", dict(comp, best_of=3))
        n_embd = srv.request("GET", "/v1/models")[1]["data"][0]["meta"]["n_embd"]
        bad("/v1/embeddings", 400, "dimensions", {"input": "a cat", "dimensions": 8},
            words=(str(n_embd),))
        st, j, _, _ = srv.request("POST", "/v1/embeddings", {"input": "a cat",
                                                             "dimensions": n_embd})
        check(st == 200 and len(j["data"][0]["embedding"]) == n_embd, f"dimensions = n_embd: {st}")
        for extra in ({"suffix": ""}, {"best_of": 1}, {"prompt": ["Once"]}):
            st, _, text, _ = srv.request("POST", COMPLETIONS, dict(comp, **extra))
            check(st == 200, f"{extra}: {st} {text[:200]}")
        alive("unsupported fields")
    finally:
        rc = srv.stop()
        check(rc == 0, f"server exit code {rc} after SIGTERM; log: {''.join(srv.log)[-500:]}")

    end_of_turn(qkv, shared, check)
    vanished_client(qkv, check)
    template_bos(qkv, shared, check)
    embedding_token_ids(qkv, shared, check)
    echo_prompt_logprobs(qkv, shared, check)
    print(f"serve requests: {len(failures)} failure(s)")
    return 1 if failures else 0


def end_of_turn(qkv, shared, check):
    """A reply ends at the token that ends a turn, not only at EOS. A random model with the real
    Qwen2 vocabulary (EOS <|endoftext|>, turns ending in the control token <|im_end|>), made to
    emit <|im_end|> first with logit_bias: it ran on to max_tokens (llama-server stops there)."""
    vocab = shared / "vocab-gguf" / "ggml-vocab-qwen2.gguf"
    if not vocab.is_file():
        if shared_data.shared_required():
            check(False, f"{vocab} is absent and QKV_REQUIRE_SHARED is set")
        else:
            print(f"skipped the end-of-turn check: {vocab} is absent")
        return
    folder = pathlib.Path(tempfile.mkdtemp())
    model = folder / "qwen2-vocab.gguf"
    p = subprocess.run([qkv, "make-model", "--arch", "qwen2", "--n-ctx", "256", "--n-embd", "32",
                        "--n-layer", "1", "--n-head", "2", "--n-ff", "64", "--vocab", str(vocab),
                        "-o", str(model)], capture_output=True, text=True)
    check(p.returncode == 0, f"make-model: {p.stderr}")
    srv = Server(qkv, "-m", str(model), "--parallel", "1")
    try:
        def one(text):
            st, j, _, _ = srv.request("POST", "/tokenize", {"content": text})
            check(st == 200 and len(j["tokens"]) == 1, f"{text} is not one token: {j}")
            return j["tokens"][0]

        chat = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 6,
                "temperature": 0}
        for text, ends in (("<|im_end|>", True), ("<|endoftext|>", True), ("Hello", False)):
            body = dict(chat, logit_bias={str(one(text)): 100})
            st, j, raw, _ = srv.request("POST", CHAT, body)
            c = j["choices"][0] if st == 200 else {}
            want = ("stop", 0) if ends else ("length", 6)
            check((c.get("finish_reason"), j["usage"]["completion_tokens"] if c else None) == want
                  and (c["message"]["content"] == "") == ends,
                  f"{text} first: want {want}, got {raw[:300]}")
            st, _, raw = srv.stream(CHAT, dict(body, stream=True))
            finals = [e["choices"][0]["finish_reason"] for e in parse_sse(raw) if e["choices"]]
            check(finals[-1] == want[0], f"{text} first, streamed: {finals}")
        # ignore_eos goes past the end of a turn too.
        st, j, raw, _ = srv.request("POST", CHAT, dict(chat, ignore_eos=True, logit_bias={
            str(one("<|im_end|>")): 100}))
        check(st == 200 and j["choices"][0]["finish_reason"] == "length",
              f"ignore_eos at <|im_end|>: {raw[:300]}")
        # /tokenize's pieces: text, or the bytes of a piece that is part of a character (as
        # llama-server writes them; they came as U+FFFD and could not be put back together).
        for text in ("\U0001F9CB tea", "caf\u00e9 \u4e2d\u6587", "<|im_start|>"):
            st, j, raw, _ = srv.request("POST", "/tokenize", {"content": text, "with_pieces": True})
            pieces = [t["piece"] for t in j["tokens"]] if st == 200 else []
            data = b"".join(p.encode() if isinstance(p, str) else bytes(p) for p in pieces)
            check(st == 200 and data == text.encode() and "\ufffd" not in str(pieces) and
                  (any(isinstance(p, list) for p in pieces) == (text[0] == "\U0001F9CB")),
                  f"/tokenize {text!r} with pieces: {raw[:300]}")
        # /detokenize gives /tokenize's text back, special tokens written out (as llama-server
        # and Hugging Face's decode write them; they were left out).
        for text in ("<|im_start|>user\nHi \U0001F9CB<|im_end|>\n", "<|endoftext|>a"):
            ids = srv.request("POST", "/tokenize", {"content": text})[1]["tokens"]
            st, j, raw, _ = srv.request("POST", "/detokenize", {"tokens": ids})
            check(st == 200 and j["content"] == text, f"/detokenize {ids}: {raw[:200]}")
        # A completion prompt written in the chat format (clients that format the turns
        # themselves) gets the control tokens it names, as llama-server and vLLM tokenize it:
        # <|im_start|> was read as the text "<", "|", "im", ... which the model never saw.
        st, j, raw, _ = srv.request("POST", COMPLETIONS, {
            "prompt": "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", "max_tokens": 1,
            "attention": {"top_k": 1, "layers": [0], "heads": [0]}})
        pieces = j["choices"][0]["prompt_tokens"] if st == 200 else []
        check(pieces[:1] == ["<|im_start|>"] and pieces.count("<|im_start|>") == 2 and
              pieces.count("<|im_end|>") == 1, f"chat-format completion prompt: {pieces} {raw[:200]}")
    finally:
        srv.stop()
        shutil.rmtree(folder, ignore_errors=True)


def embedding_token_ids(qkv, shared, check):
    """/v1/embeddings takes OpenAI's four input forms: a string, strings, an array of token ids
    and arrays of token ids (clients that count tokens themselves, LangChain's OpenAIEmbeddings
    by default, send ids; they were a 400). Ids are used as given: the ids /tokenize gives for a
    text (with its special tokens) embed as the text does, on a decoder (the built-in model) and
    an encoder (bert-tiny, [CLS] ... [SEP])."""
    models = [None]
    bert = shared / "fixtures" / "hf" / "bert-tiny"
    if bert.is_dir():
        models.append(bert)
    elif shared_data.shared_required():
        check(False, f"{bert} is absent and QKV_REQUIRE_SHARED is set")
    for model in models:
        srv = Server(qkv, "--parallel", "1", *(["-m", str(model)] if model else []))
        try:
            def embed(inp):
                st, j, text, _ = srv.request("POST", "/v1/embeddings", {"input": inp})
                check(st == 200, f"{model}: input {str(inp)[:60]}: {st} {text[:200]}")
                return ([d["embedding"] for d in j["data"]], j["usage"]["prompt_tokens"]) \
                    if st == 200 else ([], 0)

            texts = ["a cat sat", "the sea"]
            ids = [srv.request("POST", "/tokenize", {"content": t, "add_special": True})[1]
                   ["tokens"] for t in texts]
            by_text, n_text = embed(texts)
            by_ids, n_ids = embed(ids)
            check(by_text and by_ids == by_text and n_ids == n_text == len(ids[0]) + len(ids[1]),
                  f"{model}: arrays of token ids {ids} embed differently from their texts")
            one, _ = embed(ids[0])
            check(by_text and one == by_text[:1], f"{model}: one array of token ids")
            for inp, word in (([ids[0], "the sea"], "one form"), (["a", 3], "one form"),
                              ([1.5], "1.5"), ([-1], "-1"), ([[]], "no tokens"), ([], "empty"),
                              ([[0, 10 ** 9]], str(10 ** 9))):
                st, j, text, _ = srv.request("POST", "/v1/embeddings", {"input": inp})
                check(st == 400 and j["error"]["param"] == "input" and
                      word in j["error"]["message"], f"{model}: input {inp}: {st} {text[:200]}")
        finally:
            srv.stop()


def echo_prompt_logprobs(qkv, shared, check):
    """/v1/completions with echo: the reply's text starts with the prompt, and with logprobs
    every prompt token's logprob under the tokens before it comes first (the first one null), as
    lm-eval-harness's loglikelihood requests (echo, logprobs, max_tokens 0) read them. The
    expected logprobs are transformers' (llama-tiny's outputs: logits and log-sum-exp of every
    position of its first prompt); prompt chunks of 4 so that a chunk's last row scores the
    next chunk's first token."""
    hf = shared / "fixtures" / "hf" / "llama-tiny"
    if not (hf / "outputs.safetensors").is_file():
        check(not shared_data.shared_required(), f"{hf} is absent and QKV_REQUIRE_SHARED is set")
        print("skipped the echo checks: ../shared is absent")
        return
    data = (hf / "outputs.safetensors").read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])

    def tensor(name):
        t = header[name]
        a, b = t["data_offsets"]
        raw = data[8 + n + a:8 + n + b]
        return struct.unpack(f"<{len(raw) // 4}{'f' if t['dtype'] == 'F32' else 'i'}", raw)
    ids, logits, lse = tensor("p0.ids"), tensor("p0.logits"), tensor("p0.logsumexp")
    n_vocab = header["p0.logits"]["shape"][1]
    want = [logits[(i - 1) * n_vocab + ids[i]] - lse[i - 1] for i in range(1, len(ids))]
    srv = Server(qkv, "-m", str(hf), "--parallel", "2", "--prefill-chunk", "4")
    try:
        body = {"prompt": list(ids), "max_tokens": 0, "echo": True, "logprobs": 2,
                "temperature": 0}
        st, j, text, _ = srv.request("POST", COMPLETIONS, body)
        lp = j["choices"][0]["logprobs"] if st == 200 else {}
        got = lp.get("token_logprobs", [])
        check(st == 200 and len(got) == len(ids) and got[0] is None and
              lp["top_logprobs"][0] is None and j["usage"]["completion_tokens"] == 0 and
              j["choices"][0]["finish_reason"] == "length",
              f"echo, max_tokens 0: {st} {text[:300]}")
        if len(got) == len(ids):
            worst = max(abs(g - w) for g, w in zip(got[1:], want))
            check(worst < 1e-4, f"echo: prompt logprobs differ from transformers' by {worst}")
            # The top logprob of each position is at least the prompt token's, and 2 are given.
            check(all(len(t) == 2 and max(t.values()) >= g - 1e-6
                      for t, g in zip(lp["top_logprobs"][1:], got[1:])),
                  f"echo: top logprobs {lp['top_logprobs'][:3]}")
        # Echo with generation: the text is the prompt's then the same reply as without echo.
        st, j, _, _ = srv.request("POST", COMPLETIONS, {
            "prompt": "Once upon a time", "max_tokens": 4, "temperature": 0, "logprobs": 1})
        plain = j["choices"][0] if st == 200 else {}
        st, j, text, _ = srv.request("POST", COMPLETIONS, {
            "prompt": "Once upon a time", "max_tokens": 4, "temperature": 0, "logprobs": 1,
            "echo": True})
        ch = j["choices"][0] if st == 200 else {}
        n_prompt = j["usage"]["prompt_tokens"] if st == 200 else 0
        check(st == 200 and plain and ch["text"] == "Once upon a time" + plain["text"] and
              ch["logprobs"]["tokens"][n_prompt:] == plain["logprobs"]["tokens"] and
              len(ch["logprobs"]["token_logprobs"]) == n_prompt + 4,
              f"echo with 4 tokens: {text[:300]} against {plain}")
        # Streamed: one chunk with the prompt's text and logprobs, then the reply's chunks.
        st, _, raw = srv.stream(COMPLETIONS, {
            "prompt": "Once upon a time", "max_tokens": 4, "temperature": 0, "logprobs": 1,
            "echo": True, "stream": True})
        chunks = [e["choices"][0] for e in parse_sse(raw) if e.get("choices")]
        check(st == 200 and chunks and chunks[0]["text"] == "Once upon a time" and
              chunks[0]["logprobs"]["tokens"] == ch["logprobs"]["tokens"][:n_prompt] and
              "".join(c["text"] for c in chunks) == ch.get("text"),
              f"streamed echo: {chunks[:3]}")
        # Echo without logprobs needs no prompt scoring: the text only.
        st, j, text, _ = srv.request("POST", COMPLETIONS, {
            "prompt": "Once upon a time", "max_tokens": 0, "echo": True})
        check(st == 200 and j["choices"][0]["text"] == "Once upon a time" and
              j["choices"][0]["logprobs"] is None, f"echo without logprobs: {st} {text[:200]}")
        for bad in ({"prompt": "Once", "max_tokens": 0},
                    {"prompt": "Once", "max_completion_tokens": 0}):
            st, j, text, _ = srv.request("POST", COMPLETIONS, bad)
            check(st == 400 and "echo" in j["error"]["message"], f"{bad}: {st} {text[:200]}")
        st, j, text, _ = srv.request("POST", "/v1/chat/completions", {
            "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 0})
        check(st == 400 and j["error"]["param"] == "max_tokens", f"chat max_tokens 0: {st}")
    finally:
        rc = srv.stop()
        check(rc == 0, f"echo: server exit code {rc}")


def template_bos(qkv, shared, check):
    """--template gets the model's bos_token and eos_token too. Llama 3.1's template writes
    {{ bos_token }} first (transformers renders it; llama-server's prompt has it); with
    --template the server passed an empty one, so the prompt began without <|begin_of_text|>."""
    vocab = shared / "vocab-gguf" / "ggml-vocab-llama-bpe.gguf"
    template = shared / "chat-templates" / "meta-llama-Llama-3.1-8B-Instruct.jinja"
    if not (vocab.is_file() and template.is_file()):
        if shared_data.shared_required():
            check(False, f"{vocab} or {template} is absent and QKV_REQUIRE_SHARED is set")
        else:
            print("skipped the --template BOS check: ../shared is absent")
        return
    folder = pathlib.Path(tempfile.mkdtemp())
    model = folder / "llama3-vocab.gguf"
    p = subprocess.run([qkv, "make-model", "--arch", "llama", "--n-ctx", "256", "--n-embd", "32",
                        "--n-layer", "1", "--n-head", "2", "--n-ff", "64", "--vocab", str(vocab),
                        "-o", str(model)], capture_output=True, text=True)
    check(p.returncode == 0, f"make-model: {p.stderr}")
    srv = Server(qkv, "-m", str(model), "--template", str(template), "--parallel", "1")
    try:
        st, j, text, _ = srv.request("POST", CHAT, {
            "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1,
            "attention": {"top_k": 1, "layers": [0], "heads": [0]}})
        pieces = j["choices"][0]["prompt_tokens"] if st == 200 else []
        check(pieces[:1] == ["<|begin_of_text|>"] and pieces.count("<|begin_of_text|>") == 1 and
              "<|eot_id|>" in pieces, f"--template prompt: {st} {pieces[:6]} {text[:200]}")
    finally:
        srv.stop()
        shutil.rmtree(folder, ignore_errors=True)


def vanished_client(qkv, check):
    """A client that gives up on a request that is not streamed frees its slot at once: it went
    on generating to max_tokens (and a client retrying on a timeout doubled the work), as a
    stream's client gone before its first token does. A model with a long context, prompts read one
    token per pass, so that the work would otherwise run for many seconds."""
    folder = pathlib.Path(tempfile.mkdtemp())
    big = folder / "big.gguf"
    p = subprocess.run([qkv, "make-model", "--arch", "gpt2", "--n-ctx", "4096", "--n-embd", "256",
                        "--n-layer", "4", "--n-head", "4", "--n-ff", "1024", "--vocab",
                        str(pathlib.Path(__file__).resolve().parents[2] / "models" /
                            "qkv-stories.gguf"), "-o", str(big)], capture_output=True, text=True)
    check(p.returncode == 0, f"make-model: {p.stderr}")
    srv = Server(qkv, "-m", str(big), "--parallel", "1", "--prefill-chunk", "1")
    try:
        def health():
            return srv.request("GET", "/health")[1]

        for path, body in ((COMPLETIONS, {"prompt": "Once upon a time"}),
                           (CHAT, {"messages": [{"role": "user", "content": "Hi"}]})):
            body = json.dumps(dict(body, max_tokens=4000, temperature=0, ignore_eos=True)).encode()
            c = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
            c.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: %d\r\n\r\n%s" % (path.encode(), len(body), body))
            for _ in range(100):
                if health()["slots_processing"] == 1:
                    break
                time.sleep(0.05)
            check(health()["slots_processing"] == 1, f"{path}: the slot is not busy")
            c.close()
            t0 = time.time()
            while health()["slots_processing"] != 0 and time.time() - t0 < 10:
                time.sleep(0.05)
            check(health()["slots_processing"] == 0 and time.time() - t0 < 3,
                  f"{path}: a vanished client's generation went on for {time.time() - t0:.1f} s")
        # The same for a stream whose client goes while its long prompt is read (no token
        # written yet).
        for i in range(2):
            body = json.dumps({"prompt": f"{i} Once upon a time there was a cat. " * 300,
                               "stream": True}).encode()
            c = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
            c.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                      b"\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            time.sleep(0.3)
            busy = health()["slots_processing"]
            c.close()
            t0 = time.time()
            while health()["slots_processing"] != 0 and time.time() - t0 < 20:
                time.sleep(0.05)
            check(busy == 1 and time.time() - t0 < 3,
                  f"a stream gone during its prompt went on for {time.time() - t0:.1f} s")
        metrics = srv.request("GET", "/metrics")[2]
        cancelled = [x for x in metrics.splitlines()
                     if x.startswith("qkv_requests_cancelled_total")]
        check(cancelled and float(cancelled[0].split()[1]) == 4, f"cancellations: {cancelled}")
        st, j, _, _ = srv.request("POST", COMPLETIONS, {"prompt": "Once", "max_tokens": 3})
        check(st == 200 and j["usage"]["completion_tokens"] == 3, "serving after the cancels")
    finally:
        srv.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
