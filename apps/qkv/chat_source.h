// Header-only (apps/qkv/CMakeLists.txt builds only main, command and cmd_*.cpp).
// A model's chat template and its BOS/EOS texts, for `qkv template` and `qkv generate --chat`:
// tokenizer.chat_template and the vocabulary in a GGUF; chat_template (or chat_template.jinja)
// and bos_token/eos_token of an HF folder's tokenizer_config.json.
#pragma once

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "command.h"
#include "qkv/chat.h"
#include "qkv/error.h"
#include "qkv/model_file.h"

namespace qkv::app {

// A file's text ("-": standard input); errors name `what` and the path.
inline std::string read_text(const std::string& path, const char* what) {
  if (path == "-") {
    return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  }
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    throw Error(std::string(what) + " " + path + " is a directory, not a file");
  }
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error(std::string("cannot open ") + what + " " + path);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

struct ModelChatTemplate {
  std::string source;
  std::string bos;
  std::string eos;
};

// tokenizer_config.json names a special token as a string or as {"content": "..."}.
inline std::string token_text(const nlohmann::json& j) {
  if (j.is_string()) return j.get<std::string>();
  if (j.is_object() && j.contains("content") && j["content"].is_string()) {
    return j["content"].get<std::string>();
  }
  return "";
}

inline ModelChatTemplate chat_template_of_hf_folder(const std::filesystem::path& dir) {
  ModelChatTemplate t;
  const auto config_path = dir / "tokenizer_config.json";
  nlohmann::json config = nlohmann::json::object();
  if (std::filesystem::exists(config_path)) {
    try {
      config = nlohmann::json::parse(read_text(config_path.string(), "tokenizer config"));
    } catch (const nlohmann::json::exception& e) {
      throw Error(config_path.string() + " is not valid JSON: " + json_error_reason(e));
    }
  }
  if (config.contains("bos_token")) t.bos = token_text(config["bos_token"]);
  if (config.contains("eos_token")) t.eos = token_text(config["eos_token"]);
  if (config.contains("chat_template")) {
    const auto& ct = config["chat_template"];
    if (ct.is_string()) {
      t.source = ct.get<std::string>();
    } else if (ct.is_array()) {
      // [{"name": "default", "template": "..."}, {"name": "tool_use", ...}]
      for (const auto& entry : ct) {
        if (entry.is_object() && entry.value("name", "") == "default" &&
            entry.contains("template") && entry["template"].is_string()) {
          t.source = entry["template"].get<std::string>();
        }
      }
    }
  }
  const auto jinja = dir / "chat_template.jinja";
  if (t.source.empty() && std::filesystem::exists(jinja))
    t.source = read_text(jinja.string(), "chat template");
  if (t.source.empty()) {
    throw Error(dir.string() +
                " has no chat template (tokenizer_config.json has no chat_template "
                "and there is no chat_template.jinja); pass one with --template FILE.jinja");
  }
  return t;
}

// The template of an opened model: a GGUF's metadata, or the HF folder it was read from.
inline ModelChatTemplate chat_template_of(const ModelFile& m) {
  if (m.format != FileFormat::gguf) {
    std::error_code ec;
    if (std::filesystem::is_directory(m.path, ec)) return chat_template_of_hf_folder(m.path);
    throw Error(m.path +
                " carries no chat template (a GGUF or an HF folder does); pass one with --template "
                "FILE.jinja");
  }
  const std::string& path = m.path;
  ModelChatTemplate t;
  const MetaValue* tmpl = m.metadata.find("tokenizer.chat_template");
  if (!tmpl) {
    throw Error(path +
                " has no tokenizer.chat_template key; pass a template with --template FILE.jinja");
  }
  t.source = tmpl->as_string("tokenizer.chat_template");
  const MetaValue* tokens = m.metadata.find("tokenizer.ggml.tokens");
  auto special = [&](const char* key) -> std::string {
    const MetaValue* id = m.metadata.find(key);
    if (!id || !tokens) return "";
    const auto& list = tokens->as_array("tokenizer.ggml.tokens");
    const int64_t i = id->as_int(key);
    if (i < 0 || i >= static_cast<int64_t>(list.size())) {
      throw Error(path + ": " + key + " = " + std::to_string(i) + " is outside the vocabulary (" +
                  std::to_string(list.size()) + " tokens)");
    }
    return list[static_cast<size_t>(i)].as_string("tokenizer.ggml.tokens");
  };
  t.bos = special("tokenizer.ggml.bos_token_id");
  t.eos = special("tokenizer.ggml.eos_token_id");
  return t;
}

// The prompt text of --chat (generate, explain): the model's chat template over a conversation,
// the messages of CONV.json (`messages_file`: an array of {"role", "content"}, as in the OpenAI
// API) or else an optional system message and one user turn; with the generation prompt unless
// the conversation ends with an assistant turn. Encode it with no BOS added and special tokens
// matched (the template writes them), as transformers encodes a rendered chat.
inline std::string chat_prompt_text(const ModelChatTemplate& t, const std::string& messages_file,
                                    const std::string& system, const std::string& user) {
  ChatTemplateInputs in;
  in.bos_token = t.bos;
  in.eos_token = t.eos;
  in.add_generation_prompt = true;
  if (!messages_file.empty()) {
    in.messages_json = read_text(messages_file, "conversation");
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(in.messages_json);
    } catch (const nlohmann::json::exception& e) {
      throw Error(messages_file + " is not valid JSON: " + json_error_reason(e));
    }
    if (!j.is_array() || j.empty()) {
      throw Error(messages_file +
                  ": expected a non-empty JSON array of {\"role\", \"content\"} messages");
    }
    const nlohmann::json& last = j.back();
    in.add_generation_prompt = !(last.is_object() && last.value("role", "") == "assistant");
  } else {
    if (!system.empty()) in.messages.push_back({"system", system});
    in.messages.push_back({"user", user});
  }
  return ChatTemplate(t.source).render(in);
}
inline std::string chat_prompt_text(const ModelFile& m, const std::string& messages_file,
                                    const std::string& system, const std::string& user) {
  return chat_prompt_text(chat_template_of(m), messages_file, system, user);
}

// --template FILE when given, else the model's template; a model without one gets the default
// (ChatML, as `qkv serve` uses), with `is_default` set and a note on stderr naming `command`.
inline ModelChatTemplate chat_template_or_default(const ModelFile& m,
                                                  const std::string& template_file,
                                                  const char* command, bool& is_default) {
  is_default = false;
  ModelChatTemplate t;
  if (!template_file.empty()) {
    t.source = read_text(template_file, "chat template");
    try {
      const ModelChatTemplate own = chat_template_of(m);
      t.bos = own.bos;
      t.eos = own.eos;
    } catch (const Error&) {
    }
    return t;
  }
  try {
    return chat_template_of(m);
  } catch (const Error&) {
    std::fprintf(stderr, "%s: the model has no chat template; using ChatML\n", command);
  }
  is_default = true;
  t.source = std::string(default_chat_template());
  return t;
}

}  // namespace qkv::app
