// The tiling driver every SIMD kernel runs on (textual header; see common-inl.h).
//
// A kernel K is a micro-kernel over tiles of outputs:
//   using Prep = ...;  // per-call data built once from MatmulArgs (NoPrep: none)
//   template <int MR, int NR>
//   static void tile(const MatmulArgs& a, const Prep& p, int64_t i0, int64_t j0, int nv);
// computes output[i0 .. i0+MR)[j0 .. j0+nv) (MR activation rows x nv <= NR weight rows)
// over the whole of k, decoding each weight block once and using it for all MR activation
// rows held in registers. Rows j0+nv .. j0+NR of the tile repeat the last valid one
// (tile_rows) and are not stored.
//
// Each output has its own accumulator and sees exactly the same operations whatever tile it
// is computed in, reduced once at the end in a fixed order: an output's bits never depend on
// how [0, n) was split between calls or threads, nor on the tile shapes below. The ISA's
// traits V choose the shapes (performance only):
//   V::kGemvNR          batch 1: 1 x kGemvNR tiles (the weight rows share every
//                       activation load), the rows of a range read as kGemvNR
//                       sequential streams (gemv_streams)
//   V::kGemmMR, kGemmNR batch > 1: kGemmMR x kGemmNR tiles; the last m % kGemmMR rows of a
//                       column take one shorter tile
//   V::kNarrowTails     the last n % NR weight rows: tiles of NR/2, NR/4, ..., 1 rows
//                       (true), or one NR-row tile with the missing rows repeated (false)
//   V::kActBlockBytes   batch > 1: activation rows are taken in blocks of about this many
//                       bytes (their packed int8 rows, or f32 rows on the f32 path), each
//                       block swept by every column of weights while it stays in L2
//                       (0: one block)
#ifndef KERNELS_SIMD_DRIVER_INL_H_
#define KERNELS_SIMD_DRIVER_INL_H_

#include "kernels/simd/common-inl.h"

namespace fk {
namespace {

// One micro-kernel call; out of line so each tile shape is compiled (and register-allocated)
// on its own. K::tile is always_inline into it.
template <class K, int MR, int NR>
FK_NOINLINE void run_tile(const MatmulArgs& a, const typename K::Prep& p, int64_t i0,
                          int64_t j0, int nv) {
  K::template tile<MR, NR>(a, p, i0, j0, nv);
}

// Batch 1: tiles of NR weight rows over [j, n_end).
template <class V, class K, int NR>
FK_INLINE void gemv_tiles(const MatmulArgs& a, const typename K::Prep& p, int64_t j,
                          int64_t n_end) {
  if constexpr (V::kNarrowTails) {
    for (; j + NR <= n_end; j += NR) run_tile<K, 1, NR>(a, p, 0, j, NR);
    if constexpr (NR > 1) gemv_tiles<V, K, NR / 2>(a, p, j, n_end);
  } else {
    for (; j < n_end; j += NR)
      run_tile<K, 1, NR>(a, p, 0, j, static_cast<int>(std::min<int64_t>(NR, n_end - j)));
  }
}

// Whether lines `distance` bytes apart fall in the same L1 set with the same way-predictor
// tag on AMD Zen (see gemv_streams): a multiple of 4 KiB whose bits 12..27 cancel in the
// tag's XOR pairs (12^27, 13^26, 14^25, 15^20, 16^21, 17^22, 18^23, 19^24).
constexpr bool same_way_tag(int64_t distance) {
  if (distance <= 0 || distance % 4096 != 0) return false;
  constexpr int kPairs[8][2] = {{12, 27}, {13, 26}, {14, 25}, {15, 20}, {16, 21}, {17, 22}, {18, 23}, {19, 24}};
  for (const auto& p : kPairs) {
    if (((distance >> p[0]) ^ (distance >> p[1])) & 1) return false;
  }
  return true;
}
static_assert(same_way_tag(0x210000) && same_way_tag(0x420000) && same_way_tag(0x108000) &&
                  !same_way_tag(0x300000) && !same_way_tag(0xC0000) && !same_way_tag(0x210000 - 4224),
              "Q5_1 2048x5632's streams collide (and matmul_test's Q5_1 16384x352's), 4096x4096's "
              "and 2048x2048's do not");

// Batch 1 over [j, n_end): V::kGemvNR sequential streams. With q = (n_end - j) / NR, tile t
// (t < q) takes the rows j + t, j + t + q, j + t + 2q, ... (MatmulArgs::row_step = q), so
// each of its NR rows continues the row its predecessor read in the same slot; the last
// (n_end - j) % NR rows then go through gemv_tiles. Tiles of NR adjacent rows instead read
// NR short streams that restart at every tile (a Q2_K row of 2048 is 672 bytes). Intel
// Xeon, kernel_bench from DRAM, 2 threads, four 1.1B-model shapes, mean of 2 runs each:
// Q2_K 0.80x the time, Q3_K 0.87x, the 4- to 6-bit formats 0.87x-0.91x, Q8_0 0.98x, F16 /
// BF16 0.98x-0.99x (see README "Sequential streams").
template <class V, class K>
FK_INLINE void gemv_streams(const MatmulArgs& a, const typename K::Prep& p, int64_t j,
                            int64_t n_end) {
  constexpr int NR = V::kGemvNR;
  int64_t q = (n_end - j) / NR;
  // AMD Zen's L1 predicts the way of a load from a tag hashed from linear address bits
  // 12..27 (AMD's optimization guide for family 17h; the hash as measured by Lipp et al.,
  // "Take A Way", 2020): streams whose distance keeps both the set (bits 6..11) and that tag
  // evict each other's lines. Measured on Zen 4 (kernel_bench --hot, 1 thread): Q5_1
  // 2048x5632 and 5632x2048, Q5_0 4096x3072 (streams 2 MiB + 64 KiB apart) ran at 0.5-0.7x
  // their speed at neighbouring shapes. One row less per stream moves the streams to other
  // sets; the NR rows left over join the tail.
  auto collide = [&](int64_t rows) {
    for (int s = 1; s < NR; ++s) {
      if (same_way_tag(s * rows * a.row_bytes)) return true;
    }
    return false;
  };
  if (q > 2 && collide(q) && !collide(q - 1)) --q;
  if (q > 1) {
    MatmulArgs s = a;
    s.row_step = q;
    for (int64_t t = 0; t < q; ++t) run_tile<K, 1, NR>(s, p, 0, j + t, NR);
    j += NR * q;
  }
  gemv_tiles<V, K, NR>(a, p, j, n_end);
}

// The activation rows [ib, ie) against weight rows j .. j + nv: MR-row tiles, then one
// tile of the remaining rows.
template <class V, class K, int NR, int R = 1>
FK_INLINE void tail_tile(const MatmulArgs& a, const typename K::Prep& p, int64_t rows,
                         int64_t i, int64_t j, int nv) {
  if constexpr (R < V::kGemmMR) {
    if (rows == R) return run_tile<K, R, NR>(a, p, i, j, nv);
    tail_tile<V, K, NR, R + 1>(a, p, rows, i, j, nv);
  }
}

template <class V, class K, int NR>
FK_INLINE void gemm_column(const MatmulArgs& a, const typename K::Prep& p, int64_t ib,
                           int64_t ie, int64_t j, int nv) {
  constexpr int MR = V::kGemmMR;
  int64_t i = ib;
  for (; i + MR <= ie; i += MR) run_tile<K, MR, NR>(a, p, i, j, nv);
  tail_tile<V, K, NR>(a, p, ie - i, i, j, nv);
}

template <class V, class K, int NR>
FK_INLINE void gemm_columns(const MatmulArgs& a, const typename K::Prep& p, int64_t ib,
                            int64_t ie, int64_t j, int64_t n_end) {
  if constexpr (V::kNarrowTails) {
    for (; j + NR <= n_end; j += NR) gemm_column<V, K, NR>(a, p, ib, ie, j, NR);
    if constexpr (NR > 1) gemm_columns<V, K, NR / 2>(a, p, ib, ie, j, n_end);
  } else {
    for (; j < n_end; j += NR)
      gemm_column<V, K, NR>(a, p, ib, ie, j, static_cast<int>(std::min<int64_t>(NR, n_end - j)));
  }
}

// Computes output columns [n_begin, n_end) of all m rows with kernel K on ISA traits V.
template <class V, class K>
void run_tiles(const MatmulArgs& a, int64_t n_begin, int64_t n_end) {
  if (a.m <= 0 || n_begin >= n_end) return;
  const typename K::Prep p(a);
  if (a.m == 1) return gemv_streams<V, K>(a, p, n_begin, n_end);
  int64_t mc = a.m;
  if constexpr (V::kActBlockBytes > 0) {
    const int64_t row = a.act != nullptr ? a.act_row_bytes
                                         : a.k * static_cast<int64_t>(sizeof(float));
    mc = std::max<int64_t>(V::kGemmMR, V::kActBlockBytes / std::max<int64_t>(1, row) /
                                           V::kGemmMR * V::kGemmMR);
  }
  for (int64_t ib = 0; ib < a.m; ib += mc)
    gemm_columns<V, K, V::kGemmNR>(a, p, ib, std::min(a.m, ib + mc), n_begin, n_end);
}

}  // namespace
}  // namespace fk

#endif  // KERNELS_SIMD_DRIVER_INL_H_
