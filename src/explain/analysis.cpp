// Analyses of attention maps: entropy, where a head looks, head means, rollout, top-k keys.
#include <algorithm>
#include <cmath>

#include "qkv/error.h"
#include "qkv/explain.h"

namespace qkv {

namespace {

void check_map(std::span<const float> map, int64_t n, int64_t count, const char* what) {
  if (n < 0 || static_cast<int64_t>(map.size()) != count * n * n) {
    throw InvalidArgument(std::string(what) + ": expected " + std::to_string(count) + " maps of " +
                          std::to_string(n) + " x " + std::to_string(n) + " = " +
                          std::to_string(count * n * n) + " floats, got " +
                          std::to_string(map.size()));
  }
}

double row_mass(const float* row, int64_t n) {
  double s = 0;
  for (int64_t j = 0; j < n; ++j) s += row[j];
  return s;
}

}  // namespace

std::vector<double> row_entropy(std::span<const float> map, int64_t n) {
  check_map(map, n, 1, "row_entropy");
  std::vector<double> out(static_cast<size_t>(n), 0.0);
  for (int64_t i = 0; i < n; ++i) {
    const float* row = map.data() + i * n;
    const double mass = row_mass(row, n);
    if (mass <= 0) continue;
    double h = 0;
    for (int64_t j = 0; j < n; ++j) {
      const double p = row[j] / mass;
      if (p > 0) h -= p * std::log(p);
    }
    out[static_cast<size_t>(i)] = h;
  }
  return out;
}

LookScores look_scores(std::span<const float> map, int64_t n, std::span<const int32_t> ids,
                       std::span<const int32_t> word_ids) {
  check_map(map, n, 1, "look_scores");
  if (static_cast<int64_t>(ids.size()) < n || static_cast<int64_t>(word_ids.size()) < n) {
    throw InvalidArgument("look_scores: " + std::to_string(n) + " tokens in the map but " +
                          std::to_string(ids.size()) + " ids and " +
                          std::to_string(word_ids.size()) + " word ids");
  }
  LookScores s;
  const auto at = [&](int64_t i, int64_t j) { return double(map[static_cast<size_t>(i * n + j)]); };
  const std::vector<double> h = row_entropy(map, n);
  int64_t n_word = 0, n_ind = 0, n_later = 0;  // rows counted for same-word, induction, i >= 1
  double entropy = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (row_mass(map.data() + i * n, n) <= 0) continue;  // a row the capture did not keep
    ++s.rows;
    entropy += h[static_cast<size_t>(i)];
    s.self += at(i, i);
    if (i >= 1) {
      s.previous += at(i, i - 1);
      s.first += at(i, 0);
      ++n_later;
    }
    double word = 0, ind = 0;
    bool has_word = false, has_ind = false;
    for (int64_t j = 0; j < n; ++j) {
      if (j != i && word_ids[static_cast<size_t>(j)] == word_ids[static_cast<size_t>(i)]) {
        word += at(i, j);
        has_word = true;
      }
      // Induction: the token after an earlier occurrence of the current token.
      if (j >= 1 && j <= i && ids[static_cast<size_t>(j - 1)] == ids[static_cast<size_t>(i)] &&
          j - 1 < i) {
        ind += at(i, j);
        has_ind = true;
      }
    }
    if (has_word) {
      s.same_word += word;
      ++n_word;
    }
    if (has_ind) {
      s.induction += ind;
      ++n_ind;
    }
  }
  if (s.rows > 0) {
    s.entropy = entropy / double(s.rows);
    s.self /= double(s.rows);
  }
  if (n_later > 0) {
    s.previous /= double(n_later);
    s.first /= double(n_later);
  }
  if (n_word > 0) s.same_word /= double(n_word);
  if (n_ind > 0) s.induction /= double(n_ind);
  return s;
}

std::vector<float> mean_map(std::span<const float> maps, int64_t n_maps, int64_t n) {
  check_map(maps, n, n_maps, "mean_map");
  std::vector<float> out(static_cast<size_t>(n * n), 0.f);
  if (n_maps == 0) return out;
  std::vector<double> acc(out.size(), 0.0);
  for (int64_t m = 0; m < n_maps; ++m) {
    for (size_t i = 0; i < acc.size(); ++i) acc[i] += maps[static_cast<size_t>(m * n * n) + i];
  }
  for (size_t i = 0; i < acc.size(); ++i) out[i] = static_cast<float>(acc[i] / double(n_maps));
  return out;
}

std::vector<float> attention_rollout(std::span<const float> head_means, int64_t n_layers,
                                     int64_t n) {
  check_map(head_means, n, n_layers, "attention_rollout");
  const size_t nn = static_cast<size_t>(n * n);
  // float: the products are sums of at most n positive terms, and the result is for display and
  // ranking (see below for the time).
  std::vector<float> r(nn, 0.f), a(nn), next(nn);
  std::vector<int64_t> end(static_cast<size_t>(n));  // per row of r: 1 + its last non-zero
  for (int64_t i = 0; i < n; ++i) r[static_cast<size_t>(i * n + i)] = 1.f;
  for (int64_t l = 0; l < n_layers; ++l) {
    // A = rownorm(0.5 * W + 0.5 * I): the residual connection carries half of each token.
    for (int64_t i = 0; i < n; ++i) {
      double s = 0;
      for (int64_t j = 0; j < n; ++j) {
        const size_t ij = static_cast<size_t>(i * n + j);
        a[ij] = 0.5f * head_means[static_cast<size_t>(l) * nn + ij] + (i == j ? 0.5f : 0.f);
        s += a[ij];
      }
      for (int64_t j = 0; j < n; ++j) a[static_cast<size_t>(i * n + j)] /= static_cast<float>(s);
    }
    // R = A_l * R (later layers on the left). Causal maps keep R lower triangular, so each row
    // of R is summed only up to its last non-zero entry: a sixth of the dense n^3 work. The HTML
    // report of 2,766 tokens x 4 layers x 4 heads (loaded 2-core dev machine, load ~10) took
    // 142 s with the dense product in double, 49 s triangular in double, 31 s in float.
    for (int64_t k = 0; k < n; ++k) {
      int64_t e = n;
      while (e > 0 && r[static_cast<size_t>(k * n + e - 1)] == 0) --e;
      end[static_cast<size_t>(k)] = e;
    }
    std::fill(next.begin(), next.end(), 0.f);
    for (int64_t i = 0; i < n; ++i) {
      float* out = next.data() + i * n;
      for (int64_t k = 0; k < n; ++k) {
        const float aik = a[static_cast<size_t>(i * n + k)];
        if (aik == 0) continue;
        const float* rk = r.data() + k * n;
        const int64_t e = end[static_cast<size_t>(k)];
        for (int64_t j = 0; j < e; ++j) out[j] += aik * rk[j];
      }
    }
    r.swap(next);
  }
  return r;
}

std::vector<Attended> top_attended(std::span<const float> map, int64_t n, int64_t row, int64_t k) {
  check_map(map, n, 1, "top_attended");
  if (row < 0 || row >= n) {
    throw InvalidArgument("top_attended: row " + std::to_string(row) + " is out of range [0, " +
                          std::to_string(n) + ")");
  }
  std::vector<Attended> all;
  for (int64_t j = 0; j < n; ++j) {
    const float w = map[static_cast<size_t>(row * n + j)];
    if (w > 0) all.push_back({j, w});
  }
  std::stable_sort(all.begin(), all.end(),
                   [](const Attended& a, const Attended& b) { return a.weight > b.weight; });
  if (static_cast<int64_t>(all.size()) > k)
    all.resize(static_cast<size_t>(std::max<int64_t>(k, 0)));
  return all;
}

}  // namespace qkv
