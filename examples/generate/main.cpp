// Loads a model and streams a greedy continuation of a prompt to stdout, using only the public
// headers of an installed qkv.
//
//   generate MODEL PROMPT [TOKENIZER] [N]
//   generate stories260K.bin "Once upon a time" tok512.bin 100
#include <qkv/model.h>
#include <qkv/session.h>

#include <cstdio>
#include <exception>
#include <string>

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s MODEL PROMPT [TOKENIZER] [N]\n", argv[0]);
    return 2;
  }
  try {
    const qkv::Model model =
        qkv::Model::load(argv[1], {.tokenizer_path = argc > 3 ? argv[3] : "", .progress = {}});
    qkv::Session session(model);

    qkv::GenerateOptions options;
    options.max_new_tokens = argc > 4 ? std::stoll(argv[4]) : 100;
    options.sampling.temperature = 0;  // greedy: the same story every run
    options.on_text = [](std::string_view text) {
      std::fwrite(text.data(), 1, text.size(), stdout);
      std::fflush(stdout);
      return true;  // false would stop generation
    };
    std::printf("%s", argv[2]);
    const qkv::GenerateResult result = session.generate(argv[2], options);
    std::printf("\n");
    std::fprintf(stderr, "%zu tokens, %.1f tokens/s, stop: %s\n", result.ids.size(),
                 result.decode_tokens_per_second(),
                 std::string(qkv::stop_reason_name(result.stop)).c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
