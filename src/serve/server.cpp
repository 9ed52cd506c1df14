// qkv::Server: the HTTP side (cpp-httplib). Handlers check and translate requests into scheduler
// jobs and the jobs' token events into OpenAI-style responses, whole or as Server-Sent Events.
#include "qkv/server.h"

#include <httplib.h>

#include <atomic>
#include <bit>
#include <cctype>
#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>
#include <regex>

#include "core/error.h"
#include "core/utf8.h"
#include "qkv/session.h"
#include "serve/api.h"
#include "serve/connection.h"
#include "serve/cors.h"
#include "serve/http.h"
#include "serve/page.h"
#include "serve/scheduler.h"
#include "serve/task_pool.h"

namespace qkv {

using serve::ApiError;
using serve::Fields;
using serve::json;

namespace {

// Connections served at once (each holds a thread while it sends its request or waits for its
// reply); more wait for a thread. Slow or stalled senders beyond this need a reverse proxy.
constexpr size_t kMaxConnections = 1024;

int64_t unix_time() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Compares without an early exit, so the time taken says nothing about where a guess goes wrong.
bool constant_time_equal(const std::string& a, const std::string& b) {
  const size_t n = std::max(a.size(), b.size());
  unsigned diff = a.size() == b.size() ? 0u : 1u;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned>(x ^ y);
  }
  return diff == 0;
}

const char* status_type(int status) {
  switch (status) {
    case 401:
      return "authentication_error";
    case 403:
      return "permission_error";

    case 404:
      return "not_found_error";
    case 413:
      return "request_too_large";
    case 503:
      return "server_overloaded";
    default:
      return status >= 500 ? "server_error" : "invalid_request_error";
  }
}

void send_error(httplib::Response& res, int status, const std::string& message,
                const std::string& param = {}, const std::string& type = {},
                const std::string& code = {}) {
  res.status = status;
  if (status == 401) res.set_header("WWW-Authenticate", "Bearer");  // RFC 9110 15.5.2
  res.set_content(serve::dump(serve::error_body(message, type.empty() ? status_type(status) : type,
                                                param, code)),
                  "application/json");
}

enum class Kind { chat, completion };

// Reads a request's body and drops it: a refused request's, so that the connection's next request
// starts after it. (The plain reader cannot read multipart bodies: it throws bad_function_call.)
void drop_body(const httplib::Request& req, const httplib::ContentReader& reader) {
  if (req.is_multipart_form_data()) {
    reader([](const httplib::MultipartFormData&) { return true; },
           [](const char*, size_t) { return true; });
  } else {
    reader([](const char*, size_t) { return true; });
  }
}

// A POST body, read through httplib's content reader so that its size is checked as it arrives:
// httplib's own limit (set_payload_max_length) covers bodies with a Content-Length only, and a
// chunked body of any size was read whole into memory. Past the limit the rest of a chunked body
// is read and dropped, so that the connection's next request starts where this body ends (a
// Content-Length over the limit is refused before its body is read: routes()).
std::string read_body(const httplib::Request& req, const httplib::ContentReader& reader,
                      int64_t max_bytes) {
  if (req.is_multipart_form_data()) {
    drop_body(req, reader);
    throw ApiError(400,
                   "multipart/form-data bodies are not supported: send JSON "
                   "(Content-Type: application/json)");
  }
  std::string body;
  bool over = false;
  const bool complete = reader([&](const char* data, size_t n) {
    over = over || body.size() + n > static_cast<size_t>(max_bytes);
    if (!over) body.append(data, n);
    return true;
  });
  if (over) {
    throw ApiError(413,
                   core::concat("the request body is larger than the server's limit of ", max_bytes,
                                " bytes (--max-body)"),
                   "", "request_too_large");
  }
  if (!complete) {
    // Where the body ends is not known: the rest of it must not be read as requests.
    serve::HttpServer::close_after_response();
    const std::string encoding = req.get_header_value("Content-Encoding");
    if (!encoding.empty() && encoding != "identity") {
      throw ApiError(400, core::concat("Content-Encoding '", encoding,
                                       "' is not supported: send the body uncompressed"));
    }
    if (const auto r = serve::HttpServer::body_refusal()) {
      throw ApiError(r->status, "the chunked request body cannot be read: " + r->message);
    }
    if (req.has_header("Transfer-Encoding")) {
      throw ApiError(400, "the chunked request body ended before its last chunk");
    }
    throw ApiError(400, "the request body ended before its declared end");
  }
  return body;
}

std::string base64(const std::vector<float>& v) {
  static constexpr char kDigits[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string bytes(v.size() * 4, '\0');
  for (size_t i = 0; i < v.size(); ++i) {
    const auto u = std::bit_cast<uint32_t>(v[i]);
    for (int b = 0; b < 4; ++b) bytes[i * 4 + b] = static_cast<char>((u >> (8 * b)) & 0xff);
  }
  std::string out;
  for (size_t i = 0; i < bytes.size(); i += 3) {
    uint32_t n = static_cast<uint32_t>(static_cast<unsigned char>(bytes[i])) << 16;
    if (i + 1 < bytes.size())
      n |= static_cast<uint32_t>(static_cast<unsigned char>(bytes[i + 1])) << 8;
    if (i + 2 < bytes.size()) n |= static_cast<unsigned char>(bytes[i + 2]);
    out += kDigits[(n >> 18) & 63];
    out += kDigits[(n >> 12) & 63];
    out += i + 1 < bytes.size() ? kDigits[(n >> 6) & 63] : '=';
    out += i + 2 < bytes.size() ? kDigits[n & 63] : '=';
  }
  return out;
}

}  // namespace

struct Server::Impl {
  Model model;
  ServerOptions o;
  std::string model_id;
  std::unique_ptr<serve::Scheduler> sched;
  std::optional<serve::ChatFormatter> chat;
  std::optional<serve::CorsPolicy> cors;
  serve::HttpServer http;
  // Each path the server serves and the methods it answers there ("GET, HEAD" or "POST"): for
  // preflights and for 405s.
  std::vector<std::pair<std::regex, std::string>> paths;
  int port = 0;
  std::atomic<int64_t> next_id{1};
  std::mutex metrics_mu;
  std::map<int, int64_t> by_status;

  void routes();
  // The methods `path` is served with, or nullptr when it is not served at all.
  const std::string* methods_of(const std::string& path) const;
  // Throws ApiError 403 for an origin --cors does not allow, 401 without the API key (when one is
  // set and `needs_key`).
  void admit(const httplib::Request& req, bool needs_key) const;
  void preflight(const httplib::Request& req, httplib::Response& res) const;
  // For a request no route took: 405 with Allow when its path is served with other methods, 404
  // when it is not served at all. False (nothing written) when the path serves its method.
  bool refuse_route(const httplib::Request& req, httplib::Response& res) const;
  const Tokenizer& tokenizer() const { return model.tokenizer(); }
  void check_model(const Fields& f) const;
  // A Content-Length (with no Transfer-Encoding, which overrides it) over --max-body.
  bool declared_too_large(const httplib::Request& req) const;
  ApiError body_too_large() const;
  // Each takes the request's body (read_body) and fills the response.
  void generate(const httplib::Request& req, const std::string& body_text, httplib::Response& res,
                Kind kind);
  void embeddings(const std::string& text, httplib::Response& res);
  // /v1/embeddings' input: a string, an array of strings, an array of token ids, or an array of
  // arrays of token ids; each input's token ids.
  std::vector<std::vector<int32_t>> embedding_inputs(const json& in) const;
  void tokenize(const std::string& text, httplib::Response& res);
  void detokenize(const std::string& text, httplib::Response& res);
  std::string metrics();
  json models() const;
};

const std::string* Server::Impl::methods_of(const std::string& path) const {
  for (const auto& [pattern, methods] : paths) {
    if (std::regex_match(path, pattern)) return &methods;
  }
  return nullptr;
}

void Server::Impl::admit(const httplib::Request& req, bool needs_key) const {
  const std::string origin = req.get_header_value("Origin");
  if (!cors->allow_origin(origin, req.get_header_value("Host"))) {
    throw ApiError(403,
                   core::concat("requests from the origin '", origin,
                                "' are not allowed; the server's --cors option lists the origins ",
                                "that are"),
                   "", "permission_error", "origin_not_allowed");
  }
  if (!needs_key || o.api_key.empty()) return;
  const std::string auth = req.get_header_value("Authorization");
  // "Bearer" SP+ KEY; the scheme's case does not matter (RFC 9110 11.1), the key's does.
  std::string scheme = auth.substr(0, std::min<size_t>(auth.size(), 6));
  for (char& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const size_t key_at = auth.find_first_not_of(' ', 6);
  const bool bearer = scheme == "bearer" && auth.size() > 6 && auth[6] == ' ';
  const std::string key = bearer && key_at != std::string::npos ? auth.substr(key_at) : "";
  if (!bearer || !constant_time_equal(key, o.api_key)) {
    throw ApiError(401,
                   auth.empty() ? "missing API key: send the header Authorization: Bearer KEY"
                                : "invalid API key",
                   "", "authentication_error", "invalid_api_key");
  }
}

// A browser's CORS preflight (OPTIONS with Access-Control-Request-Method): it carries no key, and
// the answer allows the path's methods and whatever request headers the page asked for (the
// Fetch standard's "*" does not cover Authorization, so they are named back).
void Server::Impl::preflight(const httplib::Request& req, httplib::Response& res) const {
  admit(req, false);
  const std::string* methods = methods_of(req.path);
  if (methods == nullptr) throw ApiError(404, "no endpoint " + req.path, "", "not_found_error");
  const std::string allow = *methods + ", OPTIONS";
  res.set_header("Allow", allow);
  res.set_header("Access-Control-Allow-Methods", allow);
  const std::string asked = req.get_header_value("Access-Control-Request-Headers");
  res.set_header("Access-Control-Allow-Headers",
                 asked.empty() ? std::string("Authorization, Content-Type") : asked);
  res.set_header("Access-Control-Max-Age", "86400");
  // Chrome asks before a public page may call a server on a private network or this machine.
  if (req.get_header_value("Access-Control-Request-Private-Network") == "true") {
    res.set_header("Access-Control-Allow-Private-Network", "true");
  }
  res.status = 200;
}

bool Server::Impl::refuse_route(const httplib::Request& req, httplib::Response& res) const {
  const std::string* methods = methods_of(req.path);
  if (methods == nullptr) {
    send_error(res, 404, "no endpoint " + req.method + " " + req.path);
    return true;
  }
  const std::string& m = req.method;
  const bool served = *methods == "POST" ? m == "POST" : (m == "GET" || m == "HEAD");
  if (served) return false;
  res.set_header("Allow", *methods + ", OPTIONS");
  send_error(res, 405,
             core::concat(m, " ", req.path, " is not served; it answers ", *methods, ", OPTIONS"));
  return true;
}

bool Server::Impl::declared_too_large(const httplib::Request& req) const {
  return req.has_header("Content-Length") && !req.has_header("Transfer-Encoding") &&
         req.get_header_value<uint64_t>("Content-Length") > static_cast<uint64_t>(o.max_body_bytes);
}

ApiError Server::Impl::body_too_large() const {
  return ApiError(413,
                  core::concat("the request body is larger than the server's limit of ",
                               o.max_body_bytes, " bytes (--max-body)"),
                  "", "request_too_large");
}

void Server::Impl::check_model(const Fields& f) const {
  const auto name = f.string("model");
  if (name && !name->empty() && *name != model_id) {
    throw ApiError(404,
                   core::concat("the model '", *name, "' does not exist; this server has '",
                                model_id, "' (GET /v1/models)"),
                   "model", "invalid_request_error", "model_not_found");
  }
}

json Server::Impl::models() const {
  return json{
      {"object", "list"},
      {"data",
       json::array({json{{"id", model_id},
                         {"object", "model"},
                         {"created", 0},
                         {"owned_by", "qkv"},
                         {"meta",
                          {{"n_ctx", sched->n_ctx()},
                           {"n_vocab", model.config().n_vocab},
                           {"n_layer", model.config().n_layer},
                           {"n_embd", model.config().n_embd},
                           {"n_head", model.config().n_head},
                           {"n_params", model.n_params()},
                           {"architecture", std::string(architecture_name(model.architecture()))},
                           {"decoder", model.is_decoder()}}}}})}};
}

void Server::Impl::generate(const httplib::Request& req, const std::string& body_text,
                            httplib::Response& res, Kind kind) {
  const json body = serve::parse_body(body_text);
  const Fields f(body);
  check_model(f);
  if (!model.is_decoder()) {
    throw ApiError(
        400,
        core::concat("the model is an encoder (", architecture_name(model.architecture()),
                     ") and cannot generate text; use /v1/embeddings"),
        "model");
  }
  if (!model.has_tokenizer()) throw ApiError(400, "the model has no tokenizer", "model");
  const Tokenizer& tok = tokenizer();
  auto job = std::make_shared<serve::Job>();
  serve::JobParams& p = job->params;
  serve::read_sampling(f, p);
  serve::read_logit_bias(f, model.config().n_vocab, p);
  serve::read_attention(f, model.config(), p);
  const bool stream = f.boolean("stream", false);
  bool include_usage = false;
  if (f.has("stream_options")) {
    const json& so = body["stream_options"];
    if (!so.is_object())
      throw ApiError(400, "'stream_options' must be an object", "stream_options");
    include_usage = Fields(so, "stream_options.").boolean("include_usage", false);
  }
  const char* prompt_field = kind == Kind::chat ? "messages" : "prompt";
  if (kind == Kind::chat) serve::check_unsupported_chat_fields(f);
  if (kind == Kind::chat) {
    if (!f.has("messages")) throw ApiError(400, "'messages' is required", "messages");
    const serve::ChatPrompt cp =
        chat->render(body["messages"],
                     {.add_generation_prompt = f.boolean(
                          "add_generation_prompt", !f.boolean("continue_final_message", false)),
                      .continue_final_message = f.boolean("continue_final_message", false)});
    p.prompt = tok.encode(cp.text, {.add_special = false, .parse_special = true});
    for (const auto& s : cp.extra_stop) p.stop.push_back(s);
    if (f.boolean("logprobs", false)) {
      p.n_logprobs = static_cast<int>(f.integer("top_logprobs", 0, 0, 20));
    } else if (f.has("top_logprobs")) {
      throw ApiError(400, "'top_logprobs' needs 'logprobs': true", "top_logprobs");
    }
  } else {
    if (!f.has("prompt")) throw ApiError(400, "'prompt' is required", "prompt");
    json pr = body["prompt"];
    if (pr.is_array() && pr.size() == 1 && (pr[0].is_string() || pr[0].is_array())) pr = pr[0];
    if (pr.is_array() && pr.size() > 1 && (pr[0].is_string() || pr[0].is_array())) {
      throw ApiError(400,
                     core::concat("'prompt' has ", pr.size(),
                                  " prompts; one prompt per request is supported (send each in ",
                                  "its own request)"),
                     "prompt");
    }
    if (pr.is_string()) {
      // Special tokens written in the text are those tokens, as llama-server and vLLM (Hugging
      // Face tokenizers) read a completion prompt: clients that write a chat format themselves
      // ("<|im_start|>user\n...") mean its control tokens.
      p.prompt = tok.encode(pr.get<std::string>(), {.add_special = true, .parse_special = true});
    } else if (pr.is_array() && !pr.empty()) {
      for (const json& x : pr) {
        if (!x.is_number_integer() || x.get<int64_t>() < 0 ||
            x.get<int64_t>() >= model.config().n_vocab) {
          throw ApiError(
              400,
              core::concat("'prompt' has ", x.dump(), "; token ids must be integers in [0, ",
                           model.config().n_vocab, ")"),
              "prompt");
        }
        p.prompt.push_back(x.get<int32_t>());
      }
    } else {
      throw ApiError(400,
                     "'prompt' must be a string, an array of one string, or an array of token ids",
                     "prompt");
    }
    if (f.has("logprobs")) p.n_logprobs = static_cast<int>(f.integer("logprobs", 0, 0, 5));
    p.echo = f.boolean("echo", false);
    // Fields that would change what is generated are refused rather than ignored.
    if (f.string("suffix").value_or("") != "") {
      throw ApiError(400, "'suffix' (fill in the middle) is not supported", "suffix");
    }
    if (f.integer("best_of", 1, 1, 128) != 1) {
      throw ApiError(400, "'best_of' must be 1: one completion per request is supported",
                     "best_of");
    }
  }
  if (p.max_tokens == 0 && !p.echo) {
    throw ApiError(400,
                   core::concat("'", p.max_tokens_field,
                                "' must be at least 1 (0 only with 'echo' on /v1/completions, "
                                "which then scores the prompt)"),
                   p.max_tokens_field);
  }
  // Echo: the reply's text starts with the prompt's (as given, or the ids' decoded text).
  std::string echo_text;
  if (p.echo) {
    json pr = body["prompt"];
    if (pr.is_array() && pr.size() == 1 && (pr[0].is_string() || pr[0].is_array())) pr = pr[0];
    echo_text = pr.is_string() ? pr.get<std::string>() : tok.decode(p.prompt, false);
  }
  const int64_t n_ctx = sched->n_ctx();
  const int64_t n_prompt = static_cast<int64_t>(p.prompt.size());
  if (n_prompt == 0)
    throw ApiError(400, core::concat("'", prompt_field, "' makes no tokens"), prompt_field);
  if (n_prompt >= n_ctx) {
    throw ApiError(
        400,
        core::concat("'", prompt_field, "' is ", n_prompt,
                     " tokens, which leaves no room in the context of ", n_ctx, " tokens"),
        prompt_field, "invalid_request_error", "context_length_exceeded");
  }
  if (p.max_tokens < 0) {
    p.max_tokens = n_ctx - n_prompt;
  } else if (n_prompt + p.max_tokens > n_ctx) {
    throw ApiError(400,
                   core::concat("'", p.max_tokens_field, "' = ", p.max_tokens,
                                " plus the prompt's ", n_prompt, " tokens exceeds the context of ",
                                n_ctx, " tokens; ask for at most ", n_ctx - n_prompt),
                   p.max_tokens_field, "invalid_request_error", "context_length_exceeded");
  }
  if (!sched->submit(job)) {
    res.set_header("Retry-After", "1");
    throw ApiError(503, "all slots are busy and the queue is full; retry later", "",
                   "server_overloaded");
  }

  const std::string id = core::concat(kind == Kind::chat ? "chatcmpl-" : "cmpl-", next_id++);
  const int64_t created = unix_time();
  const int n_logprobs = p.n_logprobs;
  const bool want_attention = p.attention.top_k > 0;
  const std::string mid = model_id;
  const Tokenizer* tk = &tok;
  // With the attention extension, the prompt's token pieces, so that positions can be shown.
  json prompt_pieces = nullptr;
  if (want_attention) {
    prompt_pieces = json::array();
    for (int32_t t : p.prompt) prompt_pieces.push_back(tok.token_bytes(t));
  }
  // Per-token logprob and attention entries, in the chat or the legacy completions shape.
  struct Acc {
    json lp_content = json::array();                                               // chat
    json tokens = json::array(), token_lps = json::array(), tops = json::array();  // legacy
    json attention = json::array();
    int64_t index = 0;
  };
  auto add_token = [tk, n_logprobs, want_attention, kind](Acc& a, const serve::TokenEvent& ev) {
    if (ev.id < 0) return;
    if (ev.prompt) {  // echo: a prompt token (legacy shape; the first has no logprob)
      a.tokens.push_back(tk->token_bytes(ev.id));
      a.token_lps.push_back(ev.has_logprob ? json(ev.logprob) : json(nullptr));
      json top = json::object();
      for (const auto& t : ev.top) top[tk->token_bytes(t.id)] = t.logprob;
      a.tops.push_back(ev.has_logprob ? top : json(nullptr));
      return;
    }
    if (n_logprobs >= 0) {
      if (kind == Kind::chat) {
        json e = serve::token_logprob(*tk, ev.id, ev.logprob);
        json top = json::array();
        for (const auto& t : ev.top) top.push_back(serve::token_logprob(*tk, t.id, t.logprob));
        e["top_logprobs"] = top;
        a.lp_content.push_back(e);
      } else {
        a.tokens.push_back(tk->token_bytes(ev.id));
        a.token_lps.push_back(ev.logprob);
        json top = json::object();
        for (const auto& t : ev.top) top[tk->token_bytes(t.id)] = t.logprob;
        a.tops.push_back(top);
      }
    }
    if (want_attention) {
      a.attention.push_back({{"index", a.index},
                             {"token", tk->token_bytes(ev.id)},
                             {"heads", serve::attention_json(ev.attention)}});
    }
    ++a.index;
  };
  auto logprobs_json = [kind, n_logprobs](Acc& a) -> json {
    if (n_logprobs < 0) return nullptr;
    if (kind == Kind::chat) return json{{"content", a.lp_content}};
    return json{{"tokens", a.tokens}, {"token_logprobs", a.token_lps}, {"top_logprobs", a.tops}};
  };
  auto usage = [](const serve::Job& j) {
    return json{{"prompt_tokens", j.n_prompt},
                {"completion_tokens", j.n_generated},
                {"total_tokens", j.n_prompt + j.n_generated},
                {"prompt_tokens_details", {{"cached_tokens", j.n_reused}}}};
  };

  if (!stream) {
    // A client that goes away cancels its generation (a stream's provider sees it itself).
    const int socket = serve::connection_socket(req);
    std::string text = echo_text;
    Acc acc;
    bool done = false;
    while (!done) {
      if (serve::peer_closed(socket)) job->cancelled = true;
      for (const serve::TokenEvent& ev : job->take(1000, done)) {
        text += ev.text;
        add_token(acc, ev);
      }
    }
    std::lock_guard lock(job->mu);
    if (job->finish == serve::Finish::error) {
      throw ApiError(job->error.find("context") != std::string::npos ? 400 : 500,
                     "generation failed: " + job->error, "", "server_error");
    }
    json choice = {{"index", 0},
                   {"logprobs", logprobs_json(acc)},
                   {"finish_reason", serve::finish_reason(job->finish)}};
    if (kind == Kind::chat) {
      choice["message"] = {{"role", "assistant"}, {"content", text}};
    } else {
      choice["text"] = text;
    }
    if (want_attention) {
      choice["attention"] = acc.attention;
      choice["prompt_tokens"] = prompt_pieces;
    }
    json out = {{"id", id},
                {"object", kind == Kind::chat ? "chat.completion" : "text_completion"},
                {"created", created},
                {"model", mid},
                {"choices", json::array({choice})},
                {"usage", usage(*job)}};
    res.set_content(serve::dump(out), "application/json");
    return;
  }

  // Server-Sent Events: one chunk per token (or per released text), a last chunk with the finish
  // reason, the usage chunk when asked for, then "data: [DONE]".
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  auto state = std::make_shared<int>(0);  // 0: role not sent yet (chat), 1: streaming, 2: over
  // Echo: the prompt's text goes first, in one chunk with the prompt tokens' logprobs when asked
  // for (gathered from the prompt events as they come).
  auto echo = std::make_shared<Acc>();
  auto echo_left = std::make_shared<int64_t>(p.echo ? (n_logprobs >= 0 ? n_prompt : 0) : -1);
  auto provide = [job, state, id, created, mid, kind, add_token, logprobs_json, usage,
                  include_usage, want_attention, n_logprobs, prompt_pieces, echo, echo_left,
                  echo_text](size_t, httplib::DataSink& sink) {
    auto send = [&](const json& j) {
      const std::string line = "data: " + serve::dump(j) + "\n\n";
      return sink.write(line.data(), line.size());
    };
    auto chunk = [&](json choice) {
      json c{{"id", id},
             {"object", kind == Kind::chat ? "chat.completion.chunk" : "text_completion"},
             {"created", created},
             {"model", mid},
             {"choices", json::array({std::move(choice)})}};
      // With include_usage every chunk but the last has "usage": null (OpenAI's API).
      if (include_usage) c["usage"] = nullptr;
      return c;
    };
    if (*state == 0 && (kind == Kind::chat || want_attention)) {
      json c = {{"index", 0}, {"logprobs", nullptr}, {"finish_reason", nullptr}};
      if (kind == Kind::chat) {
        c["delta"] = {{"role", "assistant"}, {"content", ""}};
      } else {
        c["text"] = "";
      }
      if (want_attention) c["prompt_tokens"] = prompt_pieces;
      if (!send(chunk(c))) return false;
    }
    *state = 1;
    bool done = false;
    const auto events = job->take(200, done);
    if (!sink.is_writable()) {
      job->cancelled = true;
      return false;
    }
    const auto send_echo = [&] {
      json c = {{"index", 0}, {"logprobs", logprobs_json(*echo)}, {"finish_reason", nullptr}};
      c["text"] = echo_text;
      *echo_left = -1;
      return send(chunk(c));
    };
    if (*echo_left == 0 && !send_echo()) {
      job->cancelled = true;
      return false;
    }
    for (const serve::TokenEvent& ev : events) {
      if (ev.prompt) {
        add_token(*echo, ev);
        if (--*echo_left == 0 && !send_echo()) {
          job->cancelled = true;
          return false;
        }
        continue;
      }
      Acc acc;
      add_token(acc, ev);
      if (ev.text.empty() && n_logprobs < 0 && !want_attention) continue;
      json c = {{"index", 0}, {"logprobs", logprobs_json(acc)}, {"finish_reason", nullptr}};
      if (kind == Kind::chat) {
        c["delta"] = {{"content", ev.text}};
      } else {
        c["text"] = ev.text;
      }
      if (want_attention) c["attention"] = acc.attention;
      if (!send(chunk(c))) {
        job->cancelled = true;
        return false;
      }
    }
    if (!done) return true;
    std::unique_lock lock(job->mu);
    if (job->finish == serve::Finish::error) {
      send(serve::error_body("generation failed: " + job->error, "server_error", "", ""));
    } else {
      json c = {{"index", 0},
                {"logprobs", nullptr},
                {"finish_reason", serve::finish_reason(job->finish)}};
      if (kind == Kind::chat) {
        c["delta"] = json::object();
      } else {
        c["text"] = "";
      }
      send(chunk(c));
      if (include_usage) {
        json u = chunk(c);
        u["choices"] = json::array();
        u["usage"] = usage(*job);
        send(u);
      }
    }
    lock.unlock();
    const std::string end = "data: [DONE]\n\n";
    sink.write(end.data(), end.size());
    *state = 2;
    sink.done();
    return true;
  };
  auto release = [job](bool success) {
    if (!success) job->cancelled = true;
  };
  if (req.version == "HTTP/1.0") {
    // An HTTP/1.0 client knows no chunked coding (RFC 9112 6.1: a server must not send it one):
    // the events run to the end of the connection.
    serve::HttpServer::close_after_response();
    res.set_content_provider("text/event-stream", std::move(provide), std::move(release));
  } else {
    res.set_chunked_content_provider("text/event-stream", std::move(provide), std::move(release));
  }
}

std::vector<std::vector<int32_t>> Server::Impl::embedding_inputs(const json& in) const {
  static constexpr const char* kForms =
      "a string, an array of strings, an array of token ids or an array of arrays of token ids";
  const int64_t n_vocab = model.config().n_vocab;
  auto token_ids = [&](const json& a, const std::string& at) {
    std::vector<int32_t> ids;
    for (const json& x : a) {
      if (!x.is_number_integer() || x.get<int64_t>() < 0 || x.get<int64_t>() >= n_vocab) {
        throw ApiError(400,
                       core::concat("'", at, "' has ", x.dump(), "; token ids are integers in [0, ",
                                    n_vocab, ")"),
                       "input");
      }
      ids.push_back(x.get<int32_t>());
    }
    return ids;
  };
  auto encode = [&](const json& text) {
    if (!model.has_tokenizer()) {
      throw ApiError(400, "the model has no tokenizer: send token ids", "input");
    }
    return model.is_decoder() ? tokenizer().encode(text.get<std::string>())
                              // as qkv::embed encodes a text: [CLS] text [SEP]
                              : tokenizer().encode(text.get<std::string>(),
                                                   {.add_special = true, .parse_special = true});
  };
  std::vector<std::vector<int32_t>> out;
  if (in.is_string()) {
    out.push_back(encode(in));
  } else if (in.is_array() && !in.empty() && in[0].is_number()) {
    out.push_back(token_ids(in, "input"));
  } else if (in.is_array() && !in.empty()) {
    if (in.size() > 256) throw ApiError(400, "'input' has more than 256 inputs", "input");
    for (size_t i = 0; i < in.size(); ++i) {
      const json& x = in[i];
      const bool same_form = in[0].is_string() ? x.is_string() : x.is_array();
      if (!same_form) {
        throw ApiError(400,
                       core::concat("'input[", i, "]' is ", x.dump().substr(0, 40),
                                    "; 'input' must be ", kForms, " (one form per request)"),
                       "input");
      }
      out.push_back(x.is_string() ? encode(x) : token_ids(x, core::concat("input[", i, "]")));
    }
  } else {
    throw ApiError(400, core::concat("'input' must be ", kForms, ", not empty"), "input");
  }
  return out;
}

void Server::Impl::embeddings(const std::string& text, httplib::Response& res) {
  const json body = serve::parse_body(text);
  const Fields f(body);
  check_model(f);
  if (!f.has("input")) throw ApiError(400, "'input' is required", "input");
  if (f.has("user")) f.string("user");  // an end-user id, as in chat: checked, unused
  // The inputs as token ids: texts encoded (with BOS, or [CLS] ... [SEP], as the model's
  // tokenizer adds them), token ids as given (OpenAI's token-array forms, which clients that
  // count tokens themselves send).
  const std::vector<std::vector<int32_t>> inputs = embedding_inputs(body["input"]);
  const std::string format = f.string("encoding_format").value_or("float");
  const int64_t n_embd = model.config().n_embd;
  if (f.has("dimensions") && f.integer("dimensions", n_embd, 1, INT32_MAX) != n_embd) {
    throw ApiError(400,
                   core::concat("'dimensions' = ", f.integer("dimensions", 0, 1, INT32_MAX),
                                ": the model's embeddings have ", n_embd,
                                " values, and shortening them is not supported"),
                   "dimensions");
  }
  if (format != "float" && format != "base64") {
    throw ApiError(400, "'encoding_format' must be \"float\" or \"base64\"", "encoding_format");
  }
  std::string pooling_name = f.string("pooling").value_or(model.is_decoder() ? "mean" : "cls");
  const bool normalize = f.boolean("normalize", true);
  for (size_t i = 0; i < inputs.size(); ++i) {
    const auto n = static_cast<int64_t>(inputs[i].size());
    if (n == 0) throw ApiError(400, core::concat("'input[", i, "]' makes no tokens"), "input");
    if (n > sched->n_ctx()) {
      throw ApiError(400,
                     core::concat("'input[", i, "]' is ", n, " tokens, more than the context of ",
                                  sched->n_ctx()),
                     "input");
    }
  }
  std::vector<std::vector<float>> out(inputs.size());
  int64_t n_tokens = 0;
  for (const auto& ids : inputs) n_tokens += static_cast<int64_t>(ids.size());
  if (!model.is_decoder()) {
    if (pooling_name != "cls" && pooling_name != "mean" && pooling_name != "pooler") {
      throw ApiError(400, "'pooling' must be cls, mean or pooler", "pooling");
    }
    const EmbedOptions eo{.pooling = pooling_name == "mean"     ? Pooling::mean
                                     : pooling_name == "pooler" ? Pooling::pooler
                                                                : Pooling::cls,
                          .normalize = normalize,
                          .n_threads = o.n_threads};
    sched->run_task([&] {
      for (size_t i = 0; i < inputs.size(); ++i) out[i] = embed(model, inputs[i], eo);
    });
  } else {
    // A decoder: the mean (or last) of the final norm's rows, as sentence-transformers pools.
    if (pooling_name != "mean" && pooling_name != "last") {
      throw ApiError(400, "'pooling' must be mean or last for a decoder", "pooling");
    }
    struct Rows : Observer {
      std::vector<float> sum, last;
      int64_t n = 0;
      bool wants_activations() override { return true; }
      void on_activation(const ActivationEvent& e) override {
        if (e.name != "final_norm") return;
        sum.assign(static_cast<size_t>(e.width), 0.f);
        for (int64_t r = 0; r < e.n_rows; ++r)
          for (int64_t c = 0; c < e.width; ++c) sum[c] += e.data[r * e.width + c];
        last.assign(e.data + (e.n_rows - 1) * e.width, e.data + e.n_rows * e.width);
        n = e.n_rows;
      }
    };
    sched->run_task([&] {
      for (size_t i = 0; i < inputs.size(); ++i) {
        Rows rows;
        const std::vector<int32_t>& ids = inputs[i];
        Session s(model, {.n_ctx = static_cast<int64_t>(ids.size()),
                          .kv_type = KvType::f32,
                          .n_threads = o.n_threads,
                          .observer = &rows,
                          .attention_backend = Backend::automatic});
        s.eval(ids);
        std::vector<float> e = pooling_name == "last" ? rows.last : rows.sum;
        if (pooling_name == "mean")
          for (float& x : e) x /= static_cast<float>(rows.n);
        if (normalize) {
          double ss = 0;
          for (float x : e) ss += static_cast<double>(x) * x;
          const float inv = ss > 0 ? static_cast<float>(1 / std::sqrt(ss)) : 0.f;
          for (float& x : e) x *= inv;
        }
        out[i] = std::move(e);
      }
    });
  }
  json data = json::array();
  for (size_t i = 0; i < out.size(); ++i) {
    // base64: the float32 values' little-endian bytes, as OpenAI's clients ask for by default.
    json e = format == "base64" ? json(base64(out[i])) : json(out[i]);
    data.push_back({{"object", "embedding"}, {"index", i}, {"embedding", e}});
  }
  res.set_content(
      serve::dump(json{{"object", "list"},
                       {"data", data},
                       {"model", model_id},
                       {"usage", {{"prompt_tokens", n_tokens}, {"total_tokens", n_tokens}}}}),
      "application/json");
}

void Server::Impl::tokenize(const std::string& text, httplib::Response& res) {
  const json body = serve::parse_body(text);
  const Fields f(body);
  if (!model.has_tokenizer()) throw ApiError(400, "the model has no tokenizer", "model");
  const auto content = f.string("content");
  if (!content) throw ApiError(400, "'content' is required (a string)", "content");
  const bool add_special = f.boolean("add_special", false);
  const bool parse_special = f.boolean("parse_special", true);
  const bool with_pieces = f.boolean("with_pieces", false);
  const std::vector<int32_t> ids =
      tokenizer().encode(*content, {.add_special = add_special, .parse_special = parse_special});
  json tokens = json::array();
  for (int32_t id : ids) {
    if (with_pieces) {
      // A piece that is part of a UTF-8 character is its bytes, as llama-server writes it (as
      // text it would read as U+FFFD, and the bytes could not be put back together).
      const std::string piece = tokenizer().token_bytes(id);
      json bytes = json::array();
      for (unsigned char c : piece) bytes.push_back(c);
      tokens.push_back({{"id", id}, {"piece", core::valid_utf8(piece) ? json(piece) : bytes}});
    } else {
      tokens.push_back(id);
    }
  }
  res.set_content(serve::dump(json{{"tokens", tokens}}), "application/json");
}

void Server::Impl::detokenize(const std::string& text, httplib::Response& res) {
  const json body = serve::parse_body(text);
  if (!model.has_tokenizer()) throw ApiError(400, "the model has no tokenizer", "model");
  if (!body.contains("tokens") || !body["tokens"].is_array()) {
    throw ApiError(400, "'tokens' is required (an array of token ids)", "tokens");
  }
  std::vector<int32_t> ids;
  for (const json& x : body["tokens"]) {
    if (!x.is_number_integer() || x.get<int64_t>() < 0 ||
        x.get<int64_t>() >= tokenizer().n_vocab()) {
      throw ApiError(400,
                     core::concat("'tokens' has ", x.dump(), "; expected ids in [0, ",
                                  tokenizer().n_vocab(), ")"),
                     "tokens");
    }
    ids.push_back(x.get<int32_t>());
  }
  // Special tokens are written out (<|im_start|>), as llama-server's /detokenize and Hugging
  // Face's decode() write them, so that /tokenize's ids give their text back.
  res.set_content(serve::dump(json{{"content", tokenizer().decode(ids, /*skip_special=*/false)}}),
                  "application/json");
}

std::string Server::Impl::metrics() {
  const serve::SchedulerStats s = sched->stats();
  std::string out;
  auto line = [&](const std::string& l) { out += l + "\n"; };
  line("# HELP qkv_requests_total HTTP requests answered, by status.");
  line("# TYPE qkv_requests_total counter");
  {
    std::lock_guard lock(metrics_mu);
    for (const auto& [status, n] : by_status) {
      line(core::concat("qkv_requests_total{status=\"", status, "\"} ", n));
    }
  }
  auto metric = [&](const char* name, const char* type, const char* help, double v) {
    line(core::concat("# HELP ", name, " ", help));
    line(core::concat("# TYPE ", name, " ", type));
    line(core::concat(name, " ", v));
  };
  metric("qkv_prompt_tokens_total", "counter", "Prompt tokens run through the model.",
         static_cast<double>(s.prompt_tokens));
  metric("qkv_generated_tokens_total", "counter", "Tokens generated.",
         static_cast<double>(s.generated_tokens));
  metric("qkv_prefill_seconds_total", "counter", "Seconds spent on prompt chunks.",
         s.prefill_seconds);
  metric("qkv_decode_seconds_total", "counter", "Seconds spent on decode steps.", s.decode_seconds);
  metric("qkv_prefill_tokens_per_second", "gauge", "Prompt tokens per second of prefill time.",
         s.prefill_seconds > 0 ? static_cast<double>(s.prompt_tokens) / s.prefill_seconds : 0);
  metric("qkv_decode_tokens_per_second", "gauge", "Generated tokens per second of decode time.",
         s.decode_seconds > 0 ? static_cast<double>(s.generated_tokens) / s.decode_seconds : 0);
  metric("qkv_queue_depth", "gauge", "Requests waiting for a slot.", s.queue_depth);
  metric("qkv_slots_busy", "gauge", "Slots generating.", s.busy_slots);
  metric("qkv_slots_total", "gauge", "Slots.", s.n_slots);
  metric("qkv_requests_cancelled_total", "counter", "Generations cancelled (client gone).",
         static_cast<double>(s.jobs_cancelled));
  line("# HELP qkv_time_to_first_token_seconds From the request's arrival to its first token.");
  line("# TYPE qkv_time_to_first_token_seconds histogram");
  for (size_t i = 0; i < std::size(serve::kTtftBounds); ++i) {
    line(core::concat("qkv_time_to_first_token_seconds_bucket{le=\"", serve::kTtftBounds[i], "\"} ",
                      s.ttft_counts[i]));
  }
  line(core::concat("qkv_time_to_first_token_seconds_bucket{le=\"+Inf\"} ", s.ttft_n));
  line(core::concat("qkv_time_to_first_token_seconds_sum ", s.ttft_sum));
  line(core::concat("qkv_time_to_first_token_seconds_count ", s.ttft_n));
  return out;
}

void Server::Impl::routes() {
  http.set_payload_max_length(static_cast<size_t>(o.max_body_bytes));
  // A thread per open connection (task_pool.h), at least enough for every slot and queue place.
  const size_t n_workers = std::max<size_t>(
      kMaxConnections, static_cast<size_t>(o.n_parallel) + static_cast<size_t>(o.max_queue) + 8);
  http.new_task_queue = [n_workers] { return new serve::TaskPool(n_workers); };
  http.set_keep_alive_timeout(5);
  http.set_read_timeout(30);

  http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (const auto r = serve::framing_error(req)) {
      send_error(res, r->status, r->message);
      serve::HttpServer::close_after_response();
      return httplib::Server::HandlerResponse::Handled;
    }
    if (req.has_header("Transfer-Encoding")) {
      serve::HttpServer::start_chunked_body();
      // The body is read as chunked and any Content-Length ignored, and since a peer may have
      // framed it by the length, the connection ends after the answer (RFC 9112 6.1: such a
      // request may be an attempt to smuggle the next one past a proxy).
      if (req.has_header("Content-Length")) serve::HttpServer::close_after_response();
    }
    if (req.method == "OPTIONS") return httplib::Server::HandlerResponse::Unhandled;
    const bool with_body = req.method == "POST" || req.method == "PUT" || req.method == "PATCH" ||
                           req.method == "DELETE";
    if (with_body && !req.has_header("Content-Length") && !req.has_header("Transfer-Encoding")) {
      // No body (RFC 9112 6.3). httplib would read one until the client closed the connection,
      // so the request is answered here.
      admit(req, true);
      if (!refuse_route(req, res)) {
        send_error(res, 400,
                   "the request has no body: send a JSON object, with its Content-Length (or "
                   "Transfer-Encoding: chunked)");
      }
      return httplib::Server::HandlerResponse::Handled;
    }
    // A declared length over the limit is refused before any of the body is read: httplib would
    // read and drop all of it first (gigabytes, for a client that says so), and a client that
    // sends little of it would wait for the read timeout. The body stays unread, so the
    // connection is closed after the answer.
    if (with_body && declared_too_large(req)) {
      try {
        admit(req, true);
        throw body_too_large();
      } catch (const ApiError& e) {
        send_error(res, e.status, e.what(), e.param, e.type, e.code);
      }
      serve::HttpServer::close_after_response();
      return httplib::Server::HandlerResponse::Handled;
    }
    // A request with a body is checked by its route once the body is read (post() below), so
    // that the connection's next request starts after it.
    if (with_body) return httplib::Server::HandlerResponse::Unhandled;
    // The page itself holds no data (it asks for the key to call the API).
    admit(req, req.path != "/health" && req.path != "/");
    return httplib::Server::HandlerResponse::Unhandled;
  });
  // A client that asks before sending its body (Expect: 100-continue; curl does for bodies over
  // 1 MiB) is told at once when the body is over the limit or the request is refused, rather
  // than after uploading it. The client may send the body anyway, so the connection is closed.
  http.set_expect_100_continue_handler([this](const httplib::Request& req, httplib::Response& res) {
    try {
      admit(req, req.path != "/health" && req.path != "/");
      if (!serve::framing_error(req) && declared_too_large(req)) throw body_too_large();
    } catch (const ApiError& e) {
      send_error(res, e.status, e.what(), e.param, e.type, e.code);
      serve::HttpServer::close_after_response();
      return e.status;
    }
    return 100;
  });
  // Access-Control-Allow-Origin on every response the origin may see: errors and streams too.
  http.set_post_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    const auto allow =
        cors->allow_origin(req.get_header_value("Origin"), req.get_header_value("Host"));
    if (allow && !allow->empty()) res.set_header("Access-Control-Allow-Origin", *allow);
    if (cors->varies()) res.set_header("Vary", "Origin");
    // httplib announces Keep-Alive on every response it does not close for reasons of its own,
    // HTTP/1.0 requests without Connection: Keep-Alive among them (it closes those).
    if (serve::HttpServer::closing_after_response() ||
        (req.version == "HTTP/1.0" && req.get_header_value("Connection") != "Keep-Alive")) {
      res.headers.erase("Keep-Alive");
      res.set_header("Connection", "close");
    }
  });
  http.set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;  // a handler's own error
    if (res.status == 414) {
      send_error(res, 414, "the request target (path and query) is longer than 8192 bytes");
    } else if (!serve::request_parsed(req)) {
      const serve::Refusal r = serve::diagnose_unparsed(req);
      send_error(res, r.status, r.message);
      serve::HttpServer::close_after_response();
    } else if (res.status == 416) {
      send_error(res, 416, "the Range header is not a valid byte range");
    } else if (res.status == 413) {
      send_error(res, 413, "the request body is larger than the server's limit");
    } else if (!refuse_route(req, res)) {
      send_error(res, res.status,
                 res.status == 404 ? "no endpoint " + req.method + " " + req.path : "bad request");
    }
  });
  http.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        try {
          std::rethrow_exception(ep);
        } catch (const ApiError& e) {
          send_error(res, e.status, e.what(), e.param, e.type, e.code);
        } catch (const InvalidArgument& e) {
          send_error(res, 400, e.what());
        } catch (const std::bad_alloc&) {
          send_error(res, 507, "out of memory");
        } catch (const std::exception& e) {
          send_error(res, 500, e.what());
        } catch (...) {
          send_error(res, 500, "unknown error");
        }
      });
  http.set_logger([this](const httplib::Request&, const httplib::Response& res) {
    std::lock_guard lock(metrics_mu);
    ++by_status[res.status];
  });
  http.set_loop_logger([this](int status) {
    std::lock_guard lock(metrics_mu);
    ++by_status[status];
  });

  auto get = [this](const char* path, httplib::Server::Handler handle) {
    paths.emplace_back(std::regex(path), "GET, HEAD");
    http.Get(path, std::move(handle));
  };
  get("/health", [this](const httplib::Request&, httplib::Response& res) {
    const serve::SchedulerStats s = sched->stats();
    res.set_content(serve::dump(json{{"status", "ok"},
                                     {"slots_idle", s.n_slots - s.busy_slots},
                                     {"slots_processing", s.busy_slots},
                                     {"queue_depth", s.queue_depth}}),
                    "application/json");
  });
  get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(serve::dump(models()), "application/json");
  });
  // One model by id (the openai clients' models.retrieve).
  get(R"(/v1/models/(.+))", [this](const httplib::Request& req, httplib::Response& res) {
    check_model(Fields(json{{"model", req.matches[1].str()}}));
    res.set_content(serve::dump(models()["data"][0]), "application/json");
  });
  get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics(), "text/plain; version=0.0.4");
  });
  get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(std::string(serve::page_html()), "text/html; charset=utf-8");
  });
  // POST bodies are read through the content reader, bounded as they arrive (read_body).
  auto post = [this](const char* path, auto handle) {
    paths.emplace_back(std::regex(path), "POST");
    http.Post(path, [this, handle](const httplib::Request& req, httplib::Response& res,
                                   const httplib::ContentReader& reader) {
      try {
        admit(req, true);
      } catch (const ApiError&) {
        drop_body(req, reader);
        throw;
      }
      handle(req, read_body(req, reader, o.max_body_bytes), res);
    });
  };
  post("/v1/chat/completions",
       [this](const httplib::Request& req, const std::string& b, httplib::Response& res) {
         generate(req, b, res, Kind::chat);
       });
  post("/v1/completions",
       [this](const httplib::Request& req, const std::string& b, httplib::Response& res) {
         generate(req, b, res, Kind::completion);
       });
  post("/v1/embeddings", [this](const httplib::Request&, const std::string& b,
                                httplib::Response& res) { embeddings(b, res); });
  post("/tokenize", [this](const httplib::Request&, const std::string& b, httplib::Response& res) {
    tokenize(b, res);
  });
  post("/detokenize", [this](const httplib::Request&, const std::string& b,
                             httplib::Response& res) { detokenize(b, res); });
  http.Options(
      ".*", [this](const httplib::Request& req, httplib::Response& res) { preflight(req, res); });
}

Server::Server(Model model, ServerOptions options) : impl_(std::make_unique<Impl>()) {
  Impl& s = *impl_;
  s.o = std::move(options);
  s.cors.emplace(s.o.cors);
  if (s.o.port < 0 || s.o.port > 65535) {
    core::throw_invalid("port ", s.o.port, ": expected 0..65535 (0: any free port)");
  }
  if (s.o.max_body_bytes < 1024) {
    core::throw_invalid("body size limit ", s.o.max_body_bytes, " bytes: expected >= 1024");
  }
  s.model_id = !s.o.model_name.empty() ? s.o.model_name
                                       : std::filesystem::path(model.file().path).stem().string();
  if (s.model_id.empty()) s.model_id = "qkv";
  if (model.is_decoder()) {
    try {
      s.chat.emplace(s.o.chat_template, s.o.bos_text, s.o.eos_text);
    } catch (const Error& e) {
      throw Error(core::concat("the model's chat template does not parse: ", e.what()));
    }
  }
  s.model = model;
  s.sched = std::make_unique<serve::Scheduler>(
      std::move(model), serve::SchedulerOptions{.n_parallel = s.o.n_parallel,
                                                .n_ctx = s.o.n_ctx,
                                                .kv_type = s.o.kv_type,
                                                .n_threads = s.o.n_threads,
                                                .max_queue = s.o.max_queue,
                                                .prefill_chunk = s.o.prefill_chunk});
  s.routes();
  // cpp-httplib listens with a backlog of 5: a burst of more connections than that at once had
  // the kernel drop their SYNs, and each such client waited a second for its retry. Listening
  // again on the bound socket raises the backlog (Linux updates it in place).
  int listen_fd = -1;
  s.http.set_socket_options([&listen_fd](socket_t sock) {
    httplib::default_socket_options(sock);
    listen_fd = sock;
  });
  if (s.o.port == 0) {
    s.port = s.http.bind_to_any_port(s.o.host);
    if (s.port <= 0) throw Error(core::concat("cannot listen on ", s.o.host, " (any port)"));
  } else {
    if (!s.http.bind_to_port(s.o.host, s.o.port)) {
      throw Error(core::concat("cannot listen on ", s.o.host, ":", s.o.port,
                               " (in use, or not an address of this machine); choose another ",
                               "port"));
    }
    s.port = s.o.port;
  }
  if (listen_fd >= 0) ::listen(listen_fd, SOMAXCONN);
  s.http.set_socket_options(httplib::default_socket_options);  // listen_fd's reference ends here
}

Server::~Server() {
  stop();
}

int Server::port() const {
  return impl_->port;
}

void Server::run() {
  impl_->http.listen_after_bind();
  impl_->sched->stop();
}

void Server::stop() {
  impl_->sched->stop();  // ends waiting jobs, so handler threads return
  impl_->http.stop();
}

}  // namespace qkv
