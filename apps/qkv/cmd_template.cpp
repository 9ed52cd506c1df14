// qkv template (-m MODEL | --template FILE.jinja) --messages CONV.json [--add-generation-prompt]
//              [--bos-token S] [--eos-token S] [--now YYYY-MM-DD] [--vars JSON]
//   Prints the prompt a model's chat template makes of a conversation, exactly (no newline added),
//   as transformers' apply_chat_template(..., tokenize=False) renders it. MODEL is a GGUF
//   (tokenizer.chat_template) or an HF folder (tokenizer_config.json's chat_template, or
//   chat_template.jinja); its BOS/EOS tokens are used unless given. A template that raises
//   ("System role not supported") fails with the template's own message.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "chat_source.h"
#include "command.h"
#include "qkv/chat.h"
#include "qkv/model_file.h"

namespace qkv::app {
namespace cmd_template {  // one per subcommand: the qkv target is a unity build
namespace {

struct TemplateOptions {
  std::string model;
  std::string template_file;
  std::string messages;
  bool add_generation_prompt = false;
  std::optional<std::string> bos_token;
  std::optional<std::string> eos_token;
  std::string now;
  std::string vars;
};

// "YYYY-MM-DD" -> seconds since 1970-01-01 00:00 (the naive local time strftime_now formats).
int64_t parse_date(const std::string& s) {
  int y = 0;
  int mo = 0;
  int d = 0;
  char tail = 0;
  if (std::sscanf(s.c_str(), "%4d-%2d-%2d%c", &y, &mo, &d, &tail) != 3 || s.size() != 10 ||
      mo < 1 || mo > 12 || d < 1 || d > 31) {
    throw Error("--now " + s + ": expected a date as YYYY-MM-DD");
  }
  static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  if (d > mdays[mo - 1] || (mo == 2 && d == 29 && !leap))
    throw Error("--now " + s + ": no such date");
  // days from civil (Howard Hinnant)
  const int yy = y - (mo <= 2);
  const int era = (yy >= 0 ? yy : yy - 399) / 400;
  const int yoe = yy - era * 400;
  const int doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  const int64_t days = static_cast<int64_t>(era) * 146097 + doe - 719468;
  return days * 86400;
}

void run(const TemplateOptions& o) {
  if (o.model.empty() == o.template_file.empty()) {
    throw Error("pass either a model (-m model.gguf or an HF folder) or --template FILE.jinja");
  }
  ModelChatTemplate t;
  if (!o.template_file.empty()) {
    t.source = read_text(o.template_file, "template");
  } else if (std::filesystem::is_directory(o.model)) {
    t = chat_template_of_hf_folder(o.model);
  } else {
    t = chat_template_of(read_gguf(o.model));
  }
  ChatTemplateInputs in;
  in.messages_json = read_text(o.messages, "messages file");
  nlohmann::json conv;
  try {
    conv = nlohmann::json::parse(in.messages_json);
  } catch (const nlohmann::json::exception& e) {
    throw Error("--messages " + o.messages + " is not valid JSON: " + json_error_reason(e));
  }
  if (!conv.is_array()) {
    throw Error("--messages " + o.messages +
                ": expected a JSON array of {\"role\", \"content\"} messages");
  }
  for (size_t i = 0; i < conv.size(); ++i) {
    if (!conv[i].is_object() || !conv[i].contains("role") || !conv[i]["role"].is_string()) {
      throw Error("--messages " + o.messages + ": message " + std::to_string(i) +
                  " is not an object with a string \"role\"");
    }
  }
  in.bos_token = o.bos_token.value_or(t.bos);
  in.eos_token = o.eos_token.value_or(t.eos);
  in.add_generation_prompt = o.add_generation_prompt;
  in.variables_json = o.vars;
  if (!o.now.empty()) in.now = parse_date(o.now);
  const ChatTemplate tmpl(t.source);
  const std::string prompt = tmpl.render(in);
  std::fwrite(prompt.data(), 1, prompt.size(), stdout);
  std::fflush(stdout);
}

void setup(CLI::App& app) {
  auto o = std::make_shared<TemplateOptions>();
  app.add_option("-m,--model", o->model, "GGUF file or HF model folder whose chat template to use");
  app.add_option("--template", o->template_file, "Jinja chat template file");
  app.add_option(
         "--messages", o->messages,
         "conversation: JSON array of {\"role\", \"content\"} messages (\"-\": standard input)")
      ->required();
  app.add_flag("--add-generation-prompt", o->add_generation_prompt,
               "end with the header of the assistant's reply");
  app.add_option("--bos-token", o->bos_token, "BOS token text (default: the model's)");
  app.add_option("--eos-token", o->eos_token, "EOS token text (default: the model's)");
  app.add_option("--now", o->now, "the date strftime_now() sees, YYYY-MM-DD (default: today)");
  app.add_option("--vars", o->vars,
                 "more template variables as a JSON object, e.g. '{\"enable_thinking\": false}'");
  app.callback([o] { run(*o); });
}

Registrar reg("template", "Render a conversation with a model's chat template", setup);

}  // namespace
}  // namespace cmd_template
}  // namespace qkv::app
