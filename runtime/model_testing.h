// Test helpers for the runtime: a tiny random llama model written with GgufWriter in any
// of the formats, and where the golden files and the cached SmolLM2 model live.
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
  std::string architecture = "llama";
  std::string omit_tensor;     // a tensor to leave out ("blk.1.ffn_up.weight")
  std::string misshape_tensor; // a matrix written with half its rows
  bool tokenizer = true;       // a small byte-level BPE vocabulary with ChatML specials
};

// The model as a writer, so a test can still change metadata before writing.
// Weights: N(0, 1/k) for a row length k, quantized with the format's reference quantizer;
// norms 1 + N(0, 0.1^2); embedding N(0, 1). Vocabulary: 261 tokens when `tokenizer`
// (256 byte tokens, 3 merges, <|im_start|>, <|im_end|>), else 300.
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
// $FK_CACHE/models/SmolLM2-135M-Instruct.Q4_1.gguf (FK_CACHE defaults to
// ~/.cache/fused-kernels); tools/bazel fetches it before tests run.
std::string SmolLm2Path();

}  // namespace fk

#endif  // RUNTIME_MODEL_TESTING_H_
