// Batched GEMM of the float weight formats (F32, F16, BF16) with activation panels
// (textual header; see common-inl.h). The registry's f32-path rows with a MIN_M > 1 run it.
//
// The f32 path's general kernel (f32_path-inl.h) computes each output as a dot product along
// k in V::kLanes strided lanes: every k-step of a tile loads MR activation vectors and NR
// weight vectors for MR * NR FMAs, all from L2 once k is a few thousand long. That caps it
// at the L2's bandwidth, well under the FMA peak. Here the roles turn round, as in a
// BLAS-style GEMM:
//   * the activations are packed once per call, for all threads, by dispatch with the
//     rows' ActPacker (FloatPanels::packer) into panels of V::kLanes rows, k-major
//     (panel[k][lane] = input[kLanes p + lane][k], zero past m): one vector holds one k of
//     kLanes activation rows;
//   * each weight element is broadcast and FMA'd into the vectors of A panels, so one
//     accumulator vector holds kLanes outputs of one weight row;
//   * k goes in blocks of kKc: one block of all m packed rows (contiguous, in L2) is swept
//     by every strip of NR weight rows, whose block is first converted to f32 into a small buffer (L1); the
//     accumulators of a group of the chunk's columns (at most 512 KB of them) live in a
//     buffer between k blocks.
// A tile of A panels x NR weight rows holds A * NR accumulators (24 of the 32 AVX-512
// registers), loads A vectors and broadcasts NR floats per k for A * NR FMAs.
//
// Bits: every output is one chain of FMAs over k = 0 .. k-1 in order, from +0, in one
// float lane (acc = fma(w_k, x_k, acc)); stored and reloaded between k blocks without
// rounding. Tile shapes, chunking, threads and kKc do not change it. It differs from the
// general kernel's lane-strided sums (batches below MIN_M) in the last bits.
//
// Packing once per call (not per dispatch chunk) matters for narrow matrices: SmolLM2's
// 576-wide ones give each of 8 chunks at 2 threads 72 columns, and packing all m rows per
// chunk cost as much as a third of the chunk's FMA time.
#ifndef KERNELS_SIMD_F32_PANEL_INL_H_
#define KERNELS_SIMD_F32_PANEL_INL_H_

#include <vector>

#include "kernels/simd/f32_path-inl.h"

namespace fk {
namespace {

// What does not depend on the weight format: buffers, packing, the tiles, the stores.
template <class V>
struct FloatPanels {
  using F = typename V::F;
  static constexpr int kL = V::kLanes;
  static constexpr int64_t kKc = V::kFloatPanelKc;  // k per block
  static constexpr int kMaxNR = 24;
  static constexpr int64_t kAccBytes = 512 << 10;  // partial sums per column group

  // One vector's floats, aligned: the buffers' element.
  struct alignas(64) Line {
    float f[kL];
  };
  // Per-thread buffers, grown as needed and kept (the pool's threads live long).
  struct Scratch {
    std::vector<Line> acc;  // strips x panels x NR vectors: the chunk's partial sums
    std::vector<Line> w;    // the strip's block in f32, row r at float r * kKc
  };
  static Scratch& scratch() {
    static thread_local Scratch s;
    return s;
  }

  // The ActPacker of the panels (kernel_api.h): group = one panel of kL rows. Layout: k in
  // blocks of kKc (the last one shorter); block b of panel p at vector b * kKc * panels +
  // p * kc_b, its kc_b vectors k-major, so a block of all panels is contiguous (panels a
  // whole k apart could all map to the same L2 sets when k * 64 bytes is a multiple of the
  // cache's way size, as for k = 4096 or 14336 on a 2 MB 16-way L2).
  static int64_t panel_bytes(int64_t k) { return k * static_cast<int64_t>(sizeof(Line)); }
  static void pack_panel(const float* x, int64_t m, int64_t k, int64_t p, uint8_t* out) {
    const int64_t panels = (m + kL - 1) / kL;
    const int64_t rows = std::min<int64_t>(kL, m - p * kL);
    const float* src = x + p * kL * k;
    for (int64_t k0 = 0; k0 < k; k0 += kKc) {
      const int64_t kc = std::min(kKc, k - k0);
      float* dst = reinterpret_cast<float*>(out) + (k0 * panels + p * kc) * kL;
      for (int64_t kk = 0; kk < kc; ++kk, dst += kL) {
        int64_t l = 0;
        for (; l < rows; ++l) dst[l] = src[l * k + k0 + kk];
        for (; l < kL; ++l) dst[l] = 0.0f;
      }
    }
  }
  static void unpack_panel(const uint8_t* packed, int64_t m, int64_t k, int64_t p, float* out) {
    const int64_t panels = (m + kL - 1) / kL;
    for (int64_t k0 = 0; k0 < k; k0 += kKc) {
      const int64_t kc = std::min(kKc, k - k0);
      const float* src = reinterpret_cast<const float*>(packed) + (k0 * panels + p * kc) * kL;
      for (int64_t kk = 0; kk < kc; ++kk)
        for (int l = 0; l < kL; ++l) out[l * k + k0 + kk] = src[kk * kL + l];
    }
  }
  static constexpr ActPacker packer(const char* name) {
    return ActPacker{name,  Format::kF32, &panel_bytes, nullptr,
                     nullptr, kL,         &pack_panel,  &unpack_panel};
  }

  // One tile: A panels (ps vectors apart, from act) against the staged NR rows, over kc
  // k-steps; the accumulators come from and go back to acc (A x NR vectors, panel-major), or
  // start at 0.
  template <int A, int NR>
  static FK_NOINLINE void tile(const F* act, int64_t ps, const float* w, int64_t kc, bool first,
                               F* acc) {
    F c[A][NR];
    for (int i = 0; i < A; ++i)
      for (int j = 0; j < NR; ++j) c[i][j] = first ? V::zero() : acc[i * NR + j];
    for (int64_t kk = 0; kk < kc; ++kk) {
      F x[A];
      for (int i = 0; i < A; ++i) x[i] = act[i * ps + kk];
      for (int j = 0; j < NR; ++j) {
        const F wv = V::set1(w[j * kKc + kk]);
        for (int i = 0; i < A; ++i) c[i][j] = V::fmadd(wv, x[i], c[i][j]);
      }
    }
    for (int i = 0; i < A; ++i)
      for (int j = 0; j < NR; ++j) acc[i * NR + j] = c[i][j];
  }

  // Panels [0, panels) against the staged strip, A panels per tile, then the rest.
  template <int A, int NR>
  static FK_INLINE void panels_of_strip(const F* act, int64_t ps, const float* w,
                                        int64_t panels, int64_t kc, bool first, F* acc) {
    int64_t p = 0;
    for (; p + A <= panels; p += A) tile<A, NR>(act + p * ps, ps, w, kc, first, acc + p * NR);
    if constexpr (A > 1) {
      if (p < panels)
        panels_of_strip<A - 1, NR>(act + p * ps, ps, w, panels - p, kc, first, acc + p * NR);
    }
  }

  // Writes the strip's finished sums: output[row][j0 + j] for rows < m, j < nv.
  template <int NR>
  static void store(const MatmulArgs& a, const F* acc, int64_t panels, int64_t j0, int nv) {
    alignas(64) float lane[kL];
    for (int64_t p = 0; p < panels; ++p) {
      const int64_t rows = std::min<int64_t>(kL, a.m - p * kL);
      for (int j = 0; j < nv; ++j) {
        V::storeu(lane, acc[p * NR + j]);
        for (int64_t l = 0; l < rows; ++l) a.output[(p * kL + l) * a.n + j0 + j] = lane[l];
      }
    }
  }
};

// The panel GEMM of float weights read by element loader E (F32Elems, FloatElems<F>).
template <class V, class E>
struct FloatPanelGemm : FloatPanels<V> {
  using Base = FloatPanels<V>;
  using F = typename Base::F;
  using Base::kKc;
  using Base::kL;
  using Base::kMaxNR;

  // Converts k in [k0, k0 + kc) of weight rows j0 .. j0 + nv to f32 at w (row r at
  // w + r * kKc); rows nv .. NR are zero (their outputs are not stored).
  template <int NR>
  static void stage(const MatmulArgs& a, int64_t j0, int nv, int64_t k0, int64_t kc, float* w) {
    for (int r = 0; r < NR; ++r) {
      float* dst = w + r * kKc;
      if (r >= nv) {
        std::fill(dst, dst + kc, 0.0f);
        continue;
      }
      const uint8_t* src = a.weights + (j0 + r) * a.row_bytes + k0 * E::kBytes;
      int64_t kk = 0;
      for (; kk + kL <= kc; kk += kL) V::storeu(dst + kk, E::load(src + kk * E::kBytes));
      if (kk < kc) V::mask_storeu(dst + kk, V::first_lanes(kc - kk),
                                  E::load_first(src + kk * E::kBytes, kc - kk));
    }
  }

  // NR weight rows per strip and A panels per tile: about 24 accumulators.
  template <int A, int NR>
  static void run_shape(const MatmulArgs& a, int64_t n_begin, int64_t n_end) {
    typename Base::Scratch& s = Base::scratch();
    const int64_t panels = (a.m + kL - 1) / kL;
    // Columns in groups whose partial sums take at most kAccBytes (a vocabulary-wide
    // output head would otherwise keep m x n floats per thread).
    const int64_t group_strips =
        std::max<int64_t>(1, Base::kAccBytes / (panels * NR * static_cast<int64_t>(sizeof(F))));
    const int64_t strips = std::min(group_strips, (n_end - n_begin + NR - 1) / NR);
    const size_t acc_size = static_cast<size_t>(strips * panels * NR);
    if (s.acc.size() < acc_size) s.acc.resize(acc_size);
    if (s.w.empty()) s.w.resize(kMaxNR * kKc / kL);
    float* w = reinterpret_cast<float*>(s.w.data());
    // Packed by dispatch with packer(): the block at k0 of panel p at act + k0 * panels + p * kc.
    const F* act = reinterpret_cast<const F*>(a.act);
    for (int64_t g0 = n_begin; g0 < n_end; g0 += strips * NR) {
      const int64_t g1 = std::min(n_end, g0 + strips * NR);
      for (int64_t k0 = 0; k0 < a.k; k0 += kKc) {
        const int64_t kc = std::min(kKc, a.k - k0);
        const bool first = k0 == 0, last = k0 + kc == a.k;
        for (int64_t j0 = g0, t = 0; j0 < g1; j0 += NR, ++t) {
          const int nv = static_cast<int>(std::min<int64_t>(NR, g1 - j0));
          stage<NR>(a, j0, nv, k0, kc, w);
          F* acc = reinterpret_cast<F*>(s.acc.data()) + t * panels * NR;
          Base::template panels_of_strip<A, NR>(act + k0 * panels, kc, w, panels, kc, first, acc);
          if (last) Base::template store<NR>(a, acc, panels, j0, nv);
        }
      }
    }
  }

  static void run(const MatmulArgs& a, int64_t n_begin, int64_t n_end) {
    if (a.m <= 0 || n_begin >= n_end) return;
    const int64_t panels = (a.m + kL - 1) / kL;
    if (panels >= 4) return run_shape<4, 6>(a, n_begin, n_end);
    if (panels == 3) return run_shape<3, 8>(a, n_begin, n_end);
    if (panels == 2) return run_shape<2, 12>(a, n_begin, n_end);
    run_shape<1, 24>(a, n_begin, n_end);
  }
};

// The panel kernel of float format F on ISA V (F32, F16 or BF16).
template <class V, Format F>
void run_f32_panel(const MatmulArgs& a, int64_t n_begin, int64_t n_end) {
  if constexpr (F == Format::kF32) {
    FloatPanelGemm<V, F32Elems<V>>::run(a, n_begin, n_end);
  } else {
    static_assert(block_elems_of(F) == 1, "panel kernels are for the float formats");
    FloatPanelGemm<V, FloatElems<F>>::run(a, n_begin, n_end);
  }
}

}  // namespace
}  // namespace fk

#endif  // KERNELS_SIMD_F32_PANEL_INL_H_
