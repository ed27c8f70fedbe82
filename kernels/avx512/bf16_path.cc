// The avx512 rows of the bf16 path (kernels/registry.inc): BF16 weights against activations
// that dispatch rounded to bf16 once per call (act_bf16_ref: nearest-even), multiplied by
// AVX-512 BF16's vdpbf16ps. Only this file is compiled with -mavx512bf16.
//
// vdpbf16ps adds to each f32 lane l the products of the bf16 pairs (2l, 2l+1) of its two
// sources: 32 weights of a row per instruction, against 16 FMAs for the f32 path. A product
// of two bf16 values (8-bit significands) is exact in f32; what differs from the f32 path is
// the activations' rounding (relative error at most 2^-9 per element), plus the instruction's
// own conventions: bf16 subnormal inputs read as zero and subnormal results flushed to zero,
// rounding to nearest-even whatever MXCSR says. Each output's lanes see the same instructions
// in the same order whatever tile or thread computes it, reduced once at the end (V::hsum),
// so results do not depend on the thread count.
#include "kernels/avx512/vec-inl.h"
#include "kernels/simd/f32_path-inl.h"

namespace fk {
namespace {

// A micro-kernel of the tiling driver (kernels/simd/driver-inl.h): MR activation rows
// (packed bf16 rows at a.act) x NR weight rows, 32 elements of k per step.
struct Bf16Dot {
  using Prep = NoPrep;
  using V = VecAvx512;

  static FK_INLINE __m512bh load(const uint8_t* p) {
    return reinterpret_cast<__m512bh>(_mm512_loadu_si512(p));
  }
  static FK_INLINE __m512bh load_first(const uint8_t* p, __mmask32 mask) {
    return reinterpret_cast<__m512bh>(_mm512_maskz_loadu_epi16(mask, p));
  }

  template <int MR, int NR>
  static FK_INLINE void tile(const MatmulArgs& a, const Prep&, int64_t i0, int64_t j0, int nv) {
    const uint8_t* w[NR];
    tile_rows(a, j0, nv, w);
    const uint8_t* x[MR];
    for (int i = 0; i < MR; ++i) x[i] = a.act + (i0 + i) * a.act_row_bytes;
    __m512 acc[MR][NR];
    zero_acc<V>(acc);
    int64_t kk = 0;
    for (; kk + 32 <= a.k; kk += 32) {
      prefetch_ahead<V>(a, w, 2 * kk, 64);
      __m512bh wv[NR];
      for (int j = 0; j < NR; ++j) wv[j] = load(w[j] + 2 * kk);
      for (int i = 0; i < MR; ++i) {
        const __m512bh xv = load(x[i] + 2 * kk);
        for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], xv, wv[j]);
      }
    }
    if (kk < a.k) {  // the elements past k read as 0 (both sources: 0 * 0)
      const __mmask32 mask = _cvtu32_mask32((1u << (a.k - kk)) - 1);
      __m512bh wv[NR];
      for (int j = 0; j < NR; ++j) wv[j] = load_first(w[j] + 2 * kk, mask);
      for (int i = 0; i < MR; ++i) {
        const __m512bh xv = load_first(x[i] + 2 * kk, mask);
        for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], xv, wv[j]);
      }
    }
    store_acc<V>(a, i0, j0, nv, acc);
  }
};

}  // namespace

#define FK_ENTRY_kAvx512_kBf16(FORMAT, MIN_M) run_tiles<VecAvx512, Bf16Dot>(a, n_begin, n_end)
#include "kernels/simd/entry_points-inl.h"

}  // namespace fk
