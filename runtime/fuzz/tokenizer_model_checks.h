// What a GGUF file that the reader accepted can reach next: Tokenizer::FromGguf and the
// tokenizer's calls, the llama model loader, one forward step. Shared by the libFuzzer
// target (gguf_fuzzer.cc) and the deterministic runtime:tokenizer_mutation_test, so both
// hold every input to the same rules (issue 7):
//
//  * Tokenizer::FromGguf is OK, or an error whose message starts with the file name and
//    names the tokenizer key ("tokenizer.").
//  * With a tokenizer: every id has a non-empty text and a piece no longer than it; ids
//    outside the vocabulary (negative, vocab_size, INT32_MAX...) have no text, no piece,
//    type kUndefined and are not end-of-generation. Encode of fixed texts (ASCII, UTF-8
//    multibyte, invalid UTF-8, special-token text, a long whitespace run, texts made of
//    the vocabulary's own tokens) with and without add_special / parse_special gives ids
//    inside the vocabulary, at most 6 per text byte + 5, BOS first / EOS last when the
//    metadata says so, the same ids twice. Decode of those ids and of random ids (out of
//    range ones included) is the concatenation of the pieces, less at most one space per
//    token. Each control / user-defined / unknown token's own text encodes (parse_special)
//    to exactly that token. ApplyChatTemplate prints every message's content.
//  * Model::Load is OK or an error starting with the file name; f32 weight mode loads
//    exactly when native mode does. A loaded model has consistent shapes, and one scalar
//    forward step per position (context 2, batch 1) succeeds with n_vocab logits, while
//    token ids outside the vocabulary and a full context are errors.
#ifndef RUNTIME_FUZZ_TOKENIZER_MODEL_CHECKS_H_
#define RUNTIME_FUZZ_TOKENIZER_MODEL_CHECKS_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "runtime/gguf.h"

namespace fk {
namespace fuzz {

struct CheckOptions {
  bool f32_weights = false;  // also load with WeightMode::kF32 (and step that model)
  bool int8_path = false;    // forward step on the int8 activation path (else f32)
  // Which (add_special, parse_special) pairs each text is encoded with: 0: all four;
  // 1: (false, false) and (true, true); 2: (true, false) and (false, true).
  int encode_modes = 0;
  uint64_t seed = 0;         // picks the random ids that are decoded
};

struct CheckStats {
  int64_t tokenizer_ok = 0;
  int64_t tokenizer_errors = 0;
  int64_t encodes = 0;
  int64_t ids_encoded = 0;
  int64_t decodes = 0;
  int64_t model_ok = 0;
  int64_t model_errors = 0;
  int64_t f32_models = 0;
  int64_t forward_steps = 0;
  int64_t session_errors = 0;
  std::map<std::string, int64_t> error_kinds;  // tokenizer / model errors, bucketed
};

// Heap bound for one input of n bytes, reader included:
//   peak <= kMemFactor * n + slack + 2 * max_output_bytes
// kMemFactor: the tokenizer's tables per vocabulary byte (see tokenizer_mutation_test.cc
// for the derivation and the measured worst shapes). slack: kMemSlackBpe when the file's
// tokenizer.ggml.model is "gpt2" (the pre-tokenizer regexes, compiled per Tokenizer, and
// RE2's lazily built reverse programs and DFA caches: ~0.4-0.9 MiB whatever the input),
// else kMemSlack (the fixed texts' temporaries, the session's small buffers).
// max_output_bytes: the longest result a call returned (a Decode legitimately returns as
// many bytes as the pieces it concatenates).
constexpr int64_t kMemFactor = 32;
constexpr int64_t kMemSlack = 64 << 10;
constexpr int64_t kMemSlackBpe = 1536 << 10;

// Runs the checks above on a file the reader accepted. Returns the violations (empty: the
// input passed); *max_output_bytes gets the size of the longest string / id vector
// returned by any call.
std::vector<std::string> CheckTokenizerAndModel(const GgufFile& file, const CheckOptions& options,
                                                CheckStats* stats, size_t* max_output_bytes);

// Whether the file's tokenizer.ggml.model is "gpt2" (the larger slack applies).
bool HasBpeTokenizer(const GgufFile& file);

// A coarse bucket for an error message: its text after the file name, with numbers and
// quoted parts other than metadata keys and tensor names blanked, cut to 70 characters.
std::string ErrorBucket(const std::string& message, const std::string& file_name);

}  // namespace fuzz
}  // namespace fk

#endif  // RUNTIME_FUZZ_TOKENIZER_MODEL_CHECKS_H_
