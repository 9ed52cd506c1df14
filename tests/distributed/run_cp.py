#!/usr/bin/env python3
"""`qkv eval|generate|explain --context-parallel` under mpirun against one process.

    run_cp.py MPIEXEC NP QKV WORKDIR

On NP ranks of this machine (mpirun --oversubscribe), for a Gemma 2 model (sliding-window layers
of 8 keys, soft-capping, GQA; f32 weights) and a LLaMA model (f16 weights, f16 KV cache), both
tiny and made with `qkv make-model`:
  - eval --logits: every position's logits within 1e-4 of the single process's;
  - generate, greedy, 600 tokens (past the 256-token runs after which another rank takes the
    decode tokens): the same text;
  - explain -n 4 --npy and --npy-stream: the maps within 2e-6 of the single process's: each
    probability is exp(score - lse), and the ring's lse, summed in another order, is that of one
    call within a few ulps of its size (lse ~ 5: ulp 5e-7), so p moves by a few 1e-7 relative
    (measured max 1.07e-6 on the LLaMA model, 6e-8 on Gemma 2);
  - explain on Gemma 2 (GQA: query heads 1 and 3 read KV heads 0 and 1) for prompts whose token
    counts the 2P zig-zag chunks do not divide, chosen layers and heads, -n 2, and a prompt of
    1,200+ tokens whose rows come to rank 0 in two rounds: the maps within 2e-6 of one process's,
    every row summing to 1 within 2e-6 (a wrong lse or a misplaced column breaks both), and the
    bytes rank 0 received for them ("context parallel: rank 0 received N bytes") exactly the
    probabilities of the other ranks' keys that each row can see (causal mask, the local layer's
    window) plus the queries and lse of the rows they hold, as computed here from the zig-zag
    layout: no key or value comes to rank 0, and no probability the masks make 0;
  - a LLaMA model with head_dim 32 and a q8_0 KV cache: eval logits within 1e-4, 300 greedy
    tokens identical, explain maps within 2e-6 of one process (the blocks travel as they are);
  - ranks given another prompt, or another model file at the same path: the job fails before any
    work, naming the argument and rank 1.
Exit 77 (skipped, with the reason) when MPIEXEC is not there.
"""
import array
import ast
import os
import re
import shutil
import subprocess
import sys


def load_npy(path):
    with open(path, "rb") as f:
        data = f.read()
    assert data[:6] == b"\x93NUMPY", path
    n = int.from_bytes(data[8:10], "little")
    header = ast.literal_eval(data[10:10 + n].decode("latin1"))
    assert header["descr"] == "<f4", header
    values = array.array("f")
    values.frombytes(data[10 + n:])
    return header["shape"], values


def max_diff(a, b):
    (sa, va), (sb, vb) = load_npy(a), load_npy(b)
    if sa != sb:
        raise AssertionError(f"{a} is {sa} but {b} is {sb}")
    return max((abs(x - y) for x, y in zip(va, vb)), default=0.0)


def rank0_bytes(T, n_new, P, windows, n_heads, hd):
    """Bytes rank 0 receives for n_heads heads of layers with these windows (0: global) for every
    row of a T-token prefill then n_new one-token steps (docs/DISTRIBUTED.md): per head, rounds of
    2^20 // n_kv rows; at the prefill each rank sends every rank the rows of the round it holds as
    head_dim + 1 floats (padded to the rank holding most); then each row's probabilities over the
    other ranks' keys that the causal mask and the layer's window let it see."""
    start = [c * T // (2 * P) for c in range(2 * P + 1)]
    keys = [[(start[r], start[r + 1]), (start[2 * P - 1 - r], start[2 * P - r])] for r in range(P)]

    def live(p, w):  # keys of ranks 1.. that row p sees
        n = 0
        for r in range(1, P):
            for b, e in keys[r]:
                lo = b if w == 0 else max(b, p - w + 1)
                n += max(0, min(e, p + 1) - lo)
        return n

    total = 0
    per_round = max(1, 2**20 // T)
    for w in windows:
        for r0 in range(0, T, per_round):
            rows = range(r0, min(T, r0 + per_round))
            count = [sum(1 for p in rows if any(b <= p < e for b, e in keys[r])) for r in range(P)]
            total += (P - 1) * max(count) * (hd + 1) * 4
            total += sum(live(p, w) for p in rows) * 4
    # Decode steps: the rank holding fewest tokens (lowest on ties) stores them; every rank has
    # the queries and the merged lse already.
    held = [sum(e - b for b, e in keys[r]) for r in range(P)]
    owner = min(range(P), key=lambda r: (held[r], r))
    keys[owner].append((T, T + n_new))  # key T + s exists from step s on: p = T + s sees it
    for s in range(n_new):
        total += sum(live(T + s, w) for w in windows) * 4
    return total * n_heads


def main():
    mpiexec, np, qkv, work = sys.argv[1:5]
    if not mpiexec or not (os.path.exists(mpiexec) or shutil.which(mpiexec)):
        print(f"skipped: mpirun ({mpiexec or 'not found at configure time'}) is not installed "
              "(Debian: openmpi-bin, libopenmpi-dev)")
        return 77
    os.makedirs(work, exist_ok=True)
    mpi = [mpiexec, "--oversubscribe", "--mca", "btl", "self,vader"]
    if os.geteuid() == 0:
        mpi.append("--allow-run-as-root")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if "ASAN_OPTIONS" in env:  # Open MPI's allocations outlive MPI_Finalize (run_mpi.py)
        env["ASAN_OPTIONS"] = env["ASAN_OPTIONS"].replace("detect_leaks=1", "detect_leaks=0")

    def run(cmd, ok=True):
        print("$", " ".join(cmd), flush=True)
        r = subprocess.run(cmd, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, timeout=300)
        if ok and r.returncode != 0:
            print(r.stdout, r.stderr)
            raise AssertionError(f"exit {r.returncode}")
        return r

    def cp(*args):
        return run(mpi + ["-np", np, qkv, *args, "--context-parallel", "--threads", "1"])

    failures = []

    def check(cond, what):
        print(("ok: " if cond else "FAIL: ") + what, flush=True)
        if not cond:
            failures.append(what)

    prompt = ("the quick brown fox jumps over the lazy dog and then some more words follow "
              "here so that every rank holds a few chunks")
    models = {
        "gemma2": ["--arch", "gemma2", "--preset", "tiny", "--n-ctx", "2048"],
        "llama": ["--arch", "llama", "--preset", "tiny", "--n-ctx", "2048", "--dtype", "f16"],
    }
    for name, make in models.items():
        model = f"{name}.gguf"
        run([qkv, "make-model", *make, "-o", model])
        kv = ["--kv", "f16"] if name == "llama" else []
        tag = f"{name} np{np}"

        run([qkv, "eval", "-m", model, prompt, "--logits", "one.npy", "--threads", "1", *kv])
        cp("eval", "-m", model, prompt, "--logits", "cp.npy", *kv)
        d = max_diff(os.path.join(work, "one.npy"), os.path.join(work, "cp.npy"))
        check(d <= 1e-4, f"{tag}: eval logits within 1e-4 of one process (max diff {d:.2e})")

        gen = ["generate", "-m", model, "-p", prompt, "-n", "600", "--temp", "0", "--ignore-eos",
               *kv]
        one = run([qkv, *gen, "--threads", "1"]).stdout
        par = cp(*gen).stdout
        check(one == par and len(one) > len(prompt),
              f"{tag}: greedy generation of 600 tokens identical ({len(one)} bytes)")

        ex = ["explain", "-m", model, prompt, "-n", "4", *kv]
        run([qkv, *ex, "--npy", "one_maps.npy", "--threads", "1"])
        cp(*ex, "--npy", "cp_maps.npy", "--npy-stream", "cp_stream.npy")
        for f in ("cp_maps.npy", "cp_stream.npy"):
            d = max_diff(os.path.join(work, "one_maps.npy"), os.path.join(work, f))
            check(d <= 2e-6, f"{tag}: explain maps ({f}) within 2e-6 of one process ({d:.2e})")

    # Odd lengths, chosen heads of a GQA model, decode steps, rounds; the bytes rank 0 receives.
    info = run([qkv, "inspect", "gemma2.gguf"]).stdout
    dims = dict(re.findall(r"(n_layer|n_head|head_dim) (\d+)", info))
    hd = int(dims["head_dim"])
    # Layers 0 and 1, as the model line of explain names them: "local layers (window 8) 0, ...".
    line = run([qkv, "explain", "-m", "gemma2.gguf", "a b", "--threads", "1"]).stderr
    m = re.search(r"local layers \(window (\d+)\) ([0-9, ]+?), global layers ([0-9, ]+)", line)
    local = {int(x) for x in m.group(2).split(",")}
    windows = [int(m.group(1)) if layer in local else 0 for layer in (0, 1)]
    words = prompt.split()
    texts = [" ".join(words[:k]) for k in (2, 5, 9, 14)]
    texts.append(" ".join(words[i % len(words)] for i in range(330)))  # 1,200+ tokens
    lengths = []
    for i, text in enumerate(texts):
        n_new = 0 if i == len(texts) - 1 else 2
        sel = ["--layers", "0,1", "--heads", "1,3"]
        ex = ["explain", "-m", "gemma2.gguf", text, "-n", str(n_new), *sel]
        run([qkv, *ex, "--npy", f"one_{i}.npy", "--threads", "1"])
        r = cp(*ex, "--npy", f"cp_{i}.npy")
        shape, maps = load_npy(os.path.join(work, f"cp_{i}.npy"))
        T = shape[-1]
        n_prompt = T - n_new
        lengths.append(n_prompt)
        tag = f"gemma2 np{np} heads 1,3, {n_prompt} + {n_new} tokens"
        d = max_diff(os.path.join(work, f"one_{i}.npy"), os.path.join(work, f"cp_{i}.npy"))
        check(d <= 2e-6, f"{tag}: maps within 2e-6 of one process ({d:.2e})")
        worst = max(abs(sum(maps[j * T:(j + 1) * T]) - 1) for j in range(len(maps) // T))
        check(worst <= 2e-6, f"{tag}: every row sums to 1 (worst {worst:.2e})")
        got = re.search(r"rank 0 received (\d+) bytes", r.stderr)
        want = rank0_bytes(n_prompt, n_new, int(np), windows, shape[1], hd)
        check(got is not None and int(got.group(1)) == want,
              f"{tag}: rank 0 received {got.group(1) if got else '?'} bytes, expected {want}")
    check(any(n % (2 * int(np)) != 0 for n in lengths),
          f"np{np}: prompt lengths {lengths} include some the zig-zag chunks do not divide")

    # A q8_0 KV cache (head_dim 32: whole blocks per head): the ring and the sharded decode pass
    # its blocks as they are, so the ranks attend over the values one process quantized alike.
    run([qkv, "make-model", "--arch", "llama", "--preset", "tiny", "--head-dim", "32", "--n-ctx",
         "2048", "-o", "llama_q8.gguf"])
    kv = ["-m", "llama_q8.gguf", "--kv", "q8_0"]
    run([qkv, "eval", *kv, prompt, "--logits", "q8_one.npy", "--threads", "1"])
    cp("eval", *kv, prompt, "--logits", "q8_cp.npy")
    d = max_diff(os.path.join(work, "q8_one.npy"), os.path.join(work, "q8_cp.npy"))
    check(d <= 1e-4, f"np{np} --kv q8_0: eval logits within 1e-4 of one process ({d:.2e})")
    gen = ["generate", *kv, "-p", prompt, "-n", "300", "--temp", "0", "--ignore-eos"]
    one = run([qkv, *gen, "--threads", "1"]).stdout
    par = cp(*gen).stdout
    check(one == par and len(one) > len(prompt),
          f"np{np} --kv q8_0: greedy generation of 300 tokens identical ({len(one)} bytes)")
    ex = ["explain", *kv, prompt, "-n", "4"]
    run([qkv, *ex, "--npy", "q8_one_maps.npy", "--threads", "1"])
    cp(*ex, "--npy", "q8_cp_maps.npy")
    d = max_diff(os.path.join(work, "q8_one_maps.npy"), os.path.join(work, "q8_cp_maps.npy"))
    check(d <= 2e-6, f"np{np} --kv q8_0: explain maps within 2e-6 of one process ({d:.2e})")

    # Mismatched arguments: rank 1 of two gets another prompt, or another model file at the same
    # path (a node with a stale copy). Both must fail before any work, naming what and where.
    run([qkv, "make-model", "--arch", "llama", "--preset", "tiny", "--seed", "2", "-o",
         "other.gguf"])
    for d, m in (("a", "llama.gguf"), ("b", "other.gguf")):
        os.makedirs(os.path.join(work, d), exist_ok=True)
        shutil.copyfile(os.path.join(work, m), os.path.join(work, d, "m.gguf"))
    one_rank = mpi[:]

    def mpmd(args0, args1, cwd1="a"):
        cmd = one_rank + ["-np", "1", "--wdir", os.path.join(work, "a"), qkv, *args0,
                          "--context-parallel", ":", "-np", "1", "--wdir",
                          os.path.join(work, cwd1), qkv, *args1, "--context-parallel"]
        return run(cmd, ok=False)

    r = mpmd(["eval", "-m", "m.gguf", "a cat sat", "--logits", "x.npy"],
             ["eval", "-m", "m.gguf", "a dog sat", "--logits", "x.npy"])
    out = r.stdout + r.stderr
    check(r.returncode != 0 and 'rank 1 was given text = "a dog sat" but rank 0 "a cat sat"' in out,
          "another prompt on rank 1 is named")
    r = mpmd(["generate", "-m", "m.gguf", "-p", "a cat", "-n", "3", "--seed", "1"],
             ["generate", "-m", "m.gguf", "-p", "a cat", "-n", "3", "--seed", "1"], cwd1="b")
    out = r.stdout + r.stderr
    check(r.returncode != 0 and "rank 1 was given the model = " in out,
          "another model file on rank 1 is named")
    if failures:
        print(f"{len(failures)} check(s) failed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
