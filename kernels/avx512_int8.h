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

namespace fk {
namespace {

// ---- u8 x s8 dot products ------------------------------------------------------------------

// init + per int32 lane: sum of the 4 products u * s of its bytes, for two vector pairs.
// Needs u <= 31 without VNNI (the two pairs are added as int16 first).
template <bool kVnni>
FK_INLINE __m512i dot2_small(__m512i init, __m512i u0, __m512i s0, __m512i u1, __m512i s1) {
  if constexpr (kVnni) {
    return _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(init, u0, s0), u1, s1);
  } else {
    const __m512i p = _mm512_add_epi16(_mm512_maddubs_epi16(u0, s0), _mm512_maddubs_epi16(u1, s1));
    return _mm512_add_epi32(init, _mm512_madd_epi16(p, _mm512_set1_epi16(1)));
  }
}

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
constexpr uint16_t group_word(int off, int group_bytes) {
  return off + 2 <= 64 ? static_cast<uint16_t>(off / 2)
                       : static_cast<uint16_t>(32 + (off - (group_bytes - 64)) / 2);
}

// vpermt2w indices gathering, for block b = 0..3, the 8 words at byte offset `field` of the
// block (16 bytes: a nibble block's quants) into words 8b .. 8b + 7.
constexpr Words quant_words(int block_bytes, int field) {
  Words w{};
  for (int t = 0; t < 32; ++t) w.v[t] = group_word(block_bytes * (t / 8) + field + 2 * (t % 8), 4 * block_bytes);
  return w;
}
// ... and the fp16 at byte offset `field` of block t / 4 into word t (t < 16; the upper 16
// words repeat them and are ignored).
constexpr Words scale_words(int block_bytes, int field) {
  Words w{};
  for (int t = 0; t < 32; ++t) w.v[t] = group_word(block_bytes * ((t % 16) / 4) + field, 4 * block_bytes);
  return w;
}

FK_INLINE void load_group(const uint8_t* g, int group_bytes, int valid_bytes, __m512i* raw0,
                          __m512i* raw1) {
  const int off1 = group_bytes - 64;
  if (valid_bytes >= group_bytes) {
    *raw0 = loadu512(g);
    *raw1 = loadu512(g + off1);
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

// Nibble formats: Q4_0 (w = d (q - 8)), Q4_1 (w = d q + m), Q5_0 (w = d (q - 16), bit 4 of
// q from qh). Bytes 0..15 of a block's quants hold elements 0..15 (low nibbles) and 16..31
// (high nibbles).
template <int kBlockBytes, int kQsOffset, bool kHasMin, bool kFive>
struct NibbleCodec {
  static constexpr int kGroupBytes = 4 * kBlockBytes;
  static constexpr Words kQs = quant_words(kBlockBytes, kQsOffset);
  static constexpr Words kD = scale_words(kBlockBytes, 0);
  static constexpr Words kM = scale_words(kBlockBytes, 2);

  struct Dec {
    __m512i lo, hi;  // quants of elements 0..15 / 16..31 of block b in bytes 16b .. 16b+15
    __m512 d, m;     // lane l: d (m) of block l / 4
  };

  // `blocks` valid blocks (1..4) at g.
  static FK_INLINE Dec decode(const uint8_t* g, int blocks) {
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
    d.d = words_to_f32(_mm512_permutex2var_epi16(raw0, load512(&kD), raw1));
    if constexpr (kHasMin) d.m = words_to_f32(_mm512_permutex2var_epi16(raw0, load512(&kM), raw1));
    return d;
  }

  // acc += this group's contribution for one activation group.
  template <bool kVnni>
  static FK_INLINE __m512 accumulate(const Dec& w, const ActQ8_0x4& y, __m512 acc) {
    // Q4_0 / Q5_0: aux = -8 / -16 * sum(y) per lane, the offset of q, exactly.
    const __m512i init = kHasMin ? _mm512_setzero_si512() : load512(y.aux);
    const __m512i s = dot2_small<kVnni>(init, w.lo, load512(y.y), w.hi, load512(y.y + 64));
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(w.d, _mm512_load_ps(y.da)), acc);
    if constexpr (kHasMin) {
      // Q4_1: + m * da * sum(y); aux = da * sum(y) per lane (float).
      acc = _mm512_fmadd_ps(w.m, _mm512_castsi512_ps(load512(y.aux)), acc);
    }
    return acc;
  }
};

using CodecQ4_0 = NibbleCodec<sizeof(BlockQ4_0), 2, false, false>;
using CodecQ4_1 = NibbleCodec<sizeof(BlockQ4_1), 4, true, false>;
using CodecQ5_0 = NibbleCodec<sizeof(BlockQ5_0), 6, false, true>;

// Q8_0: w = d q, q signed. The first halves of the 4 blocks' quants (bytes 2..17 of each
// block) and the second halves (18..33) are each gathered from two 64-byte loads.
template <bool kVnni>
struct CodecQ8_0 {
  static constexpr int kBlockBytes = sizeof(BlockQ8_0);
  static constexpr int kGroupBytes = 4 * kBlockBytes;  // 136
  // raw0 / raw1 = group bytes [0, 64) / [64, 128); raw2 / raw3 = [8, 72) / [72, 136).
  static constexpr Words first_halves() {
    Words w{};
    for (int t = 0; t < 32; ++t) {
      const int off = kBlockBytes * (t / 8) + 2 + 2 * (t % 8);
      w.v[t] = static_cast<uint16_t>(off + 2 <= 64 ? off / 2 : 32 + (off - 64) / 2);
    }
    return w;
  }
  static constexpr Words second_halves() {
    Words w{};
    for (int t = 0; t < 32; ++t) {
      const int off = kBlockBytes * (t / 8) + 18 + 2 * (t % 8);
      w.v[t] = static_cast<uint16_t>(off + 2 <= 72 ? (off - 8) / 2 : 32 + (off - 72) / 2);
    }
    return w;
  }
  static constexpr Words scales() {
    Words w{};
    for (int t = 0; t < 32; ++t) {
      const int off = kBlockBytes * ((t % 16) / 4);
      w.v[t] = static_cast<uint16_t>(off + 2 <= 64 ? off / 2 : 32 + (off - 64) / 2);
    }
    return w;
  }
  static constexpr Words kA = first_halves();
  static constexpr Words kB = second_halves();
  static constexpr Words kD = scales();

  struct Dec {
    SignedW a, b;
    __m512 d;
  };

  static FK_INLINE __m512i masked(const uint8_t* g, int start, int valid) {
    if (valid >= start + 64) return loadu512(g + start);
    if (valid <= start) return _mm512_setzero_si512();
    return _mm512_maskz_loadu_epi8(low_bytes_mask(valid - start), g + start);
  }

  static FK_INLINE Dec decode(const uint8_t* g, int blocks) {
    const int valid = blocks * kBlockBytes;
    const __m512i r0 = masked(g, 0, valid), r1 = masked(g, 64, valid);
    const __m512i r2 = masked(g, 8, valid), r3 = masked(g, 72, valid);
    Dec d;
    d.a = prep_signed<kVnni>(_mm512_permutex2var_epi16(r0, load512(&kA), r1));
    d.b = prep_signed<kVnni>(_mm512_permutex2var_epi16(r2, load512(&kB), r3));
    d.d = words_to_f32(_mm512_permutex2var_epi16(r0, load512(&kD), r1));
    return d;
  }

  template <bool kV>
  static FK_INLINE __m512 accumulate(const Dec& w, const ActQ8_0x4& y, __m512 acc) {
    // VNNI: aux = -128 * sum(y) per lane, the bias of (w + 128).
    const __m512i init = kVnni ? load512(y.aux) : _mm512_setzero_si512();
    const __m512i s = dot_signed<kVnni>(dot_signed<kVnni>(init, w.a, load512(y.y)), w.b,
                                        load512(y.y + 64));
    return _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(w.d, _mm512_load_ps(y.da)), acc);
  }
};

template <class C, bool kVnni>
struct LegacyInt8 {
  template <int MR>
  static FK_NOINLINE void tile(const MatmulArgs& a, int64_t i0, int64_t j0, int nv) {
    const int64_t nb = a.k / kQK;
    const int64_t ng = (nb + 3) / 4;
    const uint8_t* w[kNR];
    tile_rows(a, j0, nv, w);
    const ActQ8_0x4* y[MR];
    for (int i = 0; i < MR; ++i)
      y[i] = reinterpret_cast<const ActQ8_0x4*>(a.act + (i0 + i) * a.act_row_bytes);
    __m512 acc[MR][kNR];
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < kNR; ++j) acc[i][j] = _mm512_setzero_ps();
    for (int64_t g = 0; g < ng; ++g) {
      const int blocks = static_cast<int>(std::min<int64_t>(4, nb - 4 * g));
      const int64_t off = g * C::kGroupBytes;
      prefetch_next_tile(w, a.row_bytes, off, C::kGroupBytes);
      for (int j = 0; j < kNR; ++j) {
        const typename C::Dec d = C::decode(w[j] + off, blocks);
        for (int i = 0; i < MR; ++i)
          acc[i][j] = C::template accumulate<kVnni>(d, y[i][g], acc[i][j]);
      }
    }
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < nv; ++j) a.output[(i0 + i) * a.n + j0 + j] = _mm512_reduce_add_ps(acc[i][j]);
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

// Q4_K / Q5_K 6-bit scales and mins of the 8 sub-blocks, unpacked to bytes.
FK_INLINE void unpack_k4_scales(const uint8_t* s12, uint64_t* sc, uint64_t* mn) {
  const uint32_t u0 = load_u32(s12), u1 = load_u32(s12 + 4), u2 = load_u32(s12 + 8);
  // Sub-blocks 0-3: low 6 bits of bytes 0-3 (scales) and 4-7 (mins). Sub-blocks 4-7: low
  // nibble (scales) / high nibble (mins) of bytes 8-11, plus the top 2 bits of bytes 0-3 /
  // 4-7 as bits 4-5.
  const uint32_t sc_lo = u0 & 0x3F3F3F3Fu, mn_lo = u1 & 0x3F3F3F3Fu;
  const uint32_t sc_hi = (u2 & 0x0F0F0F0Fu) | ((u0 >> 2) & 0x30303030u);
  const uint32_t mn_hi = ((u2 >> 4) & 0x0F0F0F0Fu) | ((u1 >> 2) & 0x30303030u);
  *sc = sc_lo | (static_cast<uint64_t>(sc_hi) << 32);
  *mn = mn_lo | (static_cast<uint64_t>(mn_hi) << 32);
}

// Q4_K (kFive = false) and Q5_K.
template <bool kFive, bool kVnni>
struct CodecQ45_K {
  static constexpr int kBytes = kFive ? sizeof(BlockQ5_K) : sizeof(BlockQ4_K);
  static constexpr int kQs = kFive ? 48 : 16;
  static constexpr bool kMins = true;
  static constexpr Bytes kPacked[2] = {bytes_of(packed_pattern(0, SubK4{})),
                                       bytes_of(packed_pattern(1, SubK4{}))};
  static constexpr Bytes kPair[4] = {bytes_of(pair_pattern(0, SubK4{})),
                                     bytes_of(pair_pattern(1, SubK4{})),
                                     bytes_of(pair_pattern(2, SubK4{})),
                                     bytes_of(pair_pattern(3, SubK4{}))};
  // Q5_K: the fifth bit of element l of sub-block s is bit s of qh[l]; per q[z], the bit of
  // sub-block A (bytes 0..31) and A + 2 (bytes 32..63).
  static constexpr Bytes qh_bits(int z) {
    Bytes b{};
    for (int p = 0; p < 64; ++p) b.v[p] = static_cast<uint8_t>(1u << sub_k4(z, p));
    return b;
  }
  static constexpr Bytes kQh[4] = {qh_bits(0), qh_bits(1), qh_bits(2), qh_bits(3)};

  struct Dec {
    __m512i q[4];
    __m512i s[4];  // VNNI: s[0], s[1] for the packed pairs; otherwise one per q[z]
  };

  // Per weight row and super-block: the scales (bytes), and the mins for the tile's vector.
  static FK_INLINE Dec decode(const uint8_t* blk, uint64_t* mins) {
    uint64_t sc;
    unpack_k4_scales(blk + 4, &sc, mins);
    Dec d;
    const __m512i qs0 = loadu512(blk + kQs), qs1 = loadu512(blk + kQs + 64);
    const __m512i m4 = _mm512_set1_epi8(15);
    d.q[0] = _mm512_and_si512(qs0, m4);
    d.q[1] = _mm512_and_si512(_mm512_srli_epi16(qs0, 4), m4);
    d.q[2] = _mm512_and_si512(qs1, m4);
    d.q[3] = _mm512_and_si512(_mm512_srli_epi16(qs1, 4), m4);
    if constexpr (kFive) {
      const __m512i qh = _mm512_broadcast_i64x4(loadu256(blk + 16));
      const __m512i sixteen = _mm512_set1_epi8(16);
      for (int z = 0; z < 4; ++z)
        d.q[z] = _mm512_mask_add_epi8(d.q[z], _mm512_test_epi8_mask(qh, load512(&kQh[z])), d.q[z],
                                      sixteen);
    }
    const __m512i scb = _mm512_set1_epi64(static_cast<int64_t>(sc));
    if constexpr (kVnni) {
      d.s[0] = _mm512_shuffle_epi8(scb, load512(&kPacked[0]));
      d.s[1] = _mm512_shuffle_epi8(scb, load512(&kPacked[1]));
    } else {
      for (int z = 0; z < 4; ++z) d.s[z] = _mm512_shuffle_epi8(scb, load512(&kPair[z]));
    }
    return d;
  }
  static FK_INLINE float d_of(const uint8_t* blk) { return _cvtsh_ss(load_u16(blk)); }
  static FK_INLINE float dmin_of(const uint8_t* blk) { return _cvtsh_ss(load_u16(blk + 2)); }

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

  static FK_INLINE Dec decode(const uint8_t* blk, uint64_t*) {
    Dec d;
    const __m512i m4 = _mm512_set1_epi8(15), m30 = _mm512_set1_epi8(0x30);
    for (int h = 0; h < 2; ++h) {
      // Elements 128 h + 32 r + l: low 4 bits are nibble r / 2 of ql[64 h + 32 (r % 2) + l],
      // high 2 bits are bits 2r, 2r+1 of qh[32 h + l]; q[2h] holds r = 0, 1 and q[2h+1]
      // r = 2, 3, in element order.
      const __m512i ql = loadu512(blk + 64 * h);
      const __m512i qh = _mm512_broadcast_i64x4(loadu256(blk + kQh + 32 * h));
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
  static FK_INLINE float d_of(const uint8_t* blk) { return _cvtsh_ss(load_u16(blk + kD)); }
  static FK_INLINE float dmin_of(const uint8_t*) { return 0.0f; }

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
  static FK_INLINE Dec decode(const uint8_t* blk, uint64_t*) {
    Dec d;
    for (int z = 0; z < 4; ++z) d.q[z] = prep_signed<kVnni>(loadu512(blk + 4 + 64 * z));
    return d;
  }
  static FK_INLINE float d_of(const uint8_t* blk) { return load_f32(blk); }
  static FK_INLINE float dmin_of(const uint8_t*) { return 0.0f; }
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
  template <int MR>
  static FK_NOINLINE void tile(const MatmulArgs& a, int64_t i0, int64_t j0, int nv) {
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
    for (int64_t b = 0; b < nb; ++b) {
      const int64_t off = b * C::kBytes;
      prefetch_next_tile(w, a.row_bytes, off, C::kBytes);
      float dw[kNR];
      uint64_t mins[kNR];
      for (int j = 0; j < kNR; ++j) {
        const uint8_t* blk = w[j] + off;
        dw[j] = C::d_of(blk);
        const typename C::Dec d = C::decode(blk, &mins[j]);
        for (int i = 0; i < MR; ++i) {
          const __m512i s = C::isum(d, y[i][b]);
          acc[i][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_set1_ps(dw[j] * y[i][b].d),
                                      acc[i][j]);
        }
      }
      if constexpr (C::kMins) {
        // Row j's 8 mins as int16 in 128-bit lane j.
        const __m512i mv = _mm512_cvtepu8_epi16(_mm256_set_epi64x(
            static_cast<int64_t>(mins[3]), static_cast<int64_t>(mins[2]),
            static_cast<int64_t>(mins[1]), static_cast<int64_t>(mins[0])));
        alignas(64) float dm[16];
        for (int j = 0; j < kNR; ++j) {
          const float v = C::dmin_of(w[j] + off);
          dm[4 * j] = dm[4 * j + 1] = dm[4 * j + 2] = dm[4 * j + 3] = v;
        }
        const __m512 dmv = _mm512_load_ps(dm);
        for (int i = 0; i < MR; ++i) {
          const __m512i bs = _mm512_broadcast_i32x4(loadu128(y[i][b].bsum32));
          macc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_madd_epi16(mv, bs)),
                                    _mm512_mul_ps(dmv, _mm512_set1_ps(y[i][b].d)), macc[i]);
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
    run_tiles<LegacyInt8<CodecQ4_0, kVnni>>(a, nb, ne, a.act_row_bytes);
  }
  static void q4_1(const MatmulArgs& a, int64_t nb, int64_t ne) {
    run_tiles<LegacyInt8<CodecQ4_1, kVnni>>(a, nb, ne, a.act_row_bytes);
  }
  static void q5_0(const MatmulArgs& a, int64_t nb, int64_t ne) {
    run_tiles<LegacyInt8<CodecQ5_0, kVnni>>(a, nb, ne, a.act_row_bytes);
  }
  static void q8_0(const MatmulArgs& a, int64_t nb, int64_t ne) {
    run_tiles<LegacyInt8<CodecQ8_0<kVnni>, kVnni>>(a, nb, ne, a.act_row_bytes);
  }
  static void q4_k(const MatmulArgs& a, int64_t nb, int64_t ne) {
    run_tiles<KQuantInt8<CodecQ45_K<false, kVnni>>>(a, nb, ne, a.act_row_bytes);
  }
  static void q5_k(const MatmulArgs& a, int64_t nb, int64_t ne) {
    run_tiles<KQuantInt8<CodecQ45_K<true, kVnni>>>(a, nb, ne, a.act_row_bytes);
  }
  static void q6_k(const MatmulArgs& a, int64_t nb, int64_t ne) {
    run_tiles<KQuantInt8<CodecQ6_K<kVnni>>>(a, nb, ne, a.act_row_bytes);
  }
  static void q8_k(const MatmulArgs& a, int64_t nb, int64_t ne) {
    run_tiles<KQuantInt8<CodecQ8_K<kVnni>>>(a, nb, ne, a.act_row_bytes);
  }
};

}  // namespace
}  // namespace fk

#endif  // KERNELS_AVX512_INT8_H_
