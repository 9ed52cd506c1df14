#!/usr/bin/env python3
"""The HTTP layer of `qkv serve` as browsers and raw clients see it, on the built-in model.

usage: serve_http_test.py QKV_BINARY

CORS as the Fetch standard asks of a server (a preflight answered with the methods and headers
it asked for, Access-Control-Allow-Origin on every response: errors, 404s and SSE streams too),
the --cors restrictions, and the request framing of HTTP/1.1 (RFC 9112): requests sent back to
back on one connection are answered in order without waiting, methods a path does not serve are
a 405 naming the ones it does. Expected values come from the standards, not from the server.
"""
import json
import socket
import sys
import time

from serve_test import Server

CHAT = "/v1/chat/completions"
HELLO = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2, "temperature": 0}


def http_request(method, path, body=None, headers=()):
    """The bytes of one HTTP/1.1 request (a JSON body when `body` is not None)."""
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers)
    data = b""
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        head += f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
    return head.encode() + b"\r\n" + data


def read_responses(sock, n, deadline, heads=()):
    """Reads up to `n` whole responses (Content-Length or chunked bodies; none for the indices in
    `heads`, answers to HEAD) before `deadline` (seconds from now); returns
    [(status, headers (lower-case names), body)]."""
    sock.settimeout(0.05)
    buf = b""
    out = []
    end = time.time() + deadline
    while len(out) < n and time.time() < end:
        try:
            got = sock.recv(65536)
            if not got:
                end = 0
            buf += got
        except socket.timeout:
            pass
        while len(out) < n and b"\r\n\r\n" in buf:
            head, rest = buf.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split()[1])
            hdr = {}
            for line in lines[1:]:
                k, v = line.split(":", 1)
                hdr[k.strip().lower()] = v.strip()
            if len(out) in heads:
                body, buf = b"", rest
            elif "content-length" in hdr:
                size = int(hdr["content-length"])
                if len(rest) < size:
                    break
                body, buf = rest[:size], rest[size:]
            elif hdr.get("transfer-encoding") == "chunked":
                body, pos, whole = b"", 0, False
                while True:
                    eol = rest.find(b"\r\n", pos)
                    if eol < 0:
                        break
                    size = int(rest[pos:eol], 16)
                    if len(rest) < eol + 2 + size + 2:
                        break
                    body += rest[eol + 2:eol + 2 + size]
                    pos = eol + 2 + size + 2
                    if size == 0:
                        whole = True
                        break
                if not whole:
                    break
                buf = rest[pos:]
            else:
                body, buf = rest, b""
            out.append((status, hdr, body))
    return out


def flood(port, head, filler, times=512):
    """Sends head, then filler `times` times (32 MiB for 64 KiB), and returns everything the
    server wrote back until it closed (it may answer and close while the flood is still coming)."""
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(10)
    reply = b""
    try:
        s.sendall(head)
        for _ in range(times):
            s.sendall(filler)
    except OSError:
        pass
    try:
        while True:
            got = s.recv(65536)
            if not got:
                break
            reply += got
    except OSError:
        pass
    s.close()
    return reply


def count(srv, status):
    """The responses of `status` /metrics has counted."""
    text = srv.request("GET", "/metrics")[2]
    lines = [x for x in text.splitlines()
             if x.startswith(f'qkv_requests_total{{status="{status}"}}')]
    return int(lines[0].split()[1]) if lines else 0


def main():
    qkv = sys.argv[1]
    failures = []

    def check(cond, what):
        if not cond:
            failures.append(what)
            print("FAIL:", what)

    def exchange(port, data, n, deadline=10.0):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(data)
        out = read_responses(s, n, deadline)
        s.close()
        return out

    # --- CORS, default: any origin (as llama-server and vLLM answer)
    srv = Server(qkv, "--parallel", "2", "--api-key", "sekret")
    try:
        origin = "http://localhost:5173"
        key = ("Authorization", "Bearer sekret")
        # A preflight carries no key (browsers never send credentials on one) and must be
        # answered with a 2xx that allows the method and every header it asks for.
        for path, method in ((CHAT, "POST"), ("/v1/models", "GET"), ("/v1/embeddings", "POST")):
            r = exchange(srv.port, http_request("OPTIONS", path, headers=[
                ("Origin", origin), ("Access-Control-Request-Method", method),
                ("Access-Control-Request-Headers", "authorization,content-type,x-stainless-os")]),
                1)
            st, h, _ = r[0] if r else (None, {}, b"")
            check(st is not None and 200 <= st < 300, f"preflight {path}: status {st} {h}")
            check(h.get("access-control-allow-origin") == "*", f"preflight {path}: origin {h}")
            allowed = [m.strip() for m in h.get("access-control-allow-methods", "").split(",")]
            check(method in allowed, f"preflight {path}: methods {h}")
            asked = {x.strip().lower() for x in h.get("access-control-allow-headers", "").split(",")}
            check({"authorization", "content-type", "x-stainless-os"} <= asked,
                  f"preflight {path}: headers {h}")
        # Chrome's Private Network Access: a public page calling a server on this machine asks
        # in its preflight, and is let through only when the answer allows it.
        r = exchange(srv.port, http_request("OPTIONS", CHAT, headers=[
            ("Origin", "https://chat.example"), ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Private-Network", "true")]), 1)
        check(r and r[0][1].get("access-control-allow-private-network") == "true",
              f"private network preflight: {r}")
        # Every response names the origin as allowed: success, 401, 404, 400, a stream.
        cases = [
            ("GET", "/v1/models", None, [key], 200),
            ("GET", "/v1/models", None, [], 401),
            ("GET", "/nowhere", None, [key], 404),
            ("POST", CHAT, b"{not json", [key], 400),
            ("POST", CHAT, HELLO, [key], 200),
            ("POST", CHAT, dict(HELLO, stream=True), [key], 200),
        ]
        for method, path, body, hdrs, want in cases:
            r = exchange(srv.port, http_request(method, path, body,
                                                [("Origin", origin), *hdrs,
                                                 ("Connection", "close")]), 1, 60)
            st, h, b = r[0] if r else (None, {}, b"")
            check(st == want and h.get("access-control-allow-origin") == "*",
                  f"{method} {path} ({want}) from an origin: {st} {h} {b[:120]!r}")
        # A refused request's body is read and dropped, multipart ones too (a 500
        # 'bad_function_call': the plain reader cannot read them).
        form = (b"--xyz\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\nOnce\r\n"
                b"--xyz--\r\n")
        st, j, text, _ = srv.request("POST", "/v1/completions", raw=form, headers={
            "Content-Type": "multipart/form-data; boundary=xyz"})
        check(st == 401, f"multipart without the key: {st} {text[:200]}")
        # A request without an Origin (curl, the SDKs) is served as before.
        st, j, _, h = srv.request("GET", "/v1/models", headers=dict([key]))
        check(st == 200, f"no Origin: {st}")
    finally:
        srv.stop()

    # --- --cors ORIGINS: those origins (and the page's own) only
    srv = Server(qkv, "--parallel", "1", "--cors", "https://app.example, http://localhost:3000")
    try:
        for origin in ("https://app.example", "http://localhost:3000"):
            st, j, _, h = srv.request("GET", "/v1/models", headers={"Origin": origin})
            check(st == 200 and h.get("Access-Control-Allow-Origin") == origin and
                  "Origin" in h.get("Vary", ""), f"listed origin {origin}: {st} {h}")
            r = exchange(srv.port, http_request("OPTIONS", CHAT, headers=[
                ("Origin", origin), ("Access-Control-Request-Method", "POST"),
                ("Connection", "close")]), 1)
            check(r and 200 <= r[0][0] < 300 and
                  r[0][1].get("access-control-allow-origin") == origin,
                  f"listed origin {origin}: preflight {r}")
        form = (b"--xyz\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\nOnce\r\n"
                b"--xyz--\r\n")
        st, j, text, _ = srv.request("POST", "/v1/completions", raw=form, headers={
            "Content-Type": "multipart/form-data; boundary=xyz", "Origin": "https://evil.example"})
        check(st == 403, f"multipart from an unlisted origin: {st} {text[:200]}")
        # Another origin is refused before anything runs, with an error naming it.
        for method, body in (("GET", None), ("POST", HELLO)):
            st, j, _, h = srv.request(method, "/v1/models" if body is None else CHAT, body,
                                      headers={"Origin": "https://evil.example"})
            check(st == 403 and "https://evil.example" in j["error"]["message"] and
                  "Access-Control-Allow-Origin" not in h, f"unlisted origin {method}: {st} {j} {h}")
        r = exchange(srv.port, http_request("OPTIONS", CHAT, headers=[
            ("Origin", "https://evil.example"), ("Access-Control-Request-Method", "POST"),
            ("Connection", "close")]), 1)
        check(r and "access-control-allow-origin" not in r[0][1], f"unlisted preflight: {r}")
        r = exchange(srv.port, http_request("OPTIONS", CHAT, headers=[
            ("Origin", "https://evil.example"), ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Private-Network", "true"), ("Connection", "close")]), 1)
        check(r and "access-control-allow-private-network" not in r[0][1],
              f"unlisted private network preflight: {r}")
        # The page served at / calls the API from the server's own origin.
        st, j, _, h = srv.request("POST", CHAT, HELLO,
                                  headers={"Origin": f"http://127.0.0.1:{srv.port}"})
        check(st == 200, f"same origin refused: {st} {j}")
        st, j, _, h = srv.request("GET", "/v1/models")
        check(st == 200 and "Access-Control-Allow-Origin" not in h, f"no Origin: {st} {h}")
    finally:
        srv.stop()

    # --- --cors none: no cross-origin use at all
    srv = Server(qkv, "--parallel", "1", "--cors", "none")
    try:
        st, j, _, h = srv.request("GET", "/v1/models", headers={"Origin": "http://localhost:3000"})
        check(st == 403 and "Access-Control-Allow-Origin" not in h, f"--cors none: {st} {h}")
        st, j, _, h = srv.request("GET", "/v1/models")
        check(st == 200, f"--cors none, no Origin: {st}")
    finally:
        srv.stop()

    # --- pipelining (RFC 9112 9.3.2): requests sent back to back on one connection, before any
    # answer, are each answered, in order, at once; the keep-alive timeout (5 s) never comes in.
    srv = Server(qkv, "--parallel", "2", "--api-key", "sekret")
    try:
        key = [("Authorization", "Bearer sekret")]
        for n in (2, 3, 12):
            data = b"".join(http_request("GET", f"/nowhere-{i}", headers=key) for i in range(n))
            t0 = time.time()
            r = exchange(srv.port, data, n, deadline=3.0)
            check([x[0] for x in r] == [404] * n and
                  all(f"/nowhere-{i}".encode() in r[i][2] for i in range(n)) and
                  time.time() - t0 < 2.0, f"{n} pipelined GETs: {len(r)} answered in "
                                          f"{time.time() - t0:.1f} s: {r[-1:]}")
        # Bodies, a stream and a refused request (its body must be skipped) in one write.
        data = (http_request("POST", "/tokenize", {"content": "Once upon a time"}, key) +
                http_request("POST", CHAT, HELLO, [("Authorization", "Bearer wrong")]) +
                http_request("POST", CHAT, dict(HELLO, stream=True), key) +
                http_request("POST", "/v1/completions", {"prompt": "Hi", "max_tokens": 2}, key) +
                http_request("GET", "/health"))
        t0 = time.time()
        r = exchange(srv.port, data, 5, deadline=30.0)
        want = [200, 401, 200, 200, 200]
        check([x[0] for x in r] == want and b'"tokens"' in r[0][2] and b"API key" in r[1][2] and
              r[2][2].endswith(b"data: [DONE]\n\n") and b'"text_completion"' in r[3][2] and
              b'"ok"' in r[4][2] and time.time() - t0 < 20,
              f"pipelined mixed requests: {[(x[0], x[2][:60]) for x in r]} "
              f"in {time.time() - t0:.1f} s")
        # A request split anywhere across writes is the same request.
        s = socket.create_connection(("127.0.0.1", srv.port))
        data = http_request("POST", "/tokenize", {"content": "a b"}, key) * 2
        for i in range(0, len(data), 7):
            s.sendall(data[i:i + 7])
            time.sleep(0.001)
        r = read_responses(s, 2, 3.0)
        s.close()
        check([x[0] for x in r] == [200, 200], f"requests split in 7-byte writes: {r}")
    finally:
        srv.stop()

    # --- methods and malformed requests (RFC 9110 15.5.6, 15.6.2; RFC 9112 2.2, 3)
    srv = Server(qkv, "--parallel", "1")
    try:
        def one(data, deadline=3.0, heads=(), n=3):
            """The response to `data` followed by a GET /health on the same connection, and
            whether the server closed the connection (instead of reading the rest as requests)."""
            s = socket.create_connection(("127.0.0.1", srv.port))
            s.sendall(data + http_request("GET", "/health"))
            r = read_responses(s, n, deadline, heads)
            s.close()
            return r

        # A method a path does not serve: 405 with the methods it does (Allow), as JSON.
        for method, path, allow in (("GET", CHAT, "POST"), ("HEAD", CHAT, "POST"),
                                    ("PUT", "/v1/models", "GET"), ("DELETE", "/v1/models", "GET"),
                                    ("PATCH", "/tokenize", "POST"), ("TRACE", "/health", "GET")):
            r = one(http_request(method, path, {} if method in ("PUT", "PATCH") else None),
                    heads=(0,) if method == "HEAD" else (), n=2)
            st, h, b = r[0] if r else (None, {}, b"")
            ok = st == 405 and allow in h.get("allow", "")
            if method != "HEAD":
                j = json.loads(b) if b.startswith(b"{") else {}
                ok = ok and method in j.get("error", {}).get("message", "")
            # The connection goes on: its next request is answered.
            check(ok and len(r) == 2 and r[1][0] == 200, f"{method} {path}: {r}")
        # A HEAD of a GET endpoint: the GET's headers, no body.
        st, _, text, h = srv.request("HEAD", "/v1/models")
        check(st == 200 and text == "" and int(h["Content-Length"]) > 0, f"HEAD: {st} {h}")
        # Requests that cannot be parsed: one error naming the problem, then the connection is
        # closed (the rest of it cannot be told apart from the request's own lines).
        for data, status, word in (
                (b"BREW /health HTTP/1.1\r\nHost: x\r\nX-Pot: tea\r\n\r\n", 501, "BREW"),
                (b"hello\r\nHost: x\r\n\r\n", 400, "request line"),
                (b"GET /health HTTP/2.0\r\nHost: x\r\n\r\n", 505, "HTTP/2.0"),
                (b"GET /health HTTP/1.1\nHost: x\nX-A: 1\n\n", 400, "request line"),
                (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "8192"),
                # A space in the target read as the version: was a 505 for "HTTP/lth".
                (b"GET /hea lth HTTP/1.1\r\nHost: x\r\n\r\n", 400, "request line"),
                # What httplib accepted and HTTP/1.1 says to refuse (RFC 9112 2.2, 3.2, 5.2;
                # RFC 9110 5.1, 5.5): a folded line, a bare CR, a NUL, a name that is not a
                # token, no Host or two.
                (b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n folded\r\n\r\n", 400, "folded"),
                (b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: 1\r2\r\n\r\n", 400, "CR"),
                (b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: 1\x002\r\n\r\n", 400, "NUL"),
                (b"GET /health HTTP/1.1\r\nHost: x\r\nX(a): 1\r\n\r\n", 400, "X(a)"),
                (b"GET /health HTTP/1.1\r\nX-A: 1\r\n\r\n", 400, "Host"),
                (b"GET /health HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "Host")):
            before = count(srv, status)
            r = one(data, n=2)
            st, h, b = r[0] if r else (None, {}, b"")
            j = json.loads(b) if b.startswith(b"{") else {}
            check(st == status and word in j.get("error", {}).get("message", "") and
                  (len(r) == 1 or status == 414), f"{data[:30]!r}: want {status} then close, "
                                                  f"got {[(x[0], x[2][:90]) for x in r]}")
            check(count(srv, status) == before + 1,
                  f"{data[:30]!r}: /metrics counted {count(srv, status) - before} {status}s")
        # A POST without Content-Length or Transfer-Encoding has no body (RFC 9112 6.3): it is
        # answered at once, not held until the client gives up.
        t0 = time.time()
        r = one(b"POST /tokenize HTTP/1.1\r\nHost: x\r\n\r\n", n=2)
        check([x[0] for x in r] == [400, 200] and b"body" in r[0][2] and time.time() - t0 < 2,
              f"POST without a body: {r} after {time.time() - t0:.1f} s")
        # Body framing the server cannot follow (RFC 9112 6.1, 6.3): a transfer coding other
        # than chunked was read until the client closed (a hang), a Content-Length that is not a
        # number was read as 0 (the body then parsed as the next request), and two that differ
        # were resolved by taking the first. Each is refused at once and the connection closed.
        hello = json.dumps({"content": "a"}).encode()
        for framing, status, word in (
                (b"Transfer-Encoding: gzip, chunked\r\n", 501, "gzip, chunked"),
                (b"Transfer-Encoding: identity\r\n", 501, "identity"),
                (b"Content-Length: abc\r\n", 400, "abc"),
                (b"Content-Length: -5\r\n", 400, "-5"),
                (b"Content-Length: 0x10\r\n", 400, "0x10"),
                (b"Content-Length: %d\r\nContent-Length: 3\r\n" % len(hello), 400,
                 "Content-Length")):
            t0, before = time.time(), count(srv, status)
            r = one(b"POST /tokenize HTTP/1.1\r\nHost: x\r\n" + framing + b"\r\n" + hello, n=2)
            check(count(srv, status) == before + 1, f"{framing!r}: {status} not counted")
            j = json.loads(r[0][2]) if r and r[0][2].startswith(b"{") else {}
            check(len(r) == 1 and r[0][0] == status and
                  word in j.get("error", {}).get("message", "") and time.time() - t0 < 2.5,
                  f"{framing!r}: want {status} naming {word!r} then close, got "
                  f"{[(x[0], x[2][:120]) for x in r]} after {time.time() - t0:.1f} s")
        # Chunked bodies as RFC 9112 7.1 frames them: trailer fields after the last chunk are
        # read and dropped (7.1.2; httplib 0.11 refused the body with a 400), chunk extensions
        # ignored (7.1.1), and the connection goes on to its next request.
        chunked_head = b"POST /tokenize HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        want = srv.request("POST", "/tokenize", {"content": "a"})[1]
        half = len(hello) // 2
        for tail in (b"%x\r\n%s\r\n0\r\nX-Checksum: 1\r\n\r\n" % (len(hello), hello),
                     b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\nX-A: 1\r\nx-b:\r\nX-C:  two words \r\n"
                     b"\r\n" % (half, hello[:half], len(hello) - half, hello[half:]),
                     b"%x;name=value\r\n%s\r\n0;last\r\nX-Trace: 1\r\n\r\n" % (len(hello), hello),
                     b"%x\r\n%s\r\n0\r\n" % (len(hello), hello) +
                     b"".join(b"X-T%d: %s\r\n" % (i, b"v" * 500) for i in range(100)) + b"\r\n"):
            r = one(chunked_head + tail, n=2)
            check([x[0] for x in r] == [200, 200] and json.loads(r[0][2]) == want,
                  f"chunked body {tail[-40:]!r}: {[(x[0], x[2][:100]) for x in r]}")
        # Framing that is wrong: one 400 naming it, then the connection is closed (httplib read
        # "0x10" as 16 and " 5" as 5, and a chunk whose data ran past its size as the end of the
        # body, answering what followed as a request never sent).
        for tail, status, word in (
                (b"zz\r\n%s\r\n0\r\n\r\n" % hello, 400, "hexadecimal"),
                (b"0x%x\r\n%s\r\n0\r\n\r\n" % (len(hello), hello), 400, "hexadecimal"),
                (b" %x\r\n%s\r\n0\r\n\r\n" % (len(hello), hello), 400, "hexadecimal"),
                (b"%x\r\n%sGET /health HTTP/1.1\r\n\r\n" % (len(hello) - 2, hello), 400, "CRLF"),
                (b"%x\r\n%s\r\n0\r\nno colon\r\n\r\n" % (len(hello), hello), 400, "trailer"),
                (b"%x\r\n%s\r\n0\r\n folded: x\r\n\r\n" % (len(hello), hello), 400, "trailer"),
                (b"%x\r\n%s\r\n0\r\nX: 1\n\r\n" % (len(hello), hello), 400, "trailer"),
                (b"%x\r\n%s\r\n0\r\nX: 1\r\n\n" % (len(hello), hello), 400, "CRLF")):
            before = count(srv, status)
            r = one(chunked_head + tail, n=2)
            j = json.loads(r[0][2]) if r and r[0][2].startswith(b"{") else {}
            check(len(r) == 1 and r[0][0] == status and
                  word in j.get("error", {}).get("message", "") and
                  count(srv, status) == before + 1,
                  f"chunked body {tail[:24]!r}: want {status} naming {word!r} then close, got "
                  f"{[(x[0], x[2][:120]) for x in r]}")
        # Whitespace between a header's name and its colon (RFC 9112 5.1: reject with 400).
        r = one(b"POST /tokenize HTTP/1.1\r\nHost: x\r\nContent-Length : %d\r\n\r\n%s" % (
            len(hello), hello), n=2)
        j = json.loads(r[0][2]) if r and r[0][2].startswith(b"{") else {}
        check(len(r) == 1 and r[0][0] == 400 and
              "'Content-Length '" in j.get("error", {}).get("message", ""),
              f"a space before the colon: {[(x[0], x[2][:100]) for x in r]}")
        # A GET with a body: httplib does not read one for GET, so the body was parsed as the
        # next request and its error answered a request the client had not sent yet.
        for framing in (b"Content-Length: 5\r\n\r\nhello",
                        b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"):
            r = one(b"GET /health HTTP/1.1\r\nHost: x\r\n" + framing, n=2)
            j = json.loads(r[0][2]) if r and r[0][2].startswith(b"{") else {}
            check(len(r) == 1 and r[0][0] == 400 and "body" in j.get("error", {}).get("message", ""),
                  f"GET with a body ({framing[:30]!r}): {[(x[0], x[2][:100]) for x in r]}")
        r = one(b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", n=2)
        check([x[0] for x in r] == [200, 200], f"GET with Content-Length: 0: {r}")
        # Content-Length and Transfer-Encoding together: the body is read as chunked, and the
        # connection closed after the answer (RFC 9112 6.1: it may be a request smuggled past a
        # proxy that framed it by the length); it was kept open.
        r = one(b"POST /tokenize HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(hello), hello),
                n=2)
        check(len(r) == 1 and r[0][0] == 200 and r[0][1].get("connection") == "close" and
              json.loads(r[0][2]) == want, f"Content-Length and chunked: {r}")
        # HTTP/1.0 needs no Host, and knows no chunked coding (RFC 9112 6.1: a server must not
        # send it one): a stream runs to the end of the connection, and every answer that ends
        # the connection says Connection: close (a chunked stream came, and Keep-Alive).
        def until_close(data):
            s = socket.create_connection(("127.0.0.1", srv.port))
            s.settimeout(30)
            s.sendall(data)
            got = b""
            while True:
                part = s.recv(65536)
                if not part:
                    break
                got += part
            s.close()
            head, _, body = got.partition(b"\r\n\r\n")
            return head.decode("latin-1").lower(), body

        head, body = until_close(b"GET /health HTTP/1.0\r\n\r\n")
        check(head.startswith("http/1.1 200") and "connection: close" in head and
              "keep-alive" not in head and b'"ok"' in body, f"HTTP/1.0 GET: {head} {body[:100]}")
        stream = dict(HELLO, stream=True, max_tokens=4)
        data = json.dumps(stream).encode()
        head, body = until_close(b"POST %s HTTP/1.0\r\nContent-Length: %d\r\n\r\n%s" % (
            CHAT.encode(), len(data), data))
        want_events = [e for e in srv.stream(CHAT, stream)[2].split("\n\n")]
        got_events = body.decode().split("\n\n")
        strip = lambda evs: [json.loads(e[6:]).get("choices") if e.startswith("data: {") else e
                             for e in evs]
        check(head.startswith("http/1.1 200") and "transfer-encoding" not in head and
              "connection: close" in head and body.endswith(b"data: [DONE]\n\n") and
              strip(got_events) == strip(want_events),
              f"HTTP/1.0 stream: {head} {body[:200]!r}")
        # Framing that is fine: a repeated equal Content-Length, chunked in any case.
        for framing in (b"Content-Length: %d\r\nContent-Length: %d\r\n\r\n%s" % (
                            len(hello), len(hello), hello),
                        b"Transfer-Encoding: Chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (
                            len(hello), hello)):
            r = one(b"POST /tokenize HTTP/1.1\r\nHost: x\r\n" + framing, n=2)
            check([x[0] for x in r] == [200, 200], f"{framing[:40]!r}: {r}")
        # A body announced with Expect: 100-continue (curl does for bodies over 1 MiB) that is
        # over the limit is refused before it is sent, instead of being uploaded and dropped.
        s = socket.create_connection(("127.0.0.1", srv.port))
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n"
                  b"Expect: 100-continue\r\n\r\n")
        r = read_responses(s, 1, 2.0)
        s.close()
        check(r and r[0][0] == 413 and b"request_too_large" in r[0][2],
              f"Expect: 100-continue with a body over the limit: {r}")
        st, j, _, _ = srv.request("POST", "/tokenize", {"content": "a"},
                                  headers={"Expect": "100-continue"})
        check(st == 200, f"Expect: 100-continue within the limit: {st} {j}")
        alive = srv.request("GET", "/health")[0] == 200
        check(alive, "the server stopped serving after malformed requests")
    finally:
        srv.stop()

    # --- a request's line and headers are bounded (64 KiB): httplib read a line of any length
    # into memory before checking it, and any number of headers, so one connection sending an
    # endless line or endless headers grew the server until it was killed.
    srv = Server(qkv, "--parallel", "1")
    try:
        from serve_test import rss_kib

        for name, head, filler in (
                ("an endless request line", b"GET /", b"a" * 65536),
                ("an endless header", b"GET /health HTTP/1.1\r\nX-Big: ", b"b" * 65536),
                ("endless headers", b"GET /health HTTP/1.1\r\n",
                 b"".join(b"X-H%d: %s\r\n" % (i, b"c" * 90) for i in range(640)))):
            rss_before, n431 = rss_kib(srv.proc.pid), count(srv, 431)
            reply = flood(srv.port, head, filler)
            grown = rss_kib(srv.proc.pid) - rss_before
            check(reply.startswith(b"HTTP/1.1 431") and b"65536" in reply and grown < 8 * 1024,
                  f"{name}: {reply[:200]!r}, server memory grew {grown} KiB")
            # /metrics counts it (the loop's own answer to an endless request line was not).
            got = count(srv, 431) - n431
            check(got == 1, f"{name}: 431s counted {got}, want 1")
        # So are a chunked body's trailer fields (431 past 64 KiB, then the connection closes).
        rss_before, n431 = rss_kib(srv.proc.pid), count(srv, 431)
        reply = flood(srv.port,
                      b"POST /tokenize HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"2\r\n{}\r\n0\r\n", b"".join(b"X-T%d: %s\r\n" % (i, b"t" * 90)
                                                   for i in range(640)))
        grown = rss_kib(srv.proc.pid) - rss_before
        check(reply.startswith(b"HTTP/1.1 431") and b"trailer fields" in reply and
              b"65536" in reply and reply.count(b"HTTP/1.1") == 1 and grown < 8 * 1024 and
              count(srv, 431) == n431 + 1, f"endless trailer fields: {reply[:300]!r}, server "
                                           f"memory grew {grown} KiB")
        # A chunked body's size line is bounded the same way (and ends the connection).
        rss_before = rss_kib(srv.proc.pid)
        reply = flood(srv.port,
                      b"POST /tokenize HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1",
                      b"0" * 65536)
        grown = rss_kib(srv.proc.pid) - rss_before
        check(reply.startswith(b"HTTP/1.1 400") and reply.count(b"HTTP/1.1") == 1 and
              grown < 8 * 1024, f"an endless chunk size line: {reply[:300]!r}, server memory "
                                f"grew {grown} KiB")
        # Heads up to the limit are served.
        st, j, _, _ = srv.request("GET", "/health", headers={f"X-H{i}": "d" * 500
                                                             for i in range(100)})
        check(st == 200, f"a 50 KiB head: {st}")
    finally:
        srv.stop()

    # --- SIGTERM stops the server at once although clients hold connections: one idle between
    # requests (it waited up to the keep-alive timeout, 5 s) and one stalled inside a request (it
    # waited for the read timeout, 30 s).
    srv = Server(qkv, "--parallel", "1")
    idle = socket.create_connection(("127.0.0.1", srv.port))
    idle.sendall(http_request("GET", "/health"))
    got = read_responses(idle, 1, 5.0)
    stalled = socket.create_connection(("127.0.0.1", srv.port))
    stalled.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
    time.sleep(0.3)
    t0 = time.time()
    rc = srv.stop()
    took = time.time() - t0
    idle.close()
    stalled.close()
    check(got and rc == 0 and took < 3, f"stop with open connections: exit {rc} after {took:.1f} s")

    # A malformed --cors list is refused at startup, naming the entry.
    for spec, word in (("http://a.example/", "http://a.example/"), ("a.example", "a.example"),
                       ("", "--cors")):
        import subprocess
        p = subprocess.run([qkv, "serve", "--port", "0", "--cors", spec], capture_output=True,
                           text=True, timeout=60)
        check(p.returncode != 0 and word in p.stderr, f"--cors {spec!r}: {p.returncode} "
                                                      f"{p.stderr[-300:]!r}")

    if failures:
        print(f"{len(failures)} failure(s)")
        return 1
    print("serve_http_test: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
