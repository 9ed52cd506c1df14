// qkv::embed: one sentence embedding from an encoder (BERT) — [CLS] hidden state, the mean of
// the token states, or the BERT pooler — optionally L2-normalised.
#include <cmath>

#include "core/error.h"
#include "qkv/session.h"

namespace qkv {

std::vector<float> embed(const Model& model, std::string_view text, const EmbedOptions& options) {
  if (model.is_decoder()) {
    core::throw_invalid("embed: ", architecture_name(model.architecture()),
                        " is a decoder; embeddings need an encoder model (BERT)");
  }
  const std::vector<int32_t> ids =  // [CLS] text [SEP]
      model.tokenizer().encode(text, {.add_special = true, .parse_special = options.parse_special});
  return embed(model, ids, options);
}

std::vector<float> embed(const Model& model, std::span<const int32_t> ids,
                         const EmbedOptions& options) {
  if (model.is_decoder()) {
    core::throw_invalid("embed: ", architecture_name(model.architecture()),
                        " is a decoder; embeddings need an encoder model (BERT)");
  }
  if (ids.empty()) core::throw_invalid("embed: no token ids to embed");
  Session session(model, {.n_threads = options.n_threads});
  const std::span<const float> hidden = session.encode(ids);  // [n, n_embd]
  const auto n = static_cast<int64_t>(ids.size());
  const int64_t n_embd = static_cast<int64_t>(hidden.size()) / n;

  std::vector<float> out(static_cast<size_t>(n_embd));
  switch (options.pooling) {
    case Pooling::cls:
      std::copy(hidden.begin(), hidden.begin() + n_embd, out.begin());
      break;
    case Pooling::mean: {
      // One sequence, so every token is a real one (the attention mask is all ones), [CLS]
      // and [SEP] included, as sentence-transformers' mean pooling counts them.
      std::vector<double> sum(static_cast<size_t>(n_embd), 0.0);
      for (int64_t t = 0; t < n; ++t) {
        for (int64_t j = 0; j < n_embd; ++j) sum[j] += hidden[t * n_embd + j];
      }
      for (int64_t j = 0; j < n_embd; ++j) out[j] = static_cast<float>(sum[j] / n);
      break;
    }
    case Pooling::pooler: {
      const std::span<const float> p = session.pooled();  // throws when the model has none
      std::copy(p.begin(), p.end(), out.begin());
      break;
    }
  }
  if (options.normalize) {
    double sq = 0;
    for (float x : out) sq += static_cast<double>(x) * x;
    // An all-zero vector stays zero rather than becoming NaN.
    const double inv = sq > 0 ? 1.0 / std::sqrt(sq) : 0.0;
    for (float& x : out) x = static_cast<float>(x * inv);
  }
  return out;
}

}  // namespace qkv
