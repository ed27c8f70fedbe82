// The SIMD body of attention_row (kernels/attention.h), shared by the avx2 and avx512
// libraries and compiled by each with its own flags. It performs the reference's operations
// in the reference's order (see attention.h), so it is 8 lanes wide on every ISA: a score's
// dot product is defined as 8 partial sums. Speed comes from keeping 4 positions' dots in
// flight (independent accumulators) and the output row in registers across positions.
#ifndef KERNELS_SIMD_ATTENTION_INL_H_
#define KERNELS_SIMD_ATTENTION_INL_H_

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kernels/attention.h"

namespace fk {
namespace {

// ((l0 + l4) + (l1 + l5)) + ((l2 + l6) + (l3 + l7)) of the 8 lanes.
inline float attention_reduce8(__m256 acc) {
  const __m128 t = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
  const __m128 u = _mm_hadd_ps(t, t);  // t0 + t1, t2 + t3, ..
  return _mm_cvtss_f32(_mm_hadd_ps(u, u));
}

// A score from its dot's 8-lane part (already reduced): the head_dim % 8 trailing products
// added one by one, then the scale, as the reference.
inline float attention_score_tail(float dot, const float* q, const float* k, int64_t hd,
                                  float scale) {
  for (int64_t i = hd / 8 * 8; i < hd; ++i) dot += q[i] * k[i];
  return dot * scale;
}

// One position's score, as the reference (8 lanes, reduced, then the tail).
inline float attention_score(const float* q, const float* k, int64_t hd, float scale) {
  __m256 a = _mm256_setzero_ps();
  for (int64_t i = 0; i + 8 <= hd; i += 8)
    a = _mm256_add_ps(a, _mm256_mul_ps(_mm256_loadu_ps(q + i), _mm256_loadu_ps(k + i)));
  return attention_score_tail(attention_reduce8(a), q, k, hd, scale);
}

// attention_exp of 4 floats, each lane the scalar's double operations in its order (AVX2;
// the avx512 block kernel has an 8-lane one).
inline __m128 attention_exp4(__m128 x) {
  const __m128 nan = _mm_cmpunord_ps(x, x);
  __m256d xd = _mm256_cvtps_pd(x);
  xd = _mm256_min_pd(_mm256_max_pd(xd, _mm256_set1_pd(-200.0)), _mm256_set1_pd(100.0));
  const __m256d t = _mm256_mul_pd(xd, _mm256_set1_pd(kAttentionLog2e));
  const __m256d n = _mm256_round_pd(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m256d f = _mm256_mul_pd(_mm256_sub_pd(t, n), _mm256_set1_pd(kAttentionLn2));
  __m256d p = _mm256_set1_pd(kAttentionExpCoef[12]);
  for (int i = 11; i >= 0; --i)
    p = _mm256_add_pd(_mm256_mul_pd(p, f), _mm256_set1_pd(kAttentionExpCoef[i]));
  // 2^n from its exponent bits (n is an integer in [-289, 145]: exact conversions).
  const __m128i e = _mm_add_epi32(_mm256_cvtpd_epi32(n), _mm_set1_epi32(1023));
  const __m256d scale = _mm256_castsi256_pd(_mm256_slli_epi64(_mm256_cvtepi32_epi64(e), 52));
  return _mm_blendv_ps(_mm256_cvtpd_ps(_mm256_mul_pd(p, scale)), x, nan);
}

inline void attention_row_simd(const AttentionRow& r) {
  const int64_t hd = r.head_dim;
  const int64_t hd8 = hd / 8 * 8;
  const float* q = r.q;
  // Scores, 4 positions at a time.
  float max_score = -INFINITY;
  const auto finish = [&](int64_t j, __m256 acc) {
    r.scores[j] = attention_score_tail(attention_reduce8(acc), q, r.k + j * r.stride, hd, r.scale);
    max_score = std::max(max_score, r.scores[j]);
  };
  int64_t j = r.lo;
  for (; j + 4 <= r.hi + 1; j += 4) {
    const float* k0 = r.k + j * r.stride;
    const float* k1 = k0 + r.stride;
    const float* k2 = k1 + r.stride;
    const float* k3 = k2 + r.stride;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t i = 0; i < hd8; i += 8) {
      const __m256 qv = _mm256_loadu_ps(q + i);
      a0 = _mm256_add_ps(a0, _mm256_mul_ps(qv, _mm256_loadu_ps(k0 + i)));
      a1 = _mm256_add_ps(a1, _mm256_mul_ps(qv, _mm256_loadu_ps(k1 + i)));
      a2 = _mm256_add_ps(a2, _mm256_mul_ps(qv, _mm256_loadu_ps(k2 + i)));
      a3 = _mm256_add_ps(a3, _mm256_mul_ps(qv, _mm256_loadu_ps(k3 + i)));
    }
    finish(j, a0);
    finish(j + 1, a1);
    finish(j + 2, a2);
    finish(j + 3, a3);
  }
  for (; j <= r.hi; ++j) {
    r.scores[j] = attention_score(q, r.k + j * r.stride, hd, r.scale);
    max_score = std::max(max_score, r.scores[j]);
  }
  // Softmax weights: attention_exp 4 lanes at a time (the scalar's bits), then the double sum
  // in position order, as the reference.
  {
    const __m128 mv = _mm_set1_ps(max_score);
    int64_t t = r.lo;
    for (; t + 4 <= r.hi + 1; t += 4)
      _mm_storeu_ps(r.scores + t, attention_exp4(_mm_sub_ps(_mm_loadu_ps(r.scores + t), mv)));
    for (; t <= r.hi; ++t) r.scores[t] = attention_exp(r.scores[t] - max_score);
  }
  double sum = 0;
  for (int64_t t = r.lo; t <= r.hi; ++t) sum += r.scores[t];
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t t = r.lo; t <= r.hi; ++t) r.scores[t] *= inv;
  // Output: 64 columns at a time held in 8 registers across all positions; each column is
  // its own sum, so the order over positions is the reference's.
  int64_t c = 0;
  for (; c + 64 <= hd8; c += 64) {
    __m256 o[8];
    for (int u = 0; u < 8; ++u) o[u] = _mm256_setzero_ps();
    for (int64_t t = r.lo; t <= r.hi; ++t) {
      const __m256 p = _mm256_set1_ps(r.scores[t]);
      const float* v = r.v + t * r.stride + c;
      for (int u = 0; u < 8; ++u) {
        o[u] = _mm256_add_ps(o[u], _mm256_mul_ps(p, _mm256_loadu_ps(v + 8 * u)));
      }
    }
    for (int u = 0; u < 8; ++u) _mm256_storeu_ps(r.out + c + 8 * u, o[u]);
  }
  for (; c < hd8; c += 8) {
    __m256 o = _mm256_setzero_ps();
    for (int64_t t = r.lo; t <= r.hi; ++t) {
      o = _mm256_add_ps(o, _mm256_mul_ps(_mm256_set1_ps(r.scores[t]),
                                         _mm256_loadu_ps(r.v + t * r.stride + c)));
    }
    _mm256_storeu_ps(r.out + c, o);
  }
  for (; c < hd; ++c) {
    float o = 0.0f;
    for (int64_t t = r.lo; t <= r.hi; ++t) o += r.scores[t] * r.v[t * r.stride + c];
    r.out[c] = o;
  }
}

}  // namespace
}  // namespace fk

#endif  // KERNELS_SIMD_ATTENTION_INL_H_
