// The AVX-512 int8 path of the K-quants (textual header, see kernels/simd/common-inl.h),
// written once for both AVX-512 variants: a tile micro-kernel over 4 weight rows and the
// codecs of Q8_K kind (kernels/avx512/codecs-inl.h), against ActQ8_K activations
// (kernels/avx512/act_layouts-inl.h), one super-block per step.
//
// K-quant sub-block scales with VNNI: the 4 vpdpbusd results of a super-block (each lane a
// sum of 4 products, |lane| <= 4 * 63 * 127 = 32004) are packed to int16 (exact) and
// multiplied by the scales with vpdpwssd, two pack+dpwssd pairs per super-block.
//
// A Q8_K-kind codec provides kAct = Format::kQ8_K, kBytes, kMins (Q2_K / Q4_K / Q5_K mins),
// head(blocks[4], KHead*) (what the 4 rows' blocks share: scales, mins, d), decode(block,
// head, row) -> Dec, and isum(Dec, ActQ8_K) -> int32 lanes summing to the super-block's
// exact integer dot, sub-block scales and offsets included; with kMins also
// imin(KHead, ActQ8_K) -> int32 lanes 4j .. 4j+3 summing to weight row j's exact
// sum_s m_s * (sum of the activation quants of sub-block s).
// A codec may set kIminNegated = true: its imin returns those lanes negated (saves the
// negation; the tile subtracts with vfnmadd, the same rounding as adding the negated
// product).
//
// Q2_K and Q3_K with VNNI run the pair tile below (KQuantPairInt8) instead, whose codec
// interface codecs-inl.h's Int8Q23_K describes.
#ifndef KERNELS_AVX512_INT8_KQUANT_INL_H_
#define KERNELS_AVX512_INT8_KQUANT_INL_H_

#include "kernels/avx512/act_layouts-inl.h"
#include "kernels/avx512/vec-inl.h"
#include "kernels/simd/driver-inl.h"

namespace fk {
namespace {

// A codec decodes a weight super-block into 4 vectors of 64 unsigned quants q[z], lined up
// with y[64 z .. 64 z + 63] of the packed activations, and the int16 scale vectors that
// weight each lane's sub-block. Per (activation row, weight row):
//   isum = sum over lanes of sc * q * y (int32, exact), plus the codec's integer offset,
//   acc += float(isum) * (d * da);
// Q4_K / Q5_K mins: - dmin * da * sum_s m_s * bsum32_s, for the 4 weight rows at once (one
// vector, 4 lanes per weight row), accumulated separately and added at the end.

// Sub-block scale patterns. VNNI packs the dpbusd results of q[2p] and q[2p+1] (packssdw):
// word w of the packed vector holds lane 4 (w / 8) + w % 4 of q[2p + (w % 8) / 4], i.e.
// the products of its bytes 16 (w / 8) + 4 (w % 4) .. + 3. Without VNNI, word w of
// maddubs(q[z], y) holds bytes 2w, 2w + 1 of q[z]. `sub(z, byte)` names the sub-block.
template <class SubFn>
constexpr Words packed_pattern(int p, SubFn sub) {
  Words r{};
  for (int w = 0; w < 32; ++w) {
    const int z = 2 * p + (w % 8) / 4;
    const int byte = 16 * (w / 8) + 4 * (w % 4);
    r.v[w] = static_cast<uint16_t>(sub(z, byte));
  }
  return r;
}
template <class SubFn>
constexpr Words pair_pattern(int z, SubFn sub) {
  Words r{};
  for (int w = 0; w < 32; ++w) r.v[w] = static_cast<uint16_t>(sub(z, 2 * w));
  return r;
}
// vpshufb patterns picking, per word, the scale byte of its sub-block from a broadcast
// 8-byte scale vector (high byte zero: scales are unsigned).
template <class Pattern>
constexpr Bytes bytes_of(Pattern words) {
  Bytes b{};
  for (int w = 0; w < 32; ++w) {
    b.v[2 * w] = static_cast<uint8_t>(words.v[w]);
    b.v[2 * w + 1] = 0x80;
  }
  return b;
}

// Q4_K / Q5_K: sub-block of byte `byte` of q[z]: q[z] = sub-blocks A, A + 2 (32 bytes each)
// with A = 0, 1, 4, 5 (ActQ8_K nibble order).
constexpr int sub_k4(int z, int byte) {
  constexpr int kA[4] = {0, 1, 4, 5};
  return kA[z] + (byte >= 32 ? 2 : 0);
}
// Q6_K: q[z] holds elements 64 z .. 64 z + 63 in order; sub-blocks of 16.
constexpr int sub_k6(int z, int byte) { return 4 * z + byte / 16; }

struct SubK4 {
  constexpr int operator()(int z, int byte) const { return sub_k4(z, byte); }
};
struct SubK6 {
  constexpr int operator()(int z, int byte) const { return sub_k6(z, byte); }
};
// Q2_K / Q3_K: q[z] = the 2-bit fields z of a block's 64 qs bytes (ActQ8_K crumb order):
// bytes 0..31 are elements 32 z .., bytes 32..63 elements 128 + 32 z ..; sub-blocks of 16.
constexpr int sub_k2(int z, int byte) { return (byte >= 32 ? 8 : 0) + 2 * z + (byte % 32) / 16; }
struct SubK2 {
  constexpr int operator()(int z, int byte) const { return sub_k2(z, byte); }
};

// Per super-block and tile: the 4 weight rows' headers, unpacked once.
struct KHead {
  uint64_t sc[kNR];  // Q4_K / Q5_K: row j's 8 sub-block scales, one per byte
  __m512i mins;      // Q4_K / Q5_K: row j's 8 mins as int16 in 128-bit lane j; Q2_K: its
                     // mins of sub-blocks 0..7
  __m512i mins_hi;   // Q2_K: row j's mins of sub-blocks 8..15 as int16 in 128-bit lane j
  __m512i sw[2];     // Q3_K: the 16 sub-block scales of rows 2t and 2t + 1 as int16,
                     // in words 0..15 and 16..31 of sw[t]; IQ4_XS (VNNI): their 8 scales
                     // ls - 32 as float (bits), in lanes 0..7 and 8..15; Q2_K (VNNI): row
                     // j's 16 scale nibbles in lane j of sw[0], 4 times them in sw[1]
  __m256 d;          // d_j in lane 2j, dmin_j (Q2_K / Q4_K / Q5_K) in lane 2j + 1
};

// The fp16 pairs at p[j] (d and dmin of 4 K-quant rows) as floats d_j, dmin_j in lanes
// 2j, 2j + 1.
FK_INLINE __m256 fp16_pairs(const uint8_t* const (&p)[kNR]) {
  return _mm256_cvtph_ps(_mm_set_epi32(static_cast<int>(load_u32(p[3])), static_cast<int>(load_u32(p[2])),
                                       static_cast<int>(load_u32(p[1])), static_cast<int>(load_u32(p[0]))));
}

template <class C, class = void>
struct DdFromMemory : std::false_type {};
template <class C>
struct DdFromMemory<C, std::void_t<decltype(C::kDdFromMemory)>>
    : std::integral_constant<bool, C::kDdFromMemory> {};

template <class C, class = void>
struct IminNegated : std::false_type {};
template <class C>
struct IminNegated<C, std::void_t<decltype(C::kIminNegated)>>
    : std::integral_constant<bool, C::kIminNegated> {};

template <class C, class = void>
struct PairTile : std::false_type {};
template <class C>
struct PairTile<C, std::void_t<decltype(C::kPairTile)>> : std::integral_constant<bool, C::kPairTile> {};

// A codec's isum lanes as float: int32 lanes converted; a codec may return float lanes that
// are exact integers already (IQ4_XS with VNNI).
FK_INLINE __m512 isum_float(__m512i s) { return _mm512_cvtepi32_ps(s); }
FK_INLINE __m512 isum_float(__m512 s) { return s; }

// The 4 weight rows' accumulators of a tile reduced together: lane 4j of the result is
// _mm512_reduce_add_ps(aj) bit for bit. The same tree (lane i + lane i + 8, then + 4, + 2,
// + 1; float addition is commutative, so only the tree decides the bits), in 8 shuffles and
// 5 adds instead of about 8 operations per row.
FK_INLINE __m512 reduce_add4(__m512 a0, __m512 a1, __m512 a2, __m512 a3) {
  // 128-bit lanes: rows 0, 0, 1, 1 (and 2, 2, 3, 3) with lanes i + 8 added.
  const __m512 s01 = _mm512_add_ps(_mm512_shuffle_f32x4(a0, a1, _MM_SHUFFLE(1, 0, 1, 0)),
                                   _mm512_shuffle_f32x4(a0, a1, _MM_SHUFFLE(3, 2, 3, 2)));
  const __m512 s23 = _mm512_add_ps(_mm512_shuffle_f32x4(a2, a3, _MM_SHUFFLE(1, 0, 1, 0)),
                                   _mm512_shuffle_f32x4(a2, a3, _MM_SHUFFLE(3, 2, 3, 2)));
  // 128-bit lane j: row j with lanes i + 4 added.
  const __m512 s = _mm512_add_ps(_mm512_shuffle_f32x4(s01, s23, _MM_SHUFFLE(2, 0, 2, 0)),
                                 _mm512_shuffle_f32x4(s01, s23, _MM_SHUFFLE(3, 1, 3, 1)));
  const __m512 t = _mm512_add_ps(s, _mm512_permute_ps(s, _MM_SHUFFLE(1, 0, 3, 2)));
  return _mm512_add_ps(t, _mm512_permute_ps(t, _MM_SHUFFLE(2, 3, 0, 1)));
}

// Lane 4j <- (m[4j] + m[4j + 1]) + (m[4j + 2] + m[4j + 3]).
FK_INLINE __m512 sum_quads(__m512 m) {
  const __m512 p = _mm512_add_ps(m, _mm512_permute_ps(m, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm512_add_ps(p, _mm512_permute_ps(p, _MM_SHUFFLE(1, 0, 3, 2)));
}

template <class C>
struct KQuantInt8 {
  static_assert(C::kAct == Format::kQ8_K, "a codec of Q8_K kind");
  using Prep = NoPrep;
  template <int MR, int NR>
  static FK_INLINE void tile(const MatmulArgs& a, const Prep&, int64_t i0, int64_t j0, int nv) {
    static_assert(NR == kNR, "4-row tiles");
    const int64_t nb = a.k / kQK_K;
    const uint8_t* w[kNR];
    tile_rows(a, j0, nv, w);
    const ActQ8_K* y[MR];
    tile_acts(a, i0, y);
    __m512 acc[MR][kNR];
    __m512 macc[MR];  // Q4_K / Q5_K mins: lanes 4j .. 4j+3 for weight row j
    for (int i = 0; i < MR; ++i) {
      macc[i] = _mm512_setzero_ps();
      for (int j = 0; j < kNR; ++j) acc[i][j] = _mm512_setzero_ps();
    }
    // Lanes 4j .. 4j + 3 <- lane 2j + 1 (dmin_j * da_i).
    const __m512i odd = _mm512_setr_epi32(1, 1, 1, 1, 3, 3, 3, 3, 5, 5, 5, 5, 7, 7, 7, 7);
    for (int64_t b = 0; b < nb; ++b) {
      const int64_t off = b * C::kBytes;
      prefetch_ahead<VecAvx512>(a, w, off, C::kBytes);
      const uint8_t* blk[kNR];
      for (int j = 0; j < kNR; ++j) blk[j] = w[j] + off;
      KHead h;
      C::head(blk, &h);
      // d_j * da_i in lane 2j (and dmin_j * da_i in lane 2j + 1), broadcast from memory by
      // the FMAs below.
      alignas(32) float dd[MR][2 * kNR];
      for (int i = 0; i < MR; ++i)
        _mm256_store_ps(dd[i], _mm256_mul_ps(h.d, _mm256_set1_ps(y[i][b].d)));
      // A codec with kDdFromMemory: read back through memory for real (a pointer the
      // compiler cannot see through); otherwise the compiler takes the lanes out of the
      // register with shuffles and broadcasts, vector ALU work on the port the Q2_K / Q3_K
      // decode needs most, where a broadcast from memory is a load. Opt-in: on Q6_K and
      // Q8_K (kernel_bench --hot, 4096x4096, batch 1) it was slower (the store-to-load
      // round trip), on Q4_K faster, on Q5_K and IQ4_XS within the noise.
      const float* ddm = &dd[0][0];
      if constexpr (DdFromMemory<C>::value) __asm__("" : "+r"(ddm) : "m"(dd));
      for (int j = 0; j < kNR; ++j) {
        const typename C::Dec d = C::decode(blk[j], h, j);
        for (int i = 0; i < MR; ++i) {
          acc[i][j] = _mm512_fmadd_ps(isum_float(C::isum(d, y[i][b])), _mm512_set1_ps(ddm[2 * kNR * i + 2 * j]),
                                      acc[i][j]);
        }
      }
      if constexpr (C::kMins) {
        for (int i = 0; i < MR; ++i) {
          const __m512 dmin = _mm512_permutexvar_ps(odd, _mm512_castps256_ps512(_mm256_load_ps(ddm + 2 * kNR * i)));
          if constexpr (IminNegated<C>::value) {
            macc[i] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(C::imin(h, y[i][b])), dmin, macc[i]);
          } else {
            macc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(C::imin(h, y[i][b])), dmin, macc[i]);
          }
        }
      }
    }
    for (int i = 0; i < MR; ++i) {
      // Lane 4j: row j's sum, less its mins.
      __m512 v = reduce_add4(acc[i][0], acc[i][1], acc[i][2], acc[i][3]);
      if constexpr (C::kMins) v = _mm512_sub_ps(v, sum_quads(macc[i]));
      alignas(64) float r[16];
      _mm512_store_ps(r, v);
      for (int j = 0; j < nv; ++j) a.output[(i0 + i) * a.n + out_col(a, j0, j)] = r[4 * j];
    }
  }
};

// The pair tile (codecs with kPairTile: Q2_K / Q3_K with VNNI; codecs-inl.h says how a
// pair of weight rows shares its packing and scale steps): the 4 weight rows as pairs
// (0, 1) and (2, 3), one accumulator per (activation row, pair) with row 2p in lanes
// 4c, 4c + 1 and row 2p + 1 in lanes 4c + 2, 4c + 3, every lane 4 times its share. Codec:
// head, pair_scales(KHead, p), pair_nb(ActQ8_K), fields(block, q[4]), isum_pair, imin.
template <class C>
struct KQuantPairInt8 {
  static_assert(C::kAct == Format::kQ8_K, "a codec of Q8_K kind");
  static_assert(!C::kMins || IminNegated<C>::value, "the tile subtracts imin's lanes with vfnmadd");
  using Prep = NoPrep;
  template <int MR, int NR>
  static FK_INLINE void tile(const MatmulArgs& a, const Prep&, int64_t i0, int64_t j0, int nv) {
    static_assert(NR == kNR, "4-row tiles");
    const int64_t nb = a.k / kQK_K;
    const uint8_t* w[kNR];
    tile_rows(a, j0, nv, w);
    const ActQ8_K* y[MR];
    tile_acts(a, i0, y);
    __m512 acc[MR][2];
    __m512 macc[MR];  // mins: lanes 4j .. 4j+3 for weight row j
    for (int i = 0; i < MR; ++i) {
      macc[i] = _mm512_setzero_ps();
      acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    }
    const __m512i odd = _mm512_setr_epi32(1, 1, 1, 1, 3, 3, 3, 3, 5, 5, 5, 5, 7, 7, 7, 7);
    // Lanes 4c + t <- lane 2 (2p + t / 2) of d * da: d of row 2p (t < 2) or 2p + 1.
    const __m512i pair_d[2] = {_mm512_set4_epi32(2, 2, 0, 0), _mm512_set4_epi32(6, 6, 4, 4)};
    for (int64_t b = 0; b < nb; ++b) {
      const int64_t off = b * C::kBytes;
      prefetch_ahead<VecAvx512>(a, w, off, C::kBytes);
      const uint8_t* blk[kNR];
      for (int j = 0; j < kNR; ++j) blk[j] = w[j] + off;
      KHead h;
      C::head(blk, &h);
      __m512 dd[MR];
      __m512i ynb[MR];
      for (int i = 0; i < MR; ++i) {
        dd[i] = _mm512_castps256_ps512(_mm256_mul_ps(h.d, _mm256_set1_ps(y[i][b].d)));
        ynb[i] = C::pair_nb(y[i][b]);
      }
      for (int p = 0; p < 2; ++p) {
        const typename C::PairScales ps = C::pair_scales(h, p);
        __m512i qa[4], qb[4];
        C::fields(blk[2 * p], qa);
        C::fields(blk[2 * p + 1], qb);
        for (int i = 0; i < MR; ++i) {
          const __m512i s = C::isum_pair(qa, qb, ps, y[i][b], ynb[i]);
          acc[i][p] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_permutexvar_ps(pair_d[p], dd[i]), acc[i][p]);
        }
      }
      if constexpr (C::kMins) {
        for (int i = 0; i < MR; ++i) {
          const __m512 dmin = _mm512_permutexvar_ps(odd, dd[i]);
          macc[i] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(C::imin(h, y[i][b])), dmin, macc[i]);
        }
      }
    }
    for (int i = 0; i < MR; ++i) {
      const __m512 quarter = _mm512_set1_ps(0.25f);
      const __m512 a0 = _mm512_mul_ps(acc[i][0], quarter), a1 = _mm512_mul_ps(acc[i][1], quarter);
      // Lane 4c: lanes 4c + 4c + 1 (row 2p), lane 4c + 2: lanes 4c + 2 + 4c + 3 (row 2p + 1).
      const __m512 h0 = _mm512_add_ps(a0, _mm512_permute_ps(a0, _MM_SHUFFLE(2, 3, 0, 1)));
      const __m512 h1 = _mm512_add_ps(a1, _mm512_permute_ps(a1, _MM_SHUFFLE(2, 3, 0, 1)));
      // Lane 4c + j: row j's share in 128-bit lane c; then the 4 lanes c added, (0 + 1) +
      // (2 + 3) for every row.
      __m512 v = _mm512_shuffle_ps(h0, h1, _MM_SHUFFLE(2, 0, 2, 0));
      v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(2, 3, 0, 1)));
      v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(1, 0, 3, 2)));
      alignas(64) float r[16], mn[16];
      _mm512_store_ps(r, v);
      _mm512_store_ps(mn, sum_quads(macc[i]));
      for (int j = 0; j < nv; ++j) {
        // Lane 4j of the mins (Q3_K: none, 0).
        const float out = C::kMins ? r[j] - mn[4 * j] : r[j];
        a.output[(i0 + i) * a.n + out_col(a, j0, j)] = out;
      }
    }
  }
};

}  // namespace
}  // namespace fk

#endif  // KERNELS_AVX512_INT8_KQUANT_INL_H_
