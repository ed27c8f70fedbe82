// The llama architecture over GGUF weights that stay in their file format.
//
// LlamaModel holds the weights: every projection (Q, K, V, O, gate, up, down) and the LM
// head is a WeightFormat straight from TensorLoader (a view on the file mapping for the
// block formats), and every matmul goes through dispatch_matmul. The LM head is
// output.weight, or token_embd.weight itself when the file has no output.weight (tied).
// The embedding lookup dequantizes only the rows of the tokens it looks up.
// WeightMode::kF32 dequantizes every weight to F32 at load instead (the seed's "before",
// for side-by-side memory and speed measurements).
//
// LlamaSession holds what one sequence needs: the KV cache and preallocated activation
// buffers. Eval() runs a batch of tokens (a prompt, in chunks of max_batch rows through the
// batched kernels, or one generated token) and leaves the logits of the last one;
// nothing is allocated per token once the first call has warmed the matmul scratch.
//
// The forward pass follows llama.cpp for general.architecture = llama:
//   x = token_embd[token]
//   per block: h = x + wo * attention(RoPE(wq * rmsnorm(x)), RoPE(wk * ..), wv * ..)
//              x = h + w_down * (silu(w_gate * rmsnorm(h)) * (w_up * rmsnorm(h)))
//   logits = lm_head * rmsnorm(x)
// RMSNorm: x / sqrt(mean(x^2) + eps) * weight. RoPE in llama.cpp's "normal" mode (the
// rope type llama.cpp uses for llama): adjacent pairs (x[2i], x[2i+1]) of the first
// rope.dimension_count dims of each head rotate by pos * freq_base^(-2i/rope_dim)
// (divided by rope_freqs.weight[i] when present; positions times 1/factor under linear
// rope scaling); the GGUF converter permutes Q/K rows so that this pairing is right.
// Grouped-query attention: query head h reads KV head h / (n_head / n_head_kv); scores
// scaled by 1/sqrt(head_dim); causal softmax over positions 0..pos.
#ifndef RUNTIME_MODEL_H_
#define RUNTIME_MODEL_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "kernels/matmul.h"
#include "kernels/thread_pool.h"
#include "kernels/weight_format.h"
#include "runtime/gguf.h"

namespace fk {

// Hyperparameters from the llama.* metadata keys.
struct LlamaConfig {
  int64_t n_vocab = 0;     // rows of token_embd.weight (= llama.vocab_size when present)
  int64_t n_embd = 0;      // llama.embedding_length
  int64_t n_layer = 0;     // llama.block_count
  int64_t n_ff = 0;        // llama.feed_forward_length
  int64_t n_head = 0;      // llama.attention.head_count
  int64_t n_head_kv = 0;   // llama.attention.head_count_kv (default n_head)
  int64_t head_dim = 0;    // llama.attention.key_length (default n_embd / n_head)
  int64_t rope_dim = 0;    // llama.rope.dimension_count (default head_dim)
  int64_t n_ctx_train = 0; // llama.context_length
  double rope_freq_base = 10000.0;  // llama.rope.freq_base
  double rope_freq_scale = 1.0;     // 1 / llama.rope.scaling.factor for linear scaling
  float rms_eps = 1e-5f;            // llama.attention.layer_norm_rms_epsilon

  // Reads and checks the keys (general.architecture must be "llama"). n_vocab is left 0.
  static absl::StatusOr<LlamaConfig> FromGguf(const GgufFile& file);
};

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

struct LlamaLayer {
  std::vector<float> attn_norm;
  AttentionWeights attn;
  std::vector<float> ffn_norm;
  FFNWeights ffn;
};

class LlamaModel {
 public:
  // Loads every tensor of the model; errors name the file and the tensor / key / shape.
  // The GgufFile may be destroyed afterwards (weight views keep the mapping alive).
  static absl::StatusOr<std::unique_ptr<LlamaModel>> Load(const GgufFile& file,
                                                          WeightMode mode = WeightMode::kNative);

  const LlamaConfig& config() const { return config_; }
  WeightMode weight_mode() const { return mode_; }
  const WeightFormat& token_embd() const { return token_embd_; }
  // output.weight, or token_embd when tied (then the same bytes, held once).
  const WeightFormat& lm_head() const { return tied_ ? token_embd_ : lm_head_; }
  bool tied_lm_head() const { return tied_; }
  const std::vector<LlamaLayer>& layers() const { return layers_; }
  const std::vector<float>& output_norm() const { return output_norm_; }
  // rope_freqs.weight (rope_dim / 2 divisors of the rotation frequencies), or empty.
  const std::vector<float>& rope_freq_factors() const { return rope_freqs_; }

  // Bytes of every weight held (matrices, norms), each counted once.
  size_t weight_memory_bytes() const;
  // Distinct formats of the matmul weights, e.g. "Q4_1 (210), Q8_0 (1)".
  std::string format_summary() const;
  // Every matmul weight, with its tensor name (tests, summaries).
  std::vector<std::pair<std::string, const WeightFormat*>> matmul_weights() const;

 private:
  LlamaModel() = default;

  LlamaConfig config_;
  WeightMode mode_ = WeightMode::kNative;
  WeightFormat token_embd_;
  WeightFormat lm_head_;  // empty when tied
  bool tied_ = false;
  std::vector<float> output_norm_;
  std::vector<float> rope_freqs_;
  std::vector<LlamaLayer> layers_;
};

// Which kernels run the matmuls, on which threads. Unset variant/path: FK_VARIANT /
// FK_PATH, else the best variant and the default path (kernels/matmul.h). F32 weights
// always take the f32 path (there is no int8 path for them).
struct RunOptions {
  std::optional<Variant> variant;
  std::optional<Path> path;
  ThreadPool* pool = nullptr;  // nullptr: everything on the calling thread
};

class LlamaSession {
 public:
  static constexpr int64_t kDefaultMaxBatch = 64;

  // A session of up to `max_context` positions over `model`, which must outlive it.
  // Checks that a kernel exists and runs on this CPU for every weight format under
  // `options` (an error names the variant/path and what the CPU lacks).
  static absl::StatusOr<std::unique_ptr<LlamaSession>> Create(
      const LlamaModel& model, int64_t max_context, const RunOptions& options,
      int64_t max_batch = kDefaultMaxBatch);

  // Runs `tokens` at positions n_past() .. n_past() + size - 1 (in chunks of max_batch),
  // appends them to the KV cache and leaves the logits of the last token in logits().
  // Errors: empty input, a token id outside the vocabulary, the context full.
  absl::Status Eval(absl::Span<const int32_t> tokens);

  // n_vocab logits of the last token evaluated.
  absl::Span<const float> logits() const { return {logits_.data(), logits_.size()}; }
  int64_t n_past() const { return n_past_; }
  int64_t max_context() const { return max_context_; }
  void Reset() { n_past_ = 0; }

  // The kernel name dispatch uses for each weight format, e.g. "q4_1_int8__avx2, ...".
  std::string kernel_summary() const;

 private:
  LlamaSession(const LlamaModel& model, int64_t max_context, int64_t max_batch,
               const RunOptions& options);
  absl::Status EvalChunk(const int32_t* tokens, int64_t n);
  absl::Status Matmul(const float* in, const WeightFormat& w, int64_t m, float* out);
  void Attention(int64_t layer, int64_t n);
  void AttentionHead(int64_t layer, int64_t n, int64_t h);

  const LlamaModel& model_;
  const LlamaConfig& cfg_;
  int64_t max_context_;
  int64_t max_batch_;
  RunOptions options_;
  MatmulScratch scratch_;
  int64_t n_past_ = 0;

  // Activations, max_batch rows each.
  std::vector<float> x_, xn_, q_, k_, v_, attn_, proj_, gate_, up_;
  std::vector<float> rope_cos_, rope_sin_;  // max_batch x rope_dim / 2
  std::vector<float> scores_;               // n_head x max_context
  std::vector<float> kcache_, vcache_;      // n_layer x max_context x n_head_kv * head_dim
  std::vector<float> logits_;
};

}  // namespace fk

#endif  // RUNTIME_MODEL_H_
