// The avx512 rows of the f16 path (kernels/registry.inc): F16 weights against activations that
// dispatch scaled and rounded to fp16 once per call (act_f16_ref), multiplied and summed by
// AVX-512 FP16's vfmadd231ph: 32 weights of a row per instruction, against 16 FMAs (and the
// conversions) on the f32 path. Only this file is compiled with -mavx512fp16.
//
// The arithmetic is the one kernel_api.h fixes for the path, which the scalar reference
// (f16_f16__scalar) follows step by step: each fp16 lane sums kF16PathChainSteps products
// (one rounding per FMA, nearest-even: AVX-512 FP16 ignores MXCSR's FTZ / DAZ, so subnormals
// are kept), then the chain goes to f32 (vcvtph2psx, exact), low half then high half into
// the 16 f32 lanes; those are reduced once at the end (V::hsum). Each output sees the same
// instructions whatever tile or thread computes it, so results do not depend on the thread
// count.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/avx512/vec-inl.h"
#include "kernels/simd/f32_path-inl.h"

namespace fk {
namespace {

// A micro-kernel of the tiling driver (kernels/simd/driver-inl.h): MR activation rows
// (packed fp16 rows at a.act) x NR weight rows, 32 elements of k per step.
struct F16Dot {
  using Prep = NoPrep;
  using V = VecAvx512;
  static_assert(kF16PathLanes == 32, "one __m512h of fp16 lanes per step");

  static FK_INLINE __m512h load(const uint8_t* p) {
    return _mm512_castsi512_ph(_mm512_loadu_si512(p));
  }
  static FK_INLINE __m512h load_first(const uint8_t* p, __mmask32 mask) {
    return _mm512_castsi512_ph(_mm512_maskz_loadu_epi16(mask, p));
  }
  // acc32 = (acc32 + low 16 lanes of acc16) + high 16 lanes, all exact conversions.
  static FK_INLINE __m512 flush(__m512 acc32, __m512h acc16) {
    const __m512i bits = _mm512_castph_si512(acc16);
    const __m512 lo = _mm512_cvtxph_ps(_mm256_castsi256_ph(_mm512_castsi512_si256(bits)));
    const __m512 hi = _mm512_cvtxph_ps(_mm256_castsi256_ph(_mm512_extracti64x4_epi64(bits, 1)));
    return _mm512_add_ps(_mm512_add_ps(acc32, lo), hi);
  }

  template <int MR, int NR>
  static FK_INLINE void tile(const MatmulArgs& a, const Prep&, int64_t i0, int64_t j0, int nv) {
    const uint8_t* w[NR];
    tile_rows(a, j0, nv, w);
    const uint8_t* x[MR];
    for (int i = 0; i < MR; ++i) x[i] = f16_act_values(a, i0 + i);
    __m512 acc[MR][NR];
    zero_acc<V>(acc);
    constexpr int64_t kChain = int64_t{kF16PathLanes} * kF16PathChainSteps;
    for (int64_t c0 = 0; c0 < a.k; c0 += kChain) {
      const int64_t c1 = std::min(a.k, c0 + kChain);
      __m512h acc16[MR][NR];
      for (int i = 0; i < MR; ++i)
        for (int j = 0; j < NR; ++j) acc16[i][j] = _mm512_setzero_ph();
      int64_t kk = c0;
      for (; kk + 32 <= c1; kk += 32) {
        prefetch_ahead<V>(a, w, 2 * kk, 64);
        __m512h wv[NR];
        for (int j = 0; j < NR; ++j) wv[j] = load(w[j] + 2 * kk);
        for (int i = 0; i < MR; ++i) {
          const __m512h xv = load(x[i] + 2 * kk);
          for (int j = 0; j < NR; ++j) acc16[i][j] = _mm512_fmadd_ph(xv, wv[j], acc16[i][j]);
        }
      }
      if (kk < c1) {  // the elements past k read as 0 (both sources: 0 * 0)
        const __mmask32 mask = _cvtu32_mask32((1u << (c1 - kk)) - 1);
        __m512h wv[NR];
        for (int j = 0; j < NR; ++j) wv[j] = load_first(w[j] + 2 * kk, mask);
        for (int i = 0; i < MR; ++i) {
          const __m512h xv = load_first(x[i] + 2 * kk, mask);
          for (int j = 0; j < NR; ++j) acc16[i][j] = _mm512_fmadd_ph(xv, wv[j], acc16[i][j]);
        }
      }
      for (int i = 0; i < MR; ++i)
        for (int j = 0; j < NR; ++j) acc[i][j] = flush(acc[i][j], acc16[i][j]);
    }
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < nv; ++j)
        store_f16_path_output(a, i0 + i, out_col(a, j0, j), w[j], V::hsum(acc[i][j]));
  }
};

// Tiles for batches: 6 x 4 fp16 sums in registers; the f32 sums, touched once a chain, may
// live in memory. Intel Xeon, 1 thread, kernel_bench --hot, GFLOP/s at 64x4096x4096 /
// 64x512x1024 / 48x128x512: 4 x 4 143 / 153 / 116, 6 x 4 161 / 166 / 127, 8 x 3 133 / 127 /
// 103 (the f32 path's panel kernel on the same F16 weights: 124 / 128 / 121).
struct VecAvx512F16 : VecAvx512 {
  static constexpr int kGemmMR = 6;
  static constexpr int kGemmNR = 4;
};

// The f16 path's activations as act_f16_ref packs them, bit for bit: the scale 2^e from the
// row's largest magnitude by the same rule, x * 2^e (exact, as ldexp: a product by a power of
// two), rounded to fp16 by vcvtps2ph (nearest-even, as fp32_to_fp16).
void f16_act_pack_row(const float* x, int64_t k, uint8_t* out) {
  __m512 m = _mm512_setzero_ps();
  int64_t t = 0;
  // max_ps returns its second source when either is NaN: NaN elements are skipped, as by
  // the reference's std::max(max_abs, |x|).
  for (; t + 16 <= k; t += 16) m = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(x + t)), m);
  const __mmask16 tail = static_cast<__mmask16>((1u << (k - t)) - 1);
  if (t < k) m = _mm512_max_ps(_mm512_abs_ps(_mm512_maskz_loadu_ps(tail, x + t)), m);
  const int e = f16_act_exponent(_mm512_reduce_max_ps(m));
  const float unscale = std::ldexp(1.0f, -e);
  std::memcpy(out, &unscale, sizeof unscale);
  const __m512 scale = _mm512_set1_ps(std::ldexp(1.0f, e));
  uint8_t* v = out + kF16ActValuesOffset;
  constexpr int kRound = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  for (t = 0; t + 16 <= k; t += 16) {
    const __m256i h = _mm512_cvtps_ph(_mm512_mul_ps(_mm512_loadu_ps(x + t), scale), kRound);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(v + 2 * t), h);
  }
  if (t < k) {
    const __m256i h =
        _mm512_cvtps_ph(_mm512_mul_ps(_mm512_maskz_loadu_ps(tail, x + t), scale), kRound);
    _mm256_mask_storeu_epi16(v + 2 * t, tail, h);
  }
}

}  // namespace

extern const ActPacker act_f16__avx512 = {"f16__avx512", Format::kF16, &f16_act_row_bytes,
                                          &f16_act_pack_row, &f16_act_unpack_row};

#define FK_ENTRY_kAvx512_kF16(FORMAT, MIN_M) run_tiles<VecAvx512F16, F16Dot>(a, n_begin, n_end)
#include "kernels/simd/entry_points-inl.h"

}  // namespace fk
