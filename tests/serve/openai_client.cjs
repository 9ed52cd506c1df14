// The official `openai` npm client against `qkv serve`: chat (plain and streamed), completions,
// embeddings, logprobs and the attention extension. Run by openai_client_test.py:
//   node openai_client.cjs BASE_URL MODEL   (OPENAI_MODULE: the path of node_modules/openai)
// Prints "ok" and exits 0, or prints what failed and exits 1.
const OpenAI = require(process.env.OPENAI_MODULE);

const [baseURL, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: "test-key", maxRetries: 0 });
const failures = [];
function check(cond, what) {
  if (!cond) failures.push(what);
}

async function main() {
  const models = await client.models.list();
  check(models.data.length === 1 && models.data[0].id === model, "models.list");

  const messages = [{ role: "user", content: "Tell me about a cat." }];
  const chat = await client.chat.completions.create({
    model, messages, max_tokens: 16, temperature: 0, logprobs: true, top_logprobs: 3,
  });
  const text = chat.choices[0].message.content;
  check(typeof text === "string" && text.length > 0, "chat content");
  check(chat.usage.completion_tokens === chat.choices[0].logprobs.content.length,
        "one logprob per completion token");
  for (const e of chat.choices[0].logprobs.content) {
    check(e.top_logprobs.length === 3 && e.top_logprobs[0].token === e.token, "top_logprobs");
  }

  const stream = await client.chat.completions.create({
    model, messages, max_tokens: 16, temperature: 0, stream: true,
    stream_options: { include_usage: true },
  });
  let streamed = "";
  let finish = null;
  let usage = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    if (!chunk.choices.length) continue;
    streamed += chunk.choices[0].delta.content || "";
    if (chunk.choices[0].finish_reason) finish = chunk.choices[0].finish_reason;
  }
  check(streamed === text, `streamed ${JSON.stringify(streamed)} != ${JSON.stringify(text)}`);
  check(finish === "stop" || finish === "length", "stream finish_reason");
  check(usage && usage.completion_tokens === chat.usage.completion_tokens, "stream usage");

  const comp = await client.completions.create({
    model, prompt: "Once upon a time", max_tokens: 8, temperature: 0, logprobs: 2,
  });
  check(comp.choices[0].text.length > 0, "completion text");
  check(comp.choices[0].logprobs.tokens.length === comp.usage.completion_tokens,
        "completion logprobs");

  const emb = await client.embeddings.create({ model, input: ["a cat", "a dog"] });
  check(emb.data.length === 2 && emb.data[0].embedding.length > 0, "embeddings");
  const norm = Math.sqrt(emb.data[0].embedding.reduce((s, x) => s + x * x, 0));
  check(Math.abs(norm - 1) < 1e-4, `embedding norm ${norm}`);

  // The attention extension rides along as an extra body field.
  const att = await client.completions.create({
    model, prompt: "Once upon a time", max_tokens: 3, temperature: 0,
    attention: { top_k: 2, layers: [0], heads: [0] },
  });
  const a = att.choices[0].attention;
  check(Array.isArray(a) && a.length === att.usage.completion_tokens, "attention entries");
  check(a.every((t) => t.heads.length === 1 && t.heads[0].positions.length === 2),
        "attention top_k");

  let status = 0;
  try {
    await client.completions.create({ model: "no-such-model", prompt: "x", max_tokens: 1 });
  } catch (e) {
    status = e.status;
    check(e.error && e.error.param === "model", "error names the field");
  }
  check(status === 404, `unknown model: status ${status}`);
}

main().then(
  () => {
    if (failures.length) {
      console.log("FAILED:\n" + failures.join("\n"));
      process.exit(1);
    }
    console.log("ok");
  },
  (e) => {
    console.log("FAILED: " + (e.stack || e));
    process.exit(1);
  },
);
