#!/usr/bin/env python3
"""`qkv template` against Python Jinja2 configured as Hugging Face transformers configures it.

usage: chat_template_oracle_test.py QKV_BINARY SHARED_DIR
(exit 77 = skipped: ../shared or python3-jinja2 absent; a failure under QKV_REQUIRE_SHARED)

Every template in SHARED_DIR/chat-templates is rendered for every conversation below, with
add_generation_prompt off and on, by jinja2 (ImmutableSandboxedEnvironment with trim_blocks,
lstrip_blocks and the loopcontrols extension; tojson = json.dumps(ensure_ascii=False, ...);
raise_exception; strftime_now at a fixed date; render(messages, tools=None, documents=None,
add_generation_prompt, bos_token, eos_token, **extra) as apply_chat_template calls it) and by
`qkv template --template FILE`; the outputs must be byte-identical. Where jinja2 raises, qkv must
fail too, and a template's own raise_exception message must appear in qkv's error. Then -m with an
HF folder (tokenizer_config.json) and with a GGUF (tokenizer.chat_template, BOS/EOS from the
vocabulary) must give what --template gives.
"""
import datetime
import json
import pathlib
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "common"))
import shared_data  # noqa: E402

NOW = datetime.datetime(2026, 12, 6)
BOS, EOS = "<|bos|>", "<|eos|>"

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. Paris"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}

CONVERSATIONS = {
    "system_user": {"messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Hello! What is 2+2?"}]},
    "user_only": {"messages": [{"role": "user", "content": "Hi there"}]},
    "multi_turn": {"messages": [
        {"role": "user", "content": "Name a colour."},
        {"role": "assistant", "content": "Blue."},
        {"role": "user", "content": "Another one?"}]},
    "system_multi_turn_ends_assistant": {"messages": [
        {"role": "system", "content": "Answer in one word."},
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris"},
        {"role": "user", "content": "And of Italy?"},
        {"role": "assistant", "content": "Rome"}]},
    "whitespace_unicode": {"messages": [
        {"role": "user", "content": "  \n Héllo 世界 🙂 \"quoted\" {{ not a tag }} {% neither %}\t\n"},
        {"role": "assistant", "content": "\n\nSure — ça va?  "},
        {"role": "user", "content": "line1\nline2\r\nline3"}]},
    "reasoning": {"messages": [
        {"role": "user", "content": "What is 3*7?"},
        {"role": "assistant", "content": "<think>\n3*7 is 21.\n</think>\n\nIt is 21."},
        {"role": "user", "content": "And 3*8?"}]},
    "not_alternating": {"messages": [
        {"role": "user", "content": "First"},
        {"role": "user", "content": "Second"}]},
    "system_only": {"messages": [{"role": "system", "content": "You are terse."}]},
    "thinking_off": {"messages": [{"role": "user", "content": "Quick answer: 1+1?"}],
                     "vars": {"enable_thinking": False}},
    "tools": {"messages": [
        {"role": "system", "content": "You can call tools."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [{
            "id": "call12345", "type": "function",
            "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}}]},
        {"role": "tool", "tool_call_id": "call12345", "name": "get_weather",
         "content": "{\"temperature\": 21.5, \"sky\": \"clear\"}"},
        {"role": "assistant", "content": "It is 21.5 °C and clear in Paris."}],
        "vars": {"tools": [WEATHER_TOOL]}},
}


def make_env(jinja2):
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    def strftime_now(fmt):
        return NOW.strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def oracle(env, source, conv, agp):
    """(True, text) or (False, (exception type name, message))."""
    try:
        template = env.from_string(source)
        kwargs = {"messages": conv["messages"], "tools": None, "documents": None,
                  "add_generation_prompt": agp, "bos_token": BOS, "eos_token": EOS}
        kwargs.update(conv.get("vars", {}))
        return True, template.render(**kwargs)
    except Exception as e:  # noqa: BLE001 - any failure must be a failure in qkv too
        return False, (type(e).__name__, str(e))


def run_qkv(qkv, args):
    p = subprocess.run([qkv, "template", *args], capture_output=True, timeout=60)
    return p.returncode, p.stdout, p.stderr.decode("utf-8", "replace")


def gguf_string(s):
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def write_vocab_gguf(path, template, tokens, bos_id, eos_id):
    kv = [("general.architecture", 8, gguf_string("llama")),
          ("tokenizer.ggml.model", 8, gguf_string("gpt2")),
          ("tokenizer.ggml.tokens", 9,
           struct.pack("<IQ", 8, len(tokens)) + b"".join(gguf_string(t) for t in tokens)),
          ("tokenizer.ggml.bos_token_id", 4, struct.pack("<I", bos_id)),
          ("tokenizer.ggml.eos_token_id", 4, struct.pack("<I", eos_id)),
          ("tokenizer.chat_template", 8, gguf_string(template))]
    out = b"GGUF" + struct.pack("<IQQ", 3, 0, len(kv))
    for key, typ, value in kv:
        out += gguf_string(key) + struct.pack("<I", typ) + value
    pathlib.Path(path).write_bytes(out)


def main():
    qkv, shared = sys.argv[1], pathlib.Path(sys.argv[2])
    templates = sorted((shared / "chat-templates").glob("*.jinja"))
    if not templates:
        return shared_data.missing(shared / "chat-templates", "chat templates")
    try:
        import jinja2
        import jinja2.ext
        import jinja2.sandbox  # noqa: F401
    except ImportError:
        # CI installs it (.ci/packages.txt): there the oracle's absence is a failure.
        if shared_data.shared_required():
            print("FAILED: python3-jinja2 (the oracle) is not installed")
            return 1
        print("skipped: python3-jinja2 (the oracle) is not installed")
        return 77
    env = make_env(jinja2)
    failures = []
    counts = {"equal": 0, "both_raise": 0}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        conv_files = {}
        for name, conv in CONVERSATIONS.items():
            f = tmp / f"{name}.json"
            f.write_text(json.dumps(conv["messages"], ensure_ascii=False), encoding="utf-8")
            conv_files[name] = f
        for tpath in templates:
            source = tpath.read_text(encoding="utf-8")
            row = []
            for name, conv in CONVERSATIONS.items():
                for agp in (False, True):
                    ok, want = oracle(env, source, conv, agp)
                    args = ["--template", str(tpath), "--messages", str(conv_files[name]),
                            "--bos-token", BOS, "--eos-token", EOS, "--now", NOW.strftime("%Y-%m-%d")]
                    if agp:
                        args.append("--add-generation-prompt")
                    if conv.get("vars"):
                        args += ["--vars", json.dumps(conv["vars"], ensure_ascii=False)]
                    rc, out, err = run_qkv(qkv, args)
                    case = f"{tpath.name} × {name} (add_generation_prompt={agp})"
                    if "Sanitizer" in err or rc < 0:
                        failures.append(f"{case}: qkv crashed (rc {rc}): {err[-400:]}")
                        row.append("C")
                    elif ok:
                        if rc != 0:
                            failures.append(f"{case}: jinja2 renders, qkv fails: {err.strip()}")
                            row.append("F")
                        elif out != want.encode("utf-8"):
                            failures.append(f"{case}: output differs\n  jinja2: {want!r}\n"
                                            f"  qkv:    {out.decode('utf-8', 'replace')!r}")
                            row.append("D")
                        else:
                            counts["equal"] += 1
                            row.append("=")
                    else:
                        etype, msg = want
                        if rc == 0:
                            failures.append(f"{case}: jinja2 raises {etype}: {msg!r}; qkv renders "
                                            f"{out.decode('utf-8', 'replace')!r}")
                            row.append("R")
                        elif msg not in err:
                            failures.append(f"{case}: both fail, messages differ\n  jinja2: {etype}: "
                                            f"{msg}\n  qkv:    {err.strip()}")
                            row.append("M")
                        else:
                            counts["both_raise"] += 1
                            row.append("x")
            print(f"{''.join(row)}  {tpath.name}")

        # -m with an HF folder and with a GGUF: same text as --template with the same tokens.
        tpath = shared / "chat-templates" / "Qwen-Qwen2.5-7B-Instruct.jinja"
        if tpath.exists():
            source = tpath.read_text(encoding="utf-8")
            hf = tmp / "hf"
            hf.mkdir()
            (hf / "tokenizer_config.json").write_text(json.dumps(
                {"chat_template": source, "bos_token": None,
                 "eos_token": {"content": "<|im_end|>", "special": True}}), encoding="utf-8")
            gguf = tmp / "vocab.gguf"
            write_vocab_gguf(gguf, source, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], 0, 2)
            conv = conv_files["system_user"]
            _, want, _ = run_qkv(qkv, ["--template", str(tpath), "--messages", str(conv),
                                       "--add-generation-prompt", "--eos-token", "<|im_end|>"])
            for model in (hf, gguf):
                rc, out, err = run_qkv(qkv, ["-m", str(model), "--messages", str(conv),
                                             "--add-generation-prompt"])
                if rc != 0 or out != want:
                    failures.append(f"-m {model.name}: rc {rc}, {out!r} != {want!r} {err}")
            # BOS/EOS come from the model: a template that prints them.
            echo = tmp / "echo"
            echo.mkdir()
            (echo / "tokenizer_config.json").write_text(json.dumps(
                {"chat_template": "{{ bos_token }}|{{ eos_token }}", "bos_token": "<s>",
                 "eos_token": "</s>"}), encoding="utf-8")
            write_vocab_gguf(tmp / "echo.gguf", "{{ bos_token }}|{{ eos_token }}",
                             ["<unk>", "<s>", "</s>"], 1, 2)
            for model in (echo, tmp / "echo.gguf"):
                rc, out, err = run_qkv(qkv, ["-m", str(model), "--messages", str(conv)])
                if rc != 0 or out != b"<s>|</s>":
                    failures.append(f"-m {model.name}: BOS/EOS from the model: rc {rc} {out!r} {err}")
            rc, out, err = run_qkv(qkv, ["-m", str(echo), "--messages", str(conv), "--bos-token", "B"])
            if out != b"B|</s>":
                failures.append(f"--bos-token does not override the model's: {out!r} {err}")

        # Bad input: named errors, no crash.
        bad = tmp / "bad.jinja"
        bad.write_text("line one\n{% for x in messages %}{{ x.role | no_such_filter }}{% endfor %}\n")
        rc, out, err = run_qkv(qkv, ["--template", str(bad), "--messages", str(conv_files["user_only"])])
        if rc == 0 or "no_such_filter" not in err or "line 2" not in err:
            failures.append(f"unknown filter: rc {rc}, stderr {err!r}")
        (tmp / "notarray.json").write_text('{"role": "user"}')
        rc, out, err = run_qkv(qkv, ["--template", str(bad), "--messages", str(tmp / "notarray.json")])
        if rc == 0 or "array" not in err:
            failures.append(f"messages not an array: rc {rc}, stderr {err!r}")
        rc, out, err = run_qkv(qkv, ["--template", str(tmp / "absent.jinja"), "--messages",
                                     str(conv_files["user_only"])])
        if rc == 0 or "absent.jinja" not in err:
            failures.append(f"missing template file: rc {rc}, stderr {err!r}")

    print("legend: = equal, x both raise (same message), D differs, F qkv fails only, "
          "R jinja2 raises only, M messages differ, C crash")
    print(f"{counts['equal']} equal, {counts['both_raise']} raise in both, {len(failures)} failures")
    for f in failures:
        print("FAIL", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
