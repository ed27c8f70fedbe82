// Attention for the avx512 variant (kernels/attention.h). One row: the shared SIMD body,
// compiled with AVX-512 flags (the same 8-lane operations, EVEX-encoded with 32 registers; the
// reference's summation order fixes the width). Blocks of rows: 4 rows at a time share every
// key and value load, with two positions' 8-lane dot products side by side in each 512-bit
// register; each row still performs exactly the reference's operations in its order, so the
// results are the single row's, bit for bit.
#include <algorithm>
#include <cmath>

#include "kernels/simd/attention-inl.h"

namespace fk {
namespace {

#define FK_ATTN_INLINE inline __attribute__((always_inline))

constexpr int kRows = kAttentionScratchRows;  // rows per block
static_assert(kRows == 4, "the block kernel below is written for 4 rows");

// The 8 lanes of k[d .. d+8) of two positions: k0's in the low half, k1's in the high one.
FK_ATTN_INLINE __m512 load_pair(const float* k0, const float* k1) {
  return _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_loadu_ps(k0)), _mm256_loadu_ps(k1), 1);
}

// The reference's reduction ((l0 + l4) + (l1 + l5)) + ((l2 + l6) + (l3 + l7)) of the four
// 8-lane sums in a (positions 0, 1) and b (positions 2, 3); position p's sum ends in lane 4p.
// Float addition is commutative, so t_l = a_l + a_{l+4} is the same whichever lane holds it.
FK_ATTN_INLINE __m512 reduce_quad(__m512 a, __m512 b) {
  // [a0 lanes 0-3, a1 lanes 0-3, b0 0-3, b1 0-3] + [the lanes 4-7 of each].
  const __m512 lo = _mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(2, 0, 2, 0));
  const __m512 hi = _mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(3, 1, 3, 1));
  const __m512 t = _mm512_add_ps(lo, hi);  // per position: l0+l4, l1+l5, l2+l6, l3+l7
  const __m512 u = _mm512_add_ps(t, _mm512_permute_ps(t, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm512_add_ps(u, _mm512_permute_ps(u, _MM_SHUFFLE(1, 0, 3, 2)));
}

// Scores of positions j .. j+7 for the 4 rows q[0..3] (all of them in every row's range);
// writes them to s[r][j ..] and raises mx[r].
FK_ATTN_INLINE void scores_4x8(const float* const (&q)[kRows], const float* k, int64_t stride,
                               int64_t hd, float scale, int64_t j, float* const (&s)[kRows],
                               float (&mx)[kRows]) {
  const int64_t hd8 = hd / 8 * 8;
  const float* kp[8];
  for (int p = 0; p < 8; ++p) kp[p] = k + (j + p) * stride;
  __m512 acc[kRows][4];
  for (int r = 0; r < kRows; ++r)
    for (int p = 0; p < 4; ++p) acc[r][p] = _mm512_setzero_ps();
  for (int64_t d = 0; d < hd8; d += 8) {
    __m512 kv[4];
    for (int p = 0; p < 4; ++p) kv[p] = load_pair(kp[2 * p] + d, kp[2 * p + 1] + d);
    for (int r = 0; r < kRows; ++r) {
      const __m512 qv = _mm512_broadcast_f32x8(_mm256_loadu_ps(q[r] + d));
      for (int p = 0; p < 4; ++p) acc[r][p] = _mm512_add_ps(acc[r][p], _mm512_mul_ps(qv, kv[p]));
    }
  }
  for (int r = 0; r < kRows; ++r) {
    alignas(64) float dots[2][16];
    _mm512_store_ps(dots[0], reduce_quad(acc[r][0], acc[r][1]));
    _mm512_store_ps(dots[1], reduce_quad(acc[r][2], acc[r][3]));
    for (int p = 0; p < 8; ++p) {
      s[r][j + p] = attention_score_tail(dots[p / 4][4 * (p % 4)], q[r], kp[p], hd, scale);
      mx[r] = std::max(mx[r], s[r][j + p]);
    }
  }
}

// attention_exp of 8 floats, each lane the scalar's double operations in its order.
FK_ATTN_INLINE __m256 exp8(__m256 x) {
  const __mmask8 nan = _mm256_cmp_ps_mask(x, x, _CMP_UNORD_Q);
  __m512d xd = _mm512_cvtps_pd(x);
  xd = _mm512_min_pd(_mm512_max_pd(xd, _mm512_set1_pd(-200.0)), _mm512_set1_pd(100.0));
  const __m512d t = _mm512_mul_pd(xd, _mm512_set1_pd(kAttentionLog2e));
  const __m512d n = _mm512_roundscale_pd(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512d f = _mm512_mul_pd(_mm512_sub_pd(t, n), _mm512_set1_pd(kAttentionLn2));
  __m512d p = _mm512_set1_pd(kAttentionExpCoef[12]);
  for (int i = 11; i >= 0; --i)
    p = _mm512_add_pd(_mm512_mul_pd(p, f), _mm512_set1_pd(kAttentionExpCoef[i]));
  const __m512i bits =
      _mm512_slli_epi64(_mm512_add_epi64(_mm512_cvtpd_epi64(n), _mm512_set1_epi64(1023)), 52);
  const __m256 y = _mm512_cvtpd_ps(_mm512_mul_pd(p, _mm512_castsi512_pd(bits)));
  return _mm256_mask_blend_ps(nan, y, x);
}

// scores[lo .. hi] = attention_exp(scores - mx), 8 at a time.
FK_ATTN_INLINE void exp_run(float* s, int64_t lo, int64_t hi, float mx) {
  const __m256 m = _mm256_set1_ps(mx);
  int64_t t = lo;
  for (; t + 8 <= hi + 1; t += 8)
    _mm256_storeu_ps(s + t, exp8(_mm256_sub_ps(_mm256_loadu_ps(s + t), m)));
  if (t <= hi) {
    const __mmask8 k = static_cast<__mmask8>((1u << (hi + 1 - t)) - 1);
    _mm256_mask_storeu_ps(s + t, k, exp8(_mm256_sub_ps(_mm256_maskz_loadu_ps(k, s + t), m)));
  }
}

// Columns [c, c + 16 * U) of the 4 rows' outputs: out_r = sum over t in lo_r .. hi_r
// ascending of p_r[t] * v_t, from 0. Lanes past hd (the last vector's mask) are not stored.
template <int U>
FK_ATTN_INLINE void values_4(const AttentionRows& a, const float* const (&p)[kRows],
                             const int64_t (&lo)[kRows], const int64_t (&hi)[kRows], int64_t c,
                             float* const (&out)[kRows]) {
  const int64_t hd = a.head_dim;
  __mmask16 m[U];
  for (int u = 0; u < U; ++u) {
    const int64_t left = hd - (c + 16 * u);
    m[u] = left >= 16 ? static_cast<__mmask16>(0xFFFF)
                      : static_cast<__mmask16>((1u << std::max<int64_t>(0, left)) - 1);
  }
  __m512 o[kRows][U];
  for (int r = 0; r < kRows; ++r)
    for (int u = 0; u < U; ++u) o[r][u] = _mm512_setzero_ps();
  // Row r's positions in ascending order; rows start at lo[r] (non-decreasing in r) and end
  // at hi[r] = hi[0] + r (or hi[0]: pos_step 0, every row the same positions).
  const int64_t common_lo = lo[kRows - 1], common_hi = hi[0];
  auto add_row = [&](int r, int64_t t, const __m512 (&vv)[U]) {
    const __m512 pv = _mm512_set1_ps(p[r][t]);
    for (int u = 0; u < U; ++u) o[r][u] = _mm512_add_ps(o[r][u], _mm512_mul_ps(pv, vv[u]));
  };
  auto load_v = [&](int64_t t, __m512 (&vv)[U]) {
    const float* v = a.v + t * a.stride + c;
    for (int u = 0; u < U; ++u) vv[u] = _mm512_maskz_loadu_ps(m[u], v + 16 * u);
  };
  __m512 vv[U];
  // Before the positions every row attends (t <= hi[0] <= hi[r] there), those, and after.
  const int64_t before_end = std::min(common_lo, common_hi + 1);
  for (int64_t t = lo[0]; t < before_end; ++t) {
    load_v(t, vv);
    for (int r = 0; r < kRows; ++r)
      if (t >= lo[r]) add_row(r, t, vv);
  }
  for (int64_t t = common_lo; t <= common_hi; ++t) {
    load_v(t, vv);
    for (int r = 0; r < kRows; ++r) add_row(r, t, vv);
  }
  for (int64_t t = common_hi + 1; t <= hi[kRows - 1]; ++t) {
    load_v(t, vv);
    for (int r = 0; r < kRows; ++r)
      if (t >= lo[r] && t <= hi[r]) add_row(r, t, vv);
  }
  for (int r = 0; r < kRows; ++r)
    for (int u = 0; u < U; ++u) _mm512_mask_storeu_ps(out[r] + c + 16 * u, m[u], o[r][u]);
}

void block_4(const AttentionRows& a, int64_t r0) {
  const int64_t hd = a.head_dim;
  AttentionRow row[kRows];
  const float* q[kRows];
  float* s[kRows];
  float* out[kRows];
  int64_t lo[kRows], hi[kRows];
  float mx[kRows];
  for (int r = 0; r < kRows; ++r) {
    row[r] = attention_row_of(a, r0 + r, r);
    q[r] = row[r].q;
    s[r] = row[r].scores;
    out[r] = row[r].out;
    lo[r] = row[r].lo;
    hi[r] = row[r].hi;
    mx[r] = -INFINITY;
  }
  // Scores: positions every row attends 8 at a time, the rest one by one.
  const int64_t common_lo = lo[kRows - 1], common_hi = hi[0];
  for (int r = 0; r < kRows; ++r) {
    for (int64_t j = lo[r]; j <= hi[r]; ++j) {
      if (j >= common_lo && j <= common_hi) continue;
      s[r][j] = attention_score(q[r], a.k + j * a.stride, hd, a.scale);
      mx[r] = std::max(mx[r], s[r][j]);
    }
  }
  int64_t j = common_lo;
  for (; j + 8 <= common_hi + 1; j += 8) scores_4x8(q, a.k, a.stride, hd, a.scale, j, s, mx);
  for (; j <= common_hi; ++j) {
    for (int r = 0; r < kRows; ++r) {
      s[r][j] = attention_score(q[r], a.k + j * a.stride, hd, a.scale);
      mx[r] = std::max(mx[r], s[r][j]);
    }
  }
  // Softmax weights per row, as the reference: the exps 8 at a time, then their sum in
  // position order.
  // The 4 sums are independent chains of dependent additions: over the positions every row
  // attends they advance together, each still in position order.
  double sum[kRows] = {0, 0, 0, 0};
  for (int r = 0; r < kRows; ++r) {
    exp_run(s[r], lo[r], hi[r], mx[r]);
    // Before the common positions (all of them when there are none: t <= hi[0] <= hi[r]).
    for (int64_t t = lo[r]; t < std::min(common_lo, common_hi + 1); ++t) sum[r] += s[r][t];
  }
  for (int64_t t = common_lo; t <= common_hi; ++t)
    for (int r = 0; r < kRows; ++r) sum[r] += s[r][t];
  for (int r = 0; r < kRows; ++r) {
    for (int64_t t = std::max(lo[r], common_hi + 1); t <= hi[r]; ++t) sum[r] += s[r][t];
    const float inv = static_cast<float>(1.0 / sum[r]);
    for (int64_t t = lo[r]; t <= hi[r]; ++t) s[r][t] *= inv;
  }
  // Values: 64 columns at a time (16 accumulators), then 16.
  const float* p[kRows] = {s[0], s[1], s[2], s[3]};
  int64_t c = 0;
  for (; c + 64 <= hd; c += 64) values_4<4>(a, p, lo, hi, c, out);
  for (; c < hd; c += 16) values_4<1>(a, p, lo, hi, c, out);
}

}  // namespace

void attention_row__avx512(const AttentionRow& row) { attention_row_simd(row); }

void attention_rows__avx512(const AttentionRows& a) {
  int64_t r = 0;
  for (; r + kRows <= a.rows; r += kRows) block_4(a, r);
  for (; r < a.rows; ++r) attention_row_simd(attention_row_of(a, r));
}

}  // namespace fk
