// The f32 path, written once for every ISA (textual header; see common-inl.h): weights are
// decoded in registers, V::kLanes at a time, and multiplied with the f32 activations by
// FMAs. V is the ISA's vector traits (kernels/avx2/vec-inl.h, kernels/avx512/vec-inl.h).
//
//   FloatWeights<V, E>  float weights (F32, F16, BF16: one element per block), any k (the
//                    last partial vector uses masked loads), through E, the element loader:
//                      static constexpr int kBytes;                 // bytes per element
//                      static V::F load(const uint8_t* p);          // kLanes elements at p
//                      static V::F load_first(const uint8_t* p, int64_t n);  // lanes [0, n)
//                                                                   // from p, the rest 0
//                    as exact floats: F32Elems<V> here, FloatElems<F> for F16 / BF16 in
//                    kernels/<isa>/codecs-inl.h.
//   F32Path<V, D>    block formats, through D = F32Decoder<F>, the ISA's block decoder of
//                    format F (specialized in kernels/<isa>/codecs-inl.h):
//                      static constexpr int kElems, kBytes;  // elements / bytes per block
//                      void init(const uint8_t* block);
//                      V::F group(int g) const;  // weights g * kLanes .. + kLanes - 1 of
//                                                // the block, the reference dequantizer's
//                                                // values bit for bit, in element order
//
// Every output accumulates sum_e w_e * x_e in the same lane order with one FMA per element
// and is reduced by V::hsum once at the end, whatever tile computes it.
#ifndef KERNELS_SIMD_F32_PATH_INL_H_
#define KERNELS_SIMD_F32_PATH_INL_H_

#include "kernels/simd/driver-inl.h"

namespace fk {
namespace {

template <class V, int MR, int NR>
FK_INLINE void zero_acc(typename V::F (&acc)[MR][NR]) {
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = V::zero();
}

// Writes the tile's outputs (its first nv weight rows).
template <class V, int MR, int NR>
FK_INLINE void store_acc(const MatmulArgs& a, int64_t i0, int64_t j0, int nv,
                         const typename V::F (&acc)[MR][NR]) {
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j)
      if (j < nv) a.output[(i0 + i) * a.n + out_col(a, j0, j)] = V::hsum(acc[i][j]);
}

// The ISA's element loader of a 16-bit float format F (kernels/<isa>/codecs-inl.h
// specializes it for F16 and BF16).
template <Format F>
struct FloatElems;

template <class V>
struct F32Elems {
  static constexpr int kBytes = 4;
  static FK_INLINE typename V::F load(const uint8_t* p) {
    return V::loadu(reinterpret_cast<const float*>(p));
  }
  static FK_INLINE typename V::F load_first(const uint8_t* p, int64_t n) {
    return V::maskload(reinterpret_cast<const float*>(p), V::first_lanes(n));
  }
};

template <class V, class E>
struct FloatWeights {
  using Prep = NoPrep;
  template <int MR, int NR>
  static FK_INLINE void tile(const MatmulArgs& a, const Prep&, int64_t i0, int64_t j0, int nv) {
    using F = typename V::F;
    constexpr int kL = V::kLanes;
    constexpr int kB = E::kBytes;
    const uint8_t* w[NR];
    tile_rows(a, j0, nv, w);
    const float* x[MR];
    for (int i = 0; i < MR; ++i) x[i] = a.input + (i0 + i) * a.k;
    F acc[MR][NR];
    zero_acc<V>(acc);
    int64_t kk = 0;
    for (; kk + kL <= a.k; kk += kL) {
      // One 64-byte line of every row per 64 bytes of weights.
      if (kL * kB >= 64 || ((kk * kB) & 63) == 0) prefetch_ahead<V>(a, w, kB * kk, 64);
      F wv[NR];
      for (int j = 0; j < NR; ++j) wv[j] = E::load(w[j] + kB * kk);
      for (int i = 0; i < MR; ++i) {
        const F xv = V::loadu(x[i] + kk);
        for (int j = 0; j < NR; ++j) acc[i][j] = V::fmadd(wv[j], xv, acc[i][j]);
      }
    }
    if (kk < a.k) {  // the lanes past k contribute 0 * 0
      const typename V::Mask mask = V::first_lanes(a.k - kk);
      F wv[NR];
      for (int j = 0; j < NR; ++j) wv[j] = E::load_first(w[j] + kB * kk, a.k - kk);
      for (int i = 0; i < MR; ++i) {
        const F xv = V::maskload(x[i] + kk, mask);
        for (int j = 0; j < NR; ++j) acc[i][j] = V::fmadd(wv[j], xv, acc[i][j]);
      }
    }
    store_acc<V>(a, i0, j0, nv, acc);
  }
};

// Per block, each of the NR weight rows is decoded one group of V::kLanes at a time and
// FMA'd into the MR x NR accumulators.
template <class V, class D>
struct F32Path {
  using Prep = NoPrep;
  static_assert(D::kElems % V::kLanes == 0, "a block is a whole number of vectors");
  template <int MR, int NR>
  static FK_INLINE void tile(const MatmulArgs& a, const Prep&, int64_t i0, int64_t j0, int nv) {
    using F = typename V::F;
    const int64_t nb = a.k / D::kElems;
    const uint8_t* w[NR];
    tile_rows(a, j0, nv, w);
    const float* x[MR];
    for (int i = 0; i < MR; ++i) x[i] = a.input + (i0 + i) * a.k;
    F acc[MR][NR];
    zero_acc<V>(acc);
    for (int64_t b = 0; b < nb; ++b) {
      prefetch_ahead<V>(a, w, b * D::kBytes, D::kBytes);
      D dec[NR];
      for (int j = 0; j < NR; ++j) dec[j].init(w[j] + b * D::kBytes);
      const int64_t e0 = b * D::kElems;
#pragma GCC unroll 32
      for (int g = 0; g < D::kElems / V::kLanes; ++g) {
        F wv[NR];
        for (int j = 0; j < NR; ++j) wv[j] = dec[j].group(g);
        for (int i = 0; i < MR; ++i) {
          const F xv = V::loadu(x[i] + e0 + V::kLanes * g);
          for (int j = 0; j < NR; ++j) acc[i][j] = V::fmadd(wv[j], xv, acc[i][j]);
        }
      }
    }
    store_acc<V>(a, i0, j0, nv, acc);
  }
};

// The ISA's f32-path block decoder of format F (kernels/<isa>/codecs-inl.h specializes it).
template <Format F>
struct F32Decoder;

// The float formats' tiling: V's, with the batch tile height and activation block of V's
// kFloatGemmMR / kFloatActBlockBytes (float weights are read as they are, so a taller tile
// and larger blocks pay off where they would not for the block formats' decode).
template <class V>
struct FloatGemm : V {
  static constexpr int kGemmMR = V::kFloatGemmMR;
  static constexpr int64_t kActBlockBytes = V::kFloatActBlockBytes;
};

// The f32-path kernel of format F on ISA V, as the registry's f32 rows of the ISA run it.
template <class V, Format F>
void run_f32(const MatmulArgs& a, int64_t n_begin, int64_t n_end) {
  if constexpr (F == Format::kF32) {
    run_tiles<FloatGemm<V>, FloatWeights<V, F32Elems<V>>>(a, n_begin, n_end);
  } else if constexpr (block_elems_of(F) == 1) {
    static_assert(IsComplete<FloatElems<F>>::value,
                  "a registry row names an f32-path kernel of a float format without a "
                  "FloatElems in its ISA's kernels/<isa>/codecs-inl.h");
    run_tiles<FloatGemm<V>, FloatWeights<V, FloatElems<F>>>(a, n_begin, n_end);
  } else {
    static_assert(IsComplete<F32Decoder<F>>::value,
                  "a registry row names an f32-path kernel of a format without an F32Decoder "
                  "in its ISA's kernels/<isa>/codecs-inl.h");
    run_tiles<V, F32Path<V, F32Decoder<F>>>(a, n_begin, n_end);
  }
}

}  // namespace
}  // namespace fk

#endif  // KERNELS_SIMD_F32_PATH_INL_H_
