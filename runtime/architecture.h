// The architectures the runtime runs, as data for the one decoder of runtime/model.h.
//
// ModelConfig::FromGguf reads general.architecture and that architecture's <arch>.* keys.
// Both architectures share the hyperparameter keys (embedding_length, block_count,
// feed_forward_length, attention.head_count[_kv], attention.key_length / value_length,
// rope.dimension_count, context_length, rope.freq_base, rope.scaling.*,
// attention.layer_norm_rms_epsilon); what each one adds, as llama.cpp (0.3.36's
// src/models/llama.cpp and gemma3.cpp, llama-model.cpp, llama-hparams.cpp) builds it:
//
//   llama   RoPE "normal" (adjacent pairs), SwiGLU, no extra norms, scores scaled by
//           1/sqrt(head_dim), rope_freqs.weight divisors when the file has them.
//   gemma3  RoPE "neox" (halves), GeGLU with tanh-approximated GELU, embeddings scaled by
//           sqrt(n_embd), RMSNorm of each Q and K head (attn_q_norm / attn_k_norm) and
//           after attention and after the FFN (post_attention_norm / post_ffw_norm) as
//           well as before them; scores scaled by 1/sqrt(key_length) (1/sqrt(n_embd /
//           n_head) for the 62-layer 27B model, as llama.cpp does); the LM head
//           soft-capped when gemma3.final_logit_softcapping is set. Sliding-window
//           attention when gemma3.attention.sliding_window (n_swa) is set and > 0: layer l
//           attends to the positions p' with p - p' < n_swa (llama.cpp's is_masked_swa,
//           LLAMA_SWA_TYPE_STANDARD) when it is a sliding-window layer, i.e. when
//           l % P < P - 1 for the period P = gemma3.attention.sliding_window_pattern
//           (default 6: five of every six layers; the key may instead be a per-layer
//           array of booleans); those layers rotate with gemma3.rope.freq_base_swa
//           (default 10000, Gemma 3's local base) and no scaling, the others with
//           gemma3.rope.freq_base and the file's RoPE scaling. The RMS epsilon is
//           required (llama.cpp requires it for gemma3).
#ifndef RUNTIME_ARCHITECTURE_H_
#define RUNTIME_ARCHITECTURE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "runtime/gguf.h"

namespace fk {

// How the rotary embedding pairs the dimensions of a head (llama.cpp's rope types).
enum class RopeStyle {
  kNormal,  // adjacent pairs (x[2i], x[2i+1])          (LLAMA_ROPE_TYPE_NORM)
  kNeox,    // halves (x[i], x[i + rope_dim / 2])      (LLAMA_ROPE_TYPE_NEOX)
};
const char* rope_style_name(RopeStyle style);  // "normal", "neox"

// The gate activation of the gated FFN: act(gate) * up.
enum class Activation {
  kSilu,      // SwiGLU: g / (1 + exp(-g))
  kGeluTanh,  // GeGLU with the tanh approximation of GELU:
              // 0.5 g (1 + tanh(sqrt(2/pi) (g + 0.044715 g^3)))
};
const char* activation_name(Activation a);  // "silu", "gelu_tanh"

// Per-layer attention settings.
struct LayerAttention {
  int64_t sliding_window = 0;      // 0: attend to every earlier position
  double rope_freq_base = 10000.0;
  double rope_freq_scale = 1.0;    // positions are multiplied by it (1 / linear factor)
};

// Hyperparameters and the architecture's choices, from the <arch>.* metadata keys
// (runtime/architecture.cc reads them).
struct ModelConfig {
  std::string architecture;  // general.architecture: "llama" or "gemma3"
  int64_t n_vocab = 0;       // rows of token_embd.weight (= <arch>.vocab_size when present)
  int64_t n_embd = 0;        // <arch>.embedding_length
  int64_t n_layer = 0;       // <arch>.block_count
  int64_t n_ff = 0;          // <arch>.feed_forward_length
  int64_t n_head = 0;        // <arch>.attention.head_count
  int64_t n_head_kv = 0;     // <arch>.attention.head_count_kv (default n_head)
  int64_t head_dim = 0;      // <arch>.attention.key_length (default n_embd / n_head)
  int64_t rope_dim = 0;      // <arch>.rope.dimension_count (default head_dim)
  int64_t n_ctx_train = 0;   // <arch>.context_length (0: unknown)
  float rms_eps = 1e-5f;     // <arch>.attention.layer_norm_rms_epsilon

  // What differs between architectures.
  RopeStyle rope_style = RopeStyle::kNormal;
  Activation activation = Activation::kSilu;
  float embedding_scale = 1.0f;  // token embeddings are multiplied by it
  float attention_scale = 0.0f;  // scores = scale * q.k (set by the reader)
  bool qk_norm = false;          // blk.N.attn_q_norm / attn_k_norm, per head
  bool post_norms = false;       // blk.N.post_attention_norm / post_ffw_norm
  bool rope_freq_factors = false;  // rope_freqs.weight is read when present
  float final_logit_softcap = 0.0f;  // 0: none
  std::vector<LayerAttention> layers;  // n_layer entries

  // Reads and checks the keys of a supported architecture; errors name the file and key.
  // n_vocab is left 0 (the model sets it from token_embd.weight).
  static absl::StatusOr<ModelConfig> FromGguf(const GgufFile& file);

  // "<arch>.<key>", for messages.
  std::string key(absl::string_view suffix) const;
  // Number of layers with a sliding window.
  int64_t sliding_window_layers() const;
};

// "llama, gemma3".
std::string supported_architectures();

}  // namespace fk

#endif  // RUNTIME_ARCHITECTURE_H_
