// The avx2 int8 path of the 32-element formats (textual header, see
// kernels/simd/common-inl.h): a tile micro-kernel over the codecs of Q8_0 kind
// (kernels/avx2/codecs-inl.h) against the reference Q8_0 activation blocks.
//
// Per block: the integer dot of the unpacked weights with the activation bytes (exact int32
// lanes), converted to float and FMA'd with the block scale dw * da. The scales of 8
// consecutive blocks are gathered with scalar loads into one vector and converted together
// (cheaper than a broadcast + conversion per block); they are kept on the stack and
// broadcast from there. Q4_0 and Q5_0 are dotted as unsigned q against y and corrected by
// the exact integer 8 * sum(y) (16 * sum(y)); Q4_1's offset term m * da * sum(y) is a float
// product accumulated per group of 8 blocks.
#ifndef KERNELS_AVX2_INT8_LEGACY_INL_H_
#define KERNELS_AVX2_INT8_LEGACY_INL_H_

#include <vector>

#include "kernels/avx2/codecs-inl.h"

namespace fk {
namespace {

constexpr int kScaleGroup = 8;

// Per activation row and block (padded to a multiple of kScaleGroup with zeros, which the
// last partial group of blocks reads): da = the block's scale; ysum = the exact sum of its
// 32 quants; dasum = da * ysum. Held in per-thread buffers that only grow, so a warm call
// allocates nothing.
struct LegacyPrep {
  int64_t nb = 0, stride = 0;
  const float* da = nullptr;
  const float* dasum = nullptr;
  const int32_t* ysum = nullptr;
  explicit LegacyPrep(const MatmulArgs& a) {
    thread_local std::vector<float> da_buf, dasum_buf;
    thread_local std::vector<int32_t> ysum_buf;
    nb = a.k / kQK;
    stride = (nb + kScaleGroup - 1) / kScaleGroup * kScaleGroup;
    const size_t size = static_cast<size_t>(a.m * stride);
    if (da_buf.size() < size) {
      da_buf.resize(size);
      dasum_buf.resize(size);
      ysum_buf.resize(size);
    }
    const __m256i ones = _mm256_set1_epi8(1);
    for (int64_t i = 0; i < a.m; ++i) {
      const uint8_t* row = a.act + i * a.act_row_bytes;
      float* da_row = da_buf.data() + i * stride;
      float* dasum_row = dasum_buf.data() + i * stride;
      int32_t* ysum_row = ysum_buf.data() + i * stride;
      for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* blk = row + b * kQ8_0Bytes;
        const __m256i s = dot_us(ones, loadu256(blk + kQ8_0Qs));
        __m128i t = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
        t = _mm_add_epi32(t, _mm_unpackhi_epi64(t, t));
        t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 1));
        const int32_t sum = _mm_cvtsi128_si32(t);
        const float d = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(load_u16(blk + kQ8_0D))));
        da_row[b] = d;
        ysum_row[b] = sum;
        dasum_row[b] = d * static_cast<float>(sum);
      }
      for (int64_t b = nb; b < stride; ++b) {
        da_row[b] = 0.0f;
        dasum_row[b] = 0.0f;
        ysum_row[b] = 0;
      }
    }
    da = da_buf.data();
    dasum = dasum_buf.data();
    ysum = ysum_buf.data();
  }
};

// The halves at p, p + kBytes, ..., p + (cnt - 1) * kBytes (the same field of cnt <= 8
// consecutive blocks) as 8 floats; lanes >= cnt are 0.
template <int kBytes>
FK_INLINE __m256 gather_fp16(const uint8_t* p, int cnt) {
  uint64_t lo = 0, hi = 0;
  if (cnt == kScaleGroup) {
    for (int t = 0; t < 4; ++t) lo |= static_cast<uint64_t>(load_u16(p + t * kBytes)) << (16 * t);
    for (int t = 0; t < 4; ++t)
      hi |= static_cast<uint64_t>(load_u16(p + (4 + t) * kBytes)) << (16 * t);
  } else {
    for (int t = 0; t < cnt; ++t) {
      const uint64_t h = load_u16(p + t * kBytes);
      if (t < 4) lo |= h << (16 * t); else hi |= h << (16 * (t - 4));
    }
  }
  return _mm256_cvtph_ps(_mm_set_epi64x(static_cast<int64_t>(hi), static_cast<int64_t>(lo)));
}

template <class C>
struct LegacyInt8 {
  static_assert(C::kAct == Format::kQ8_0, "a codec of Q8_0 kind");
  using Prep = LegacyPrep;
  template <int MR, int NR>
  static FK_INLINE void tile(const MatmulArgs& a, const Prep& p, int64_t i0, int64_t j0, int nv) {
    const int64_t nb = p.nb;
    const uint8_t* w[NR];
    const uint8_t* y[MR];
    const float* da[MR];
    const float* dasum[MR];
    const int32_t* ysum[MR];
    tile_rows(a, j0, nv, w);
    for (int i = 0; i < MR; ++i) {
      y[i] = a.act + (i0 + i) * a.act_row_bytes + kQ8_0Qs;
      da[i] = p.da + (i0 + i) * p.stride;
      dasum[i] = p.dasum + (i0 + i) * p.stride;
      ysum[i] = p.ysum + (i0 + i) * p.stride;
    }
    __m256 acc[MR][NR];
    __m256 macc[MR][NR];  // Q4_1: sum over blocks of m * da * sum(y)
    zero(acc);
    zero(macc);
    // dw * da of the current group of blocks, broadcast per block from here (a load, which
    // keeps the shuffle port free).
    alignas(32) float scale[MR][NR][kScaleGroup];
    for (int64_t b0 = 0; b0 < nb; b0 += kScaleGroup) {
      const int cnt = static_cast<int>(std::min<int64_t>(kScaleGroup, nb - b0));
      prefetch_ahead<VecAvx2>(a, w, b0 * C::kBytes, cnt * C::kBytes);
      for (int j = 0; j < NR; ++j) {
        const uint8_t* blk0 = w[j] + b0 * C::kBytes;
        const __m256 dw = gather_fp16<C::kBytes>(blk0 + C::kD, cnt);
        for (int i = 0; i < MR; ++i)
          _mm256_store_ps(scale[i][j], _mm256_mul_ps(dw, _mm256_loadu_ps(da[i] + b0)));
        if constexpr (C::kHasMin) {
          const __m256 mw = gather_fp16<C::kBytes>(blk0 + C::kM, cnt);
          for (int i = 0; i < MR; ++i)
            macc[i][j] = _mm256_fmadd_ps(mw, _mm256_loadu_ps(dasum[i] + b0), macc[i][j]);
        }
      }
      for (int t = 0; t < cnt; ++t) {
        const int64_t b = b0 + t;
        for (int j = 0; j < NR; ++j) {
          const typename C::W wd = C::decode(w[j] + b * C::kBytes);
          for (int i = 0; i < MR; ++i) {
            __m256i s = C::dot(wd, loadu256(y[i] + b * kQ8_0Bytes));
            if constexpr (C::kBiasPerLane != 0)
              s = _mm256_sub_epi32(s, _mm256_set1_epi32(C::kBiasPerLane * ysum[i][b]));
            acc[i][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s),
                                        _mm256_broadcast_ss(&scale[i][j][t]), acc[i][j]);
          }
        }
      }
    }
    if constexpr (C::kHasMin) {
      for (int i = 0; i < MR; ++i)
        for (int j = 0; j < NR; ++j) acc[i][j] = _mm256_add_ps(acc[i][j], macc[i][j]);
    }
    store_tile(a, i0, j0, nv, acc);
  }
};

}  // namespace
}  // namespace fk

#endif  // KERNELS_AVX2_INT8_LEGACY_INL_H_
