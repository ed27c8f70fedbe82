// Picks the next token from logits: greedy (argmax, the default) or, with a temperature
// above 0, a draw from the softmax of logits / temperature restricted to the top_k most
// likely tokens and then to the smallest set of them whose probability reaches top_p
// (llama.cpp's order: top-k, top-p, temperature, draw). Seeded, so runs repeat.
#ifndef RUNTIME_SAMPLER_H_
#define RUNTIME_SAMPLER_H_

#include <cstdint>
#include <random>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace fk {

struct SamplerOptions {
  float temperature = 0.0f;  // 0: greedy; otherwise > 0
  int32_t top_k = 40;        // 0: all tokens
  float top_p = 0.95f;       // in (0, 1]; 1: no cut
  uint64_t seed = 0;
};

class Sampler {
 public:
  // Errors name the option and the offending value.
  static absl::StatusOr<Sampler> Create(const SamplerOptions& options, int64_t n_vocab);

  // logits.size() must be n_vocab. No allocation per call.
  int32_t Sample(absl::Span<const float> logits);

  bool greedy() const { return options_.temperature == 0.0f; }

 private:
  Sampler(const SamplerOptions& options, int64_t n_vocab);

  SamplerOptions options_;
  std::mt19937_64 rng_;
  std::vector<int32_t> ids_;   // candidate ids, n_vocab
  std::vector<double> probs_;  // their probabilities
};

// Index of the largest value (the first on ties); -1 for an empty span.
int32_t Argmax(absl::Span<const float> values);

}  // namespace fk

#endif  // RUNTIME_SAMPLER_H_
