// Test helpers for the runtime: a tiny random llama or gemma3 model written with GgufWriter
// in any of the formats, and where the golden files and the cached real models live.
#ifndef RUNTIME_MODEL_TESTING_H_
#define RUNTIME_MODEL_TESTING_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "kernels/formats.h"
#include "runtime/gguf.h"

namespace fk {

struct TinyLlamaSpec {
  Format format = Format::kQ8_0;  // every matrix, the token embedding included
  int64_t n_embd = 256;           // multiples of 256, so the K-quants apply
  int64_t n_ff = 512;
  int64_t n_head = 4;
  int64_t n_head_kv = 2;
  int64_t n_layer = 2;
  int64_t n_ctx = 256;
  bool tied = true;               // no output.weight: the LM head is token_embd
  uint64_t seed = 1;
  std::string architecture = "llama";  // or "gemma3": adds its norms and keys (below)
  int64_t head_dim = 0;          // > 0: <arch>.attention.key_length (else n_embd / n_head)
  double rope_freq_base = 10000.0;
  float rms_eps = 1e-5f;         // < 0: no <arch>.attention.layer_norm_rms_epsilon key
  // gemma3 keys, written when > 0: attention.sliding_window, attention.sliding_window_pattern
  // (a period), rope.freq_base_swa, final_logit_softcapping.
  int64_t sliding_window = 0;
  int64_t sliding_window_pattern = 0;
  double rope_freq_base_swa = 0;
  float final_logit_softcap = 0;
  std::string omit_tensor;     // a tensor to leave out ("blk.1.ffn_up.weight")
  std::string misshape_tensor; // a matrix written with half its rows
  bool tokenizer = true;       // a small byte-level BPE vocabulary with ChatML specials
  int64_t n_vocab = 300;       // rows of token_embd.weight without the tokenizer
  bool chat_template = true;   // with the tokenizer: a ChatML tokenizer.chat_template
};

// The model as a writer, so a test can still change metadata before writing.
// Weights: N(0, 1/k) for a row length k, quantized with the format's reference quantizer;
// norms 1 + N(0, 0.1^2); embedding N(0, 1) (gemma3: N(0, 1/n_embd), as its embedding is
// scaled by sqrt(n_embd)). gemma3 adds blk.N.attn_q_norm / attn_k_norm (head_dim) and
// blk.N.post_attention_norm / post_ffw_norm (n_embd). Vocabulary: 261 tokens when `tokenizer`
// (256 byte tokens, 3 merges, <|im_start|>, <|im_end|>), else spec.n_vocab.
absl::StatusOr<GgufWriter> MakeTinyLlama(const TinyLlamaSpec& spec);

// GPT-2's byte alphabet character (UTF-8) of byte b: printable Latin-1 bytes stand for
// themselves, the other 68 bytes get U+0100 onwards, in order.
std::string Gpt2ByteChar(int b);
// Writes it to a file under the test's temporary directory; returns the path.
absl::StatusOr<std::string> WriteTinyLlama(const TinyLlamaSpec& spec, absl::string_view name);

// $TEST_TMPDIR, else /tmp.
std::string TestTempDir();
// golden/<name> in the runfiles (kernels/golden_reader.h golden_dir()).
std::string GoldenPath(absl::string_view name);
// $FK_CACHE/models/<file> (FK_CACHE defaults to ~/.cache/fused-kernels); tools/bazel
// fetches the models (tools/fetch_model --all) before tests run.
std::string CachedModelPath(absl::string_view file);
// CachedModelPath("SmolLM2-135M-Instruct.Q4_1.gguf").
std::string SmolLm2Path();
// CachedModelPath("gemma-3-270m-q4_k_m.gguf").
std::string Gemma3Path();
// llama.cpp's own preset files of SmolLM2 (tools/make_llama_presets):
// $FK_CACHE/models/llama-presets, and the file of one preset ("Q5_K_M") in it.
std::string SmolLm2PresetDir();
std::string SmolLm2PresetPath(absl::string_view preset);

}  // namespace fk

#endif  // RUNTIME_MODEL_TESTING_H_
