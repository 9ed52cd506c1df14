// The official `openai` npm client against `qkv serve`: chat (plain and streamed), completions,
// embeddings, logprobs, the attention extension, current request shapes (content parts,
// max_completion_tokens, logit_bias) and the 400s for fields the server cannot honour.
// Run by openai_client_test.py:
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
  const one = await client.models.retrieve(model);
  check(one.id === model && one.object === "model", "models.retrieve");
  let missing = 0;
  try {
    await client.models.retrieve("no-such-model");
  } catch (e) {
    missing = e.status;
  }
  check(missing === 404, `models.retrieve of another id: ${missing}`);

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

  // Request shapes of current clients: content parts (joined one per line) and
  // max_completion_tokens give the same reply as the plain string and max_tokens; logit_bias
  // -100 bans the greedy first token.
  const parts = await client.chat.completions.create({
    model, max_completion_tokens: 16, temperature: 0,
    messages: [{ role: "user", content: [{ type: "text", text: "Tell me" },
                                         { type: "text", text: "about a cat." }] }],
  });
  const lines = await client.chat.completions.create({
    model, max_tokens: 16, temperature: 0,
    messages: [{ role: "user", content: "Tell me\nabout a cat." }],
  });
  check(parts.choices[0].message.content === lines.choices[0].message.content,
        "content parts / max_completion_tokens");
  const tok = await fetch(baseURL.replace(/\/v1$/, "") + "/tokenize", {
    method: "POST", body: JSON.stringify({ content: chat.choices[0].logprobs.content[0].token }),
  }).then((r) => r.json());
  const banned = await client.chat.completions.create({
    model, messages, max_tokens: 2, temperature: 0, logprobs: true, top_logprobs: 2,
    logit_bias: { [String(tok.tokens[0])]: -100 },
  });
  check(tok.tokens.length === 1 &&
        banned.choices[0].logprobs.content[0].token === chat.choices[0].logprobs.content[0].top_logprobs[1].token,
        "logit_bias -100 gives the runner-up");
  // What the server cannot honour is a 400 the SDK raises as BadRequestError, naming the field.
  for (const [extra, param] of [
    [{ response_format: { type: "json_object" } }, "response_format.type"],
    [{ tools: [{ type: "function", function: { name: "f", parameters: {} } }] }, "tools"],
    [{ messages: [{ role: "bot", content: "x" }] }, "messages[0].role"],
  ]) {
    let err = null;
    try {
      await client.chat.completions.create({ model, messages, max_tokens: 1, ...extra });
    } catch (e) {
      err = e;
    }
    check(err instanceof OpenAI.BadRequestError && err.status === 400 && err.error &&
          err.error.param === param, `${param}: ${err}`);
  }

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
