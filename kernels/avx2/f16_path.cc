// The avx2 row of the f16 path (kernels/registry.inc): F16 weights against the activations
// act_f16_ref packs, with the path's fp16 arithmetic (kernel_api.h) emulated exactly on
// AVX2 + F16C, for the CPUs without AVX-512 FP16 (AMD Zen 4 and 5, Intel before Sapphire
// Rapids), where the path otherwise falls to the scalar reference's software FMA.
//
// One fp16 FMA, 8 lanes at a time, operands and sums held as floats (every fp16 value is one):
// the product w * x is exact in float (22 significant bits); s = fl(p + c) and its error e
// (TwoSum, exact) give the exact sum s + e; that is rounded to odd at float precision (s, or
// when e != 0 and s's last bit is 0 its neighbour towards e), then to fp16 by vcvtps2ph
// (nearest-even). Rounding to odd with at least 2 more bits than the target, then to nearest,
// is the single rounding to nearest (Boldo & Melquiond, IEEE TC 2008): fp16's normals and
// subnormals (float has 13 more bits, and the exponent range), the tie at 65520 that rounds
// to inf, and the sign of an exact zero (+0, unless both addends are -0) come out as the
// hardware vfmadd231ph gives them. About 17 vector operations per 8 products.
//
// The chains are the kernel_api.h ones: 32 lanes per step, 16 steps per chain, taken here a
// quarter (8 lanes) at a time; lane l's chain then goes to f32 lane l % 16 in the order lanes
// 0..15, then 16..31, and the 16 f32 lanes are summed in the tree of _mm512_reduce_add_ps
// (lanes i + i+8, then + 4, + 2, + 1), as the avx512 kernel of the path sums them.
#include <algorithm>
#include <cstring>

#include "kernels/avx2/vec-inl.h"
#include "kernels/simd/driver-inl.h"

namespace fk {
namespace {

// c + w * x per lane, rounded once to fp16 (see above); inf and NaN propagate as in fp16.
FK_INLINE __m256 fma_fp16x8(__m256 w, __m256 x, __m256 c) {
  const __m256 p = _mm256_mul_ps(w, x);
  const __m256 s = _mm256_add_ps(p, c);
  const __m256 z = _mm256_sub_ps(s, p);
  const __m256 e = _mm256_add_ps(_mm256_sub_ps(p, _mm256_sub_ps(s, z)), _mm256_sub_ps(c, z));
  const __m256i sb = _mm256_castps_si256(s);
  // Ordered compare: a NaN error (s is inf or NaN) leaves s as it is.
  const __m256i inexact = _mm256_castps_si256(_mm256_cmp_ps(e, _mm256_setzero_ps(), _CMP_NEQ_OQ));
  // 1 where s is inexact and even; -1 where e points towards zero from s (signs differ).
  const __m256i t = _mm256_and_si256(_mm256_andnot_si256(sb, inexact), _mm256_set1_epi32(1));
  const __m256i m = _mm256_srai_epi32(_mm256_xor_si256(_mm256_castps_si256(e), sb), 31);
  // s's neighbour towards e (one unit in the last place, +t or -t in the bits; an even
  // mantissa never carries into the exponent, a step down from a power of two lands on the
  // float below it, the right neighbour).
  const __m256i odd = _mm256_add_epi32(sb, _mm256_sub_epi32(_mm256_xor_si256(t, m), m));
  const __m128i h = _mm256_cvtps_ph(_mm256_castsi256_ps(odd), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  return _mm256_cvtph_ps(h);
}

FK_INLINE __m256 load8_fp16(const uint8_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

struct F16EmuDot {
  using Prep = NoPrep;
  static_assert(kF16PathLanes == 32, "4 quarters of 8 lanes per step");
  static constexpr int kQuarters = kF16PathLanes / 8;

  template <int MR, int NR>
  static FK_INLINE void tile(const MatmulArgs& a, const Prep&, int64_t i0, int64_t j0, int nv) {
    const uint8_t* w[NR];
    tile_rows(a, j0, nv, w);
    const uint8_t* x[MR];
    for (int i = 0; i < MR; ++i) x[i] = f16_act_values(a, i0 + i);
    // f32 lanes 0..7 and 8..15 of each output.
    __m256 acc[MR][NR][2];
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j) acc[i][j][0] = acc[i][j][1] = _mm256_setzero_ps();
    // A chain's last step when k ends inside it: its elements, zeros past k (0 * 0 + c = c).
    alignas(32) uint8_t wt[NR][2 * kF16PathLanes];
    alignas(32) uint8_t xt[MR][2 * kF16PathLanes];
    constexpr int64_t kChain = int64_t{kF16PathLanes} * kF16PathChainSteps;
    for (int64_t c0 = 0; c0 < a.k; c0 += kChain) {
      const int64_t c1 = std::min(a.k, c0 + kChain);
      const int64_t full = (c1 - c0) / kF16PathLanes;
      const int64_t kt = c0 + full * kF16PathLanes;  // the partial step, if any
      const bool partial = kt < c1;
      if (partial) {
        const size_t bytes = static_cast<size_t>(2 * (c1 - kt));
        for (int j = 0; j < NR; ++j) {
          std::memset(wt[j], 0, sizeof wt[j]);
          std::memcpy(wt[j], w[j] + 2 * kt, bytes);
        }
        for (int i = 0; i < MR; ++i) {
          std::memset(xt[i], 0, sizeof xt[i]);
          std::memcpy(xt[i], x[i] + 2 * kt, bytes);
        }
      }
      for (int q = 0; q < kQuarters; ++q) {
        __m256 acc16[MR][NR];
        for (int i = 0; i < MR; ++i)
          for (int j = 0; j < NR; ++j) acc16[i][j] = _mm256_setzero_ps();
        for (int64_t s = 0; s < full; ++s) {
          const int64_t off = 2 * (c0 + s * kF16PathLanes + 8 * q);
          __m256 wv[NR];
          for (int j = 0; j < NR; ++j) wv[j] = load8_fp16(w[j] + off);
          for (int i = 0; i < MR; ++i) {
            const __m256 xv = load8_fp16(x[i] + off);
            for (int j = 0; j < NR; ++j) acc16[i][j] = fma_fp16x8(wv[j], xv, acc16[i][j]);
          }
        }
        if (partial) {
          __m256 wv[NR];
          for (int j = 0; j < NR; ++j) wv[j] = load8_fp16(wt[j] + 16 * q);
          for (int i = 0; i < MR; ++i) {
            const __m256 xv = load8_fp16(xt[i] + 16 * q);
            for (int j = 0; j < NR; ++j) acc16[i][j] = fma_fp16x8(wv[j], xv, acc16[i][j]);
          }
        }
        // Quarters 0, 1 are f32 lanes 0..15 (the low half, first), 2, 3 the high half.
        for (int i = 0; i < MR; ++i)
          for (int j = 0; j < NR; ++j) acc[i][j][q & 1] = _mm256_add_ps(acc[i][j][q & 1], acc16[i][j]);
      }
    }
    // _mm512_reduce_add_ps's tree: lanes i + i+8, then fk::hsum's + 4, + 2, + 1.
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < nv; ++j)
        store_f16_path_output(a, i0 + i, out_col(a, j0, j), w[j],
                              hsum(_mm256_add_ps(acc[i][j][0], acc[i][j][1])));
  }
};

}  // namespace

#define FK_ENTRY_kAvx2_kF16(FORMAT, MIN_M) run_tiles<VecAvx2, F16EmuDot>(a, n_begin, n_end)
#include "kernels/simd/entry_points-inl.h"

}  // namespace fk
