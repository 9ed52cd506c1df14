// qkv — explanation: exact attention maps captured from the fast path, analyses of them, and
// exports (NumPy .npy, JSON, PNG, SVG, terminal heatmaps, an interactive HTML report).
//
//   qkv::Model model = qkv::Model::load("stories260K.bin", {.tokenizer_path = "tok512.bin"});
//   qkv::Explanation e = qkv::explain(model, "Once upon a time", {.max_new_tokens = 8});
//   std::vector<float> map = e.capture.map(0, 3);          // layer 0, head 3: [n_tokens, n_tokens]
//   qkv::write_npy("maps.npy", e);                          // [n_layer_sel, n_head_sel, T, T]
//
// Maps are exact: an AttentionCapture is an Observer (qkv/observer.h) that recomputes the softmax
// rows from the log-sum-exp the fast kernel saved (qkv::attention_probs), so the run itself stays
// on the fast path. Row = query position, column = key position; rows of a causal model are zero
// to the right of the diagonal.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "qkv/model.h"
#include "qkv/observer.h"
#include "qkv/session.h"

namespace qkv {

// What a capture keeps once its float budget (CaptureOptions::max_floats) would be exceeded.
// The budget is never exceeded; every row left out is counted and named by memory_note().
enum class OverflowKeep : uint8_t {
  rows,   // later rows are dropped (the first rows stay complete)
  heads,  // later rows are kept only for the first `overflow_heads` selected heads of each layer
  top_k,  // later rows keep only their `top_k` largest probabilities (with their key indices)
};
std::string_view overflow_keep_name(OverflowKeep k);

struct CaptureOptions {
  std::vector<int> layers;  // layer indices; empty: all
  std::vector<int> heads;   // query-head indices; empty: all
  // Query positions to capture; empty: all (every prefill row and every generated step).
  std::vector<int64_t> rows;
  // Budget for stored probabilities: values plus key indices of sparse rows, 4 bytes each.
  // Default 2^28 floats = 1 GiB (about 8 layers x 8 heads x 2,900 tokens of causal maps).
  int64_t max_floats = int64_t(1) << 28;
  OverflowKeep overflow = OverflowKeep::top_k;
  int top_k = 16;
  int overflow_heads = 1;
  // Q, K, V and the attention output of one head (-1: none). K and V are those of the head's
  // KV group (GQA).
  int detail_layer = -1;
  int detail_head = -1;
  // Also write every captured row to this .npy file (empty: off), whatever the budget keeps in
  // memory: float32 [n_layer_sel, n_head_sel, T, T] as write_npy lays it out. Rows are appended
  // to stream_npy + ".part" as they are produced (memory: a 1 MiB buffer and one row, whatever
  // T); AttentionCapture::finish_stream() lays the .npy out from them in a temporary file beside
  // it, renames that over stream_npy and removes the .part file (disk: the rows without their
  // causal zeros, then the .npy). The constructor creates the temporary file and throws Error
  // naming stream_npy when it cannot. max_floats = 0 keeps nothing in memory.
  std::string stream_npy;
  // Block summaries (0: off): for every selected head, the mean over the query rows of each
  // block of `block_size` positions of their mass on each key block, accumulated from the full
  // rows as they are produced, whatever the budget keeps (AttentionCapture::block_map). Memory:
  // (n_tokens / block_size)^2 doubles per head. The HTML report's long-context overview.
  int block_size = 0;
};

// Where a streamed capture went (CaptureOptions::stream_npy).
struct StreamedMaps {
  std::string path;
  int64_t n_layers = 0, n_heads = 0, n_tokens = 0;  // the array is [n_layers, n_heads, T, T]
  int64_t rows = 0;                                 // rows streamed
  int64_t bytes = 0;                                // size of the .npy file
  std::string note() const;                         // one line: the path, shape and size
};

// Q/K/V/output rows of one head, by position: q, k [n_tokens, head_dim]; v, out
// [n_tokens, head_dim_v].
struct HeadDetail {
  int layer = -1;
  int head = -1;
  int64_t head_dim = 0;
  int64_t head_dim_v = 0;
  std::vector<float> q, k, v, out;
};

// Captures attention probabilities of the chosen layers and heads for every forward pass it
// observes. Rows are kept by absolute position: running a new prompt after Session::reset()
// overwrites them (call clear() to drop everything).
class AttentionCapture : public Observer {
 public:
  // Throws InvalidArgument when a layer or head is out of range for the model.
  AttentionCapture(const Model& model, CaptureOptions options = {});
  ~AttentionCapture() override;
  AttentionCapture(AttentionCapture&&) noexcept;
  AttentionCapture& operator=(AttentionCapture&&) noexcept;

  bool wants_attention(int layer) override;
  void on_attention(const AttentionEvent& event) override;
  // Context parallelism: the selected rows and heads of a selected layer; false for the detail
  // layer (CaptureOptions::detail_layer), whose q, k and v no rank holds in full.
  bool attention_rows(int layer, int64_t first_position, int64_t n_q,
                      AttentionRowsRequest& request) override;
  void on_attention_rows(const AttentionRowsEvent& event) override;

  const CaptureOptions& options() const;
  const std::vector<int>& layers() const;  // selected, ascending
  const std::vector<int>& heads() const;   // selected, ascending
  int64_t n_tokens() const;                // 1 + the highest query position captured

  // Dense [n, n] map of the li-th selected layer and hi-th selected head (n = -1: n_tokens());
  // rows not captured are zeros; sparse (top-k) rows hold only their kept entries.
  std::vector<float> map(size_t li, size_t hi, int64_t n = -1) const;
  // Whether row `pos` of (li, hi) was stored, and whether it was stored in full.
  bool has_row(size_t li, size_t hi, int64_t pos) const;
  bool row_is_dense(size_t li, size_t hi, int64_t pos) const;
  // Row `pos` of (li, hi) as stored, without a dense map: a dense row gives keys 0..len-1, a
  // top-k row its kept keys (ascending). Returns false, with both vectors empty, when the row
  // was not stored.
  bool row(size_t li, size_t hi, int64_t pos, std::vector<int32_t>& keys,
           std::vector<float>& p) const;
  // The block summary of (li, hi) (CaptureOptions::block_size > 0): [nb, nb] with nb =
  // ceil(n_tokens() / block_size), entry (I, J) the mean over the captured rows of query block I
  // of their mass on the keys of block J (a row's entries sum to 1). Empty when off.
  std::vector<float> block_map(size_t li, size_t hi) const;

  // Floats held for rows (a row replaced after Session::reset() reuses its predecessor's space
  // when it fits, else takes new space and the old stays held until clear()).
  int64_t stored_floats() const;
  int64_t dropped_rows() const;  // (layer, head, row) triples left out by the budget
  int64_t sparse_rows() const;   // rows stored as top-k
  // One line on the memory used and what, if anything, the budget left out.
  std::string memory_note() const;

  const std::optional<HeadDetail>& detail() const;
  // Stops streaming and writes the .npy of every row streamed (CaptureOptions::stream_npy), T =
  // n_tokens(); returns where it went (nullopt without stream_npy). Throws Error naming the file
  // when a write failed. explain() and explanation_from() call it; a capture destroyed unfinished
  // removes its files.
  std::optional<StreamedMaps> finish_stream();
  const std::optional<StreamedMaps>& streamed() const;  // set by finish_stream()
  // Drops every row kept in memory (rows already streamed stay in the stream).
  void clear();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct ExplainOptions {
  CaptureOptions capture{};
  int64_t max_new_tokens = 0;  // decoders: tokens to generate after the prompt (maps grow)
  SamplingParams sampling{.temperature = 0.f};  // greedy by default: reproducible maps
  bool add_special = true;                      // BOS / [CLS] ... [SEP] as the tokenizer says
  bool parse_special = true;                    // special tokens written in the text: single
  bool stop_at_eos = true;
  int64_t n_ctx = 0;  // 0: prompt + new tokens (refused past the model's context)
  int n_threads = 0;
  KvType kv_type = KvType::f32;  // the maps are exact for the values the cache holds
  // Decoders: split the text over the ranks of this MPI job (SessionOptions::context_parallel);
  // every rank calls explain() alike. The maps stay exact: each rank computes the rows'
  // probabilities over its own keys from the rows' global log-sum-exp, and rank 0 assembles them
  // (no key leaves its rank; docs/DISTRIBUTED.md); its Explanation has them, on the other ranks
  // the capture keeps nothing and writes no file. capture.detail_layer is refused with it.
  Communicator* context_parallel = nullptr;
};

struct Explanation {
  std::vector<int32_t> ids;         // prompt then generated tokens, one per map row
  std::vector<std::string> tokens;  // their text (token_label of token_bytes)
  std::vector<int32_t> word_ids;    // word index of each token (see word_ids())
  int64_t n_prompt = 0;
  std::string model;       // Model::describe()
  double run_seconds = 0;  // the forward passes with the capture attached (incl. sampling)
  // Context parallelism: bytes this rank received for the maps (SessionStats::
  // observer_bytes_received): the probabilities of other ranks' keys and, at the prefill, the
  // queries and log-sum-exp of the rows other ranks hold; never a key or value.
  int64_t observer_bytes_received = 0;
  AttentionCapture capture;
  // Per layer of the model: the keys a sliding-window (local) layer sees, itself included; 0 for a
  // global layer, which sees every key (Gemma 2 and 3 alternate them).
  std::vector<int64_t> layer_windows;
};

// The attention window of every layer of a model, as Explanation::layer_windows.
std::vector<int64_t> layer_windows(const Model& model);

// Runs the text through the model (encoders: one bidirectional pass; decoders: a prefill then
// max_new_tokens generated steps, each generated token also run so that it has a row) with an
// AttentionCapture attached, and finishes its stream (capture.stream_npy). Throws qkv::Error when
// the model has no tokenizer.
Explanation explain(const Model& model, std::string_view text, const ExplainOptions& options = {});

// An Explanation from a capture attached to a run made elsewhere (e.g. `qkv generate --explain`):
// `ids` are the tokens run, one per map row, the first `n_prompt` of them the prompt. Finishes the
// capture's stream if it has one.
Explanation explanation_from(const Model& model, std::vector<int32_t> ids, int64_t n_prompt,
                             AttentionCapture capture, double run_seconds);

// ---------------------------------------------------------------------------------------------
// Analyses. A map is a dense row-major [n, n] matrix (row = query, column = key).

// Word index of each token: a token starts a word when its text starts with a space, when it is
// a special token, when it is the first token, or when it is punctuation only.
std::vector<int32_t> word_ids(const Tokenizer& tokenizer, std::span<const int32_t> ids);

// Shannon entropy (nats) of each row, over the row's mass (renormalised); empty rows give 0.
std::vector<double> row_entropy(std::span<const float> map, int64_t n);

// Where a head looks: the mean over query rows of the probability mass on
struct LookScores {
  double previous = 0;   // key i-1 (rows i >= 1)
  double first = 0;      // key 0, the "sink" (rows i >= 1)
  double self = 0;       // key i
  double same_word = 0;  // other keys of the query's word (rows whose word has other tokens)
  double induction = 0;  // keys j <= i whose previous token equals token i (rows with such j)
  double entropy = 0;    // mean row entropy (nats)
  // Rows the means are over: those with stored probabilities. An all-zero row is one a capture
  // did not keep (its budget, or a subset of rows asked for) and counts in no mean; with no such
  // row every score is 0 and rows is 0.
  int64_t rows = 0;
};
LookScores look_scores(std::span<const float> map, int64_t n, std::span<const int32_t> ids,
                       std::span<const int32_t> word_ids);

// The mean of n_maps [n, n] maps laid out one after another.
std::vector<float> mean_map(std::span<const float> maps, int64_t n_maps, int64_t n);

// Attention rollout (Abnar & Zuidema 2020): per layer A = rownorm(0.5 * mean_heads + 0.5 * I),
// R = A_L ... A_1. head_means: n_layers [n, n] head-averaged maps, lowest layer first.
std::vector<float> attention_rollout(std::span<const float> head_means, int64_t n_layers,
                                     int64_t n);

struct Attended {
  int64_t key = 0;
  float weight = 0;
};
// The k largest entries of one row, largest first (ties: lower key first); zeros left out.
std::vector<Attended> top_attended(std::span<const float> map, int64_t n, int64_t row, int64_t k);

// ---------------------------------------------------------------------------------------------
// Exports. Errors name the file.

// One float32 C-order .npy of shape [n_layer_sel, n_head_sel, n_tokens, n_tokens] and, beside
// it, path + ".tokens.json" (write_tokens_json).
void write_npy(const std::string& path, const Explanation& e);
// {"ids": [...], "tokens": [...], "word_ids", "n_prompt", "layers": [...], "heads": [...],
// "model", "memory"}: what the rows and maps of an export stand for.
void write_tokens_json(const std::string& path, const Explanation& e);
// The same maps as a safetensors file: "attn" F32 [n_layer_sel, n_head_sel, T, T] and "ids" I32
// [T]; __metadata__ holds "tokens", "layers" and "heads" as JSON text, "model" and "memory".
void write_safetensors(const std::string& path, const Explanation& e);
// Everything as one JSON document: tokens, layers, heads, the maps (rounded to 6 digits), the
// per-head look scores and the memory note.
std::string to_json(const Explanation& e);

struct HeatmapOptions {
  enum class Color : uint8_t { ascii, ansi256, truecolor };
  Color color = Color::ascii;
  int label_width = 10;     // characters of each row label
  int64_t max_tokens = 80;  // the last max_tokens tokens when there are more
};
// A terminal heatmap of one [n, n] map: one row per query with its token label, one cell per key.
std::string render_heatmap(std::span<const float> map, int64_t n,
                           const std::vector<std::string>& tokens, const HeatmapOptions& options);

// Images of one [n, n] map: `cell` pixels per entry, white (0) to dark blue (row max or 1).
void write_png(const std::string& path, std::span<const float> map, int64_t n, int cell = 4);
// Any RGB image (rows top to bottom, 3 bytes a pixel) as a PNG; throws naming a size mismatch.
void write_png_rgb(const std::string& path, int64_t width, int64_t height,
                   std::span<const uint8_t> rgb);
std::string render_svg(std::span<const float> map, int64_t n,
                       const std::vector<std::string>& tokens, int cell = 14);

// A token's bytes as valid UTF-8 text: complete characters as they are, each byte that is not
// part of one (a byte-fallback token such as <0xE4>, a byte-level BPE token holding part of a
// character) as the four characters \xNN (lowercase hex). Explanation::tokens, the JSON exports
// and the HTML report's data hold token labels in this form, so that "\xe7" "\x8c" "\xab" tell
// the bytes of one character apart where U+FFFD would not.
std::string token_label(std::string_view bytes);

// A token's text as the renderers draw it, so that no token is a blank label: a newline as ↵, a
// tab as →, spaces at the start or end as ·, \r as the two characters "\r", other control bytes
// as \xNN, a byte not part of a valid UTF-8 character as \xNN (as token_label), the empty text as
// ∅. The terminal heatmap, the SVG and the HTML report all use it. The result is valid UTF-8.
std::string visible_token(std::string_view text);

// What the HTML report opens on and what it carries besides the maps.
struct ReportOptions {
  // The map shown first: a layer and head of the model (as in `--map L:H`); head -1: the mean
  // of the selected heads; layer -1: the last selected layer. When neither is given (both -1)
  // and a section names a target, the report opens on the most decisive head: the largest
  // |ablation delta|, else |direct logit attribution|, else |attention x gradient|.
  int layer = -1;
  int head = -1;
  int64_t focus = -1;     // the query row (token position) shown first; -1: none
  std::string opened_by;  // what asked for that view ("--map 2:2 --token It"), shown on the page
  // Sections of other methods, each a top-level key of the report data with its JSON text
  // (docs/EXPLAIN.md, "Report data"): one tab each. Sections the library computes are added by
  // render_html itself; these are for results computed elsewhere (a file, Python).
  std::vector<std::pair<std::string, std::string>> sections;
  // A second prompt shown beside this one, with the difference of their maps (qkv explain
  // --compare): captured with the same layers and heads; its maps go in full.
  const Explanation* compare = nullptr;
  // Long contexts. Maps whose dense lower triangles (2 bytes a weight) would pass this size go
  // in "rows mode": the page holds block summaries (mean attention between 64-token blocks) and
  // every row's row_top_k largest weights are loaded on demand, in chunks of about 2 MiB: from
  // files in report_rows_dir(path) written by write_html (a page opened from disk loads them by
  // <script> elements, which file:// allows where fetch() is refused), or, from render_html,
  // from elements inside the page.
  // 8 MiB: a dense page of 2,000 tokens and 4 maps (16 MiB) first painted in 20 s on the loaded
  // 2-core dev machine where the 32k-token rows page took 2.4 s (docs/PERFORMANCE.md).
  int64_t max_inline_map_bytes = int64_t(8) << 20;
  bool force_rows = false;  // rows mode whatever the size (tests)
  int row_top_k = 32;
};

// A self-contained interactive HTML page (no network): head view, model view, heatmap, analyses,
// and a tab per section present. Throws InvalidArgument when a section is not valid JSON or the
// opening layer/head was not captured.
std::string render_html(const Explanation& e, const ReportOptions& options = {});
// The report at `path`; in rows mode its chunks go to report_rows_dir(path) (path + ".rows"),
// which must stay beside the page. Errors name the file.
void write_html(const std::string& path, const Explanation& e, const ReportOptions& options = {});
std::string report_rows_dir(const std::string& html_path);

// ---------------------------------------------------------------------------------------------
// Attribution: which input tokens, and which attention heads, a prediction rests on, by gradients
// (docs/EXPLAIN.md, "Attribution"). Decoders only (an encoder is refused with InvalidArgument).
//
// The score f is of the logits of the last token run, i.e. of the prediction of the token after
// them: log_softmax(z)[target] (the target's log-probability), or z[target] - z[contrast] ("why the
// target rather than the contrast"). Gradients are taken with respect to the token embedding rows
// (as the embedding table holds them, dequantized; learned positions are held fixed) by a
// backward pass through the model's (dequantized) weights.

enum class AttributionMethod : uint8_t {
  grad_x_input,          // a_t = <e_t, df/de_t>: one forward and one backward pass
  integrated_gradients,  // a_t = <e_t - b_t, mean over the path of df/de_t> (Sundararajan 2017)
};
std::string_view attribution_method_name(AttributionMethod m);  // "grad_x_input", ...

struct AttributionOptions {
  AttributionMethod method = AttributionMethod::grad_x_input;
  // Integrated gradients: points of the straight path from the baseline to the input, at the
  // nodes of Gauss-Legendre quadrature on [0, 1] (exact for polynomials of degree 2 steps - 1;
  // a Riemann sum's error falls only as 1 / steps).
  int steps = 32;
  // The baseline: this token's embedding at every position; -1: the tokenizer's padding token,
  // else its unknown token, else its end of text, else id 0. Not the zero vector: from zero
  // embeddings a pre-norm model's residual stream starts below the norms' epsilon, every norm
  // amplifies by up to 1/sqrt(eps), and the score jumps by units at path points of 1e-4 and
  // below (docs/EXPLAIN.md, "Attribution").
  int32_t baseline_token = -1;
  // Also attention x gradient: per layer and head, the attention probabilities times the
  // gradient of f with respect to them (at the input itself).
  bool attention_gradient = false;
  int n_threads = 0;
  // The activations one batched pass may keep (integrated gradients runs as many path points side
  // by side as fit): 2 GiB, about 2 points of 512 tokens of a 1B model, 16 of 64 tokens.
  int64_t max_batch_bytes = int64_t(2) << 30;
  Backend attention_backend = Backend::automatic;  // Backend::reference: tests
};

struct Attribution {
  AttributionMethod method = AttributionMethod::grad_x_input;
  int steps = 0;         // integrated gradients' path points; 0 for grad x input
  std::string baseline;  // what the path starts from ("" for grad x input)
  int32_t baseline_token = -1;
  int32_t target = -1, contrast = -1;  // token ids; contrast -1: none
  std::string target_text, contrast_text;
  int64_t position = -1;       // the row whose logits are scored: the last token run (T - 1)
  double score = 0;            // f at the input
  double baseline_score = 0;   // f at the baseline (integrated gradients)
  std::vector<double> scores;  // [T] one signed value per input token
  // Attention x gradient (AttributionOptions::attention_gradient), every layer and head:
  //   head_scores [n_layer, n_head]    sum over all rows i and keys j of P_ij df/dP_ij: the
  //                                    first-order change of f if the head's output were removed,
  //                                    negated (positive: the head supports the target)
  //   rows        [n_layer, n_head, T] P_(T-1)j df/dP_(T-1)j of the scored row
  int64_t n_layer = 0, n_head = 0;
  std::vector<double> head_scores;
  std::vector<float> rows;
  // Cost: wall time, the time of one forward pass of the same tokens in the same run, and their
  // ratio (forward-pass equivalents); the same in the process's CPU time, which the other
  // processes of a shared machine do not inflate. Where it went: the gradient passes' forward
  // (keeping activations) and backward parts, in wall time, and the path points run side by side
  // in one pass (integrated gradients).
  double seconds = 0, forward_seconds = 0;
  double cpu_seconds = 0, forward_cpu_seconds = 0;
  double gradient_forward_seconds = 0, gradient_backward_seconds = 0;
  int64_t points_per_pass = 0;
  double forward_equivalents() const { return forward_seconds > 0 ? seconds / forward_seconds : 0; }
  double cpu_equivalents() const {
    return forward_cpu_seconds > 0 ? cpu_seconds / forward_cpu_seconds : 0;
  }
  double sum() const;  // of scores; integrated gradients: close to score - baseline_score
};

// Attribution of the prediction after `ids` (the prompt, BOS included if wanted) to each of them.
// Throws InvalidArgument for an encoder, empty ids, or a target/contrast outside the vocabulary.
Attribution attribute(const Model& model, std::span<const int32_t> ids, int32_t target,
                      int32_t contrast = -1, const AttributionOptions& options = {});

// The report sections (docs/EXPLAIN.md, "Report data") as JSON text: "attribution", and
// "attention_gradient" (empty when it was not computed). Add them to ReportOptions::sections.
std::string attribution_json(const Attribution& a);
std::string attention_gradient_json(const Attribution& a);

// A terminal summary: the method and target, the `top` source tokens by |score| (with their
// position and sign), completeness, the strongest heads when present, and the cost.
std::string render_attribution(const Attribution& a, const std::vector<std::string>& tokens,
                               int top = 8);

}  // namespace qkv

namespace qkv {

// ---------------------------------------------------------------------------------------------
// Interventions and lens. Targets: what the methods below (and the attribution methods) score.

// The token a method explains: the one predicted after the prompt, i.e. the logits of the last
// prompt row (`position`). With a contrast token the score is the logit difference
// logit(id) - logit(contrast_id); without, the target's log-probability (log-softmax).
struct ExplainTarget {
  int32_t id = -1;
  std::string text;          // its bytes as text (visible_token draws them)
  int64_t position = -1;     // the prompt row whose logits predict it: n_prompt - 1
  int32_t contrast_id = -1;  // -1: no contrast
  std::string contrast_text;
  // How the tokens were picked: "target \" animal\" (id 301, from --target animal)" or "the
  // model's greedy next token ...", for the terminal and the report notes.
  std::string note;
  bool has_contrast() const { return contrast_id >= 0; }
};

// One token named by `spec` with no prompt around it (qkv explain --baseline): "#ID", or text that
// is exactly one token as written or with a leading space (tried in that order). Throws
// InvalidArgument starting with `what` when the text is several tokens or the id is out of range.
int32_t resolve_token(const Model& model, std::string_view spec, const char* what);

// Resolves `target` and `contrast` (qkv explain --target / --contrast) after the prompt `prompt`
// (ids as run, BOS included). A spec is "#ID" or text that must be exactly one token: text
// without a leading space is tried with one first when the prompt's last token does not end in
// whitespace (" animal" is the word that follows "It"), then as written (and the other way round
// after whitespace); the note says which was picked. An empty `target` is the model's greedy next
// token: the argmax of `next_logits` (the last prompt row's logits, [n_vocab]), or of a forward
// pass of the prompt when they are empty. An empty `contrast` is none. Throws InvalidArgument
// naming the text that failed ("target \"tired\" is 2 tokens: \" t\" \"ired\"; ...") or an id
// out of range, and for encoders (BERT), which predict no next token.
ExplainTarget resolve_target(const Model& model, std::span<const int32_t> prompt,
                             std::string_view target, std::string_view contrast = {},
                             std::span<const float> next_logits = {});

// The score of a row of logits ([n_vocab]): logit(id) - logit(contrast_id) with a contrast, else
// log_softmax(logits)[id] (computed in double).
double target_score(const ExplainTarget& target, std::span<const float> logits);

// How the methods below run. Every one of them is for decoders (an encoder predicts no next token)
// and throws InvalidArgument naming the model otherwise.
struct InterventionOptions {
  int n_threads = 0;  // 0: all hardware threads
  // Backend::reference runs attention on the double-precision oracle (parity tests).
  Backend attention_backend = Backend::automatic;
};

// What the reruns of a method cost, against one plain forward pass of the prompt timed in the
// same call (the median of three when a pass is short): `forward_equivalents` = seconds /
// forward_seconds, in wall time; `cpu_equivalents` the same ratio in the process's CPU time,
// which other processes on a shared machine do not inflate (a preempted millisecond pass does
// not count); `layer_equivalents` counts the work instead: the layers the reruns ran over the
// whole prompt / the model's layers.
struct RerunCost {
  int64_t reruns = 0;
  double seconds = 0;
  double forward_seconds = 0;
  double forward_equivalents = 0;
  double cpu_seconds = 0;
  double forward_cpu_seconds = 0;
  double cpu_equivalents = 0;
  double layer_equivalents = 0;
};

// Head ablation: each head of each layer in turn has its attention output (its columns of
// attn_out, before the output projection) replaced, for every prompt position, by zeros or by its
// mean over the prompt's positions, and the prompt is rerun. The reruns of layer l start at layer
// l's attention output, kept from the clean run with the residual stream entering l: nothing
// before the head's output is recomputed.
enum class AblationMode : uint8_t { zero, mean };
std::string_view ablation_mode_name(AblationMode m);

struct HeadAblation {
  AblationMode mode = AblationMode::zero;
  ExplainTarget target;
  double baseline = 0;  // the clean run's target_score
  int64_t n_layer = 0, n_head = 0;
  // [n_layer, n_head]: target_score with the head ablated minus baseline (negative: the head
  // helped the target).
  std::vector<double> delta;
  RerunCost cost;
  double at(int64_t layer, int64_t head) const {
    return delta[static_cast<size_t>(layer * n_head + head)];
  }
};
HeadAblation ablate_heads(const Model& model, std::span<const int32_t> prompt,
                          const ExplainTarget& target, AblationMode mode = AblationMode::zero,
                          const InterventionOptions& options = {});

// The report section (docs/EXPLAIN.md, "Report data": ablation) as JSON text.
std::string section_json(const HeadAblation& a);

// Activation patching: the prompt (clean) and a corrupted prompt of the same token length are
// run; then the corrupted run is rerun with one activation taken from the clean run, and the
// fraction of the score's clean-vs-corrupted difference that this restores is
//   (score_patched - score_corrupted) / (score_clean - score_corrupted),
// 1 where the patch brings the clean score back, 0 where it changes nothing. When the clean and
// corrupted scores are equal (|difference| <= 1e-6, e.g. a prompt patched with itself) there is
// nothing to restore and every fraction is 0, and `degenerate` is true. Patches: the residual
// stream (layer_out) of one layer at one position (the rerun starts at the next layer), and one
// head's output (its attn_out columns at every position; the rerun starts at its layer).
struct ActivationPatching {
  ExplainTarget target;
  std::vector<int32_t> corrupted;  // the corrupted prompt's ids
  double clean_score = 0, corrupted_score = 0;
  bool degenerate = false;  // clean_score == corrupted_score: every fraction 0
  int64_t n_layer = 0, n_head = 0, n_tokens = 0;
  std::vector<double> layer_position;  // [n_layer, n_tokens] fractions restored
  std::vector<double> head;            // [n_layer, n_head] fractions restored
  RerunCost cost;
};
// Throws InvalidArgument when the prompts' lengths differ, naming both.
ActivationPatching patch_activations(const Model& model, std::span<const int32_t> clean,
                                     std::span<const int32_t> corrupted,
                                     const ExplainTarget& target,
                                     const InterventionOptions& options = {});
// The report section (patching); corrupted_text is shown on its tab.
std::string section_json(const ActivationPatching& p, const std::string& corrupted_text,
                         const std::vector<std::string>& corrupted_tokens);

// The logit lens: every layer's residual stream (layer_out) at chosen positions through the final
// norm and the LM head, as if it were the last layer; the top_k tokens of each. The last layer's
// rows are the model's own logits.
struct LensToken {
  int32_t id = -1;
  std::string text;
  float logit = 0;
  float p = 0;  // softmax probability
};
struct LogitLens {
  std::vector<int64_t> positions;
  int64_t n_layer = 0;
  int top_k = 0;
  std::vector<LensToken> top;  // [n_layer, positions, top_k], most likely first
  const LensToken& at(int64_t layer, int64_t pos_index, int k) const {
    return top[static_cast<size_t>(
        (layer * static_cast<int64_t>(positions.size()) + pos_index) * top_k + k)];
  }
};
// positions empty: every prompt position.
LogitLens logit_lens(const Model& model, std::span<const int32_t> prompt,
                     std::span<const int64_t> positions = {}, int top_k = 5,
                     const InterventionOptions& options = {});
std::string section_json(const LogitLens& lens);

// Direct logit attribution: the final residual stream at the target row is a sum of parts (the
// embeddings, each head's columns of each output projection, each MLP, biases); each is read
// through the final norm, its scale FROZEN at the clean run's value (and a post-attention norm's,
// Gemma 2/3), and the unembedding row of the target (minus the contrast's). The parts sum to the
// target's logit (difference), before any final soft-cap.
struct DirectLogitAttribution {
  ExplainTarget target;
  int64_t n_layer = 0, n_head = 0;
  std::vector<double> heads;  // [n_layer, n_head]
  std::vector<double> mlp;    // [n_layer]
  double embedding = 0;
  double bias_and_rest = 0;     // biases of projections and norms, fp32 rounding of the residual
  double total = 0;             // the sum of all of the above: the target logit (difference)
  double final_norm_scale = 0;  // 1 / the final norm's frozen scale
  double at(int64_t layer, int64_t head) const {
    return heads[static_cast<size_t>(layer * n_head + head)];
  }
};
DirectLogitAttribution direct_logit_attribution(const Model& model, std::span<const int32_t> prompt,
                                                const ExplainTarget& target,
                                                const InterventionOptions& options = {});
std::string section_json(const DirectLogitAttribution& a);

// Norm-based attention (Kobayashi et al. 2020): for one query row, per layer and head, the size of
// what each source j contributes, ||alpha_ij f(v_j)|| with f = the head's columns of the output
// projection (bias left out). position -1: the last prompt row.
struct NormAttention {
  int64_t position = -1, n_layer = 0, n_head = 0, n_tokens = 0;
  std::vector<float> norms;      // [n_layer, n_head, n_tokens]; 0 past the row (causal)
  std::vector<float> attention;  // [n_layer, n_head, n_tokens]: alpha_ij itself
};
NormAttention norm_attention(const Model& model, std::span<const int32_t> prompt,
                             int64_t position = -1, const InterventionOptions& options = {});
std::string section_json(const NormAttention& a);

}  // namespace qkv
