// Test driver for tests/train/torch_gpt.py: the training forward, backward and AdamW of
// src/train on a tiny GPT-2, with weights and a batch chosen by the script.
//   qkv_gpt_io layout DIR   writes DIR/layout.txt: "name offset size dim0 [dim1]" per tensor
//   qkv_gpt_io run DIR      reads params.bin (fp32, layout order), tokens.bin, targets.bin
//                           (int32 [B, T]); writes loss.txt, grads.bin, and params2.bin: the
//                           parameters after two clipped AdamW steps on that batch
// DIR/config.txt: n_vocab n_ctx n_embd n_head n_layer B T lr weight_decay grad_clip
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "common/raw_io.h"
#include "qkv/error.h"
#include "train/gpt.h"
#include "train/optimizer.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s layout|run DIR\n", argv[0]);
    return 2;
  }
  try {
    const std::string mode = argv[1], dir = argv[2];
    std::ifstream cf(dir + "/config.txt");
    qkv::learn::GptConfig c;
    int64_t B = 0, T = 0;
    double lr = 0, wd = 0, clip = 0;
    cf >> c.n_vocab >> c.n_ctx >> c.n_embd >> c.n_head >> c.n_layer >> B >> T >> lr >> wd >> clip;
    if (!cf) throw qkv::Error("cannot read " + dir + "/config.txt");
    qkv::learn::Gpt model(c);
    if (mode == "layout") {
      std::ofstream out(dir + "/layout.txt");
      for (const auto& t : model.tensors()) {
        out << t.name << ' ' << t.offset << ' ' << t.size;
        for (int64_t d : t.shape) out << ' ' << d;
        out << '\n';
      }
      return 0;
    }
    model.params() =
        qkv::test::read_raw<float>(dir + "/params.bin", static_cast<size_t>(model.n_params()));
    const auto tokens =
        qkv::test::read_raw<int32_t>(dir + "/tokens.bin", static_cast<size_t>(B * T));
    const auto targets =
        qkv::test::read_raw<int32_t>(dir + "/targets.bin", static_cast<size_t>(B * T));
    model.zero_grad();
    const double loss = model.forward(tokens.data(), targets.data(), B, T, 0);
    model.backward(0);
    std::ofstream(dir + "/loss.txt") << std::to_string(loss) << '\n';
    qkv::test::write_raw(dir + "/grads.bin", model.grads());

    qkv::learn::AdamWOptions ao;
    ao.weight_decay = wd;
    qkv::learn::AdamW opt(model.n_params(), ao);
    for (int step = 0; step < 2; ++step) {
      if (step > 0) {
        model.zero_grad();
        model.forward(tokens.data(), targets.data(), B, T, 0);
        model.backward(0);
      }
      qkv::learn::clip_grad_norm(model.grads(), clip);
      opt.update(model.params(), model.grads(), model.tensors(), lr);
    }
    qkv::test::write_raw(dir + "/params2.bin", model.params());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "qkv_gpt_io: %s\n", e.what());
    return 1;
  }
}
