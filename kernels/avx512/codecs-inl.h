// The avx512 / avx512_vnni codecs: per weight format, how one block is decoded on each path.
// Adding a format to the AVX-512 variants = its codecs here + its rows in
// kernels/registry.inc (the rows define the entry points, kernels/simd/entry_points-inl.h).
// Textual header for those libraries' .cc files only (see kernels/simd/common-inl.h).
//
//   F32Decoder<F>         f32 path (kernels/simd/f32_path-inl.h): a block's dequantized
//                         weights, 16 at a time, bit for bit the reference dequantizer's:
//                         4- and 5-bit formats through a per-(sub-)block table of their 16 /
//                         32 possible values (vpermps / vpermt2ps, built with the reference
//                         dequantizer's operations), others by int -> float conversion.
//   Int8Codec<F, kVnni>   int8 path, one of two kinds by the activation blocks it reads
//                         (kAct): Q8_0, groups of 4 blocks against ActQ8_0x4
//                         (kernels/avx512/int8_legacy-inl.h); Q8_K, one super-block against
//                         ActQ8_K (kernels/avx512/int8_kquant-inl.h).
//   PanelCodec<F>         int8 path for batches: 16 weight rows of a super-block (32-element
//                         formats: of a block) decoded into a panel (kernels/avx512/int8_kpanel-inl.h); the formats that have
//                         one have *_int8_panel__* registry rows (MIN_M > 1).
// Block fields are read at their offsets in the block structs (kernels/formats.h).
#ifndef KERNELS_AVX512_CODECS_INL_H_
#define KERNELS_AVX512_CODECS_INL_H_

#include "kernels/avx512/act_layouts-inl.h"
#include "kernels/avx512/int8_kpanel-inl.h"
#include "kernels/avx512/int8_kquant-inl.h"
#include "kernels/avx512/int8_legacy-inl.h"
#include "kernels/avx512/vec-inl.h"
#include "kernels/simd/f32_path-inl.h"

namespace fk {
namespace {

template <Format F, bool kVnni>
struct Int8Codec;
template <Format F>
struct PanelCodec;

constexpr float kIota[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

FK_INLINE __m512 iota() { return _mm512_loadu_ps(kIota); }

FK_INLINE __m512 bcast_fp16(const uint8_t* p) { return _mm512_set1_ps(_cvtsh_ss(load_u16(p))); }

// ---- Q4_0: w = d * (q - 8) ---------------------------------------------------------------------

template <>
struct F32Decoder<Format::kQ4_0> {
  static constexpr int kElems = kQK, kBytes = sizeof(BlockQ4_0);
  __m512 lut;  // d * (v - 8), v = 0..15
  __m512i q;   // the 16 quant bytes, one per int32 lane
  FK_INLINE void init(const uint8_t* blk) {
    lut = _mm512_mul_ps(bcast_fp16(blk + offsetof(BlockQ4_0, d)), _mm512_sub_ps(iota(), _mm512_set1_ps(8.0f)));
    q = _mm512_cvtepu8_epi32(loadu128(blk + offsetof(BlockQ4_0, qs)));
  }
  // vpermps reads the low 4 bits of each index: the low nibble as is.
  FK_INLINE __m512 group(int g) const {
    return _mm512_permutexvar_ps(g == 0 ? q : _mm512_srli_epi32(q, 4), lut);
  }
};

template <bool kVnni>
struct Int8Codec<Format::kQ4_0, kVnni>
    : NibbleCodec<BlockQ4_0, offsetof(BlockQ4_0, qs), -1, -1, kVnni> {};

// ---- Q4_1: w = d * q + m -----------------------------------------------------------------------

template <>
struct F32Decoder<Format::kQ4_1> {
  static constexpr int kElems = kQK, kBytes = sizeof(BlockQ4_1);
  __m512 lut;  // d * v + m
  __m512i q;
  FK_INLINE void init(const uint8_t* blk) {
    lut = _mm512_add_ps(_mm512_mul_ps(bcast_fp16(blk + offsetof(BlockQ4_1, d)), iota()),
                        bcast_fp16(blk + offsetof(BlockQ4_1, m)));
    q = _mm512_cvtepu8_epi32(loadu128(blk + offsetof(BlockQ4_1, qs)));
  }
  FK_INLINE __m512 group(int g) const {
    return _mm512_permutexvar_ps(g == 0 ? q : _mm512_srli_epi32(q, 4), lut);
  }
};

template <bool kVnni>
struct Int8Codec<Format::kQ4_1, kVnni>
    : NibbleCodec<BlockQ4_1, offsetof(BlockQ4_1, qs), offsetof(BlockQ4_1, m), -1, kVnni> {};

// ---- Q5_0: w = d * (q - 16), bit 4 of q from qh -------------------------------------------------

// Q5_0 and Q5_1 on the f32 path: the block's 32 values as two tables of 16 (v = 0..15:
// bit 4 clear / set), built with the reference's operations (Q5_0: d * (q - 16); Q5_1:
// d * q + m).
template <class Block, bool kMin>
struct DecQ5 {
  static constexpr int kElems = kQK, kBytes = sizeof(Block);
  __m512 lut0, lut1;
  __m512i q;
  uint32_t qh;
  FK_INLINE void init(const uint8_t* blk) {
    const __m512 d = bcast_fp16(blk + offsetof(Block, d));
    if constexpr (kMin) {
      const __m512 m = bcast_fp16(blk + offsetof(Block, m));
      lut0 = _mm512_add_ps(_mm512_mul_ps(d, iota()), m);
      lut1 = _mm512_add_ps(_mm512_mul_ps(d, _mm512_add_ps(iota(), _mm512_set1_ps(16.0f))), m);
    } else {
      lut0 = _mm512_mul_ps(d, _mm512_sub_ps(iota(), _mm512_set1_ps(16.0f)));
      lut1 = _mm512_mul_ps(d, iota());
    }
    qh = load_u32(blk + offsetof(Block, qh));
    q = _mm512_cvtepu8_epi32(loadu128(blk + offsetof(Block, qs)));
  }
  // Index bit 4 (vpermt2ps reads 5 bits) is the element's bit of qh.
  FK_INLINE __m512 group(int g) const {
    const __m512i nib = g == 0 ? _mm512_and_si512(q, _mm512_set1_epi32(15)) : _mm512_srli_epi32(q, 4);
    const __mmask16 h = static_cast<__mmask16>(g == 0 ? qh & 0xFFFF : qh >> 16);
    const __m512i idx = _mm512_mask_or_epi32(nib, h, nib, _mm512_set1_epi32(16));
    return _mm512_permutex2var_ps(lut0, idx, lut1);
  }
};

template <>
struct F32Decoder<Format::kQ5_0> : DecQ5<BlockQ5_0, false> {};

template <bool kVnni>
struct Int8Codec<Format::kQ5_0, kVnni>
    : NibbleCodec<BlockQ5_0, offsetof(BlockQ5_0, qs), -1, offsetof(BlockQ5_0, qh), kVnni> {};

// ---- Q5_1: w = d * q + m, bit 4 of q from qh -------------------------------------------------

template <>
struct F32Decoder<Format::kQ5_1> : DecQ5<BlockQ5_1, true> {};

// The activations are packed as for Q4_1 (aux = da * sum(y) per block, no offset).
template <bool kVnni>
struct Int8Codec<Format::kQ5_1, kVnni>
    : NibbleCodec<BlockQ5_1, offsetof(BlockQ5_1, qs), offsetof(BlockQ5_1, m),
                  offsetof(BlockQ5_1, qh), kVnni> {};

// ---- Q8_0: w = d * q, q signed -------------------------------------------------------------------

template <>
struct F32Decoder<Format::kQ8_0> {
  static constexpr int kElems = kQK, kBytes = sizeof(BlockQ8_0);
  __m512 d;
  const uint8_t* qs;
  FK_INLINE void init(const uint8_t* blk) {
    d = bcast_fp16(blk + offsetof(BlockQ8_0, d));
    qs = blk + offsetof(BlockQ8_0, qs);
  }
  FK_INLINE __m512 group(int g) const {
    return _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(loadu128(qs + 16 * g))), d);
  }
};

// Q8_0: w = d q, q signed. The first halves of the 4 blocks' quants (elements 0..15 of each
// block) and the second halves (16..31) are gathered from the group's bytes [0, 64) and
// [64, 128); the last 8 bytes [128, 136) come from an 8-byte load.
template <bool kVnni>
struct Int8Codec<Format::kQ8_0, kVnni> {
  static constexpr Format kAct = Format::kQ8_0;
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
    for (int t = 0; t < 32; ++t) w.v[t] = word(kBlockBytes * (t / 4 % 4) + offsetof(BlockQ8_0, d));
    return w;
  }
  static constexpr Words kA = halves(offsetof(BlockQ8_0, qs));
  static constexpr Words kB = halves(offsetof(BlockQ8_0, qs) + kQK / 2);
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

  static FK_INLINE __m512i isum(const Dec& w, const ActQ8_0x4& y) {
    // VNNI: aux = -128 * sum(y) per lane, the bias of (w + 128).
    const __m512i init = kVnni ? load512(y.aux) : _mm512_setzero_si512();
    return dot_signed<kVnni>(dot_signed<kVnni>(init, w.a, load512(y.y)), w.b, load512(y.y + 64));
  }
};

// ---- Q4_K / Q5_K: w = (d * sc_s) * q - dmin * m_s per sub-block of 32 ------------------------------
// (Q5_K: a fifth bit per weight in qh.)

// f32 path: the value tables of the 8 sub-blocks (Q5_K: two halves each) are built once per
// super-block on the stack.
template <bool kFive>
struct DecQ45_K {
  using Block = std::conditional_t<kFive, BlockQ5_K, BlockQ4_K>;
  static constexpr int kElems = kQK_K;
  static constexpr int kBytes = sizeof(Block);
  static constexpr int kTables = kFive ? 2 : 1;
  alignas(64) float lut[8][kTables][16];
  const uint8_t* qs;
  const uint8_t* qh;
  FK_INLINE void init(const uint8_t* blk) {
    uint64_t sc, mn;
    unpack_k4_scales(blk + offsetof(Block, scales), &sc, &mn);
    const float d = _cvtsh_ss(load_u16(blk + offsetof(Block, d)));
    const float dmin = _cvtsh_ss(load_u16(blk + offsetof(Block, dmin)));
    for (int s = 0; s < 8; ++s) {
      const __m512 dl = _mm512_set1_ps(d * static_cast<float>((sc >> (8 * s)) & 0xFF));
      const __m512 ml = _mm512_set1_ps(dmin * static_cast<float>((mn >> (8 * s)) & 0xFF));
      _mm512_store_ps(lut[s][0], _mm512_sub_ps(_mm512_mul_ps(dl, iota()), ml));
      if constexpr (kFive) {
        _mm512_store_ps(lut[s][1], _mm512_sub_ps(
                                       _mm512_mul_ps(dl, _mm512_add_ps(iota(), _mm512_set1_ps(16.0f))), ml));
      }
    }
    if constexpr (kFive) qh = blk + offsetof(BlockQ5_K, qh);
    qs = blk + offsetof(Block, qs);
  }
  // Group g: sub-block s = g / 2, elements 32 s + 16 h .. + 15 (h = g % 2); sub-blocks 2c
  // and 2c+1 are the low / high nibbles of qs[32 c .. 32 c + 31]; Q5_K's fifth bit of
  // element l of sub-block s is bit s of qh[l].
  FK_INLINE __m512 group(int g) const {
    const int s = g >> 1, h = g & 1;
    const __m512i v = _mm512_cvtepu8_epi32(loadu128(qs + 32 * (s >> 1) + 16 * h));
    const __m512i nib = (s & 1) ? _mm512_srli_epi32(v, 4) : v;
    if constexpr (kFive) {
      const __mmask16 bit = _mm_test_epi8_mask(loadu128(qh + 16 * h),
                                               _mm_set1_epi8(static_cast<char>(1 << s)));
      const __m512i idx = _mm512_mask_or_epi32(_mm512_and_si512(nib, _mm512_set1_epi32(15)), bit,
                                               nib, _mm512_set1_epi32(16));
      return _mm512_permutex2var_ps(_mm512_load_ps(lut[s][0]), idx, _mm512_load_ps(lut[s][1]));
    } else {
      return _mm512_permutexvar_ps(nib, _mm512_load_ps(lut[s][0]));
    }
  }
};

// int8 path.
template <bool kFive, bool kVnni>
struct Int8Q45_K {
  using Block = std::conditional_t<kFive, BlockQ5_K, BlockQ4_K>;
  static constexpr Format kAct = Format::kQ8_K;
  static constexpr int kBytes = sizeof(Block);
  static constexpr int kQs = offsetof(Block, qs);
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
    for (int j = 0; j < kNR; ++j)
      unpack_k4_scales(blk[j] + offsetof(Block, scales), &h->sc[j], &mn[j]);
    __m512i m = _mm512_set1_epi64(static_cast<int64_t>(mn[0]));
    m = _mm512_mask_set1_epi64(m, 0x0C, static_cast<int64_t>(mn[1]));
    m = _mm512_mask_set1_epi64(m, 0x30, static_cast<int64_t>(mn[2]));
    m = _mm512_mask_set1_epi64(m, 0xC0, static_cast<int64_t>(mn[3]));
    h->mins = _mm512_shuffle_epi8(m, load512(&kMinsPattern));
    // d and dmin are adjacent fp16s.
    static_assert(offsetof(Block, dmin) == offsetof(Block, d) + 2, "d, dmin adjacent");
    const uint8_t* dp[kNR];
    for (int j = 0; j < kNR; ++j) dp[j] = blk[j] + offsetof(Block, d);
    h->d = fp16_pairs(dp);
  }

  // sum_s m_s * bsum32_s: 4 int32 lanes per weight row.
  static FK_INLINE __m512i imin(const KHead& h, const ActQ8_K& y) {
    return _mm512_madd_epi16(h.mins, _mm512_broadcast_i32x4(loadu128(y.bsum32)));
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
      const __m512i qh = in_reg(_mm512_broadcast_i64x4(loadu256(blk + offsetof(BlockQ5_K, qh))));
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

struct alignas(64) PanelQ45 {
  int32_t q[64][16];    // vector 8 t + c: slot t (sub-block nibble_slot(t)), bytes 4c .. 4c+3
  int32_t sc[8][16];    // slot t: the sub-block's 6-bit scale (without VNNI)
  float scf[8][16];     // the same as float (VNNI)
  int32_t mins[4][16];  // p: int16 pair (m_2p, m_2p+1), sub-blocks in element order
  float d[16], dmin[16];
};

template <bool kFive>
struct PanelQ45_K {
  using Block = std::conditional_t<kFive, BlockQ5_K, BlockQ4_K>;
  using Panel = PanelQ45;
  using Act = ActQ8_K;
  static constexpr int kBlockBytes = sizeof(Block);
  static constexpr bool kMins = true;
  static constexpr bool kWide = true;         // with VNNI: block_wide (kernels/avx512/int8_kpanel-inl.h)
  static constexpr int kSubOffsets = 0;  // unsigned quants: no offsets
  // Block dwords: d|dmin, 3 of scales, then (Q5_K) 8 of qh, then qs (32 dwords).
  static_assert(offsetof(Block, d) % 4 == 0 && offsetof(Block, dmin) == offsetof(Block, d) + 2 &&
                    offsetof(Block, scales) % 4 == 0 && offsetof(Block, qs) % 4 == 0,
                "dword-aligned fields");
  static constexpr int kDDword = offsetof(Block, d) / 4;
  static constexpr int kScDword = offsetof(Block, scales) / 4;
  static constexpr int kQhDword = kFive ? offsetof(BlockQ5_K, qh) / 4 : 0;
  static constexpr int kQsDword = offsetof(Block, qs) / 4;
  static constexpr int kThirdOff = kBlockBytes - 64;  // a last transpose ending at the block's end

  static FK_INLINE void build(const uint8_t* const (&w)[kPanelRows], int64_t off, Panel* p) {
    alignas(64) __m512i t[48];  // dwords 0..15, 16..31, and kThirdOff/4 .. +15
    transpose_rows(w, off, t);
    transpose_rows(w, off + 64, t + 16);
    transpose_rows(w, off + kThirdOff, t + 32);
    auto dword = [&](int v) -> __m512i {  // block dword v, lane r = row r
      return v < 32 ? load512(&t[v]) : load512(&t[32 + v - kThirdOff / 4]);
    };
    const __m512i h0 = dword(kDDword), s0 = dword(kScDword), s1 = dword(kScDword + 1),
                  s2 = dword(kScDword + 2);
    _mm512_store_ps(p->d, fp16_low_words(h0));
    _mm512_store_ps(p->dmin, fp16_low_words(_mm512_srli_epi32(h0, 16)));
    // The 6-bit scales and mins, as in unpack_k4_scales, for 16 rows at once.
    const __m512i m6 = _mm512_set1_epi8(0x3F), m4 = _mm512_set1_epi8(0x0F),
                  m30 = _mm512_set1_epi8(0x30);
    const __m512i sc_lo = _mm512_and_si512(s0, m6), mn_lo = _mm512_and_si512(s1, m6);
    const __m512i sc_hi = _mm512_ternarylogic_epi32(_mm512_and_si512(s2, m4), _mm512_srli_epi32(s0, 2),
                                                    m30, 0xF8);  // A | (B & C)
    const __m512i mn_hi = _mm512_ternarylogic_epi32(
        _mm512_and_si512(_mm512_srli_epi32(s2, 4), m4), _mm512_srli_epi32(s1, 2), m30, 0xF8);
    static constexpr Bytes kByte[4] = {dword_pattern(0, -1, -1, -1), dword_pattern(1, -1, -1, -1),
                                       dword_pattern(2, -1, -1, -1), dword_pattern(3, -1, -1, -1)};
    static constexpr Bytes kPair[2] = {dword_pattern(0, -1, 1, -1), dword_pattern(2, -1, 3, -1)};
    for (int t8 = 0; t8 < 8; ++t8) {
      const int s = nibble_slot(t8);  // self-inverse: the sub-block in slot t8
      const __m512i sc = _mm512_shuffle_epi8(s < 4 ? sc_lo : sc_hi, load512(&kByte[s % 4]));
      _mm512_store_si512(p->sc[t8], sc);
      _mm512_store_ps(p->scf[t8], _mm512_cvtepi32_ps(sc));
    }
    for (int q = 0; q < 4; ++q)
      _mm512_store_si512(p->mins[q], _mm512_shuffle_epi8(q < 2 ? mn_lo : mn_hi, load512(&kPair[q % 2])));
    // Quants. qs dword u = 8 pp + c: bytes 32 pp + 4c .. +3; low nibbles are elements of
    // sub-block 2 pp, high nibbles of 2 pp + 1 (positions 4c .. 4c+3 within them).
    const __m512i b4 = _mm512_set1_epi8(0x10);
    for (int u = 0; u < 32; ++u) {
      const int pp = u / 8, c = u % 8;
      const __m512i qs = dword(kQsDword + u);
      __m512i lo = _mm512_and_si512(qs, m4);
      __m512i hi = _mm512_and_si512(_mm512_srli_epi16(qs, 4), m4);
      if constexpr (kFive) {
        // Bit s of qh byte l is bit 4 of element l of sub-block s.
        const __m512i qh = dword(kQhDword + c);
        const int s0b = 2 * pp, s1b = 2 * pp + 1;
        const __m512i f0 = s0b <= 4 ? _mm512_slli_epi16(qh, 4 - s0b) : _mm512_srli_epi16(qh, s0b - 4);
        const __m512i f1 = s1b <= 4 ? _mm512_slli_epi16(qh, 4 - s1b) : _mm512_srli_epi16(qh, s1b - 4);
        lo = _mm512_ternarylogic_epi32(f0, b4, lo, 0xEA);  // (A & B) | C
        hi = _mm512_ternarylogic_epi32(f1, b4, hi, 0xEA);
      }
      _mm512_store_si512(p->q[8 * nibble_slot(2 * pp) + c], lo);
      _mm512_store_si512(p->q[8 * nibble_slot(2 * pp + 1) + c], hi);
    }
  }

  // VNNI, NP panels against MR activation rows (kernels/avx512/int8_kpanel-inl.h): per
  // sub-block the exact int32 dot (<= 32 * 31 * 127 = 125984) times the float scale (<= 63:
  // below 2^24, exact), summed by FMAs into tf (exact below 2^24); the mins sums ms as in
  // block.
  template <int MR, int NP>
  static FK_INLINE void block_wide(const Panel* const (&p)[NP], const Act* const (&y)[MR],
                                   const int32_t* const (&o)[MR], __m512 (&tf)[NP][MR], __m512i (&ms)[NP][MR]) {
    for (int n = 0; n < NP; ++n)
      for (int i = 0; i < MR; ++i) tf[n][i] = _mm512_setzero_ps();
    for (int t8 = 0; t8 < 8; ++t8) {
      const int gs[4] = {8 * t8, 8 * t8 + 2, 8 * t8 + 4, 8 * t8 + 6};
      wide_sub_block<false>(p, y, o, t8, gs, tf);
    }
    for (int n = 0; n < NP; ++n)
      for (int i = 0; i < MR; ++i) ms[n][i] = _mm512_setzero_si512();
    for (int q = 0; q < 4; ++q) {
      __m512i mn[NP];
      for (int n = 0; n < NP; ++n) mn[n] = load512(p[n]->mins[q]);
      for (int i = 0; i < MR; ++i) {
        const __m512i yb = bcast32(y[i]->bsum32 + 2 * q);
        for (int n = 0; n < NP; ++n) ms[n][i] = _mm512_dpwssd_epi32(ms[n][i], mn[n], yb);
      }
    }
  }

  // MR activation rows against one panel super-block: integer totals and mins sums.
  template <int MR, bool kVnni>
  static FK_INLINE void block(const Panel& p, const Act* const (&y)[MR], __m512i (&tot)[MR],
                              __m512i (&ms)[MR]) {
    for (int i = 0; i < MR; ++i) tot[i] = _mm512_setzero_si512();
    for (int t8 = 0; t8 < 8; ++t8) {
      __m512i is[MR];
      for (int i = 0; i < MR; ++i) is[i] = _mm512_setzero_si512();
      for (int c = 0; c < 8; c += 2) {
        const __m512i w0 = load512(p.q[8 * t8 + c]), w1 = load512(p.q[8 * t8 + c + 1]);
        for (int i = 0; i < MR; ++i)
          is[i] = dot2_u8s8<kVnni>(is[i], w0, bcast32(y[i]->y + 32 * t8 + 4 * c), w1,
                                   bcast32(y[i]->y + 32 * t8 + 4 * c + 4));
      }
      const __m512i sc = load512(p.sc[t8]);
      for (int i = 0; i < MR; ++i) tot[i] = _mm512_add_epi32(tot[i], _mm512_mullo_epi32(is[i], sc));
    }
    for (int i = 0; i < MR; ++i) ms[i] = _mm512_setzero_si512();
    for (int q = 0; q < 4; ++q) {
      const __m512i mn = load512(p.mins[q]);
      for (int i = 0; i < MR; ++i) ms[i] = panel_dpwssd<kVnni>(ms[i], mn, bcast32(y[i]->bsum32 + 2 * q));
    }
  }
};

template <>
struct F32Decoder<Format::kQ4_K> : DecQ45_K<false> {};
template <bool kVnni>
struct Int8Codec<Format::kQ4_K, kVnni> : Int8Q45_K<false, kVnni> {};
template <>
struct PanelCodec<Format::kQ4_K> : PanelQ45_K<false> {};
template <>
struct F32Decoder<Format::kQ5_K> : DecQ45_K<true> {};
template <bool kVnni>
struct Int8Codec<Format::kQ5_K, kVnni> : Int8Q45_K<true, kVnni> {};
template <>
struct PanelCodec<Format::kQ5_K> : PanelQ45_K<true> {};

// The integer sum of one super-block whose 256 unsigned quants sit in q[0..3] (64 bytes each,
// in the activations' order) with 16 sub-blocks of 16 and int16 scales in s, added to init:
// VNNI: vpdpbusd per 4 bytes, packed to int16 pairs and multiplied by the scale pairs s[0],
// s[1] (vpdpwssd); otherwise maddubs per pair, madd by one scale vector s[z] per q[z].
// Q6_K and Q2_K / Q3_K share it.
template <bool kVnni>
FK_INLINE __m512i dot_sub16(__m512i init, const __m512i (&q)[4], const __m512i (&s)[4],
                            const int8_t* y) {
  if constexpr (kVnni) {
    const __m512i z = _mm512_setzero_si512();
    const __m512i p0 = _mm512_packs_epi32(_mm512_dpbusd_epi32(z, q[0], load512(y)),
                                          _mm512_dpbusd_epi32(z, q[1], load512(y + 64)));
    const __m512i p1 = _mm512_packs_epi32(_mm512_dpbusd_epi32(z, q[2], load512(y + 128)),
                                          _mm512_dpbusd_epi32(z, q[3], load512(y + 192)));
    return _mm512_dpwssd_epi32(_mm512_dpwssd_epi32(init, p0, s[0]), p1, s[1]);
  } else {
    __m512i acc = init;
    for (int k = 0; k < 4; ++k)
      acc = _mm512_add_epi32(
          acc, _mm512_madd_epi16(_mm512_maddubs_epi16(q[k], load512(y + 64 * k)), s[k]));
    return acc;
  }
}

// ---- Q6_K: w = (d * sc_s) * (q - 32) per sub-block of 16, q 6-bit, int8 scales --------------------

// f32 path: q converted to float exactly.
template <>
struct F32Decoder<Format::kQ6_K> {
  static constexpr int kElems = kQK_K, kBytes = sizeof(BlockQ6_K);
  alignas(64) float ds[16];
  const uint8_t* ql;
  const uint8_t* qh;
  FK_INLINE void init(const uint8_t* blk) {
    ql = blk + offsetof(BlockQ6_K, ql);
    qh = blk + offsetof(BlockQ6_K, qh);
    const __m512 d = bcast_fp16(blk + offsetof(BlockQ6_K, d));
    const __m512 sc =
        _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(loadu128(blk + offsetof(BlockQ6_K, scales))));
    _mm512_store_ps(ds, _mm512_mul_ps(d, sc));
  }
  // Element e = 128 h + 32 r + l: low 4 bits are nibble r / 2 of ql[64 h + 32 (r % 2) + l],
  // high 2 bits are bits 2r, 2r+1 of qh[32 h + l]. Group g is sub-block g.
  FK_INLINE __m512 group(int g) const {
    const int h = g >> 3, r = (g >> 1) & 3, l = 16 * (g & 1);
    const __m512i lo = _mm512_and_si512(
        _mm512_srli_epi32(_mm512_cvtepu8_epi32(loadu128(ql + 64 * h + 32 * (r & 1) + l)), 4 * (r >> 1)),
        _mm512_set1_epi32(15));
    const __m512i hi = _mm512_and_si512(
        _mm512_srli_epi32(_mm512_cvtepu8_epi32(loadu128(qh + 32 * h + l)), 2 * r), _mm512_set1_epi32(3));
    const __m512i q = _mm512_sub_epi32(_mm512_or_si512(lo, _mm512_slli_epi32(hi, 4)),
                                       _mm512_set1_epi32(32));
    return _mm512_mul_ps(_mm512_set1_ps(ds[g]), _mm512_cvtepi32_ps(q));
  }
};

// int8 path.
template <bool kVnni>
struct Int8Codec<Format::kQ6_K, kVnni> {
  static constexpr Format kAct = Format::kQ8_K;
  static constexpr int kBytes = sizeof(BlockQ6_K);
  static constexpr int kQl = offsetof(BlockQ6_K, ql), kQh = offsetof(BlockQ6_K, qh);
  static constexpr int kSc = offsetof(BlockQ6_K, scales), kD = offsetof(BlockQ6_K, d);
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
      const __m512i ql = in_reg(loadu512(blk + kQl + 64 * h));
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
    return dot_sub16<kVnni>(init, w.q, w.s, y.y);
  }
};

struct alignas(64) PanelQ6 {
  int32_t q[64][16];    // vector g: elements 4g .. 4g+3 (element order), unsigned 6-bit
  int32_t sc[16][16];   // sub-block s: the signed scale (without VNNI)
  float scf[16][16];    // the same as float (VNNI)
  int32_t sc2[8][16];   // p: int16 pair (2 sc_2p, 2 sc_2p+1) (without VNNI)
  float d[16];
};

template <>
struct PanelCodec<Format::kQ6_K> {
  using Panel = PanelQ6;
  using Act = ActQ8_K;
  static constexpr int kBlockBytes = sizeof(BlockQ6_K);
  static constexpr bool kMins = false;
  static constexpr bool kWide = true;        // with VNNI: block_wide (kernels/avx512/int8_kpanel-inl.h)
  static constexpr int kSubOffsets = 16;     // -32 * bsum16_s, s = 0..15
  static constexpr int kQl = offsetof(BlockQ6_K, ql), kQh = offsetof(BlockQ6_K, qh);
  static constexpr int kSc = offsetof(BlockQ6_K, scales), kD = offsetof(BlockQ6_K, d);

  static FK_INLINE void build(const uint8_t* const (&w)[kPanelRows], int64_t off, Panel* p) {
    alignas(64) __m512i t[48];  // ql dwords 0..31, qh dwords 0..15
    transpose_rows(w, off + kQl, t);
    transpose_rows(w, off + kQl + 64, t + 16);
    transpose_rows(w, off + kQh, t + 32);
    // Scales and d: 16 rows x 4 dwords (+ d), gathered with scalar loads.
    alignas(64) int32_t sw[4][16];
    alignas(64) int32_t dw[16];
    for (int r = 0; r < kPanelRows; ++r) {
      for (int v = 0; v < 4; ++v) sw[v][r] = static_cast<int32_t>(load_u32(w[r] + off + kSc + 4 * v));
      dw[r] = load_u16(w[r] + off + kD);
    }
    _mm512_store_ps(p->d, fp16_low_words(load512(dw)));
    for (int s = 0; s < 16; ++s) {
      const __m512i v = load512(sw[s / 4]);
      const __m512i sc = _mm512_srai_epi32(_mm512_slli_epi32(v, 24 - 8 * (s % 4)), 24);
      _mm512_store_si512(p->sc[s], sc);
      _mm512_store_ps(p->scf[s], _mm512_cvtepi32_ps(sc));
    }
    static constexpr Bytes kPair[2] = {dword_pattern(-1, 0, -1, 1), dword_pattern(-1, 2, -1, 3)};
    for (int q = 0; q < 8; ++q) {
      const __m512i v = _mm512_srai_epi16(_mm512_shuffle_epi8(load512(sw[q / 2]), load512(&kPair[q % 2])), 8);
      _mm512_store_si512(p->sc2[q], _mm512_add_epi16(v, v));
    }
    // Element 128 h + 32 r + l: low 4 bits = nibble r / 2 of ql[64 h + 32 (r % 2) + l], high
    // 2 bits = bits 2r, 2r + 1 of qh[32 h + l]. Vector g = 32 h + 8 r + c holds l = 4c .. 4c+3.
    const __m512i m4 = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30);
    for (int h = 0; h < 2; ++h) {
      for (int c = 0; c < 8; ++c) {
        const __m512i qh = load512(&t[32 + 8 * h + c]);
        for (int r = 0; r < 4; ++r) {
          const __m512i ql = load512(&t[16 * h + 8 * (r % 2) + c]);
          const __m512i nib = r < 2 ? _mm512_and_si512(ql, m4) : _mm512_and_si512(_mm512_srli_epi16(ql, 4), m4);
          const __m512i hb = 2 * r <= 4 ? _mm512_slli_epi16(qh, 4 - 2 * r) : _mm512_srli_epi16(qh, 2 * r - 4);
          _mm512_store_si512(p->q[32 * h + 8 * r + c], _mm512_ternarylogic_epi32(hb, m30, nib, 0xEA));
        }
      }
    }
  }

  // VNNI: the -32 offset of sub-block s, -32 * bsum16_s = 2 * nbsum16_s, where its dot starts.
  static FK_INLINE void sub_offsets(const Act& y, int32_t* o) {
    for (int s = 0; s < 16; ++s) o[s] = 2 * y.nbsum16[s];
  }

  // VNNI, NP panels against MR activation rows (kernels/avx512/int8_kpanel-inl.h): per
  // sub-block the exact dot sum (q - 32) y (|.| <= 16 * 32 * 127 = 65024, started from the
  // offset) times the float scale (|.| <= 128: below 2^24, exact), summed by FMAs into tf
  // (exact below 2^24).
  template <int MR, int NP>
  static FK_INLINE void block_wide(const Panel* const (&p)[NP], const Act* const (&y)[MR],
                                   const int32_t* const (&o)[MR], __m512 (&tf)[NP][MR], __m512i (&)[NP][MR]) {
    for (int n = 0; n < NP; ++n)
      for (int i = 0; i < MR; ++i) tf[n][i] = _mm512_setzero_ps();
    for (int s = 0; s < 16; ++s) {
      const int gs[2] = {4 * s, 4 * s + 2};
      wide_sub_block<true>(p, y, o, s, gs, tf);
    }
  }

  template <int MR, bool kVnni>
  static FK_INLINE void block(const Panel& p, const Act* const (&y)[MR], __m512i (&tot)[MR],
                              __m512i (&)[MR]) {
    for (int i = 0; i < MR; ++i) tot[i] = _mm512_setzero_si512();
    for (int s = 0; s < 16; ++s) {
      __m512i is[MR];
      for (int i = 0; i < MR; ++i) is[i] = _mm512_setzero_si512();
      for (int c = 0; c < 4; c += 2) {
        const __m512i w0 = load512(p.q[4 * s + c]), w1 = load512(p.q[4 * s + c + 1]);
        for (int i = 0; i < MR; ++i)
          is[i] = dot2_u8s8<kVnni>(is[i], w0, bcast32(y[i]->y + 16 * s + 4 * c), w1,
                                   bcast32(y[i]->y + 16 * s + 4 * c + 4));
      }
      const __m512i sc = load512(p.sc[s]);
      for (int i = 0; i < MR; ++i) tot[i] = _mm512_add_epi32(tot[i], _mm512_mullo_epi32(is[i], sc));
    }
    // The -32 offset: sum_s (2 sc_s) (-16 bsum16_s).
    for (int q = 0; q < 8; ++q) {
      const __m512i sc2 = load512(p.sc2[q]);
      for (int i = 0; i < MR; ++i) tot[i] = panel_dpwssd<kVnni>(tot[i], sc2, bcast32(y[i]->nbsum16 + 2 * q));
    }
  }
};

// ---- Q8_K: w = d * q, q signed, float d ------------------------------------------------------------

template <>
struct F32Decoder<Format::kQ8_K> {
  static constexpr int kElems = kQK_K, kBytes = sizeof(BlockQ8_K);
  __m512 d;
  const uint8_t* qs;
  FK_INLINE void init(const uint8_t* blk) {
    d = _mm512_set1_ps(load_f32(blk + offsetof(BlockQ8_K, d)));
    qs = blk + offsetof(BlockQ8_K, qs);
  }
  FK_INLINE __m512 group(int g) const {
    return _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(loadu128(qs + 16 * g))));
  }
};

// int8 path.
template <bool kVnni>
struct Int8Codec<Format::kQ8_K, kVnni> {
  static constexpr Format kAct = Format::kQ8_K;
  static constexpr int kBytes = sizeof(BlockQ8_K);
  static constexpr int kD = offsetof(BlockQ8_K, d), kQs = offsetof(BlockQ8_K, qs);
  static constexpr bool kMins = false;
  struct Dec {
    SignedW q[4];
  };
  static FK_INLINE void head(const uint8_t* const (&blk)[kNR], KHead* h) {
    h->d = _mm256_setr_ps(load_f32(blk[0] + kD), 0.0f, load_f32(blk[1] + kD), 0.0f,
                          load_f32(blk[2] + kD), 0.0f, load_f32(blk[3] + kD), 0.0f);
  }
  static FK_INLINE Dec decode(const uint8_t* blk, const KHead&, int) {
    Dec d;
    for (int z = 0; z < 4; ++z) d.q[z] = prep_signed<kVnni>(loadu512(blk + kQs + 64 * z));
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

// Batches, with VNNI only: 16 weight rows of a super-block in a panel (kernels/avx512/
// int8_kpanel-inl.h), vector g = bytes 4g .. 4g + 3 of each row's qs (element order, as
// act_q8_k__avx512 packs the activations), stored as q + 128 for vpdpbusd; each total starts
// from -128 * sum(y), so it is exactly sum q y (|.| <= 256 * 127 * 127 < 2^23), scaled once
// per super-block. (Without VNNI, vpmaddubsw pairs of q + 128 could saturate: no panel there.)
struct alignas(64) PanelQ8K {
  int32_t q[64][16];  // q + 128
  float d[16];
};

struct PanelQ8_K {
  using Panel = PanelQ8K;
  using Act = ActQ8_K;
  static constexpr int kBlockBytes = sizeof(BlockQ8_K);
  static constexpr bool kMins = false;
  static constexpr bool kWide = false;  // see kernels/avx512/int8_kpanel-inl.h
  static constexpr int kD = offsetof(BlockQ8_K, d), kQs = offsetof(BlockQ8_K, qs);

  static FK_INLINE void build(const uint8_t* const (&w)[kPanelRows], int64_t off, Panel* p) {
    alignas(64) __m512i t[16];
    const __m512i bias = _mm512_set1_epi8(static_cast<char>(0x80));
    for (int c = 0; c < 4; ++c) {
      transpose_rows(w, off + kQs + 64 * c, t);
      for (int u = 0; u < 16; ++u) _mm512_store_si512(p->q[16 * c + u], _mm512_xor_si512(load512(&t[u]), bias));
    }
    for (int r = 0; r < kPanelRows; ++r) p->d[r] = load_f32(w[r] + off + kD);
  }

  template <int MR, bool kVnni>
  static FK_INLINE void block(const Panel& p, const Act* const (&y)[MR], __m512i (&tot)[MR], __m512i (&)[MR]) {
    static_assert(kVnni, "Q8_K panels are VNNI only (see above)");
    for (int i = 0; i < MR; ++i) tot[i] = _mm512_set1_epi32(-128 * y[i]->sum);
    for (int g = 0; g < 64; g += 2) {
      const __m512i w0 = load512(p.q[g]), w1 = load512(p.q[g + 1]);
      for (int i = 0; i < MR; ++i)
        tot[i] = dot2_u8s8<true>(tot[i], w0, bcast32(y[i]->y + 4 * g), w1, bcast32(y[i]->y + 4 * g + 4));
    }
  }
};
template <>
struct PanelCodec<Format::kQ8_K> : PanelQ8_K {};

// ---- Q2_K / Q3_K: 2-bit fields (+ Q3_K's third bit in hmask), 16 sub-blocks of 16 ------------------
// Element e = 128 h + 32 r + l: bits 2r, 2r+1 of qs[32 h + l]; Q3_K's third bit is bit
// 4h + r of hmask[l].

// f32 path. Group g is sub-block g: h = g / 8, r = (g / 2) % 4, l = 16 (g % 2) .. + 15.
// Q2_K: (d * sc) * q - dmin * m; Q3_K: (d * (sc - 32)) * (q - 4 [bit clear]); both with
// the reference's operations and roundings (products and difference rounded separately).
template <bool kThree>
struct DecQ23_K {
  using Block = std::conditional_t<kThree, BlockQ3_K, BlockQ2_K>;
  static constexpr int kElems = kQK_K, kBytes = sizeof(Block);
  alignas(64) float dl[16];
  alignas(64) float ml[16];  // Q2_K only
  const uint8_t* qs;
  const uint8_t* hm;
  FK_INLINE void init(const uint8_t* blk) {
    const __m512 d = bcast_fp16(blk + offsetof(Block, d));
    if constexpr (kThree) {
      const __m512i s = _mm512_sub_epi32(_mm512_cvtepu8_epi32(unpack_k3_scales16(blk + offsetof(BlockQ3_K, scales))),
                                         _mm512_set1_epi32(32));
      _mm512_store_ps(dl, _mm512_mul_ps(d, _mm512_cvtepi32_ps(s)));
      hm = blk + offsetof(BlockQ3_K, hmask);
    } else {
      const __m512i sc = _mm512_cvtepu8_epi32(loadu128(blk + offsetof(BlockQ2_K, scales)));
      const __m512 dmin = bcast_fp16(blk + offsetof(BlockQ2_K, dmin));
      _mm512_store_ps(dl, _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_and_si512(sc, _mm512_set1_epi32(15)))));
      _mm512_store_ps(ml, _mm512_mul_ps(dmin, _mm512_cvtepi32_ps(_mm512_srli_epi32(sc, 4))));
    }
    qs = blk + offsetof(Block, qs);
  }
  FK_INLINE __m512 group(int g) const {
    const int h = g >> 3, r = (g >> 1) & 3, l = 16 * (g & 1);
    __m512i q = _mm512_and_si512(
        _mm512_srli_epi32(_mm512_cvtepu8_epi32(loadu128(qs + 32 * h + l)), 2 * r), _mm512_set1_epi32(3));
    if constexpr (kThree) {
      // q - 4 where the bit is clear.
      const __mmask16 set = _mm_test_epi8_mask(loadu128(hm + l),
                                               _mm_set1_epi8(static_cast<char>(1 << (4 * h + r))));
      q = _mm512_mask_sub_epi32(q, static_cast<__mmask16>(~set), q, _mm512_set1_epi32(4));
      return _mm512_mul_ps(_mm512_set1_ps(dl[g]), _mm512_cvtepi32_ps(q));
    } else {
      return _mm512_sub_ps(_mm512_mul_ps(_mm512_set1_ps(dl[g]), _mm512_cvtepi32_ps(q)),
                           _mm512_set1_ps(ml[g]));
    }
  }
};

// int8 path: 4 vectors of 64 unsigned quants q[z] = the 2-bit fields z of the block's 64 qs
// bytes (bytes 0..31: elements 32 z .., bytes 32..63: elements 128 + 32 z ..), against the
// activations in crumb order (ActQ8_K); the sub-block scales picked per word (SubK2). Q2_K:
// scales 0..15 and mins (imin); Q3_K: q + 4 in [0, 7] (the third bit: bit z (bytes 0..31)
// / 4 + z (bytes 32..63) of hmask[byte % 32]), signed scales (stored - 32) and the offset
// -4 * sum_s sc_s * bsum16_s = (sum_s sc_s * (-16 bsum16_s)) / 4, exact (a multiple of 16
// before the shift).
//
// Q3_K: head() unpacks the 4 rows' scales at once: the 12 packed bytes of each, unpacked
// with vector shifts, in the 4 128-bit lanes of one vector, widened to int16 into KHead::sw
// (two rows per vector). Q2_K: head() unpacks the mins; each row's scale vectors are one
// vpshufb each from its 16 scale bytes (where a vpermw of widened scales is 2 uops on the
// Intel Xeons seen, 1 on port 5).
//
// Without VNNI (the 4 x 4 tile, KQuantInt8): decode() and isum(), vpmaddubsw / vpmaddwd per
// field against the scales of its words (dot_sub16).
//
// With VNNI (the pair tile, KQuantPairInt8 in kernels/avx512/int8_kquant-inl.h): the fields
// are isolated with one shift, q[0] = qs & 3, q[1] = qs & 0x0C (4 times the field), q[2] =
// (qs >> 4) & 3, q[3] = (qs >> 4) & 0x0C (Q3_K: the third bit at bit 2 / 4), and rows A = 2p
// and B = 2p + 1 of the tile share every packing and scale step: per field z,
// packs(dpbusd(q_A[z], y), dpbusd(q_B[z], y)) puts A's 4-product sums in words 0..3 of each
// 128-bit lane c (all of sub-block sub_k2(z, 16 c)) and B's in words 4..7; one vpdpwssd
// against both rows' scales leaves A's sum in int32 lanes 4c, 4c + 1 and B's in 4c + 2,
// 4c + 3, and one conversion and one FMA (d_A, d_B per lane) per pair and super-block take
// them to float: per row and super-block 2 packs, 2 vpdpwssd and half a conversion and FMA,
// where packing one row's fields in pairs took 2, 2 and 1. Even fields are weighted by 4 sc
// instead of sc, so every lane is exactly 4 times its share (Q3_K's offset too: sc * (-16
// bsum16) is 4 times -4 sc bsum16): the tile multiplies by 1/4 before its reduction, which
// gives the bits of exact lanes (scaling by a power of two commutes with the roundings, short
// of subnormal products). Ranges: a dpbusd lane <= 4 * 28 * 127 (odd fields of Q3_K: int16
// after packing); a lane of the pair's sum covers 32 elements, |4 sc (q - 4) y| summed
// <= 32 * 4 * 32 * 4 * 127 < 2^24 (Q3_K; Q2_K less), so its conversion is exact.
// kernel_bench --hot, 1 thread, batch 1, AMD EPYC Zen 4, medians of 5 in 3 alternated rounds:
// Q2_K 4096x4096 261-267 -> 246-248 us, 14336x4096 930-961 -> 875-894; Q3_K 365-366 ->
// 344-350, 1276-1289 -> 1209-1224.

// A word pattern with `by` added to every index.
constexpr Words shifted(Words w, int by) {
  for (int i = 0; i < 32; ++i) w.v[i] = static_cast<uint16_t>(w.v[i] + by);
  return w;
}

// The pair tile's patterns. Q2_K: vpshufb patterns over a vector T whose 128-bit lane c holds
// bytes 8h .. 8h + 7 (h = c / 2) of row A's 16 scale bytes, then the same bytes of row B:
// word 4 r + u (r: the row, u < 4) of lane c <- the scale of sub-block sub_k2(z, 16 c) of
// row r.
constexpr Bytes q2_pair_pattern(int z) {
  Bytes b{};
  for (int w = 0; w < 32; ++w) {
    const int c = w / 8, r = (w % 8) / 4;
    b.v[2 * w] = static_cast<uint8_t>(8 * r + sub_k2(z, 16 * c) - 8 * (c / 2));
    b.v[2 * w + 1] = 0x80;
  }
  return b;
}
// Q2_K: qword q of T for pair p, from a vector with row j's 16 bytes in 128-bit lane j.
constexpr int64_t q2_pair_qword(int p, int q) { return 2 * (2 * p + (q % 2)) + (q / 2) / 2; }
// Q3_K: vpermw patterns over KHead::sw[p] (row A's 16 scales in words 0..15, B's in 16..31).
constexpr Words q3_pair_pattern(int z) {
  Words r{};
  for (int w = 0; w < 32; ++w) {
    const int c = w / 8, row = (w % 8) / 4;
    r.v[w] = static_cast<uint16_t>(16 * row + sub_k2(z, 16 * c));
  }
  return r;
}
// Q3_K's offset: int32 lane L = 4c + t takes sub-blocks 2P, 2P + 1 with P = 2c + t % 2 of
// row A (t < 2) or B; words 2L + e: the scale of sub-block 2P + e (over sw[p]) against
// -16 bsum16 of it (over the activations' 16 nbsum16 words).
constexpr Words q3_pair_offset(bool scales) {
  Words r{};
  for (int w = 0; w < 32; ++w) {
    const int l = w / 2, e = w % 2, c = l / 4, t = l % 4;
    const int sub = 2 * (2 * c + t % 2) + e;
    r.v[w] = static_cast<uint16_t>(sub + (scales && t >= 2 ? 16 : 0));
  }
  return r;
}

template <bool kThree, bool kVnni>
struct Int8Q23_K {
  using Block = std::conditional_t<kThree, BlockQ3_K, BlockQ2_K>;
  static constexpr Format kAct = Format::kQ8_K;
  static constexpr int kBytes = sizeof(Block);
  static constexpr int kQs = offsetof(Block, qs);
  static constexpr bool kMins = !kThree;
  // KQuantInt8::tile (without VNNI): d * da broadcast from memory. Measured on the VNNI 4 x 4
  // tile the pair tile replaced (Q2_K, kernel_bench --hot 4096x4096 batch 1, best of 15:
  // 352 -> 321 us; Q3_K even); kept for the avx512 tile, not measured there.
  static constexpr bool kDdFromMemory = true;
  // Without VNNI, the scale patterns of row j: its scales are words 16 (j % 2) .. + 15 of
  // KHead::sw[j / 2] (Q3_K), or bytes of its own (Q2_K).
  static constexpr Words kPair[2][4] = {
      {pair_pattern(0, SubK2{}), pair_pattern(1, SubK2{}), pair_pattern(2, SubK2{}),
       pair_pattern(3, SubK2{})},
      {shifted(pair_pattern(0, SubK2{}), 16), shifted(pair_pattern(1, SubK2{}), 16),
       shifted(pair_pattern(2, SubK2{}), 16), shifted(pair_pattern(3, SubK2{}), 16)}};

  static constexpr Bytes kPairB[4] = {
      bytes_of(pair_pattern(0, SubK2{})), bytes_of(pair_pattern(1, SubK2{})),
      bytes_of(pair_pattern(2, SubK2{})), bytes_of(pair_pattern(3, SubK2{}))};

  struct Dec {
    __m512i q[4];
    __m512i s[4];  // one per q[z]
    __m512i sc;    // Q3_K: the row's 16 signed scales as int16 in the low 256 bits (the high
                   // 256 bits are not used: they meet zeros)
  };

  // The 16 bytes at blk[j] + off in 128-bit lane j.
  static FK_INLINE __m512i rows_x16(const uint8_t* const (&blk)[kNR], int off) {
    __m512i v = _mm512_castsi128_si512(loadu128(blk[0] + off));
    v = _mm512_inserti32x4(v, loadu128(blk[1] + off), 1);
    v = _mm512_inserti32x4(v, loadu128(blk[2] + off), 2);
    return _mm512_inserti32x4(v, loadu128(blk[3] + off), 3);
  }

  static FK_INLINE void head(const uint8_t* const (&blk)[kNR], KHead* h) {
    if constexpr (kThree) {
      h->d = _mm256_cvtph_ps(_mm_set_epi32(load_u16(blk[3] + offsetof(BlockQ3_K, d)),
                                           load_u16(blk[2] + offsetof(BlockQ3_K, d)),
                                           load_u16(blk[1] + offsetof(BlockQ3_K, d)),
                                           load_u16(blk[0] + offsetof(BlockQ3_K, d))));
      // Dwords 1..3 of lane j: the packed bytes a0, a1, a2 of row j (dword 0: the last 4 qs
      // bytes, inside the block). unpack_k3_scales16's dwords, 4 rows at once:
      //   (a0 | a1 | a0 >> 4 | a1 >> 4) & 0x0F, with bits 4-5 from the 2-bit fields 0..3 of a2.
      static_assert(offsetof(BlockQ3_K, scales) >= 4, "scales are not the block's start");
      const __m512i v = rows_x16(blk, offsetof(BlockQ3_K, scales) - 4);
      const __m512i a01 = _mm512_shuffle_epi32(v, static_cast<_MM_PERM_ENUM>(0x99));  // a0 a1 a0 a1
      const __m512i a2 = _mm512_shuffle_epi32(v, static_cast<_MM_PERM_ENUM>(0xFF));
      const __m512i lo = _mm512_and_si512(
          _mm512_srlv_epi32(a01, _mm512_setr_epi32(0, 0, 4, 4, 0, 0, 4, 4, 0, 0, 4, 4, 0, 0, 4, 4)),
          _mm512_set1_epi8(0x0F));
      // Field t of each byte of a2 to bits 4-5: rotate left by 4 - 2t (mod 32).
      const __m512i hi = _mm512_rolv_epi32(
          a2, _mm512_setr_epi32(4, 2, 0, 30, 4, 2, 0, 30, 4, 2, 0, 30, 4, 2, 0, 30));
      // Row j's 16 scales (stored - 32, signed) as bytes in lane j.
      const __m512i sc8 = _mm512_sub_epi8(
          _mm512_ternarylogic_epi32(hi, _mm512_set1_epi8(0x30), lo, 0xEA), _mm512_set1_epi8(32));
      h->sw[0] = _mm512_cvtepi8_epi16(_mm512_castsi512_si256(sc8));
      h->sw[1] = _mm512_cvtepi8_epi16(_mm512_extracti64x4_epi64(sc8, 1));
    } else {
      static_assert(offsetof(BlockQ2_K, dmin) == offsetof(BlockQ2_K, d) + 2, "d, dmin adjacent");
      const uint8_t* dp[kNR];
      for (int j = 0; j < kNR; ++j) dp[j] = blk[j] + offsetof(BlockQ2_K, d);
      h->d = fp16_pairs(dp);
      // Scale bytes: scale | min << 4.
      const __m512i v = rows_x16(blk, offsetof(BlockQ2_K, scales));
      const __m512i m15 = _mm512_set1_epi8(15);
      const __m512i mn = _mm512_and_si512(_mm512_srli_epi16(v, 4), m15);
      h->mins = _mm512_unpacklo_epi8(mn, _mm512_setzero_si512());
      h->mins_hi = _mm512_unpackhi_epi8(mn, _mm512_setzero_si512());
      if constexpr (kVnni) {
        // The pair tile: the scale nibbles (sw[0]) and 4 times them (sw[1]), row j in lane j.
        h->sw[0] = _mm512_and_si512(v, m15);
        h->sw[1] = _mm512_and_si512(_mm512_slli_epi16(v, 2), _mm512_set1_epi8(0x3C));
      }
      // (Otherwise no sw: decode picks each row's scales from its own bytes.)
    }
  }

  // Q2_K: -sum_s m_s * bsum16_s (kIminNegated) from the int16 -16 * bsum16_s (exact: every
  // product is a multiple of 16, so the arithmetic shift divides exactly).
  static constexpr bool kIminNegated = true;
  static FK_INLINE __m512i imin(const KHead& h, const ActQ8_K& y) {
    const __m512i lo = _mm512_madd_epi16(h.mins, _mm512_broadcast_i32x4(loadu128(y.nbsum16)));
    const __m512i hb = _mm512_broadcast_i32x4(loadu128(y.nbsum16 + 8));
    const __m512i sum = kVnni ? _mm512_dpwssd_epi32(lo, h.mins_hi, hb)
                              : _mm512_add_epi32(lo, _mm512_madd_epi16(h.mins_hi, hb));
    return _mm512_srai_epi32(sum, 4);
  }

  // Without VNNI.
  static FK_INLINE Dec decode(const uint8_t* blk, const KHead& h, int j) {
    static_assert(!kVnni, "VNNI runs the pair tile");
    Dec d;
    const __m512i qs = in_reg(loadu512(blk + kQs));
    // Q3_K: rows 2t, 2t + 1's scales as int16 (KHead::sw); Q2_K: row j's 16 scale bytes in
    // every 128-bit lane, scale nibbles only.
    const __m512i sw =
        kThree ? h.sw[j >> 1]
               : _mm512_and_si512(_mm512_broadcast_i32x4(loadu128(blk + offsetof(BlockQ2_K, scales))),
                                  _mm512_set1_epi8(15));
    if constexpr (kThree) {
      // Row j's scales in the low 256 bits: odd rows' halves swapped.
      d.sc = (j & 1) ? _mm512_shuffle_i64x2(sw, sw, 0x4E) : sw;
    }
    const __m512i m3 = _mm512_set1_epi8(3);
    d.q[0] = _mm512_and_si512(qs, m3);
    d.q[1] = _mm512_and_si512(_mm512_srli_epi16(qs, 2), m3);
    d.q[2] = _mm512_and_si512(_mm512_srli_epi16(qs, 4), m3);
    d.q[3] = _mm512_and_si512(_mm512_srli_epi16(qs, 6), m3);
    if constexpr (kThree) {
      // hmask in both halves, the high half shifted right by 4: bit z of either half is then
      // the third bit of q[z]'s byte; moved to bit 2 and OR-ed in ((A & 4) | q).
      const __m256i hm = loadu256(blk + offsetof(BlockQ3_K, hmask));
      const __m512i hm2 = in_reg(_mm512_inserti64x4(_mm512_castsi256_si512(hm), _mm256_srli_epi16(hm, 4), 1));
      const __m512i b2 = _mm512_set1_epi8(4);
      d.q[0] = _mm512_ternarylogic_epi32(_mm512_slli_epi16(hm2, 2), b2, d.q[0], 0xEA);
      d.q[1] = _mm512_ternarylogic_epi32(_mm512_slli_epi16(hm2, 1), b2, d.q[1], 0xEA);
      d.q[2] = _mm512_ternarylogic_epi32(hm2, b2, d.q[2], 0xEA);
      d.q[3] = _mm512_ternarylogic_epi32(_mm512_srli_epi16(hm2, 1), b2, d.q[3], 0xEA);
    }
    for (int z = 0; z < 4; ++z) {
      d.s[z] = kThree ? _mm512_permutexvar_epi16(load512(&kPair[j & 1][z]), sw)
                      : _mm512_shuffle_epi8(sw, load512(&kPairB[z]));
    }
    return d;
  }
  static FK_INLINE __m512i isum(const Dec& w, const ActQ8_K& y) {
    __m512i init = _mm512_setzero_si512();
    if constexpr (kThree)
      init = _mm512_srai_epi32(_mm512_madd_epi16(w.sc, _mm512_zextsi256_si512(loadu256(y.nbsum16))), 2);
    return dot_sub16<kVnni>(init, w.q, w.s, y.y);
  }

  // ---- With VNNI: the pair tile (see above) ----
  static constexpr bool kPairTile = kVnni;
  struct PairScales {
    __m512i s[4];  // field z: A's scales in words 0..3, B's in 4..7 of each 128-bit lane
    __m512i off;   // Q3_K: the offset's scale words (kQ3PairOffSc)
  };
  static constexpr Bytes kQ2Pair[4] = {q2_pair_pattern(0), q2_pair_pattern(1), q2_pair_pattern(2),
                                       q2_pair_pattern(3)};
  static constexpr Words kQ3Pair[4] = {q3_pair_pattern(0), q3_pair_pattern(1), q3_pair_pattern(2),
                                       q3_pair_pattern(3)};
  static constexpr Words kQ3PairOffSc = q3_pair_offset(true), kQ3PairOffNb = q3_pair_offset(false);

  // Even fields weighted by 4 sc (sw[1] / sw << 2), odd fields by sc.
  static FK_INLINE PairScales pair_scales(const KHead& h, int p) {
    PairScales r;
    if constexpr (kThree) {
      const __m512i sw = h.sw[p], sw4 = _mm512_slli_epi16(sw, 2);
      for (int z = 0; z < 4; ++z) r.s[z] = _mm512_permutexvar_epi16(load512(&kQ3Pair[z]), (z % 2) ? sw : sw4);
      r.off = _mm512_permutexvar_epi16(load512(&kQ3PairOffSc), sw);
    } else {
      // Q2_K: one vpermq per pair and scale vector, then a vpshufb per field (where a vpermw
      // is 2 uops on the Intel Xeons seen; on Zen 4 the two measured the same).
      const __m512i idx = _mm512_setr_epi64(q2_pair_qword(p, 0), q2_pair_qword(p, 1), q2_pair_qword(p, 2),
                                            q2_pair_qword(p, 3), q2_pair_qword(p, 4), q2_pair_qword(p, 5),
                                            q2_pair_qword(p, 6), q2_pair_qword(p, 7));
      const __m512i t = _mm512_permutexvar_epi64(idx, h.sw[0]);
      const __m512i t4 = _mm512_permutexvar_epi64(idx, h.sw[1]);
      for (int z = 0; z < 4; ++z) r.s[z] = _mm512_shuffle_epi8((z % 2) ? t : t4, load512(&kQ2Pair[z]));
      r.off = _mm512_setzero_si512();
    }
    return r;
  }
  // Per activation super-block: Q3_K's -16 bsum16 words in the offset's order.
  static FK_INLINE __m512i pair_nb(const ActQ8_K& y) {
    if constexpr (kThree) {
      return _mm512_permutexvar_epi16(load512(&kQ3PairOffNb), _mm512_zextsi256_si512(loadu256(y.nbsum16)));
    } else {
      return _mm512_setzero_si512();
    }
  }
  // The 4 field vectors of a row (odd fields 4 times; Q3_K: q + 4 with its third bit).
  static FK_INLINE void fields(const uint8_t* blk, __m512i (&q)[4]) {
    const __m512i qs = in_reg(loadu512(blk + kQs));
    const __m512i qs4 = _mm512_srli_epi16(qs, 4);
    const __m512i m3 = _mm512_set1_epi8(3), mc = _mm512_set1_epi8(0x0C);
    q[0] = _mm512_and_si512(qs, m3);
    q[1] = _mm512_and_si512(qs, mc);
    q[2] = _mm512_and_si512(qs4, m3);
    q[3] = _mm512_and_si512(qs4, mc);
    if constexpr (kThree) {
      // hm2: bit z of each byte is the third bit of field z (bytes 0..31: hmask, bytes
      // 32..63: hmask >> 4); to bit 2 (fields 0, 2) or bit 4 (fields 1, 3), OR-ed in.
      const __m512i hm = _mm512_broadcast_i64x4(loadu256(blk + offsetof(BlockQ3_K, hmask)));
      const __m512i hm2 = in_reg(_mm512_srlv_epi64(hm, _mm512_setr_epi64(0, 0, 0, 0, 4, 4, 4, 4)));
      const __m512i b2 = _mm512_set1_epi8(4), b4 = _mm512_set1_epi8(0x10);
      q[0] = _mm512_ternarylogic_epi32(_mm512_slli_epi16(hm2, 2), b2, q[0], 0xEA);
      q[1] = _mm512_ternarylogic_epi32(_mm512_slli_epi16(hm2, 3), b4, q[1], 0xEA);
      q[2] = _mm512_ternarylogic_epi32(hm2, b2, q[2], 0xEA);
      q[3] = _mm512_ternarylogic_epi32(_mm512_slli_epi16(hm2, 1), b4, q[3], 0xEA);
    }
  }
  // Int32 lanes 4c, 4c + 1: 4 times row A's integer dot (offset included), 4c + 2, 4c + 3:
  // row B's.
  static FK_INLINE __m512i isum_pair(const __m512i (&qa)[4], const __m512i (&qb)[4], const PairScales& ps,
                                     const ActQ8_K& y, __m512i nb) {
    const __m512i zero = _mm512_setzero_si512();
    __m512i acc = kThree ? _mm512_dpwssd_epi32(zero, ps.off, nb) : zero;
    for (int z = 0; z < 4; ++z) {
      const __m512i yz = load512(y.y + 64 * z);
      acc = _mm512_dpwssd_epi32(
          acc, _mm512_packs_epi32(_mm512_dpbusd_epi32(zero, qa[z], yz), _mm512_dpbusd_epi32(zero, qb[z], yz)),
          ps.s[z]);
    }
    return acc;
  }
};

struct alignas(64) PanelQ23 {
  int32_t q[64][16];  // vector g: row r's unsigned quants at positions 4g .. 4g+3 (crumb order)
  int32_t sp[8][16];  // p: int16 pair of the scales of sub-blocks 2p, 2p+1 (Q2_K: 0..15;
                      // Q3_K: stored - 32)
  int32_t mp[8][16];  // Q2_K: p: int16 pair of the mins of sub-blocks 2p, 2p+1
  float d[16], dmin[16];
};
// vpshufb pattern (merge-masked to words 2, 3 of each dword): bytes 0, 1 of the same dword.
constexpr Bytes kDwordLowToHigh = dword_pattern(-1, -1, 0, 1);

// Batches: 16 weight rows of a super-block decoded into a panel (kernels/avx512/
// int8_kpanel-inl.h) in the crumb order of the activations. Q2_K's mins and Q3_K's -4
// offset both come from int16 pairs against the -16 * bsum16 pairs, divided exactly (every
// product is a multiple of 16) before they are used.
// Sub-block scales: a 16-element sub-block's dot fits int16 (Q3_K: |dot| <= 16 * 7 * 127 =
// 14224; Q2_K: 16 * 3 * 127 = 6096), so the dots of sub-blocks 2p and 2p + 1 are joined
// into the low / high words of each lane (one merge-masked vpshufb) and weighted by the
// pair of scales in one vpdpwssd: the same int32 total as a vpmulld + vpaddd per sub-block,
// 2 instructions per pair instead of 6 uops.
template <bool kThree>
struct PanelQ23_K {
  using Block = std::conditional_t<kThree, BlockQ3_K, BlockQ2_K>;
  using Panel = PanelQ23;
  using Act = ActQ8_K;
  static constexpr int kBlockBytes = sizeof(Block);
  static constexpr bool kMins = !kThree;
  static constexpr bool kWide = false;  // see kernels/avx512/int8_kpanel-inl.h
  static constexpr int kQs = offsetof(Block, qs), kD = offsetof(Block, d);

  static FK_INLINE void build(const uint8_t* const (&w)[kPanelRows], int64_t off, Panel* p) {
    alignas(64) __m512i t[16];   // qs dwords 0..15
    alignas(64) __m512i hm[16];  // Q3_K: hmask dwords 0..7 (8..15: the qs that follow)
    transpose_rows(w, off + kQs, t);
    if constexpr (kThree) transpose_rows(w, off + offsetof(BlockQ3_K, hmask), hm);
    // The 16 stored scale bytes (Q2_K: scale | min << 4; Q3_K: 0..63) of each row, 4 dwords.
    alignas(64) int32_t sw[4][16];
    alignas(64) int32_t dw[16], mw[16];
    for (int r = 0; r < kPanelRows; ++r) {
      alignas(16) int32_t v[4];
      if constexpr (kThree) {
        _mm_store_si128(reinterpret_cast<__m128i*>(v), unpack_k3_scales16(w[r] + off + offsetof(BlockQ3_K, scales)));
      } else {
        std::memcpy(v, w[r] + off + offsetof(BlockQ2_K, scales), sizeof v);
      }
      for (int u = 0; u < 4; ++u) sw[u][r] = v[u];
      dw[r] = load_u16(w[r] + off + kD);
      if constexpr (!kThree) mw[r] = load_u16(w[r] + off + offsetof(BlockQ2_K, dmin));
    }
    _mm512_store_ps(p->d, fp16_low_words(load512(dw)));
    if constexpr (!kThree) _mm512_store_ps(p->dmin, fp16_low_words(load512(mw)));
    const __m512i ff = _mm512_set1_epi32(0xFF);
    for (int q = 0; q < 8; ++q) {
      const __m512i v = load512(sw[q / 2]);
      const int sh = 16 * (q % 2);
      const __m512i lo = _mm512_and_si512(_mm512_srli_epi32(v, sh), ff);
      const __m512i hi = _mm512_and_si512(_mm512_srli_epi32(v, sh + 8), ff);
      if constexpr (kThree) {
        const __m512i k32 = _mm512_set1_epi32(32);
        _mm512_store_si512(p->sp[q], int16_pair(_mm512_sub_epi32(lo, k32), _mm512_sub_epi32(hi, k32)));
      } else {
        const __m512i m15 = _mm512_set1_epi32(15);
        _mm512_store_si512(p->sp[q], int16_pair(_mm512_and_si512(lo, m15), _mm512_and_si512(hi, m15)));
        _mm512_store_si512(p->mp[q], int16_pair(_mm512_srli_epi32(lo, 4), _mm512_srli_epi32(hi, 4)));
      }
    }
    // Vector g = 16 z + c: bytes 4c .. 4c+3 of the qs, field z; Q3_K's third bit: bit z of
    // hmask byte 4c + k (c < 8) / bit 4 + z of hmask byte 4c + k - 32 (c >= 8).
    const __m512i m3 = _mm512_set1_epi8(3), one = _mm512_set1_epi8(1);
    for (int z = 0; z < 4; ++z) {
      for (int c = 0; c < 16; ++c) {
        __m512i v = _mm512_and_si512(_mm512_srli_epi32(load512(&t[c]), 2 * z), m3);
        if constexpr (kThree) {
          const __m512i h = c < 8 ? _mm512_srli_epi32(load512(&hm[c]), z)
                                  : _mm512_srli_epi32(load512(&hm[c - 8]), 4 + z);
          v = _mm512_or_si512(v, _mm512_slli_epi32(_mm512_and_si512(h, one), 2));
        }
        _mm512_store_si512(p->q[16 * z + c], v);
      }
    }
  }

  template <int MR, bool kVnni>
  static FK_INLINE void block(const Panel& p, const Act* const (&y)[MR], __m512i (&tot)[MR],
                              __m512i (&ms)[MR]) {
    for (int i = 0; i < MR; ++i) tot[i] = _mm512_setzero_si512();
    // Words 2, 3 of each lane <- words 0, 1 of the other operand (the odd sub-block's dot).
    const __m512i to_high = load512(&kDwordLowToHigh);
    // Sub-block s: z = (s % 8) / 2, vectors 16 z + c0 .. + 3 with c0 = 8 (s / 8) + 4 (s % 2).
    for (int q = 0; q < 8; ++q) {
      __m512i is[2][MR];
      for (int h = 0; h < 2; ++h) {
        const int s = 2 * q + h;
        const int g0 = 16 * ((s % 8) / 2) + 8 * (s / 8) + 4 * (s % 2);
        for (int i = 0; i < MR; ++i) is[h][i] = _mm512_setzero_si512();
        for (int c = 0; c < 4; c += 2) {
          const __m512i w0 = load512(p.q[g0 + c]), w1 = load512(p.q[g0 + c + 1]);
          for (int i = 0; i < MR; ++i)
            is[h][i] = dot2_u8s8<kVnni>(is[h][i], w0, bcast32(y[i]->y + 4 * (g0 + c)), w1,
                                        bcast32(y[i]->y + 4 * (g0 + c) + 4));
        }
      }
      const __m512i sp = load512(p.sp[q]);
      for (int i = 0; i < MR; ++i) {
        const __m512i pair = _mm512_mask_shuffle_epi8(is[0][i], 0xCCCCCCCCCCCCCCCCull, is[1][i], to_high);
        tot[i] = panel_dpwssd<kVnni>(tot[i], pair, sp);
      }
    }
    // sum_s pair_s * (-16 bsum16_s), then / -16 (Q2_K: imin) or / 4 (Q3_K: the offset).
    for (int i = 0; i < MR; ++i) ms[i] = _mm512_setzero_si512();
    for (int q = 0; q < 8; ++q) {
      const __m512i mp = load512(kThree ? p.sp[q] : p.mp[q]);
      for (int i = 0; i < MR; ++i) ms[i] = panel_dpwssd<kVnni>(ms[i], mp, bcast32(y[i]->nbsum16 + 2 * q));
    }
    for (int i = 0; i < MR; ++i) {
      if constexpr (kThree) {
        tot[i] = _mm512_add_epi32(tot[i], _mm512_srai_epi32(ms[i], 2));
      } else {
        ms[i] = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_srai_epi32(ms[i], 4));
      }
    }
  }
};

template <>
struct F32Decoder<Format::kQ2_K> : DecQ23_K<false> {};
template <bool kVnni>
struct Int8Codec<Format::kQ2_K, kVnni> : Int8Q23_K<false, kVnni> {};
template <>
struct PanelCodec<Format::kQ2_K> : PanelQ23_K<false> {};
template <>
struct F32Decoder<Format::kQ3_K> : DecQ23_K<true> {};
template <bool kVnni>
struct Int8Codec<Format::kQ3_K, kVnni> : Int8Q23_K<true, kVnni> {};
template <>
struct PanelCodec<Format::kQ3_K> : PanelQ23_K<true> {};

// ---- IQ4_NL / IQ4_XS: w = scale * V[q], V the 16-entry codebook kIq4Values -----------------------
// f32 path: a (sub-)block's 16 values scale * V[v] as one vpermps table, built with the
// reference's product. int8 path: the nibbles index a vpshufb table of the codebook (in
// each 128-bit lane), for the product's kind: VNNI's vpdpbusd multiplies unsigned weights,
// so there V + 128 (1..241) against the activations, the bias -128 * sum(y) coming from
// the packed activations (as Q8_0); the other products are |V| x (y with V's sign).

FK_INLINE __m512 iq4_values_f32() {
  return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(loadu128(kIq4Values)));
}
// The codebook repeated in the four 128-bit lanes (vpshufb tables): V as signed bytes, and
// V + 128 as unsigned bytes (VNNI).
constexpr Bytes iq4_bytes(bool biased) {
  Bytes b{};
  for (int p = 0; p < 64; ++p) b.v[p] = static_cast<uint8_t>(kIq4Values[p % 16] + (biased ? 128 : 0));
  return b;
}
constexpr Bytes kIq4Signed = iq4_bytes(false);
constexpr Bytes kIq4Biased = iq4_bytes(true);

// The 64 nibbles' codebook values as unsigned bytes: V + 128 (VNNI) or |V| with the mask of
// the negative ones (vpabsb, vpmovb2m: off the shuffle port).
template <bool kVnni>
FK_INLINE SignedW iq4_signed(__m512i nib) {
  if constexpr (kVnni) {
    return {_mm512_shuffle_epi8(load512(&kIq4Biased), nib), 0};
  } else {
    const __m512i v = _mm512_shuffle_epi8(load512(&kIq4Signed), nib);
    return {_mm512_abs_epi8(v), _mm512_movepi8_mask(v)};
  }
}

template <>
struct F32Decoder<Format::kIQ4_NL> {
  static constexpr int kElems = kQK, kBytes = sizeof(BlockIQ4_NL);
  __m512 lut;  // d * V[v], v = 0..15
  __m512i q;   // the 16 quant bytes, one per int32 lane
  FK_INLINE void init(const uint8_t* blk) {
    lut = _mm512_mul_ps(bcast_fp16(blk + offsetof(BlockIQ4_NL, d)), iq4_values_f32());
    q = _mm512_cvtepu8_epi32(loadu128(blk + offsetof(BlockIQ4_NL, qs)));
  }
  // vpermps reads the low 4 bits of each index: the low nibble as is.
  FK_INLINE __m512 group(int g) const {
    return _mm512_permutexvar_ps(g == 0 ? q : _mm512_srli_epi32(q, 4), lut);
  }
};

// int8 path, Q8_0 kind: groups of 4 blocks gathered as Q4_0's (NibbleCodec), the nibbles
// turned into codebook bytes, dotted as signed weights (as Q8_0, with Q8_0's packed
// activations: aux = -128 * sum(y) per lane).
template <bool kVnni>
struct Int8Codec<Format::kIQ4_NL, kVnni> {
  using Nib = NibbleCodec<BlockIQ4_NL, offsetof(BlockIQ4_NL, qs), -1, -1, kVnni>;
  static constexpr Format kAct = Format::kQ8_0;
  static constexpr int kBlockBytes = sizeof(BlockIQ4_NL);
  static constexpr int kGroupBytes = 4 * kBlockBytes;
  static constexpr bool kMin = false;
  static_assert(Nib::kScalesInRaw0, "every d of a group in its first 64 bytes");
  static constexpr bool kScalesInRaw0 = true;

  struct Dec {
    SignedW a, b;  // elements 0..15 / 16..31 of block b in bytes 16b .. 16b+15
    __m512i d, m;  // unused (scales gathered pairwise from raw0)
    __m512i raw0;
  };

  static FK_INLINE __m512i tile_scales(const Dec (&d)[kNR], bool) {
    const __m512i r01 = _mm512_permutex2var_epi16(d[0].raw0, load512(&Nib::kPairD[0]), d[1].raw0);
    const __m512i r23 = _mm512_permutex2var_epi16(d[2].raw0, load512(&Nib::kPairD[1]), d[3].raw0);
    return _mm512_mask_blend_epi16(0xCCCCCCCCu, r01, r23);
  }

  static FK_INLINE Dec decode(const uint8_t* g, int blocks, int) {
    __m512i raw0, raw1;
    load_group(g, kGroupBytes, blocks * kBlockBytes, &raw0, &raw1);
    const __m512i qs = group_quants<kBlockBytes, offsetof(BlockIQ4_NL, qs)>(g, blocks, raw0, raw1, Nib::kQsWords);
    const __m512i m4 = _mm512_set1_epi8(15);
    Dec d;
    d.a = iq4_signed<kVnni>(_mm512_and_si512(qs, m4));
    d.b = iq4_signed<kVnni>(_mm512_and_si512(_mm512_srli_epi16(qs, 4), m4));
    d.raw0 = raw0;
    return d;
  }

  static FK_INLINE __m512i isum(const Dec& w, const ActQ8_0x4& y) {
    const __m512i init = kVnni ? load512(y.aux) : _mm512_setzero_si512();
    return dot_signed<kVnni>(dot_signed<kVnni>(init, w.a, load512(y.y)), w.b, load512(y.y + 64));
  }
};

// f32 path: the 8 sub-blocks' tables (d * (ls_s - 32)) * V[v], built once per super-block.
template <>
struct F32Decoder<Format::kIQ4_XS> {
  static constexpr int kElems = kQK_K, kBytes = sizeof(BlockIQ4_XS);
  alignas(64) float lut[8][16];
  const uint8_t* qs;
  FK_INLINE void init(const uint8_t* blk) {
    const float d = _cvtsh_ss(load_u16(blk + offsetof(BlockIQ4_XS, d)));
    const uint16_t sh = load_u16(blk + offsetof(BlockIQ4_XS, scales_h));
    const uint8_t* sl = blk + offsetof(BlockIQ4_XS, scales_l);
    const __m512 v = iq4_values_f32();
    for (int s = 0; s < 8; ++s) {
      const float dl = d * static_cast<float>(iq4_xs_scale(s, sl, sh) - 32);
      _mm512_store_ps(lut[s], _mm512_mul_ps(_mm512_set1_ps(dl), v));
    }
    qs = blk + offsetof(BlockIQ4_XS, qs);
  }
  // Group g: sub-block s = g / 2, elements 32 s + 16 h .. + 15 (h = g % 2): nibble h of
  // qs[16 s .. 16 s + 15].
  FK_INLINE __m512 group(int g) const {
    const int s = g >> 1, h = g & 1;
    const __m512i v = _mm512_cvtepu8_epi32(loadu128(qs + 16 * s));
    return _mm512_permutexvar_ps(h ? _mm512_srli_epi32(v, 4) : v, _mm512_load_ps(lut[s]));
  }
};

// int8 path, Q8_K kind, against the Q8_K quants in halves order (ActQ8_K, YOrder::kHalves,
// packed by act_q8_k_halves__avx512): the low / high nibbles of qs[64 c .. 64 c + 63] (the
// first / second halves of sub-blocks 4c .. 4c + 3, one per 128-bit lane) are q[2c] / q[2c +
// 1]. Without VNNI: unsigned |V| bytes with the mask of the negative ones; maddubs(|V|, y
// with V's sign) (|pair| <= 2 * 127 * 127 = 32258) is weighted by the signed int16 scale
// ls - 32 of its lane's sub-block with vpmaddwd (exact in int32). With VNNI: V + 128 (as the
// panel) into two vpdpbusd per 128 weights, started from -128 times the lane's 8
// activations (two vpdpbusd of 0x80 bytes, shared by the tile's 4 rows), so that each lane
// holds exactly sum V y over its 8 elements of one sub-block (|.| <= 8 * 127 * 127 =
// 129032); times the float ls - 32 (|.| <= 32) and the two halves added: |lane| <= 8258048
// < 2^24, every step exact. isum returns these float lanes (the tile's cvt is skipped): a
// vcvtdq2ps, a multiply or FMA per 128 weights instead of a vpmulld (2 uops) and an add,
// and no bias step.
template <bool kVnni>
struct Int8Codec<Format::kIQ4_XS, kVnni> {
  static constexpr Format kAct = Format::kQ8_K;
  static constexpr int kBytes = sizeof(BlockIQ4_XS);
  static constexpr int kD = offsetof(BlockIQ4_XS, d);
  static constexpr int kQs = offsetof(BlockIQ4_XS, qs);
  static constexpr bool kMins = false;
  // Word w of s[c]: the scale of sub-block 4c + w / 8 (128-bit lane w / 8).
  static constexpr Words scale_words(int c) {
    Words r{};
    for (int w = 0; w < 32; ++w) r.v[w] = static_cast<uint16_t>(4 * c + w / 8);
    return r;
  }
  static constexpr Words kScale[2] = {scale_words(0), scale_words(1)};

  struct Dec {
    __m512i q[4];
    __mmask64 neg[4];  // without VNNI
    __m512i s[2];      // without VNNI: s[c] for q[2c] and q[2c + 1], int16 words
    __m512 sf[2];      // VNNI: the same scales as float lanes
  };

  static FK_INLINE void head(const uint8_t* const (&blk)[kNR], KHead* h) {
    // d_j in lane 2j (the odd lanes 0).
    h->d = _mm256_cvtph_ps(_mm_set_epi32(load_u16(blk[3] + kD), load_u16(blk[2] + kD),
                                         load_u16(blk[1] + kD), load_u16(blk[0] + kD)));
    if constexpr (kVnni) {
      // The 4 rows' scales at once: sw[t] = the 8 scales ls - 32 of row 2t (lanes 0..7) and
      // row 2t + 1 (lanes 8..15) as int32. Row j's first 8 bytes (d, scales_h, scales_l) in
      // qword j: dword 2j holds scales_h in its high half, dword 2j + 1 scales_l.
      static_assert(kD == 0 && offsetof(BlockIQ4_XS, scales_h) == 2 && offsetof(BlockIQ4_XS, scales_l) == 4,
                    "the 8-byte header");
      const __m512i hdr = _mm512_castsi256_si512(
          _mm256_setr_epi64x(static_cast<int64_t>(load_u64(blk[0])), static_cast<int64_t>(load_u64(blk[1])),
                             static_cast<int64_t>(load_u64(blk[2])), static_cast<int64_t>(load_u64(blk[3]))));
      // Scale s: bits 4 (s % 8) .. + 3 of scales_l, bits 16 + 2 (s % 8) .. + 1 of dword 2j.
      const __m512i sl_shift = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 0, 4, 8, 12, 16, 20, 24, 28);
      const __m512i sh_shift = _mm512_setr_epi32(12, 14, 16, 18, 20, 22, 24, 26, 12, 14, 16, 18, 20, 22, 24, 26);
      for (int t = 0; t < 2; ++t) {
        const __m512i sl = _mm512_permutexvar_epi32(
            _mm512_setr_epi32(4 * t + 1, 4 * t + 1, 4 * t + 1, 4 * t + 1, 4 * t + 1, 4 * t + 1, 4 * t + 1, 4 * t + 1,
                              4 * t + 3, 4 * t + 3, 4 * t + 3, 4 * t + 3, 4 * t + 3, 4 * t + 3, 4 * t + 3, 4 * t + 3),
            hdr);
        const __m512i sh = _mm512_permutexvar_epi32(
            _mm512_setr_epi32(4 * t, 4 * t, 4 * t, 4 * t, 4 * t, 4 * t, 4 * t, 4 * t, 4 * t + 2, 4 * t + 2, 4 * t + 2,
                              4 * t + 2, 4 * t + 2, 4 * t + 2, 4 * t + 2, 4 * t + 2),
            hdr);
        // (sh >> (16 + 2s - 4)) & 0x30 | (sl >> 4s) & 0x0F, minus 32.
        const __m512i ls = _mm512_ternarylogic_epi32(_mm512_srlv_epi32(sh, sh_shift), _mm512_set1_epi32(0x30),
                                                     _mm512_and_si512(_mm512_srlv_epi32(sl, sl_shift),
                                                                      _mm512_set1_epi32(15)),
                                                     0xEA);  // (A & B) | C
        h->sw[t] = _mm512_castps_si512(_mm512_cvtepi32_ps(_mm512_sub_epi32(ls, _mm512_set1_epi32(32))));
      }
    }
  }

  static FK_INLINE Dec decode(const uint8_t* blk, const KHead& h, int j) {
    Dec d;
    const __m512i m4 = _mm512_set1_epi8(15);
    if constexpr (kVnni) {
      const __m512 sw = _mm512_castsi512_ps(h.sw[j >> 1]);
      const int o = 8 * (j & 1);  // row j's scales: lanes o .. o + 7 of sw
      for (int c = 0; c < 2; ++c) {
        // Lanes 4u .. 4u + 3: sub-block 4c + u.
        const int b = o + 4 * c;
        d.sf[c] = _mm512_permutexvar_ps(
            _mm512_setr_epi32(b, b, b, b, b + 1, b + 1, b + 1, b + 1, b + 2, b + 2, b + 2, b + 2, b + 3, b + 3, b + 3, b + 3),
            sw);
        const __m512i v = loadu512(blk + kQs + 64 * c);
        d.q[2 * c] = iq4_signed<true>(_mm512_and_si512(v, m4)).u;
        d.q[2 * c + 1] = iq4_signed<true>(_mm512_and_si512(_mm512_srli_epi16(v, 4), m4)).u;
      }
      return d;
    }
    // The 8 scales ls - 32 as int16: low 4 bits nibble s % 2 of scales_l[s / 2], high 2 bits
    // bits 2s, 2s + 1 of scales_h.
    const __m256i sl = _mm256_set1_epi32(static_cast<int>(load_u32(blk + offsetof(BlockIQ4_XS, scales_l))));
    const __m256i sh = _mm256_set1_epi32(load_u16(blk + offsetof(BlockIQ4_XS, scales_h)));
    const __m256i lo = _mm256_and_si256(_mm256_srlv_epi32(sl, _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28)),
                                        _mm256_set1_epi32(15));
    const __m256i hi = _mm256_and_si256(_mm256_srlv_epi32(sh, _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14)),
                                        _mm256_set1_epi32(3));
    const __m256i ls = _mm256_sub_epi32(_mm256_or_si256(lo, _mm256_slli_epi32(hi, 4)), _mm256_set1_epi32(32));
    const __m512i sc16 = _mm512_castsi128_si512(_mm256_cvtepi32_epi16(ls));
    for (int c = 0; c < 2; ++c) {
      d.s[c] = _mm512_permutexvar_epi16(load512(&kScale[c]), sc16);
      const __m512i v = loadu512(blk + kQs + 64 * c);
      const SignedW w0 = iq4_signed<false>(_mm512_and_si512(v, m4));
      const SignedW w1 = iq4_signed<false>(_mm512_and_si512(_mm512_srli_epi16(v, 4), m4));
      d.q[2 * c] = w0.u;
      d.neg[2 * c] = w0.neg;
      d.q[2 * c + 1] = w1.u;
      d.neg[2 * c + 1] = w1.neg;
    }
    return d;
  }

  // VNNI: float lanes, each an exact integer (see above); otherwise int32 lanes.
  static FK_INLINE auto isum(const Dec& w, const ActQ8_K& y) {
    if constexpr (kVnni) {
      const __m512i z = _mm512_setzero_si512(), k128 = _mm512_set1_epi8(static_cast<char>(0x80));
      __m512 r = _mm512_setzero_ps();
      for (int c = 0; c < 2; ++c) {
        const __m512i y0 = load512(y.y + 128 * c), y1 = load512(y.y + 128 * c + 64);
        // -128 times each lane's 8 activations: V + 128's offset (the same for the tile's 4
        // rows, computed once).
        const __m512i off =
            _mm512_sub_epi32(z, _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(z, k128, y0), k128, y1));
        const __m512i t = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(off, w.q[2 * c], y0), w.q[2 * c + 1], y1);
        r = c == 0 ? _mm512_mul_ps(_mm512_cvtepi32_ps(t), w.sf[0]) : _mm512_fmadd_ps(_mm512_cvtepi32_ps(t), w.sf[1], r);
      }
      return r;
    } else {
      __m512i s = _mm512_setzero_si512();
      for (int z = 0; z < 4; ++z) {
        const __m512i yz = load512(y.y + 64 * z);
        const __m512i ys = _mm512_mask_sub_epi8(yz, w.neg[z], _mm512_setzero_si512(), yz);
        s = _mm512_add_epi32(s, _mm512_madd_epi16(_mm512_maddubs_epi16(w.q[z], ys), w.s[z / 2]));
      }
      return s;
    }
  }
};

struct alignas(64) PanelIQ4 {
  int32_t q[64][16];   // vector g: row r's codebook values V + 128 at positions 4g .. 4g+3 (halves order)
  float scf[8][16];    // sub-block s: ls_s - 32 (VNNI)
  int32_t sc2[8][16];  // sub-block s: int16 pair (ls_s - 32, ls_s - 32) (without VNNI)
  float d[16];
};

// Batches: 16 weight rows of a super-block decoded into a panel (kernels/avx512/
// int8_kpanel-inl.h) in the halves order of the activations (act_q8_k_halves__avx512, as the
// general row): vector g = 32 c + 16 h + u holds nibble h of qs dword 16 c + u, i.e. the
// packed activations' bytes 4g .. 4g + 3 (y byte 128 c + 64 h + p is nibble h of qs byte
// 64 c + p), sub-block 4 c + u / 4. The codebook values are stored as V + 128 (1..241, one
// vpshufb of kIq4Biased per vector), which VNNI's vpdpbusd multiplies as they are.
// VNNI (kWide): each sub-block's dot starts from -128 * bsum32_s (the driver's per-call
// offsets), so after its 8 vpdpbusd it is exactly sum V y, |.| <= 32 * 127 * 127 = 516128,
// and its product with ls - 32 (|.| <= 32) is below 2^24: exact in float. The 8 products
// are summed in float (fused multiply-adds, a fixed order), which is exact while the
// partial sums stay below 2^24 and otherwise rounds as float accumulation does: one
// vcvtdq2ps and one FMA per sub-block instead of an integer multiply (2 uops) and add,
// and no bias step. block_wide runs one or two panels (strips of 16 or 32 rows) against
// each activation broadcast; a lane's operations are the same either way.
// Without VNNI the vpmaddubsw pairs of V + 128 could saturate, so there the panel's bytes
// are turned back into |V| and the mask of the negative ones (per vector, once per
// micro-tile), each activation broadcast takes V's signs (vpmaddubsw pair <= 2 * 127 * 127
// = 32258) and vpmaddwd against the pair (ls - 32, ls - 32) gives the scaled sum in int32
// directly (exact). No mins.
struct PanelIQ4_XS {
  using Panel = PanelIQ4;
  using Act = ActQ8_K;
  static constexpr int kBlockBytes = sizeof(BlockIQ4_XS);
  static constexpr bool kMins = false;
  static constexpr bool kWide = true;        // with VNNI: block_wide, sub_offsets
  static constexpr int kSubOffsets = 8;      // -128 * bsum32_s, s = 0..7
  static constexpr int kD = offsetof(BlockIQ4_XS, d), kQs = offsetof(BlockIQ4_XS, qs);
  static constexpr int kSh = offsetof(BlockIQ4_XS, scales_h), kSl = offsetof(BlockIQ4_XS, scales_l);
  static_assert(kQs + 128 == kBlockBytes, "the qs end the block (the second transpose reads to its end)");

  static FK_INLINE void build(const uint8_t* const (&w)[kPanelRows], int64_t off, Panel* p) {
    alignas(64) __m512i t[32];  // qs dwords 0..31
    transpose_rows(w, off + kQs, t);
    transpose_rows(w, off + kQs + 64, t + 16);
    alignas(64) int32_t dw[16], hw[16], lw[16];  // d, scales_h, scales_l of each row
    for (int r = 0; r < kPanelRows; ++r) {
      dw[r] = load_u16(w[r] + off + kD);
      hw[r] = load_u16(w[r] + off + kSh);
      lw[r] = static_cast<int32_t>(load_u32(w[r] + off + kSl));
    }
    _mm512_store_ps(p->d, fp16_low_words(load512(dw)));
    // ls_s: low 4 bits nibble s of the scales_l dword, high 2 bits bits 2s, 2s + 1 of scales_h.
    const __m512i sl = load512(lw), sh = load512(hw);
    const __m512i m15 = _mm512_set1_epi32(15), m3 = _mm512_set1_epi32(3);
    for (int s = 0; s < 8; ++s) {
      const __m512i ls = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(sl, 4 * s), m15),
                                         _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(sh, 2 * s), m3), 4));
      const __m512i sc = _mm512_sub_epi32(ls, _mm512_set1_epi32(32));
      _mm512_store_ps(p->scf[s], _mm512_cvtepi32_ps(sc));
      _mm512_store_si512(p->sc2[s], int16_pair(sc, sc));
    }
    const __m512i m4 = _mm512_set1_epi8(0x0F), tab = load512(&kIq4Biased);
    for (int c = 0; c < 2; ++c) {
      for (int u = 0; u < 16; ++u) {
        const __m512i v = load512(&t[16 * c + u]);
        _mm512_store_si512(p->q[32 * c + u], _mm512_shuffle_epi8(tab, _mm512_and_si512(v, m4)));
        _mm512_store_si512(p->q[32 * c + 16 + u],
                           _mm512_shuffle_epi8(tab, _mm512_and_si512(_mm512_srli_epi16(v, 4), m4)));
      }
    }
  }

  // VNNI: the 8 sub-block offsets -128 * bsum32_s of an activation super-block (see above).
  static FK_INLINE void sub_offsets(const Act& y, int32_t* o) {
    for (int s = 0; s < 8; ++s) o[s] = -128 * y.bsum32[s];
  }

  // VNNI: the super-block's exact-product float totals tf[n][i] of panels p[n] (16 weight
  // rows each) and activation rows y[i], whose sub-block offsets are o[i][0..7].
  template <int MR, int NP>
  static FK_INLINE void block_wide(const Panel* const (&p)[NP], const Act* const (&y)[MR],
                                   const int32_t* const (&o)[MR], __m512 (&tf)[NP][MR], __m512i (&)[NP][MR]) {
    for (int n = 0; n < NP; ++n)
      for (int i = 0; i < MR; ++i) tf[n][i] = _mm512_setzero_ps();
    // Sub-block s = 4 c + j: vectors g0 .. g0 + 3 and g0 + 16 .. g0 + 19, g0 = 32 c + 4 j.
    for (int s = 0; s < 8; ++s) {
      const int g0 = 32 * (s / 4) + 4 * (s % 4);
      const int gs[4] = {g0, g0 + 2, g0 + 16, g0 + 18};
      wide_sub_block<true>(p, y, o, s, gs, tf);
    }
  }

  // Without VNNI: the exact int32 total (see above).
  template <int MR, bool kVnni>
  static FK_INLINE void block(const Panel& p, const Act* const (&y)[MR], __m512i (&tot)[MR],
                              __m512i (&)[MR]) {
    static_assert(!kVnni, "VNNI runs block_wide");
    for (int i = 0; i < MR; ++i) tot[i] = _mm512_setzero_si512();
    // Sub-block s = 4 c + j: vectors g0 .. g0 + 3 and g0 + 16 .. g0 + 19, g0 = 32 c + 4 j.
    for (int s = 0; s < 8; ++s) {
      const int g0 = 32 * (s / 4) + 4 * (s % 4);
      const __m512i sc2 = load512(p.sc2[s]);
      for (int h = 0; h < 2; ++h) {
        for (int c = 0; c < 4; ++c) {
          const int g = g0 + 16 * h + c;
          const __m512i v = _mm512_xor_si512(load512(p.q[g]), _mm512_set1_epi8(static_cast<char>(0x80)));
          const __m512i a = _mm512_abs_epi8(v);
          const __mmask64 neg = _mm512_movepi8_mask(v);
          for (int i = 0; i < MR; ++i) {
            const __m512i yb = bcast32(y[i]->y + 4 * g);
            const __m512i ys = _mm512_mask_sub_epi8(yb, neg, _mm512_setzero_si512(), yb);
            tot[i] = _mm512_add_epi32(tot[i], _mm512_madd_epi16(_mm512_maddubs_epi16(a, ys), sc2));
          }
        }
      }
    }
  }
};

template <>
struct PanelCodec<Format::kIQ4_XS> : PanelIQ4_XS {};

// ---- Weight panels of the 32-element formats (Q4_0, Q5_0, IQ4_NL, Q8_0, Q4_1, Q5_1) -----------
// Batches (kernels/avx512/int8_kpanel-inl.h): one block of 16 weight rows decoded into a
// panel of 8 vectors, vector c lane r = row r's 4 weight bytes of elements 4c .. 4c + 3,
// swept over the activation groups (ActQ8_0x4, the general rows' packers) by broadcasts of
// the 4 matching activation bytes: elements 4c .. of block `sub` of a group sit at
// y[16 sub + 4c] (c < 4) and y[64 + 16 sub + 4 (c - 4)]. Per (activation row, block) the
// exact int32 dot starts from the block's integer offset (the sum of its 4 aux lanes, see
// KPanelInt8::run): Q4_0 / Q5_0 store q (0..15 / 0..31, offsets -8 / -16 times the
// activation sum); IQ4_NL and Q8_0 store their signed values + 128 (V + 128 by one vpshufb
// of kIq4Biased; Q8_0's q xor 0x80), which vpdpbusd multiplies as they are, the offset
// -128 times the activation sum. Without VNNI vpmaddubsw pairs of those could saturate, so
// there the bytes are turned back into |V| and the mask of the negative ones (per vector,
// once per micro-tile), each activation broadcast takes V's signs (pair <= 2 * 128 * 127 =
// 32512) and no offset is needed; Q4_0 / Q5_0 pairs stay <= 4 * 31 * 127 = 15748 as int16.
// Q4_1 / Q5_1 store q (no offset) and add their min term per block after the scale step,
// acc += m_w * aux, aux = da * (the block's activation sum) as their packer stores it.

struct alignas(64) PanelL32 {
  int32_t q[8][16];  // vector c: row r's weight bytes of elements 4c .. 4c + 3
  float d[16];       // row r's block scale
  float m[16];       // row r's block min (Q4_1 / Q5_1)
};

enum class L32Kind { kNibble, kIq4, kQ8 };

// Block: the format's block struct; kM: offset of Q4_1 / Q5_1's min (-1: none); kQh: offset
// of Q5_0 / Q5_1's high bits (-1: none).
template <class Block, int kM, int kQh, L32Kind kKind>
struct PanelLegacy {
  using Panel = PanelL32;
  using Act = ActQ8_0x4;
  static constexpr int kBlockBytes = sizeof(Block);
  static constexpr bool kMins = kM >= 0;  // acc += m_w * aux (float da * activation sum)
  static constexpr bool kWide = false;  // see kernels/avx512/int8_kpanel-inl.h
  static constexpr bool kSignedBytes = kKind != L32Kind::kNibble;  // stored + 128
  // Whether the dot starts from the block's aux offset (the packer's bias times its sum).
  template <bool kVnni>
  static constexpr bool kOffset = !kMins && (!kSignedBytes || kVnni);
  static constexpr int kD = offsetof(Block, d), kQs = offsetof(Block, qs);
  static_assert(kD + 4 <= kBlockBytes && kM + 4 <= kBlockBytes, "dword gathers stay in the block");

  // blk: the block of the strip's first row; lane r of rows: row r's byte offset from it.
  // Every field is gathered per dword (4 bytes inside the block), one lane per row.
  static FK_INLINE __m512i field(const uint8_t* blk, __m512i rows, int off) {
    return _mm512_i32gather_epi32(rows, blk + off, 1);
  }

  static FK_INLINE void build(const uint8_t* blk, __m512i rows, Panel* p) {
    _mm512_store_ps(p->d, fp16_low_words(field(blk, rows, kD)));
    if constexpr (kMins) _mm512_store_ps(p->m, fp16_low_words(field(blk, rows, kM)));
    if constexpr (kKind == L32Kind::kQ8) {
      const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
      for (int c = 0; c < 8; ++c) _mm512_store_si512(p->q[c], _mm512_xor_si512(field(blk, rows, kQs + 4 * c), flip));
    } else {
      const __m512i m4 = _mm512_set1_epi8(15);
      __m512i qh = _mm512_setzero_si512();
      if constexpr (kQh >= 0) qh = field(blk, rows, kQh);
      for (int j = 0; j < 4; ++j) {
        // qs dword j: low nibbles are elements 4j .. 4j + 3, high ones 16 + 4j .. (vector 4 + j).
        const __m512i x = field(blk, rows, kQs + 4 * j);
        __m512i v[2] = {_mm512_and_si512(x, m4), _mm512_and_si512(_mm512_srli_epi16(x, 4), m4)};
        for (int h = 0; h < 2; ++h) {
          const int c = j + 4 * h;
          if constexpr (kQh >= 0) {
            // Byte t of vector c: bit 4c + t of qh, i.e. bit 4 (c % 2) + t of qh byte c / 2.
            static constexpr Bytes kSel[4] = {dword_pattern(0, 0, 0, 0), dword_pattern(1, 1, 1, 1),
                                              dword_pattern(2, 2, 2, 2), dword_pattern(3, 3, 3, 3)};
            const __m512i sel = _mm512_shuffle_epi8(qh, load512(&kSel[c / 2]));
            const __mmask64 set = _mm512_test_epi8_mask(
                sel, _mm512_set1_epi32(c % 2 == 0 ? 0x08040201 : static_cast<int>(0x80402010u)));
            v[h] = _mm512_mask_add_epi8(v[h], set, v[h], _mm512_set1_epi8(16));
          }
          if constexpr (kKind == L32Kind::kIq4) v[h] = _mm512_shuffle_epi8(load512(&kIq4Biased), v[h]);
          _mm512_store_si512(p->q[c], v[h]);
        }
      }
    }
  }

  // Position in ActQ8_0x4::y of elements 4c .. 4c + 3 of block `sub` of the group.
  static FK_INLINE int y_at(int sub, int c) { return (c < 4 ? 0 : 64) + 16 * sub + 4 * (c % 4); }

  template <int MR, bool kVnni>
  static FK_INLINE void block(const Panel& p, const ActQ8_0x4* const (&y)[MR], int sub,
                              __m512i (&tot)[MR]) {
    if constexpr (!kSignedBytes || kVnni) {
      for (int c = 0; c < 8; c += 2) {
        const __m512i w0 = load512(p.q[c]), w1 = load512(p.q[c + 1]);
        const int o0 = y_at(sub, c), o1 = y_at(sub, c + 1);
        for (int i = 0; i < MR; ++i)
          tot[i] = dot2_u8s8<kVnni>(tot[i], w0, bcast32(y[i]->y + o0), w1, bcast32(y[i]->y + o1));
      }
    } else {
      const __m512i ones16 = _mm512_set1_epi16(1);
      for (int c = 0; c < 8; ++c) {
        const __m512i v = _mm512_xor_si512(load512(p.q[c]), _mm512_set1_epi8(static_cast<char>(0x80)));
        const __m512i a = _mm512_abs_epi8(v);
        const __mmask64 neg = _mm512_movepi8_mask(v);
        const int o = y_at(sub, c);
        for (int i = 0; i < MR; ++i) {
          const __m512i yb = bcast32(y[i]->y + o);
          const __m512i ys = _mm512_mask_sub_epi8(yb, neg, _mm512_setzero_si512(), yb);
          tot[i] = _mm512_add_epi32(tot[i], _mm512_madd_epi16(_mm512_maddubs_epi16(a, ys), ones16));
        }
      }
    }
  }
};

template <>
struct PanelCodec<Format::kQ4_0> : PanelLegacy<BlockQ4_0, -1, -1, L32Kind::kNibble> {};
template <>
struct PanelCodec<Format::kQ5_0> : PanelLegacy<BlockQ5_0, -1, offsetof(BlockQ5_0, qh), L32Kind::kNibble> {};
template <>
struct PanelCodec<Format::kIQ4_NL> : PanelLegacy<BlockIQ4_NL, -1, -1, L32Kind::kIq4> {};
template <>
struct PanelCodec<Format::kQ8_0> : PanelLegacy<BlockQ8_0, -1, -1, L32Kind::kQ8> {};
template <>
struct PanelCodec<Format::kQ4_1>
    : PanelLegacy<BlockQ4_1, offsetof(BlockQ4_1, m), -1, L32Kind::kNibble> {};
template <>
struct PanelCodec<Format::kQ5_1>
    : PanelLegacy<BlockQ5_1, offsetof(BlockQ5_1, m), offsetof(BlockQ5_1, qh), L32Kind::kNibble> {};

// ---- F16 / BF16: 16-bit floats, one per element ----------------------------------------------
// Both conversions are exact (every F16 / BF16 value is a float): F16 by vcvtph2ps (F16C's
// 512-bit form, AVX-512F), BF16 by shifting its 16 bits into the top of a float. The partial
// last vector is a masked 16-bit load (AVX-512BW), the other lanes 0.

template <>
struct FloatElems<Format::kF16> {
  static constexpr int kBytes = 2;
  static FK_INLINE __m512 load(const uint8_t* p) { return _mm512_cvtph_ps(loadu256(p)); }
  static FK_INLINE __m512 load_first(const uint8_t* p, int64_t n) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(static_cast<__mmask16>((1u << n) - 1), p));
  }
};

template <>
struct FloatElems<Format::kBF16> {
  static constexpr int kBytes = 2;
  static FK_INLINE __m512 widen(__m256i h) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
  static FK_INLINE __m512 load(const uint8_t* p) { return widen(loadu256(p)); }
  static FK_INLINE __m512 load_first(const uint8_t* p, int64_t n) {
    return widen(_mm256_maskz_loadu_epi16(static_cast<__mmask16>((1u << n) - 1), p));
  }
};

}  // namespace
}  // namespace fk

#endif  // KERNELS_AVX512_CODECS_INL_H_
