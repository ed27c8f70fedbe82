#include "kernels/attention.h"

#include <algorithm>
#include <cmath>

#include "kernels/cpu_features.h"

namespace fk {

// The SIMD bodies (kernels/simd/attention-inl.h), one per ISA library.
void attention_row__avx2(const AttentionRow& row);
void attention_row__avx512(const AttentionRow& row);
void attention_rows__avx2(const AttentionRows& rows);
void attention_rows__avx512(const AttentionRows& rows);

namespace {
void attention_rows_ref(const AttentionRows& a) { attention_rows_one_by_one(a, &attention_row_ref); }
}  // namespace

void attention_row_ref(const AttentionRow& r) {
  const int64_t hd = r.head_dim;
  float max_score = -INFINITY;
  for (int64_t j = r.lo; j <= r.hi; ++j) {
    const float* k = r.k + j * r.stride;
    float lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 8 <= hd; i += 8) {
      for (int l = 0; l < 8; ++l) lane[l] += r.q[i + l] * k[i + l];
    }
    float dot = ((lane[0] + lane[4]) + (lane[1] + lane[5])) +
                ((lane[2] + lane[6]) + (lane[3] + lane[7]));
    for (; i < hd; ++i) dot += r.q[i] * k[i];
    r.scores[j] = dot * r.scale;
    max_score = std::max(max_score, r.scores[j]);
  }
  double sum = 0;
  for (int64_t j = r.lo; j <= r.hi; ++j) {
    r.scores[j] = attention_exp(r.scores[j] - max_score);
    sum += r.scores[j];
  }
  const float inv = static_cast<float>(1.0 / sum);
  std::fill(r.out, r.out + hd, 0.0f);
  for (int64_t j = r.lo; j <= r.hi; ++j) {
    const float p = r.scores[j] * inv;
    const float* v = r.v + j * r.stride;
    for (int64_t i = 0; i < hd; ++i) r.out[i] += p * v[i];
  }
}

absl::Span<const AttentionKernel> all_attention_kernels() {
  static const AttentionKernel kKernels[] = {
      {Variant::kScalar, kCpuNone, &attention_row_ref, &attention_rows_ref, "attention__scalar"},
      {Variant::kAvx2, kFeaturesAvx2, &attention_row__avx2, &attention_rows__avx2,
       "attention__avx2"},
      {Variant::kAvx512, kFeaturesAvx512, &attention_row__avx512, &attention_rows__avx512,
       "attention__avx512"},
  };
  return kKernels;
}

const AttentionKernel& select_attention(std::optional<Variant> variant) {
  return best_runnable_kernel(all_attention_kernels(), variant);
}

}  // namespace fk
