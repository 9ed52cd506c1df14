#!/usr/bin/env python3
"""`qkv generate --chat` and `qkv explain --chat` on an HF folder whose tokenizer_config.json carries a chat template.

usage: generate_chat_test.py QKV_BINARY SHARED_DIR     (exit 77 = skipped: ../shared absent)

The tiny LLaMA fixture of ../shared gets a chat template; `generate --chat -p Q [--system S]`
must continue exactly as plain `generate --no-bos -p RENDERED` does on the prompt the template
makes (the same ids: the template's text, no BOS added), print only the reply, and refuse
--system without --chat and models without a template by name. `--template FILE` gives a model
without a template (the pristine fixture) the same prompt, and needs --chat.
"""
import json
import pathlib
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "common"))
import shared_data  # noqa: E402

TEMPLATE = ("{% for m in messages %}{% if m.role == 'system' %}[{{ m.content }}]\n"
            "{% else %}{{ m.role | capitalize }}: {{ m.content }}\n{% endif %}{% endfor %}"
            "{% if add_generation_prompt %}Assistant:{% endif %}")


def run(qkv, *args):
    if args[0] != "tokenize":
        args = (*args, "--threads", "1")
    p = subprocess.run([qkv, *args], capture_output=True, timeout=300)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def main():
    qkv, shared = sys.argv[1], pathlib.Path(sys.argv[2])
    fixture = shared / "fixtures" / "hf" / "llama-tiny"
    if not (fixture / "config.json").is_file():
        return shared_data.missing(fixture)
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        model = pathlib.Path(tmp) / "llama-chat"
        shutil.copytree(fixture, model)
        config = json.loads((model / "tokenizer_config.json").read_text())
        config["chat_template"] = TEMPLATE
        (model / "tokenizer_config.json").write_text(json.dumps(config))
        common = ["--temp", "0", "-n", "12", "--seed", "1", "--ignore-eos"]
        for system, rendered in ((None, "User: Where is the cat?\nAssistant:"),
                                 ("Be kind.", "[Be kind.]\nUser: Where is the cat?\nAssistant:")):
            extra = ["--system", system] if system else []
            rc, chat_out, err = run(qkv, "generate", "-m", str(model), "--chat", "-p",
                                    "Where is the cat?", *extra, *common)
            rc2, plain_out, err2 = run(qkv, "generate", "-m", str(model), "--no-bos", "-p", rendered,
                                       *common)
            if rc != 0 or rc2 != 0:
                failures.append(f"system={system!r}: rc {rc}/{rc2}: {err[-300:]} {err2[-300:]}")
                continue
            if not plain_out.startswith(rendered):
                failures.append(f"plain generate does not echo its prompt: {plain_out!r}")
                continue
            reply = plain_out[len(rendered):]
            if chat_out != reply:
                failures.append(f"system={system!r}: --chat printed {chat_out!r}, the rendered prompt "
                                f"continues with {reply!r}")
        # explain --chat / --messages: the tokens explained are the rendered conversation's, as
        # `qkv tokenize` encodes the text with no BOS added; a conversation ending with the
        # assistant's turn gets no generation prompt.
        conv = pathlib.Path(tmp) / "conv.json"
        conv.write_text(json.dumps([{"role": "user", "content": "Where is the cat?"},
                                    {"role": "assistant", "content": "On the mat."}]))
        for extra, rendered in (
                (["--chat", "Where is the cat?", "--system", "Be kind."],
                 "[Be kind.]\nUser: Where is the cat?\nAssistant:"),
                (["--messages", str(conv)], "User: Where is the cat?\nAssistant: On the mat.\n")):
            rc, out, err = run(qkv, "explain", "-m", str(model), *extra, "--json")
            rc2, toks, err2 = run(qkv, "tokenize", "-m", str(model), "--json", "--no-special",
                                  rendered)
            if rc != 0 or rc2 != 0:
                failures.append(f"explain {extra[0]}: rc {rc}/{rc2}: {err[-300:]} {err2[-300:]}")
                continue
            if json.loads(out)["ids"] != json.loads(toks)["ids"]:
                failures.append(f"explain {extra[0]}: ids {json.loads(out)['ids']}, the rendered "
                                f"conversation {rendered!r} is {json.loads(toks)['ids']}")
        rc, _, err = run(qkv, "explain", "-m", str(model), "--messages", str(conv), "x")
        if rc == 0 or "--messages" not in err:
            failures.append(f"explain --messages with a text: rc {rc}, {err!r}")
        rc, _, err = run(qkv, "generate", "-m", str(model), "--system", "x", "-p", "hi", "-n", "1")
        if rc == 0 or "--chat" not in err:
            failures.append(f"--system without --chat: rc {rc}, {err!r}")
        rc, _, err = run(qkv, "generate", "-m", str(fixture), "--chat", "-p", "hi", "-n", "1")
        if rc == 0 or "chat template" not in err or "--template" not in err:
            failures.append(f"--chat on a model without a template: rc {rc}, {err!r}")
        # The option the message suggests exists, and gives what the model's own template gives.
        template_file = pathlib.Path(tmp) / "chat.jinja"
        template_file.write_text(TEMPLATE)
        rc, with_file, err = run(qkv, "generate", "-m", str(fixture), "--chat", "--template",
                                 str(template_file), "-p", "Where is the cat?", *common)
        rc2, with_model, err2 = run(qkv, "generate", "-m", str(model), "--chat", "-p",
                                    "Where is the cat?", *common)
        if rc != 0 or rc2 != 0 or with_file != with_model:
            failures.append(f"--template FILE: rc {rc}/{rc2}, {with_file!r} vs the model's "
                            f"template {with_model!r} {err[-300:]} {err2[-300:]}")
        rc, _, err = run(qkv, "generate", "-m", str(model), "--template", str(template_file), "-p",
                         "hi", "-n", "1")
        if rc == 0 or "--chat" not in err:
            failures.append(f"--template without --chat: rc {rc}, {err!r}")
    for f in failures:
        print("FAIL", f)
    print(f"generate --chat: {len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
