// The AVX-512 int8 path of the 32-element formats (textual header, see
// kernels/simd/common-inl.h), written once for both AVX-512 variants (kVnni false / true):
// a tile micro-kernel over 4 weight rows and the codecs of Q8_0 kind
// (kernels/avx512/codecs-inl.h), against activations packed in groups of 4 blocks
// (ActQ8_0x4, kernels/avx512/act_layouts-inl.h). Integer products are exact; they are scaled
// to float once per group of 4 blocks (one lane group per block).
//
// A Q8_0-kind codec provides kAct = Format::kQ8_0, kGroupBytes (4 blocks), kMin (an fp16 m
// term), kScalesInRaw0, struct Dec, decode(group, blocks, row) -> Dec (the 4 blocks' quants
// lined up with ActQ8_0x4::y, and row j's fp16 d (m) in word 4b + j of Dec::d (m)),
// tile_scales(Dec[4], m) (when kScalesInRaw0: the 4 rows' d or m gathered pairwise from
// Dec::raw0) and isum(Dec, ActQ8_0x4) -> int32 lane 4b + q: the exact dot of block b's
// quad q, offsets included.
#ifndef KERNELS_AVX512_INT8_LEGACY_INL_H_
#define KERNELS_AVX512_INT8_LEGACY_INL_H_

#include "kernels/avx512/act_layouts-inl.h"
#include "kernels/avx512/vec-inl.h"
#include "kernels/simd/driver-inl.h"

namespace fk {
namespace {

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

// The 16 quant bytes at offset `field` of each block of a group, block b in bytes
// 16b .. 16b + 15. The 18-byte blocks (Q4_0, IQ4_NL): a full group takes the last block's
// quants in place from a load of the group's last 64 bytes (they end the group) and permutes
// only the other three out of raw0: vpermw with a merge mask, 2 uops, where vpermt2w of
// raw0 / raw1 is 3 (Intel Xeon, measured). kernel_bench 1x1024x2048 --hot: Q4_0 47.0 / 46.7
// -> 44.3 / 43.1 us, IQ4_NL 52.9 / 51.0 -> 50.2 / 48.6; from DRAM even (Q4_0) or up to 6 %
// faster (IQ4_NL). Q4_1's 20-byte blocks would allow it too, but ran up to 8 % slower from
// DRAM at 2 threads.
template <int kBlockBytes, int kField>
FK_INLINE __m512i group_quants(const uint8_t* g, int blocks, __m512i raw0, __m512i raw1,
                               const Words& idx) {
  constexpr bool kInPlace = kBlockBytes == 18 && kField + 16 == kBlockBytes;
  if (!kInPlace || blocks < 4) return _mm512_permutex2var_epi16(raw0, load512(&idx), raw1);
  const __m512i last = loadu512(g + 4 * kBlockBytes - 64);
  return _mm512_mask_permutexvar_epi16(last, 0x00FFFFFFu, load512(&idx), raw0);
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

// Nibble formats (Q4_0: w = d (q - 8); Q4_1: w = d q + m; Q5_0: w = d (q - 16), bit 4 of q
// from qh): the 16 bytes of quants at offset kQs of a block hold elements 0..15 (low
// nibbles) and 16..31 (high nibbles); fp16 d at the block's `d`, fp16 m at kM (kM < 0:
// none), 32 high bits at kQh (kQh < 0: none). The formats' codecs (kernels/avx512/
// codecs-inl.h) are this template at their block's offsets.
template <class Block, int kQs, int kM, int kQh, bool kVnni>
struct NibbleCodec {
  static constexpr Format kAct = Format::kQ8_0;
  static constexpr int kBlockBytes = sizeof(Block);
  static constexpr int kGroupBytes = 4 * kBlockBytes;
  static constexpr bool kMin = kM >= 0;
  static constexpr bool kFive = kQh >= 0;
  static constexpr int kD = offsetof(Block, d);
  static constexpr int kMOrD = kMin ? kM : kD;  // (a valid field where m is absent)
  static constexpr Words kQsWords = quant_words(kBlockBytes, kQs);
  static constexpr Words kDWords = tile_scale_words(kBlockBytes, kD, kGroupBytes);
  static constexpr Words kMWords = tile_scale_words(kBlockBytes, kMOrD, kGroupBytes);
  // Q5_1 (m, and scales outside raw0): d in words 0..15 and m in words 16..31, one permute.
  static constexpr Words kDMWords = [] {
    Words w = tile_scale_words(kBlockBytes, kD, kGroupBytes);
    const Words m = tile_scale_words(kBlockBytes, kMOrD, kGroupBytes);
    for (int t = 16; t < 32; ++t) w.v[t] = m.v[t];
    return w;
  }();

  // Q4_0 / Q4_1: every block's d (and m) lies in the group's first 64 bytes, so two rows'
  // scales are gathered by one permute (tile_scales); Q5_0's last d does not.
  static constexpr bool kScalesInRaw0 = 3 * kBlockBytes + std::max(kD, kMOrD) + 2 <= 64;
  // Word 4b + t (t = 0, 1) <- the scale at byte `field` of block b of row t of a pair.
  static constexpr Words pair_scale_words(int field, int first_word) {
    Words w{};
    for (int t = 0; t < 32; ++t) {
      const int b = t / 4 % 4, row = t % 4 - first_word;
      w.v[t] = static_cast<uint16_t>((row == 1 ? 32 : 0) + (kBlockBytes * b + field) / 2);
    }
    return w;
  }
  static constexpr Words kPairD[2] = {pair_scale_words(kD, 0), pair_scale_words(kD, 2)};
  static constexpr Words kPairM[2] = {pair_scale_words(kMOrD, 0), pair_scale_words(kMOrD, 2)};

  struct Dec {
    __m512i lo, hi;  // quants of elements 0..15 / 16..31 of block b in bytes 16b .. 16b+15
    __m512i d;       // fp16 d of block b in word 4b + j (m: word 16 + 4b + j), other words 0
                     // (per-row gather)
    __m512i raw0;    // the group's first 64 bytes (pairwise gather)
  };

  // The 4 rows' fp16 scales (d, or m when `m`) in word 4b + j.
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
    const __m512i qs = group_quants<kBlockBytes, kQs>(g, blocks, raw0, raw1, kQsWords);
    const __m512i m4 = _mm512_set1_epi8(15);
    Dec d;
    d.lo = _mm512_and_si512(qs, m4);
    d.hi = _mm512_and_si512(_mm512_srli_epi16(qs, 4), m4);
    if constexpr (kFive) {
      // Bit t of qh_b is bit 4 of element t of block b: the low 16 bits of the 4 qh words
      // are exactly the mask of `lo`'s bytes, the high 16 bits that of `hi`'s.
      // Built from 16-bit loads (a load each, a shift and an OR: half the scalar work of
      // splitting 32-bit loads).
      uint64_t mlo = 0, mhi = 0;
      for (int b = 0; b < blocks; ++b) {
        mlo |= static_cast<uint64_t>(load_u16(g + b * kBlockBytes + kQh)) << (16 * b);
        mhi |= static_cast<uint64_t>(load_u16(g + b * kBlockBytes + kQh + 2)) << (16 * b);
      }
      const __m512i sixteen = _mm512_set1_epi8(16);
      d.lo = _mm512_mask_add_epi8(d.lo, _cvtu64_mask64(mlo), d.lo, sixteen);
      d.hi = _mm512_mask_add_epi8(d.hi, _cvtu64_mask64(mhi), d.hi, sixteen);
    }
    d.raw0 = raw0;
    if constexpr (!kScalesInRaw0) {
      const __mmask32 rows = kMin ? (tile_scale_mask(j) | tile_scale_mask(j) << 16) : tile_scale_mask(j);
      d.d = _mm512_maskz_permutex2var_epi16(rows, raw0, load512(kMin ? &kDMWords : &kDWords), raw1);
    }
    return d;
  }

  // Per int32 lane 4b + q: the integer dot of the lane's 8 quants (minus the Q4_0 / Q5_0
  // offset: aux = -8 / -16 * their activation sum, exactly).
  static FK_INLINE __m512i isum(const Dec& w, const ActQ8_0x4& y) {
    const __m512i init = kMin ? _mm512_setzero_si512() : load512(y.aux);
    return dot2_u8s8<kVnni>(init, w.lo, load512(y.y), w.hi, load512(y.y + 64));
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
template <class C>
struct LegacyInt8 {
  static_assert(C::kAct == Format::kQ8_0, "a codec of Q8_0 kind");
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
      for (int j = 0; j < kNR; ++j) dw = _mm512_or_si512(dw, d[j].d);
      if constexpr (C::kMin) mw = _mm512_zextsi256_si512(_mm512_extracti64x4_epi64(dw, 1));
    }
    const __m512 df = words_to_f32(dw);
    for (int i = 0; i < MR; ++i) {
      const ActQ8_0x4& a = y[i][g];
      const __m512i r = reduce_rows(C::isum(d[0], a), C::isum(d[1], a), C::isum(d[2], a),
                                    C::isum(d[3], a));
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
    tile_acts(a, i0, y);
    __m512 acc[MR];
    for (int i = 0; i < MR; ++i) acc[i] = _mm512_setzero_ps();
    for (int64_t g = 0; g < full; ++g) {
      prefetch_ahead<VecAvx512>(a, w, g * C::kGroupBytes, C::kGroupBytes);
      group<MR>(w, y, g, 4, acc);
    }
    if (tail != 0) group<MR>(w, y, full, tail, acc);
    for (int i = 0; i < MR; ++i) {
      alignas(64) float v[16];
      _mm512_store_ps(v, acc[i]);
      for (int j = 0; j < nv; ++j)
        a.output[(i0 + i) * a.n + out_col(a, j0, j)] = (v[j] + v[4 + j]) + (v[8 + j] + v[12 + j]);
    }
  }
};

}  // namespace
}  // namespace fk

#endif  // KERNELS_AVX512_INT8_LEGACY_INL_H_
