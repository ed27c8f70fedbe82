// The AVX-512 int8-path kernels, written once for both AVX-512 variants: included by
// kernels/variant_avx512.cc (kVnni = false: AVX-512 F/BW/DQ/VL) and
// kernels/variant_avx512_vnni.cc (kVnni = true: + VNNI), each compiling it with its own
// flags into its own anonymous namespace (see avx512_common.h).
//
// Activations arrive packed by the avx512 packers (ActQ8_0x4 / ActQ8_K, avx512_common.h).
// Integer products are exact; they are scaled to float once per group of 4 legacy blocks
// (one lane group per block) or once per K-quant super-block.
//
// u8 x s8 products. VNNI: vpdpbusd (4 products per int32 lane, no intermediate saturation).
// Without VNNI: vpmaddubsw (pairs, saturating at +-32767) then vpmaddwd; weights are at most
// 6-bit unsigned here (2 * 63 * 127 = 16002, no saturation; two nibble pairs added as int16:
// 2 * 2 * 31 * 127 = 15748). Q8_0 / Q8_K weights are signed: with VNNI as (w + 128) * y minus
// 128 * sum(y) (precomputed); without, as |w| * (y with w's sign) (|y| <= 127, so at most
// 2 * 127 * 127 = 32258 per pair).
//
// K-quant sub-block scales with VNNI: the 4 vpdpbusd results of a super-block (each lane a
// sum of 4 products, |lane| <= 4 * 63 * 127 = 32004) are packed to int16 (exact) and
// multiplied by the scales with vpdpwssd, two pack+dpwssd pairs per super-block.
#ifndef KERNELS_AVX512_INT8_H_
#define KERNELS_AVX512_INT8_H_

#include "kernels/avx512_common.h"
#include "kernels/avx512_kpanel.h"

namespace fk {
namespace {

// ---- u8 x s8 dot products ------------------------------------------------------------------

// A signed weight vector prepared for products with signed activations.
struct SignedW {
  __m512i u;      // VNNI: w + 128 as unsigned bytes; otherwise |w|
  __mmask64 neg;  // otherwise: lanes where w < 0
};
template <bool kVnni>
FK_INLINE SignedW prep_signed(__m512i w) {
  if constexpr (kVnni) {
    return {_mm512_xor_si512(w, _mm512_set1_epi8(static_cast<char>(0x80))), 0};
  } else {
    return {_mm512_abs_epi8(w), _mm512_movepi8_mask(w)};
  }
}
// acc + per lane: sum of 4 products w * y. VNNI: the caller's accumulator must carry
// -128 * sum(y) of the lane (the bias of w + 128).
template <bool kVnni>
FK_INLINE __m512i dot_signed(__m512i acc, const SignedW& w, __m512i y) {
  if constexpr (kVnni) {
    return _mm512_dpbusd_epi32(acc, w.u, y);
  } else {
    const __m512i ys = _mm512_mask_sub_epi8(y, w.neg, _mm512_setzero_si512(), y);
    return _mm512_add_epi32(acc,
                            _mm512_madd_epi16(_mm512_maddubs_epi16(w.u, ys), _mm512_set1_epi16(1)));
  }
}

// =============================================================================================
// Legacy formats (32-element blocks) against ActQ8_0x4, 4 blocks per step
// =============================================================================================
//
// A group of 4 blocks is read with two 64-byte loads: bytes [0, 64) and the group's last 64
// bytes (a partial last group: masked loads, missing bytes read as 0). vpermt2w then
// gathers any 16-bit field of the 4 blocks into place (all fields sit at even offsets).

// Word index into (raw0 = group bytes [0, 64), raw1 = bytes [G - 64, G)) of the 16-bit word
// at byte offset `off` of a G-byte group.
// A group's bytes past the first 64 are read with the smallest load that covers them
// (8, 16 or 32 bytes) ending at the group's end: zmm loads are the scarce kind.
constexpr int tail_load_bytes(int group_bytes) {
  return group_bytes - 64 <= 8 ? 8 : group_bytes - 64 <= 16 ? 16 : 32;
}
constexpr uint16_t group_word(int off, int group_bytes) {
  return off + 2 <= 64
             ? static_cast<uint16_t>(off / 2)
             : static_cast<uint16_t>(32 + (off - (group_bytes - tail_load_bytes(group_bytes))) / 2);
}

// vpermt2w indices gathering, for block b = 0..3, the 8 words at byte offset `field` of the
// block (16 bytes: a nibble block's quants) into words 8b .. 8b + 7.
constexpr Words quant_words(int block_bytes, int field) {
  Words w{};
  for (int t = 0; t < 32; ++t)
    w.v[t] = group_word(block_bytes * (t / 8) + field + 2 * (t % 8), 4 * block_bytes);
  return w;
}

// raw0 = group bytes [0, 64), raw1 = its last tail_load_bytes bytes (zero-extended); a
// partial group (valid_bytes < group_bytes) uses masked loads, missing bytes read as 0.
FK_INLINE void load_group(const uint8_t* g, int group_bytes, int valid_bytes, __m512i* raw0,
                          __m512i* raw1) {
  const int len = tail_load_bytes(group_bytes);
  const int off1 = group_bytes - len;
  if (valid_bytes >= group_bytes) {
    *raw0 = in_reg(loadu512(g));
    if (len == 8) {
      *raw1 = _mm512_zextsi128_si512(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(g + off1)));
    } else if (len == 16) {
      *raw1 = _mm512_zextsi128_si512(loadu128(g + off1));
    } else {
      *raw1 = _mm512_zextsi256_si512(loadu256(g + off1));
    }
  } else {
    *raw0 = _mm512_maskz_loadu_epi8(low_bytes_mask(valid_bytes), g);
    *raw1 = valid_bytes > off1
                ? _mm512_maskz_loadu_epi8(low_bytes_mask(valid_bytes - off1), g + off1)
                : _mm512_setzero_si512();
  }
}

FK_INLINE __m512 words_to_f32(__m512i words16) {
  return _mm512_cvtph_ps(_mm512_castsi512_si256(words16));
}

// Per row j of a tile, a block's fp16 scale goes to word 4b + j of a tile-wide vector (the
// other words zero), so that the 4 rows' scales of a group combine with ORs.
constexpr Words tile_scale_words(int block_bytes, int field, int group_bytes) {
  Words w{};
  for (int t = 0; t < 32; ++t) w.v[t] = group_word(block_bytes * (t / 4 % 4) + field, group_bytes);
  return w;
}
constexpr __mmask32 tile_scale_mask(int j) { return 0x1111u << j; }

// Nibble formats: Q4_0 (w = d (q - 8)), Q4_1 (w = d q + m), Q5_0 (w = d (q - 16), bit 4 of
// q from qh). Bytes 0..15 of a block's quants hold elements 0..15 (low nibbles) and 16..31
// (high nibbles).
template <int kBlockBytes, int kQsOffset, bool kHasMin, bool kFive>
struct NibbleCodec {
  static constexpr int kGroupBytes = 4 * kBlockBytes;
  static constexpr bool kMin = kHasMin;
  static constexpr Words kQs = quant_words(kBlockBytes, kQsOffset);
  static constexpr Words kD = tile_scale_words(kBlockBytes, 0, kGroupBytes);
  static constexpr Words kM = tile_scale_words(kBlockBytes, 2, kGroupBytes);

  // Q4_0 / Q4_1: every block's d (and m) lies in the group's first 64 bytes, so two rows'
  // scales are gathered by one permute (tile_scales); Q5_0's last d does not.
  static constexpr bool kScalesInRaw0 = 4 * kBlockBytes - kBlockBytes + 4 <= 64;
  // Word 4b + t (t = 0, 1) <- the scale at byte `field` of block b of row t of a pair.
  static constexpr Words pair_scale_words(int field, int first_word) {
    Words w{};
    for (int t = 0; t < 32; ++t) {
      const int b = t / 4 % 4, row = t % 4 - first_word;
      w.v[t] = static_cast<uint16_t>((row == 1 ? 32 : 0) + (kBlockBytes * b + field) / 2);
    }
    return w;
  }
  static constexpr Words kPairD[2] = {pair_scale_words(0, 0), pair_scale_words(0, 2)};
  static constexpr Words kPairM[2] = {pair_scale_words(2, 0), pair_scale_words(2, 2)};

  struct Dec {
    __m512i lo, hi;  // quants of elements 0..15 / 16..31 of block b in bytes 16b .. 16b+15
    __m512i d, m;    // fp16 d (m) of block b in word 4b + j, other words 0 (per-row gather)
    __m512i raw0;    // the group's first 64 bytes (pairwise gather)
  };

  // The 4 rows' fp16 scales at byte `field` (0: d, 2: m) in word 4b + j.
  static FK_INLINE __m512i tile_scales(const Dec (&d)[kNR], bool m) {
    const Words* idx = m ? kPairM : kPairD;
    const __m512i r01 = _mm512_permutex2var_epi16(d[0].raw0, load512(&idx[0]), d[1].raw0);
    const __m512i r23 = _mm512_permutex2var_epi16(d[2].raw0, load512(&idx[1]), d[3].raw0);
    return _mm512_mask_blend_epi16(0xCCCCCCCCu, r01, r23);
  }

  // `blocks` valid blocks (1..4) at g, for row j of the tile.
  static FK_INLINE Dec decode(const uint8_t* g, int blocks, int j) {
    __m512i raw0, raw1;
    load_group(g, kGroupBytes, blocks * kBlockBytes, &raw0, &raw1);
    const __m512i qs = _mm512_permutex2var_epi16(raw0, load512(&kQs), raw1);
    const __m512i m4 = _mm512_set1_epi8(15);
    Dec d;
    d.lo = _mm512_and_si512(qs, m4);
    d.hi = _mm512_and_si512(_mm512_srli_epi16(qs, 4), m4);
    if constexpr (kFive) {
      // Bit t of qh_b is bit 4 of element t of block b: the low 16 bits of the 4 qh words
      // are exactly the mask of `lo`'s bytes, the high 16 bits that of `hi`'s.
      uint64_t mlo = 0, mhi = 0;
      for (int b = 0; b < blocks; ++b) {
        const uint64_t qh = load_u32(g + b * kBlockBytes + 2);
        mlo |= (qh & 0xFFFF) << (16 * b);
        mhi |= (qh >> 16) << (16 * b);
      }
      const __m512i sixteen = _mm512_set1_epi8(16);
      d.lo = _mm512_mask_add_epi8(d.lo, _cvtu64_mask64(mlo), d.lo, sixteen);
      d.hi = _mm512_mask_add_epi8(d.hi, _cvtu64_mask64(mhi), d.hi, sixteen);
    }
    d.raw0 = raw0;
    if constexpr (!kScalesInRaw0) {
      d.d = _mm512_maskz_permutex2var_epi16(tile_scale_mask(j), raw0, load512(&kD), raw1);
      if constexpr (kHasMin)
        d.m = _mm512_maskz_permutex2var_epi16(tile_scale_mask(j), raw0, load512(&kM), raw1);
    }
    return d;
  }

  // Per int32 lane 4b + q: the integer dot of the lane's 8 quants (minus the Q4_0 / Q5_0
  // offset: aux = -8 / -16 * their activation sum, exactly).
  template <bool kVnni>
  static FK_INLINE __m512i isum(const Dec& w, const ActQ8_0x4& y) {
    const __m512i init = kHasMin ? _mm512_setzero_si512() : load512(y.aux);
    return dot2_u8s8<kVnni>(init, w.lo, load512(y.y), w.hi, load512(y.y + 64));
  }
};

using CodecQ4_0 = NibbleCodec<sizeof(BlockQ4_0), 2, false, false>;
using CodecQ4_1 = NibbleCodec<sizeof(BlockQ4_1), 4, true, false>;
using CodecQ5_0 = NibbleCodec<sizeof(BlockQ5_0), 6, false, true>;

// Q8_0: w = d q, q signed. The first halves of the 4 blocks' quants (bytes 2..17 of each
// block) and the second halves (18..33) are gathered from the group's bytes [0, 64) and
// [64, 128); the last 8 bytes [128, 136) come from an 8-byte load.
template <bool kVnni>
struct CodecQ8_0 {
  static constexpr int kBlockBytes = sizeof(BlockQ8_0);
  static constexpr int kGroupBytes = 4 * kBlockBytes;  // 136
  static constexpr bool kMin = false;
  static constexpr bool kScalesInRaw0 = false;
  static FK_INLINE __m512i tile_scales(const void*, bool) { return _mm512_setzero_si512(); }
  // Index of the word at byte `off` < 128 in (raw0, raw1).
  static constexpr uint16_t word(int off) { return static_cast<uint16_t>(off / 2); }
  static constexpr Words halves(int field) {
    Words w{};
    for (int t = 0; t < 32; ++t) {
      const int off = kBlockBytes * (t / 8) + field + 2 * (t % 8);
      w.v[t] = off < 128 ? word(off) : 0;  // [128, 136): merged in from the tail load
    }
    return w;
  }
  static constexpr Words scales() {
    Words w{};
    for (int t = 0; t < 32; ++t) w.v[t] = word(kBlockBytes * (t / 4 % 4));
    return w;
  }
  static constexpr Words kA = halves(2);
  static constexpr Words kB = halves(18);
  static constexpr Words kD = scales();

  struct Dec {
    SignedW a, b;
    __m512i d, m;  // d: fp16 d of block b in word 4b + j, other words 0; m unused
  };

  static FK_INLINE Dec decode(const uint8_t* g, int blocks, int j) {
    const int valid = blocks * kBlockBytes;
    __m512i r0, r1;
    __m128i r2;
    if (valid >= kGroupBytes) {
      r0 = in_reg(loadu512(g));
      r1 = in_reg(loadu512(g + 64));
      r2 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(g + 128));
    } else {
      r0 = _mm512_maskz_loadu_epi8(low_bytes_mask(valid), g);
      r1 = valid > 64 ? _mm512_maskz_loadu_epi8(low_bytes_mask(valid - 64), g + 64)
                      : _mm512_setzero_si512();
      r2 = _mm_setzero_si128();  // valid <= 3 blocks = 102 bytes
    }
    Dec d;
    d.a = prep_signed<kVnni>(_mm512_permutex2var_epi16(r0, load512(&kA), r1));
    // The second halves' last 8 bytes (block 3, elements 24..31) are the tail load's.
    const __m512i b = _mm512_mask_broadcastq_epi64(_mm512_permutex2var_epi16(r0, load512(&kB), r1),
                                                   0x80, r2);
    d.b = prep_signed<kVnni>(b);
    d.d = _mm512_maskz_permutex2var_epi16(tile_scale_mask(j), r0, load512(&kD), r1);
    return d;
  }

  template <bool kV>
  static FK_INLINE __m512i isum(const Dec& w, const ActQ8_0x4& y) {
    // VNNI: aux = -128 * sum(y) per lane, the bias of (w + 128).
    const __m512i init = kVnni ? load512(y.aux) : _mm512_setzero_si512();
    return dot_signed<kVnni>(dot_signed<kVnni>(init, w.a, load512(y.y)), w.b, load512(y.y + 64));
  }
};

// Four rows' int32 vectors (lane 4b + q: block b, quad q) reduced to one: lane 4b + j holds
// the sum over q of row j's lanes 4b + q. Fixed order, the same for every row.
FK_INLINE __m512i reduce_rows(__m512i i0, __m512i i1, __m512i i2, __m512i i3) {
  const __m512i s01 = _mm512_add_epi32(_mm512_unpacklo_epi32(i0, i1), _mm512_unpackhi_epi32(i0, i1));
  const __m512i s23 = _mm512_add_epi32(_mm512_unpacklo_epi32(i2, i3), _mm512_unpackhi_epi32(i2, i3));
  return _mm512_add_epi32(_mm512_unpacklo_epi64(s01, s23), _mm512_unpackhi_epi64(s01, s23));
}

// Legacy micro-kernel. Per group of 4 blocks and activation row, the 4 weight rows' integer
// dots are reduced to one vector with lane 4b + j = (block b, row j), converted to float
// once, and scaled by d_w(j, b) * da_b in one multiply-add for all 4 rows (the packed
// activations' da has lane 4b + t = da_b); Q4_1 adds m_w(j, b) * da_b * sum(y_b) likewise.
template <class C, bool kVnni>
struct LegacyInt8 {
  // One group (`blocks` valid blocks; a compile-time 4 in the main loop, so the masked-load
  // branches of decode fold away) for all MR x 4 outputs.
  template <int MR>
  static FK_INLINE void group(const uint8_t* const (&w)[kNR], const ActQ8_0x4* const (&y)[MR],
                              int64_t g, int blocks, __m512 (&acc)[MR]) {
    const int64_t off = g * C::kGroupBytes;
    typename C::Dec d[kNR];
    __m512i dw = _mm512_setzero_si512(), mw = _mm512_setzero_si512();
    for (int j = 0; j < kNR; ++j) d[j] = C::decode(w[j] + off, blocks, j);
    if constexpr (C::kScalesInRaw0) {
      dw = C::tile_scales(d, false);
      if constexpr (C::kMin) mw = C::tile_scales(d, true);
    } else {
      for (int j = 0; j < kNR; ++j) {
        dw = _mm512_or_si512(dw, d[j].d);
        if constexpr (C::kMin) mw = _mm512_or_si512(mw, d[j].m);
      }
    }
    const __m512 df = words_to_f32(dw);
    for (int i = 0; i < MR; ++i) {
      const ActQ8_0x4& a = y[i][g];
      const __m512i r = reduce_rows(C::template isum<kVnni>(d[0], a), C::template isum<kVnni>(d[1], a),
                                    C::template isum<kVnni>(d[2], a), C::template isum<kVnni>(d[3], a));
      acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(r), _mm512_mul_ps(df, _mm512_load_ps(a.da)), acc[i]);
      if constexpr (C::kMin) {
        // Q4_1: aux lane 4b + t = da_b * sum(y_b) (float).
        acc[i] = _mm512_fmadd_ps(words_to_f32(mw), _mm512_castsi512_ps(load512(a.aux)), acc[i]);
      }
    }
  }

  using Prep = NoPrep;
  template <int MR, int NR>
  static FK_INLINE void tile(const MatmulArgs& a, const Prep&, int64_t i0, int64_t j0, int nv) {
    static_assert(NR == kNR, "4-row tiles");
    const int64_t nb = a.k / kQK;
    const int64_t full = nb / 4;
    const int tail = static_cast<int>(nb % 4);
    const uint8_t* w[kNR];
    tile_rows(a, j0, nv, w);
    const ActQ8_0x4* y[MR];
    for (int i = 0; i < MR; ++i)
      y[i] = reinterpret_cast<const ActQ8_0x4*>(a.act + (i0 + i) * a.act_row_bytes);
    __m512 acc[MR];
    for (int i = 0; i < MR; ++i) acc[i] = _mm512_setzero_ps();
    for (int64_t g = 0; g < full; ++g) {
      prefetch_ahead<VecAvx512>(w, a.row_bytes, g * C::kGroupBytes, C::kGroupBytes);
      group<MR>(w, y, g, 4, acc);
    }
    if (tail != 0) group<MR>(w, y, full, tail, acc);
    for (int i = 0; i < MR; ++i) {
      alignas(64) float v[16];
      _mm512_store_ps(v, acc[i]);
      for (int j = 0; j < nv; ++j)
        a.output[(i0 + i) * a.n + j0 + j] = (v[j] + v[4 + j]) + (v[8 + j] + v[12 + j]);
    }
  }
};

// =============================================================================================
// K-quants against ActQ8_K, one super-block per step
// =============================================================================================
//
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

// Per super-block and tile: the 4 weight rows' headers, unpacked once.
struct KHead {
  uint64_t sc[kNR];  // Q4_K / Q5_K: row j's 8 sub-block scales, one per byte
  __m512i mins;      // Q4_K / Q5_K: row j's 8 mins as int16 in 128-bit lane j
  __m256 d;          // d_j in lane 2j, dmin_j (Q4_K / Q5_K) in lane 2j + 1
};

// The fp16 pairs at p[j] (d and dmin of 4 K-quant rows) as floats d_j, dmin_j in lanes
// 2j, 2j + 1.
FK_INLINE __m256 fp16_pairs(const uint8_t* const (&p)[kNR]) {
  return _mm256_cvtph_ps(_mm_set_epi32(static_cast<int>(load_u32(p[3])), static_cast<int>(load_u32(p[2])),
                                       static_cast<int>(load_u32(p[1])), static_cast<int>(load_u32(p[0]))));
}

// Q4_K (kFive = false) and Q5_K.
template <bool kFive, bool kVnni>
struct CodecQ45_K {
  static constexpr int kBytes = kFive ? sizeof(BlockQ5_K) : sizeof(BlockQ4_K);
  static constexpr int kQs = kFive ? 48 : 16;
  static constexpr bool kMins = true;
  // vpshufb patterns turning a row's 8 scale bytes (broadcast to every 64-bit lane) into the
  // int16 scale vector of each word of a packed pair (VNNI) or of maddubs(q[z]).
  static constexpr Bytes kPacked[2] = {bytes_of(packed_pattern(0, SubK4{})),
                                       bytes_of(packed_pattern(1, SubK4{}))};
  static constexpr Bytes kPair[4] = {
      bytes_of(pair_pattern(0, SubK4{})), bytes_of(pair_pattern(1, SubK4{})),
      bytes_of(pair_pattern(2, SubK4{})), bytes_of(pair_pattern(3, SubK4{}))};
  // Bytes of the 8 mins (in both 64-bit halves of each lane) to int16.
  static constexpr Bytes mins_pattern() {
    Bytes b{};
    for (int p = 0; p < 64; ++p) b.v[p] = p % 2 ? 0x80 : static_cast<uint8_t>((p % 16) / 2);
    return b;
  }
  static constexpr Bytes kMinsPattern = mins_pattern();
  // Q5_K: the fifth bit of element l of sub-block s is bit s of qh[l].
  // Per 16-bit word of q[z]: the shift moving bit sub_k4(z, byte) of qh to bit 4 (left for
  // z = 0, 1; right for z = 2, 3).
  static constexpr Words shift_words(int z) {
    Words w{};
    for (int t = 0; t < 32; ++t) {
      const int bit = sub_k4(z, 2 * t);
      w.v[t] = static_cast<uint16_t>(bit <= 4 ? 4 - bit : bit - 4);
    }
    return w;
  }
  static constexpr Words kShift[4] = {shift_words(0), shift_words(1), shift_words(2), shift_words(3)};

  struct Dec {
    __m512i q[4];
    __m512i s[4];  // VNNI: s[0], s[1] for the packed pairs; otherwise one per q[z]
  };

  static FK_INLINE void head(const uint8_t* const (&blk)[kNR], KHead* h) {
    uint64_t mn[kNR];
    for (int j = 0; j < kNR; ++j) unpack_k4_scales(blk[j] + 4, &h->sc[j], &mn[j]);
    __m512i m = _mm512_set1_epi64(static_cast<int64_t>(mn[0]));
    m = _mm512_mask_set1_epi64(m, 0x0C, static_cast<int64_t>(mn[1]));
    m = _mm512_mask_set1_epi64(m, 0x30, static_cast<int64_t>(mn[2]));
    m = _mm512_mask_set1_epi64(m, 0xC0, static_cast<int64_t>(mn[3]));
    h->mins = _mm512_shuffle_epi8(m, load512(&kMinsPattern));
    h->d = fp16_pairs(blk);
  }

  static FK_INLINE Dec decode(const uint8_t* blk, const KHead& h, int j) {
    Dec d;
    const __m512i qs0 = in_reg(loadu512(blk + kQs)), qs1 = in_reg(loadu512(blk + kQs + 64));
    const __m512i m4 = _mm512_set1_epi8(15);
    d.q[0] = _mm512_and_si512(qs0, m4);
    d.q[1] = _mm512_and_si512(_mm512_srli_epi16(qs0, 4), m4);
    d.q[2] = _mm512_and_si512(qs1, m4);
    d.q[3] = _mm512_and_si512(_mm512_srli_epi16(qs1, 4), m4);
    if constexpr (kFive) {
      // The fifth bit of q[z]'s bytes 0..31 / 32..63 (bit A / A + 2 of qh) shifted to bit 4,
      // then OR-ed in: (shifted & 0x10) | q.
      const __m512i qh = in_reg(_mm512_broadcast_i64x4(loadu256(blk + 16)));
      const __m512i b4 = _mm512_set1_epi8(0x10);
      d.q[0] = _mm512_ternarylogic_epi32(_mm512_sllv_epi16(qh, load512(&kShift[0])), b4, d.q[0], 0xEA);
      d.q[1] = _mm512_ternarylogic_epi32(_mm512_sllv_epi16(qh, load512(&kShift[1])), b4, d.q[1], 0xEA);
      d.q[2] = _mm512_ternarylogic_epi32(_mm512_srlv_epi16(qh, load512(&kShift[2])), b4, d.q[2], 0xEA);
      d.q[3] = _mm512_ternarylogic_epi32(_mm512_srlv_epi16(qh, load512(&kShift[3])), b4, d.q[3], 0xEA);
    }
    const __m512i scb = _mm512_set1_epi64(static_cast<int64_t>(h.sc[j]));
    if constexpr (kVnni) {
      d.s[0] = _mm512_shuffle_epi8(scb, load512(&kPacked[0]));
      d.s[1] = _mm512_shuffle_epi8(scb, load512(&kPacked[1]));
    } else {
      for (int z = 0; z < 4; ++z) d.s[z] = _mm512_shuffle_epi8(scb, load512(&kPair[z]));
    }
    return d;
  }

  static FK_INLINE __m512i isum(const Dec& w, const ActQ8_K& y) {
    if constexpr (kVnni) {
      const __m512i z = _mm512_setzero_si512();
      const __m512i p0 = _mm512_packs_epi32(_mm512_dpbusd_epi32(z, w.q[0], load512(y.y)),
                                            _mm512_dpbusd_epi32(z, w.q[1], load512(y.y + 64)));
      const __m512i p1 = _mm512_packs_epi32(_mm512_dpbusd_epi32(z, w.q[2], load512(y.y + 128)),
                                            _mm512_dpbusd_epi32(z, w.q[3], load512(y.y + 192)));
      return _mm512_dpwssd_epi32(_mm512_dpwssd_epi32(z, p0, w.s[0]), p1, w.s[1]);
    } else {
      __m512i s = _mm512_setzero_si512();
      for (int z = 0; z < 4; ++z)
        s = _mm512_add_epi32(
            s, _mm512_madd_epi16(_mm512_maddubs_epi16(w.q[z], load512(y.y + 64 * z)), w.s[z]));
      return s;
    }
  }
};

// Q6_K: w = d * sc * (q - 32), q 6-bit, 16 signed 8-bit scales of 16 elements.
template <bool kVnni>
struct CodecQ6_K {
  static constexpr int kBytes = sizeof(BlockQ6_K);
  static constexpr int kQh = kQK_K / 2, kSc = kQh + kQK_K / 4, kD = kSc + kQK_K / 16;
  static constexpr bool kMins = false;
  static constexpr Words kPacked[2] = {packed_pattern(0, SubK6{}), packed_pattern(1, SubK6{})};
  static constexpr Words kPair[4] = {pair_pattern(0, SubK6{}), pair_pattern(1, SubK6{}),
                                     pair_pattern(2, SubK6{}), pair_pattern(3, SubK6{})};
  // Per 16-bit word: shift bringing bits 2r, 2r+1 of qh (r = 0 / 1 in the low / high 256
  // bits) to bits 4, 5 (left by 4 / 2), and bits 2r, 2r+1 for r = 2 / 3 (right by 0 / 2).
  static constexpr Words shifts(int lo, int hi) {
    Words w{};
    for (int t = 0; t < 32; ++t) w.v[t] = static_cast<uint16_t>(t < 16 ? lo : hi);
    return w;
  }
  static constexpr Words kShl = shifts(4, 2);
  static constexpr Words kShr = shifts(0, 2);

  struct Dec {
    __m512i q[4];
    __m512i s[4];   // VNNI: s[0], s[1]; otherwise one per q[z]
    __m512i sc2;    // the 16 scales * 2 as int16 (low 256 bits), for the offset
  };

  static FK_INLINE void head(const uint8_t* const (&blk)[kNR], KHead* h) {
    // d is the block's last field: read exactly its 2 bytes (the odd lanes get 0).
    h->d = _mm256_cvtph_ps(_mm_set_epi32(load_u16(blk[3] + kD), load_u16(blk[2] + kD),
                                         load_u16(blk[1] + kD), load_u16(blk[0] + kD)));
  }

  static FK_INLINE Dec decode(const uint8_t* blk, const KHead&, int) {
    Dec d;
    const __m512i m4 = _mm512_set1_epi8(15), m30 = _mm512_set1_epi8(0x30);
    for (int h = 0; h < 2; ++h) {
      // Elements 128 h + 32 r + l: low 4 bits are nibble r / 2 of ql[64 h + 32 (r % 2) + l],
      // high 2 bits are bits 2r, 2r+1 of qh[32 h + l]; q[2h] holds r = 0, 1 and q[2h+1]
      // r = 2, 3, in element order.
      const __m512i ql = in_reg(loadu512(blk + 64 * h));
      const __m512i qh = in_reg(_mm512_broadcast_i64x4(loadu256(blk + kQh + 32 * h)));
      const __m512i hi0 = _mm512_sllv_epi16(qh, load512(&kShl));
      const __m512i hi1 = _mm512_srlv_epi16(qh, load512(&kShr));
      // (hi & 0x30) | nibble
      d.q[2 * h] = _mm512_ternarylogic_epi32(hi0, m30, _mm512_and_si512(ql, m4), 0xEA);
      d.q[2 * h + 1] = _mm512_ternarylogic_epi32(
          hi1, m30, _mm512_and_si512(_mm512_srli_epi16(ql, 4), m4), 0xEA);
    }
    const __m512i sc16 = _mm512_zextsi256_si512(_mm256_cvtepi8_epi16(loadu128(blk + kSc)));
    d.sc2 = _mm512_add_epi16(sc16, sc16);
    if constexpr (kVnni) {
      d.s[0] = _mm512_permutexvar_epi16(load512(&kPacked[0]), sc16);
      d.s[1] = _mm512_permutexvar_epi16(load512(&kPacked[1]), sc16);
    } else {
      for (int z = 0; z < 4; ++z) d.s[z] = _mm512_permutexvar_epi16(load512(&kPair[z]), sc16);
    }
    return d;
  }

  static FK_INLINE __m512i isum(const Dec& w, const ActQ8_K& y) {
    // The -32 offset: -32 * sum_s sc_s * bsum16_s = sum_s (2 sc_s) * (-16 bsum16_s).
    const __m512i init = _mm512_madd_epi16(w.sc2, _mm512_zextsi256_si512(loadu256(y.nbsum16)));
    if constexpr (kVnni) {
      const __m512i z = _mm512_setzero_si512();
      const __m512i p0 = _mm512_packs_epi32(_mm512_dpbusd_epi32(z, w.q[0], load512(y.y)),
                                            _mm512_dpbusd_epi32(z, w.q[1], load512(y.y + 64)));
      const __m512i p1 = _mm512_packs_epi32(_mm512_dpbusd_epi32(z, w.q[2], load512(y.y + 128)),
                                            _mm512_dpbusd_epi32(z, w.q[3], load512(y.y + 192)));
      return _mm512_dpwssd_epi32(_mm512_dpwssd_epi32(init, p0, w.s[0]), p1, w.s[1]);
    } else {
      __m512i s = init;
      for (int z = 0; z < 4; ++z)
        s = _mm512_add_epi32(
            s, _mm512_madd_epi16(_mm512_maddubs_epi16(w.q[z], load512(y.y + 64 * z)), w.s[z]));
      return s;
    }
  }
};

// Q8_K weights: w = d * q, q signed, float d.
template <bool kVnni>
struct CodecQ8_K {
  static constexpr int kBytes = sizeof(BlockQ8_K);
  static constexpr bool kMins = false;
  struct Dec {
    SignedW q[4];
  };
  static FK_INLINE void head(const uint8_t* const (&blk)[kNR], KHead* h) {
    h->d = _mm256_setr_ps(load_f32(blk[0]), 0.0f, load_f32(blk[1]), 0.0f, load_f32(blk[2]), 0.0f,
                          load_f32(blk[3]), 0.0f);
  }
  static FK_INLINE Dec decode(const uint8_t* blk, const KHead&, int) {
    Dec d;
    for (int z = 0; z < 4; ++z) d.q[z] = prep_signed<kVnni>(loadu512(blk + 4 + 64 * z));
    return d;
  }
  static FK_INLINE __m512i isum(const Dec& w, const ActQ8_K& y) {
    // VNNI: start at -128 * sum(y), the bias of (w + 128).
    __m512i s = kVnni ? _mm512_zextsi128_si512(_mm_cvtsi32_si128(-128 * y.sum))
                      : _mm512_setzero_si512();
    for (int z = 0; z < 4; ++z) s = dot_signed<kVnni>(s, w.q[z], load512(y.y + 64 * z));
    return s;
  }
};

template <class C>
struct KQuantInt8 {
  using Prep = NoPrep;
  template <int MR, int NR>
  static FK_INLINE void tile(const MatmulArgs& a, const Prep&, int64_t i0, int64_t j0, int nv) {
    static_assert(NR == kNR, "4-row tiles");
    const int64_t nb = a.k / kQK_K;
    const uint8_t* w[kNR];
    tile_rows(a, j0, nv, w);
    const ActQ8_K* y[MR];
    for (int i = 0; i < MR; ++i)
      y[i] = reinterpret_cast<const ActQ8_K*>(a.act + (i0 + i) * a.act_row_bytes);
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
      prefetch_ahead<VecAvx512>(w, a.row_bytes, off, C::kBytes);
      const uint8_t* blk[kNR];
      for (int j = 0; j < kNR; ++j) blk[j] = w[j] + off;
      KHead h;
      C::head(blk, &h);
      // d_j * da_i in lane 2j (and dmin_j * da_i in lane 2j + 1), broadcast from memory by
      // the FMAs below.
      alignas(32) float dd[MR][2 * kNR];
      for (int i = 0; i < MR; ++i)
        _mm256_store_ps(dd[i], _mm256_mul_ps(h.d, _mm256_set1_ps(y[i][b].d)));
      for (int j = 0; j < kNR; ++j) {
        const typename C::Dec d = C::decode(blk[j], h, j);
        for (int i = 0; i < MR; ++i) {
          const __m512i s = C::isum(d, y[i][b]);
          acc[i][j] =
              _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_set1_ps(dd[i][2 * j]), acc[i][j]);
        }
      }
      if constexpr (C::kMins) {
        for (int i = 0; i < MR; ++i) {
          const __m512i bs = _mm512_broadcast_i32x4(loadu128(y[i][b].bsum32));
          const __m512 dmin = _mm512_permutexvar_ps(odd, _mm512_castps256_ps512(_mm256_load_ps(dd[i])));
          macc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_madd_epi16(h.mins, bs)), dmin, macc[i]);
        }
      }
    }
    for (int i = 0; i < MR; ++i) {
      alignas(64) float m[16];
      _mm512_store_ps(m, macc[i]);
      for (int j = 0; j < nv; ++j) {
        float v = _mm512_reduce_add_ps(acc[i][j]);
        if constexpr (C::kMins) v -= (m[4 * j] + m[4 * j + 1]) + (m[4 * j + 2] + m[4 * j + 3]);
        a.output[(i0 + i) * a.n + j0 + j] = v;
      }
    }
  }
};

// The int8-path entry points of one variant.
template <bool kVnni>
struct Int8Kernels {
  static void q4_0(const MatmulArgs& a, int64_t nb, int64_t ne) {
    run_tiles<VecAvx512, LegacyInt8<CodecQ4_0, kVnni>>(a, nb, ne);
  }
  static void q4_1(const MatmulArgs& a, int64_t nb, int64_t ne) {
    run_tiles<VecAvx512, LegacyInt8<CodecQ4_1, kVnni>>(a, nb, ne);
  }
  static void q5_0(const MatmulArgs& a, int64_t nb, int64_t ne) {
    run_tiles<VecAvx512, LegacyInt8<CodecQ5_0, kVnni>>(a, nb, ne);
  }
  static void q8_0(const MatmulArgs& a, int64_t nb, int64_t ne) {
    run_tiles<VecAvx512, LegacyInt8<CodecQ8_0<kVnni>, kVnni>>(a, nb, ne);
  }
  // Batches of kPanelMinM rows or more: weight panels (kernels/avx512_kpanel.h).
  static void q4_k(const MatmulArgs& a, int64_t nb, int64_t ne) {
    if (a.m >= kPanelMinM) return KPanelInt8<PanelCodecQ45<false>, kVnni>::run(a, nb, ne);
    run_tiles<VecAvx512, KQuantInt8<CodecQ45_K<false, kVnni>>>(a, nb, ne);
  }
  static void q5_k(const MatmulArgs& a, int64_t nb, int64_t ne) {
    if (a.m >= kPanelMinM) return KPanelInt8<PanelCodecQ45<true>, kVnni>::run(a, nb, ne);
    run_tiles<VecAvx512, KQuantInt8<CodecQ45_K<true, kVnni>>>(a, nb, ne);
  }
  static void q6_k(const MatmulArgs& a, int64_t nb, int64_t ne) {
    if (a.m >= kPanelMinM) return KPanelInt8<PanelCodecQ6, kVnni>::run(a, nb, ne);
    run_tiles<VecAvx512, KQuantInt8<CodecQ6_K<kVnni>>>(a, nb, ne);
  }
  static void q8_k(const MatmulArgs& a, int64_t nb, int64_t ne) {
    run_tiles<VecAvx512, KQuantInt8<CodecQ8_K<kVnni>>>(a, nb, ne);
  }
};

}  // namespace
}  // namespace fk

#endif  // KERNELS_AVX512_INT8_H_
