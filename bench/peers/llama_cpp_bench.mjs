// llama.cpp prefill / decode throughput through node-llama-cpp's prebuilt CPU binaries, measured
// the way llama-bench measures pp / tg (the npm packages ship no llama-bench binary):
//   pp N: N random tokens evaluated in one batch from an empty KV cache, logits of the last token
//         and one greedy sample included (llama-bench: one llama_decode of N tokens).
//   tg M: M single-token decode steps from an empty KV cache, each producing logits and a greedy
//         sample (llama-bench: M llama_decode calls of one token).
// Both run after a warm-up (64 tokens + 2 steps, which also faults in the mmapped weights).
// Prints one line per (threads, test) with the median and all runs, then a JSON line.
//
// Usage: NODE_PATH=DIR/node_modules node llama_cpp_bench.mjs MODEL.gguf
//          [--threads 1,2] [--reps 3] [--pp 512] [--tg 128] [--flash-attn on|off]
// DIR is the folder node-llama-cpp was installed into (see llama_cpp_bench.sh).
import {readFileSync} from "node:fs";
import {createRequire} from "node:module";
import path from "node:path";
import process from "node:process";

function parseArgs(argv) {
  const o = {threads: [1, 2], reps: 3, pp: 512, tg: 128, flashAttn: false, model: null, peers: null};
  for (let i = 0; i < argv.length; ++i) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`${a}: expected a value`);
      return argv[++i];
    };
    if (a === "--threads") o.threads = next().split(",").map(Number);
    else if (a === "--reps") o.reps = Number(next());
    else if (a === "--pp") o.pp = Number(next());
    else if (a === "--tg") o.tg = Number(next());
    else if (a === "--flash-attn") o.flashAttn = next() === "on";
    else if (a === "--peers") o.peers = next();
    else if (!a.startsWith("-") && o.model === null) o.model = a;
    else throw new Error(`unknown argument ${a}`);
  }
  if (!o.model) throw new Error("usage: llama_cpp_bench.mjs MODEL.gguf [--threads 1,2] [--reps 3]");
  return o;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

// Deterministic "random" token ids in [3, n_vocab): llama-bench also feeds random tokens.
function tokens(n, nVocab, seed) {
  const out = [];
  let x = seed >>> 0;
  for (let i = 0; i < n; ++i) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    out.push(3 + (x % (nVocab - 3)));
  }
  return out;
}

// Evaluates `prompt` (logits and a greedy sample for its last token), then `steps - 1` single
// tokens, each the previous step's sample; returns seconds from the start to the end of each step.
// controlledEvaluate, not evaluate(): a sampled end-of-generation token must not stop the run.
async function run(seq, prompt, steps) {
  await seq.clearHistory();
  const times = [];
  const sample = {generateNext: {token: true, options: {temperature: 0}}};
  const t0 = process.hrtime.bigint();
  let input = [...prompt.slice(0, -1), [prompt[prompt.length - 1], sample]];
  for (let i = 0; i < steps; ++i) {
    const out = await seq.controlledEvaluate(input);
    times.push(Number(process.hrtime.bigint() - t0) / 1e9);
    const next = out[input.length - 1]?.next?.token;
    if (next === undefined || next === null) throw new Error(`step ${i}: no token was sampled`);
    input = [[next, sample]];
  }
  return times;
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const require = createRequire(
      path.join(o.peers ?? process.env.LLAMA_PEERS_DIR ?? process.cwd(), "node_modules", "x.js"));
  const {getLlama, LlamaLogLevel} = await import(require.resolve("node-llama-cpp"));
  const nlcMain = require.resolve("node-llama-cpp");  // DIR/node_modules/node-llama-cpp/dist/index.js
  const nlcVersion = JSON.parse(
      readFileSync(path.join(path.dirname(nlcMain), "..", "package.json"), "utf8")).version;

  let backend = "?";
  const llama = await getLlama({
    gpu: false,          // CPU only: no CUDA / Vulkan / Metal backend is loaded
    build: "never",      // the prebuilt binaries, never a local build
    maxThreads: 0,       // `threads` below is then exactly the thread count
    logLevel: LlamaLogLevel.debug,
    logger: (level, msg) => {
      const m = /loaded CPU backend from (.*)/.exec(msg);
      if (m) backend = path.basename(m[1].trim());
    },
  });
  const model = await llama.loadModel({modelPath: o.model, gpuLayers: 0, useMmap: true});
  const embd = model.fileInfo.tensorInfo?.find((t) => t.name === "token_embd.weight");
  const vocab = Number(embd?.dimensions?.[1] ?? 1000);
  const info = {
    model: path.basename(o.model),
    model_size_bytes: model.size,
    n_vocab: vocab,
    node_llama_cpp: nlcVersion,
    llama_cpp_release: llama.llamaCppRelease.release,
    cpu_backend: backend,
    system_info: llama.systemInfo.trim(),
    flash_attention: o.flashAttn,
    results: [],
  };
  console.log(`# ${info.model}: node-llama-cpp ${nlcVersion}, llama.cpp ${info.llama_cpp_release}, ` +
              `CPU backend ${backend}, flash-attn ${o.flashAttn ? "on" : "off"}`);
  console.log(`# ${info.system_info}`);

  for (const threads of o.threads) {
    const ctx = await model.createContext({
      contextSize: Math.max(1024, o.pp + o.tg + 8),
      batchSize: o.pp,
      threads,
      flashAttention: o.flashAttn,
      sequences: 1,
    });
    const seq = ctx.getSequence();
    await run(seq, tokens(64, vocab, 7), 3);  // warm-up
    const pp = [], tg = [];
    for (let r = 0; r < o.reps; ++r) {
      const t = await run(seq, tokens(o.pp, vocab, 100 + r), 1);
      pp.push(o.pp / t[0]);
      // tg: the first step evaluates one token from an empty cache, as llama-bench does.
      const g = await run(seq, tokens(1, vocab, 200 + r), o.tg);
      tg.push(o.tg / g[o.tg - 1]);
    }
    for (const [test, xs] of [[`pp${o.pp}`, pp], [`tg${o.tg}`, tg]]) {
      const row = {threads, test, median_tok_s: median(xs), runs_tok_s: xs};
      info.results.push(row);
      console.log(`threads ${threads}  ${test.padEnd(6)}  median ${median(xs).toFixed(2).padStart(9)} tok/s` +
                  `   runs ${xs.map((x) => x.toFixed(2)).join(" ")}`);
    }
    await ctx.dispose();
  }
  console.log(JSON.stringify(info));
  await model.dispose();
  await llama.dispose();
}

main().catch((e) => {
  console.error(`llama_cpp_bench: ${e.message}`);
  process.exit(1);
});
