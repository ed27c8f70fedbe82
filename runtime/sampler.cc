#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace fk {

int32_t Argmax(absl::Span<const float> values) {
  if (values.empty()) return -1;
  size_t best = 0;
  for (size_t i = 1; i < values.size(); ++i) {
    if (values[i] > values[best]) best = i;
  }
  return static_cast<int32_t>(best);
}

absl::StatusOr<Sampler> Sampler::Create(const SamplerOptions& options, int64_t n_vocab) {
  if (!(options.temperature >= 0.0f) || !std::isfinite(options.temperature)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "temperature ", options.temperature, " must be a finite number >= 0 (0: greedy)"));
  }
  if (options.top_k < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("top_k ", options.top_k, " must be >= 0 (0: all tokens)"));
  }
  if (!(options.top_p > 0.0f && options.top_p <= 1.0f)) {
    return absl::InvalidArgumentError(
        absl::StrCat("top_p ", options.top_p, " must be in (0, 1]"));
  }
  if (n_vocab < 1 || n_vocab > INT32_MAX) {
    return absl::InvalidArgumentError(absl::StrCat("vocabulary size ", n_vocab, " is invalid"));
  }
  return Sampler(options, n_vocab);
}

Sampler::Sampler(const SamplerOptions& options, int64_t n_vocab)
    : options_(options), rng_(options.seed) {
  if (!greedy()) {
    ids_.resize(static_cast<size_t>(n_vocab));
    probs_.resize(static_cast<size_t>(n_vocab));
  }
}

int32_t Sampler::Sample(absl::Span<const float> logits) {
  if (greedy() || logits.size() != ids_.size()) return Argmax(logits);
  const size_t n = logits.size();
  for (size_t i = 0; i < n; ++i) ids_[i] = static_cast<int32_t>(i);
  const auto by_logit = [&](int32_t a, int32_t b) {
    return logits[a] != logits[b] ? logits[a] > logits[b] : a < b;
  };
  size_t keep = n;
  if (options_.top_k > 0 && static_cast<size_t>(options_.top_k) < n) keep = options_.top_k;
  // Sorted by logit, most likely first (only the kept prefix).
  std::partial_sort(ids_.begin(), ids_.begin() + keep, ids_.end(), by_logit);

  const double max_logit = logits[ids_[0]];
  double total = 0;
  for (size_t i = 0; i < keep; ++i) {
    probs_[i] = std::exp((logits[ids_[i]] - max_logit) / options_.temperature);
    total += probs_[i];
  }
  if (options_.top_p < 1.0f) {
    double cum = 0;
    size_t cut = keep;
    for (size_t i = 0; i < keep; ++i) {
      cum += probs_[i] / total;
      if (cum >= options_.top_p) {
        cut = i + 1;
        break;
      }
    }
    keep = cut;
    total = 0;
    for (size_t i = 0; i < keep; ++i) total += probs_[i];
  }
  // Uniform in [0, total) from 53 random bits.
  const double u = static_cast<double>(rng_() >> 11) * 0x1.0p-53 * total;
  double cum = 0;
  for (size_t i = 0; i < keep; ++i) {
    cum += probs_[i];
    if (u < cum) return ids_[i];
  }
  return ids_[keep - 1];
}

}  // namespace fk
