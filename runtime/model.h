// Decoder-only transformer models over GGUF weights that stay in their file format.
//
// Two architectures (general.architecture), described in runtime/architecture.h: llama
// and gemma3. They share one decoder (this file): Model holds the weights, every
// projection (Q, K, V, O, gate, up, down) and the LM head a WeightFormat straight from
// TensorLoader (a view on the file mapping for the block formats), and every matmul goes
// through dispatch_matmul into preallocated buffers. What differs between architectures
// is data in ModelConfig, read from the file's metadata by the architecture's reader:
// which norms exist and where, the activation, the RoPE pairing and bases, sliding-window
// attention per layer, the embedding and attention scales, logit soft-capping.
//
// The LM head is output.weight, or token_embd.weight itself when the file has no
// output.weight (tied). The embedding lookup dequantizes only the rows it looks up.
// WeightMode::kF32 dequantizes every weight to F32 at load instead (the seed's "before",
// for side-by-side memory and speed measurements).
//
// Session holds what one sequence needs: the KV cache and preallocated activation
// buffers. Eval() runs a batch of tokens (a prompt, in chunks of max_batch rows through the
// batched kernels, or one generated token) and leaves the logits of the last one;
// nothing is allocated per token once the first call has warmed the matmul scratch.
//
// The forward pass (llama.cpp's graphs for the two architectures; [..] only where the
// config says so):
//   x = token_embd[token] [* embedding_scale]
//   per block l:
//     a = attention_l(wq * rmsnorm(x), wk * .., wv * ..)     (see below)
//     x = x + [rmsnorm_post_attention](wo * a)
//     f = w_down * (act(w_gate * rmsnorm(x)) * (w_up * rmsnorm(x)))
//     x = x + [rmsnorm_post_ffw](f)
//   logits = lm_head * rmsnorm(x)   [then c * tanh(logits / c) with c = final softcap]
// RMSNorm: x / sqrt(mean(x^2) + eps) * weight. Attention: Q and K [each head RMS-normed
// with attn_q_norm / attn_k_norm], then rotated (RoPE) by position: in "normal" mode
// (llama) adjacent pairs (x[2i], x[2i+1]), in "neox" mode (gemma3) the pairs (x[i],
// x[i + rope_dim/2]), each by pos * scale * base^(-2i/rope_dim) with the layer's base and
// scale (divided by rope_freqs.weight[i] when present). Grouped-query attention: query
// head h reads KV head h / (n_head / n_head_kv); scores scaled by attention_scale; causal
// softmax over positions 0..pos, or over the last sliding_window positions
// (pos - window + 1 .. pos) on the layers the config marks as sliding-window layers.
#ifndef RUNTIME_MODEL_H_
#define RUNTIME_MODEL_H_

#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/functional/function_ref.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "kernels/activation.h"
#include "kernels/attention.h"
#include "kernels/matmul.h"
#include "kernels/thread_pool.h"
#include "kernels/weight_format.h"
#include "runtime/profile.h"
#include "runtime/architecture.h"
#include "runtime/gguf.h"

namespace fk {

// How weights are held: as in the file (native), or dequantized to F32 at load.
enum class WeightMode { kNative, kF32 };
const char* weight_mode_name(WeightMode mode);  // "native", "f32"
absl::StatusOr<WeightMode> parse_weight_mode(absl::string_view name);

struct AttentionWeights {
  WeightFormat wq, wk, wv, wo;
};

struct FFNWeights {
  WeightFormat w_gate, w_up, w_down;
};

struct Layer {
  std::vector<float> attn_norm;
  AttentionWeights attn;
  std::vector<float> attn_q_norm, attn_k_norm;  // head_dim each; empty without qk_norm
  std::vector<float> post_attention_norm;       // empty without post_norms
  std::vector<float> ffn_norm;
  FFNWeights ffn;
  std::vector<float> post_ffw_norm;             // empty without post_norms
};

class Model {
 public:
  // Loads every tensor of the model; errors name the file and the tensor / key / shape.
  // The GgufFile may be destroyed afterwards (weight views keep the mapping alive).
  static absl::StatusOr<std::unique_ptr<Model>> Load(const GgufFile& file,
                                                     WeightMode mode = WeightMode::kNative);

  const ModelConfig& config() const { return config_; }
  WeightMode weight_mode() const { return mode_; }
  const WeightFormat& token_embd() const { return token_embd_; }
  // output.weight, or token_embd when tied (then the same bytes, held once).
  const WeightFormat& lm_head() const { return tied_ ? token_embd_ : lm_head_; }
  bool tied_lm_head() const { return tied_; }
  const std::vector<Layer>& layers() const { return layers_; }
  const std::vector<float>& output_norm() const { return output_norm_; }
  // rope_freqs.weight (rope_dim / 2 divisors of the rotation frequencies), or empty.
  const std::vector<float>& rope_freq_factors() const { return rope_freqs_; }

  // Bytes of every weight held (matrices, norms), each counted once.
  size_t weight_memory_bytes() const;
  // Distinct formats of the matmul weights, e.g. "Q4_1 x210, Q8_0 x1".
  std::string format_summary() const;
  // Every matmul weight, with its tensor name (tests, summaries).
  std::vector<std::pair<std::string, const WeightFormat*>> matmul_weights() const;

 private:
  Model() = default;

  ModelConfig config_;
  WeightMode mode_ = WeightMode::kNative;
  WeightFormat token_embd_;
  WeightFormat lm_head_;  // empty when tied
  bool tied_ = false;
  std::vector<float> output_norm_;
  std::vector<float> rope_freqs_;
  std::vector<Layer> layers_;
};

// Which kernels run the matmuls, on which threads. Unset variant/path: FK_VARIANT /
// FK_PATH, else the best variant and the default path (kernels/matmul.h). Float weights
// take the f32 path under the int8 path (they have none), and all but BF16 weights under
// the bf16 path.
struct RunOptions {
  std::optional<Variant> variant;
  std::optional<Path> path;
  ThreadPool* pool = nullptr;  // nullptr: everything on the calling thread
  // Not null: every Eval adds where its time went (runtime/profile.h); results are the same.
  EvalProfile* profile = nullptr;
};

class Session {
 public:
  static constexpr int64_t kDefaultMaxBatch = 128;

  // A session of up to `max_context` positions over `model`, which must outlive it.
  // Checks that a kernel exists and runs on this CPU for every weight format under
  // `options` (an error names the variant/path and what the CPU lacks).
  static absl::StatusOr<std::unique_ptr<Session>> Create(const Model& model,
                                                         int64_t max_context,
                                                         const RunOptions& options,
                                                         int64_t max_batch = kDefaultMaxBatch);

  // Runs `tokens` at positions n_past() .. n_past() + size - 1 (in chunks of max_batch),
  // appends them to the KV cache and leaves the logits of the last token in logits().
  // Errors: empty input, a token id outside the vocabulary, the context full.
  absl::Status Eval(absl::Span<const int32_t> tokens);

  // As Eval, and also hands over the logits of every token: row(i, logits) for i = 0 ..
  // size - 1 in order, logits the n_vocab logits after tokens[i] (so row i scores
  // tokens[i + 1]). Each chunk of max_batch rows runs its last layer and the LM head for all
  // its rows at once (a batched LM head); the span is valid during the call only.
  // logits() afterwards holds the last token's, as after Eval.
  using LogitsRowFn = absl::FunctionRef<void(int64_t i, absl::Span<const float> logits)>;
  absl::Status EvalAll(absl::Span<const int32_t> tokens, LogitsRowFn row);

  // n_vocab logits of the last token evaluated.
  absl::Span<const float> logits() const { return {logits_.data(), logits_.size()}; }
  int64_t n_past() const { return n_past_; }
  int64_t max_context() const { return max_context_; }
  void Reset() { n_past_ = 0; }

  // Starts (non-null) or stops (null) adding to a profile, as RunOptions::profile.
  void set_profile(EvalProfile* profile) { options_.profile = profile; }

  // The kernel name dispatch uses for each weight format, e.g. "q4_1_int8__avx2, ...".
  std::string kernel_summary() const;
  // The kernels' slow_note()s (kernels/matmul.h), one per format that has one: a format whose
  // path runs on the scalar reference because this CPU lacks a faster kernel's features.
  std::vector<std::string> kernel_warnings() const;

 private:
  // The kernel choice of each weight format the model's matmuls use, by format name (null
  // when none was resolved).
  std::map<std::string, const KernelChoice*> choices_by_format() const;
  Session(const Model& model, int64_t max_context, int64_t max_batch, const RunOptions& options,
          std::vector<std::optional<KernelChoice>> kernels, const AttentionKernel& attention,
          const GatedKernel& gated);
  absl::Status EvalTokens(absl::Span<const int32_t> tokens, const LogitsRowFn* all_rows);
  // kLast: the chunk holds the prompt's last token. kNone: a chunk before it; it stops once
  // the last layer's K and V are cached (nothing of its output is read) and skips the LM
  // head. kAll: every row goes through the last layer and the LM head (EvalAll).
  enum class Want { kNone, kLast, kAll };
  absl::Status EvalChunk(const int32_t* tokens, int64_t n, Want want);
  absl::Status Matmul(EvalProfile::Part part, const float* in, const WeightFormat& w, int64_t m,
                      float* out);
  // Matmuls of one input as one parallel pass (kernels/matmul.h dispatch_matmuls).
  absl::Status Matmuls(EvalProfile::Part part, const float* in, int64_t m,
                       std::initializer_list<std::pair<const WeightFormat*, float*>> jobs,
                       const MatmulEpilogue* epilogue = nullptr);
  void Attention(int64_t layer, int64_t n);  // times AttentionHeads when profiling
  void AttentionHeads(int64_t layer, int64_t n);
  // fn(t0, t1) over rows [0, n): in chunks on the pool for a prompt (rows are independent,
  // so the split changes no bit), on the calling thread for a few rows.
  template <class Fn>
  void ForRows(int64_t n, const Fn& fn);
  void AttentionRows(int64_t layer, int64_t h, int64_t t0, int64_t t1, float* scores);
  void AttentionHeadsOfToken(int64_t layer, int64_t g, int64_t h0, int64_t h1, float* scores);
  fk::AttentionRows KvHeadBlock(int64_t layer, int64_t g, float* scores) const;
  static constexpr int64_t kAttentionRowChunks = 4;

  const Model& model_;
  const ModelConfig& cfg_;
  int64_t max_context_;
  int64_t max_batch_;
  RunOptions options_;
  // The kernels of each weight format the model has, indexed by Format, resolved once in
  // Create (the environment and the CPU are read there, never per matmul).
  std::vector<std::optional<KernelChoice>> kernels_;
  // The attention kernel of the same variant as the matmul kernels, resolved in Create.
  const AttentionKernel& attention_;
  // The FFN's gating kernel, chosen the same way.
  const GatedKernel& gated_;
  MatmulScratch scratch_;
  int64_t n_past_ = 0;
  int64_t attn_pos0_ = 0;  // position of the first row of q_ that Attention() works on

  // Activations, max_batch rows each.
  std::vector<float> x_, xn_, q_, k_, v_, attn_, proj_, gate_, up_;
  // Rotation angles of the current chunk, one table per distinct (base, scale) of the
  // layers: max_batch x rope_dim / 2 cosines and sines each.
  struct RopeTable {
    double base, scale;
    std::vector<float> cos, sin;
  };
  std::vector<RopeTable> rope_tables_;
  std::vector<int> layer_rope_;             // layer -> index into rope_tables_
  std::vector<float> scores_;  // kAttentionRowChunks x n_head tasks' scratch, each
                              // kAttentionScratchRows x max_context
  std::vector<float> kcache_, vcache_;      // n_layer x max_context x n_head_kv * head_dim
  std::vector<float> logits_;
  std::vector<float> all_logits_;  // EvalAll's max_batch x n_vocab, allocated on first use
};

}  // namespace fk

#endif  // RUNTIME_MODEL_H_
