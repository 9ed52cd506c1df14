#!/usr/bin/env python3
"""`qkv chat` driven through a pipe, on the built-in model (no ../shared needed).

usage: chat_cli_test.py QKV_BINARY

The built-in model has no chat template, so chat uses ChatML (docs/SERVER.md). Checked against
independent runs of the same binary's other commands:
- every reply equals a fresh `qkv generate --no-bos` on the whole conversation as `qkv template`
  renders it (greedy), so reusing the KV cache changes nothing;
- the second turn runs only the tokens after what the cache holds: reused + prefilled equals the
  token count of the rendered conversation (`qkv tokenize`), and the reused part is most of it;
- /save writes the conversation as JSON messages; /reset starts over (the first reply again);
- a line starting with an unknown /command is refused naming it and the known commands, and is
  not sent; a line starting with // sends its text without the first /; --help says so;
- Ctrl-C (SIGINT) during a reply stops it and the program goes on to the next turn; SIGINT at the
  prompt ends it; end of input ends it with status 0.
"""
import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import tempfile
import time

CHATML = ("{%- for message in messages %}"
          "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
          "{%- endfor %}"
          "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}")

# The built-in model's file (compiled into the binary).
BUILTIN = pathlib.Path(__file__).resolve().parents[2] / "models" / "qkv-stories.gguf"
COMMON = ["--temp", "0", "-n", "12", "--ignore-eos", "--threads", "1"]
STATS = re.compile(r"\[prompt (\d+) tokens: (\d+) reused, (\d+) prefilled .*stop: (\w+)\]")


def run(qkv, *args, stdin=None):
    p = subprocess.run([qkv, *args], input=stdin, capture_output=True, timeout=300)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def main():
    qkv = sys.argv[1]
    failures = []

    def check(cond, what):
        if not cond:
            failures.append(what)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        (tmp / "chatml.jinja").write_text(CHATML)
        saved = tmp / "conv.json"
        # The built-in model's context is 128 tokens and ChatML's markers are text to its
        # tokenizer (~20 tokens a message): short turns.
        turns = ["The cat sat.", "The dog ran."]
        script = f"{turns[0]}\n{turns[1]}\n/save {saved}\n/reset\n{turns[0]}\n"
        rc, out, err = run(qkv, "chat", *COMMON, stdin=script.encode())
        if rc != 0:
            print("FAIL qkv chat:", rc, err)
            return 1
        replies = out.split("\n")
        stats = [tuple(int(x) for x in s[:3]) for s in STATS.findall(err)]
        check(len(replies) == 4 and replies[-1] == "" and len(stats) == 3,
              f"three replies, one per line, and three stats lines: {out!r} {err!r}")
        check("no chat template; using ChatML" in err, f"the default template is said: {err!r}")
        if failures:
            for f in failures:
                print("FAIL", f)
            return 1
        replies = replies[:3]
        check(replies[2] == replies[0], f"/reset: the first reply again: {replies!r}")

        conv = json.loads(saved.read_text())
        expect = [{"role": "user", "content": turns[0]},
                  {"role": "assistant", "content": replies[0]},
                  {"role": "user", "content": turns[1]},
                  {"role": "assistant", "content": replies[1]}]
        check(conv == expect, f"/save: {conv!r}")

        # Each reply against a fresh run on the conversation so far.
        for k, n_msgs in ((0, 1), (1, 3)):
            (tmp / "msgs.json").write_text(json.dumps(expect[:n_msgs]))
            rc, rendered, err2 = run(qkv, "template", "--template", str(tmp / "chatml.jinja"),
                                     "--messages", str(tmp / "msgs.json"),
                                     "--add-generation-prompt")
            check(rc == 0, f"qkv template: {err2}")
            rc, fresh, err2 = run(qkv, "generate", "--no-bos", "-p", rendered, "--stop",
                                  "<|im_end|>", "--seed", "1", *COMMON)
            check(rc == 0 and fresh == rendered + replies[k] + "\n",
                  f"turn {k}: chat replied {replies[k]!r}; a fresh run on the whole conversation "
                  f"gives {fresh[len(rendered):]!r}")
            rc, toks, err2 = run(qkv, "tokenize", "-m", str(BUILTIN), "--json", "--no-special",
                                 rendered)
            check(rc == 0, f"qkv tokenize: {err2}")
            n_tokens = len(json.loads(toks)["ids"]) if rc == 0 else -1
            total, reused, prefilled = stats[k]
            check(total == n_tokens and reused + prefilled == total,
                  f"turn {k}: stats {stats[k]} vs {n_tokens} tokens in the rendered conversation")
            if k == 0:
                check(reused == 0, f"the first turn reuses nothing: {stats[k]}")
            else:
                # The whole first prompt and the reply up to where its text tokenizes alike are
                # held; only the rest runs.
                check(reused >= stats[0][0], f"turn 2 reuses the history: {stats}")
        # /reset: the cache still holds the same first turn, so all but its last token is reused.
        check(stats[2][1] == stats[0][0] - 1, f"after /reset: {stats}")

        # --system: the first message of the conversation.
        rc, out, err = run(qkv, "chat", *COMMON, "--system", "Be brief.",
                           stdin=f"{turns[0]}\n/save {saved}\n".encode())
        conv = json.loads(saved.read_text()) if rc == 0 else []
        check(conv[:2] == [{"role": "system", "content": "Be brief."},
                           {"role": "user", "content": turns[0]}] and len(conv) == 3,
              f"--system: {rc} {conv!r} {err!r}")

        # Unknown commands are not turns; "//" escapes a leading "/".
        rc, out, err = run(qkv, "chat", *COMMON,
                           stdin=f"/foo bar\n/savefile\n//etc is a folder\n/save {saved}\n".encode())
        conv = json.loads(saved.read_text()) if rc == 0 else []
        check(rc == 0 and "unknown command /foo" in err and "unknown command /savefile" in err
              and all(c in err for c in ("/reset", "/save FILE", "/help", "/quit")),
              f"unknown commands are named with the known ones: {rc} {err!r}")
        check([m for m in conv if m["role"] == "user"] == [{"role": "user",
                                                             "content": "/etc is a folder"}],
              f"only the escaped line is sent, without its first /: {conv!r}")
        rc, out, _ = run(qkv, "chat", "--help")
        check(rc == 0 and "//" in out and "/reset" in out,
              f"--help documents the commands and the // escape: {out!r}")

        # Ctrl-C during a long reply stops it; the next turn is answered; Ctrl-C at the prompt
        # ends the program.
        # A random-weight model with a long context: its reply runs until Ctrl-C.
        long_model = tmp / "long.gguf"
        rc, _, err = run(qkv, "make-model", "--arch", "llama", "--n-ctx", "8192", "-o",
                         str(long_model))
        check(rc == 0, f"make-model: {err}")
        p = subprocess.Popen([qkv, "chat", "-m", str(long_model), "--temp", "0", "--threads",
                              "1", "-n", "100000", "--ignore-eos"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        p.stdin.write(b"Tell me a long story.\n")
        p.stdin.flush()
        first = os.read(p.stdout.fileno(), 1)
        p.send_signal(signal.SIGINT)
        p.stdin.write(b"Once upon a time\n")
        p.stdin.flush()
        err = b""
        deadline = time.time() + 120
        while time.time() < deadline and err.count(b"[prompt") < 2:
            chunk = os.read(p.stderr.fileno(), 65536)
            if not chunk:
                break
            err += chunk
        time.sleep(0.2)
        p.send_signal(signal.SIGINT)
        try:
            rest_out, rest_err = p.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            rest_out, rest_err = p.communicate()
            failures.append("SIGINT at the prompt did not end qkv chat")
        err = (err + rest_err).decode("utf-8", "replace")
        stops = [s[3] for s in STATS.findall(err)]
        check(first != b"" and stops[:1] == ["interrupted"],
              f"Ctrl-C stops the reply: {stops} {err[-500:]!r}")
        check(len(stops) == 2 and stops[1] != "interrupted",
              f"the turn after Ctrl-C is answered: {stops}")
        check(p.returncode == 130, f"Ctrl-C at the prompt exits with 130: {p.returncode}")

        # End of input: status 0; a template error or an overlong turn is reported and skipped.
        rc, out, err = run(qkv, "chat", *COMMON, "--ctx", "64",
                           stdin=b"a very long turn that does not fit in sixty-four tokens of the "
                           b"context at all, however it is tokenized\nhi\n")
        check(rc == 0 and "context length is 64" in err and err.count("[prompt") == 1,
              f"an overlong turn is refused and the chat goes on: {rc} {err!r}")
        (tmp / "raise.jinja").write_text(
            "{% if messages[0].role == 'system' %}{{ raise_exception('no system role') }}{% endif %}"
            "{% for m in messages %}{{ m.content }}\n{% endfor %}")
        rc, out, err = run(qkv, "chat", *COMMON, "--template", str(tmp / "raise.jinja"),
                           "--system", "x", stdin=b"hi\n")
        check(rc == 0 and "no system role" in err, f"a template's exception is shown: {err!r}")
        rc, out, err = run(qkv, "chat", "-m", str(tmp / "missing.gguf"), stdin=b"hi\n")
        check(rc != 0 and "missing.gguf" in err, f"a missing model is named: {err!r}")

    for f in failures:
        print("FAIL", f)
    print(f"qkv chat: {len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
