// The avx2 codecs: per weight format, how one block is decoded on each path. Adding a format
// to the avx2 variant = its codecs here + its rows in kernels/registry.inc (the rows define
// the entry points, kernels/simd/entry_points-inl.h). Textual header for the avx2 library's
// .cc files only (see kernels/simd/common-inl.h).
//
//   F32Decoder<F>  f32 path (kernels/simd/f32_path-inl.h): a block's dequantized weights,
//                  8 at a time, bit for bit the reference dequantizer's values.
//   Int8Codec<F>   int8 path, one of two kinds, by the activation blocks it reads (kAct):
//                  Q8_0: one 32-element block unpacked to bytes and dotted with one Q8_0
//                  block (the driver: kernels/avx2/int8_legacy-inl.h);
//                  Q8_K: one super-block's integer dots against one Q8_K block for a whole
//                  tile (kernels/avx2/int8_kquant-inl.h).
// Block fields are read at their offsets in the block structs (kernels/formats.h).
//
// Integer ranges (maddubs saturates at +-32767 per int16 lane, a pair of products): |y| <=
// 127 for activations (both reference quantizers map to [-127, 127]); 4-bit q: 2*15*127 =
// 3810; 5-bit: 2*31*127 = 7874; 6-bit: 2*63*127 = 16002; signed 8-bit via |w| x sign(y, w):
// 2*128*127 = 32512. All fit, and every int32 sum stays below 2^31.
#ifndef KERNELS_AVX2_CODECS_INL_H_
#define KERNELS_AVX2_CODECS_INL_H_

#include "kernels/avx2/vec-inl.h"
#include "kernels/simd/f32_path-inl.h"

namespace fk {
namespace {

// The activation blocks of the int8 path: the reference Q8_0 / Q8_K blocks, byte for byte
// (the avx2 packers, kernels/avx2/act_packers.cc, write exactly those).
constexpr int kQ8_0Bytes = sizeof(BlockQ8_0);
constexpr int kQ8_0D = offsetof(BlockQ8_0, d);
constexpr int kQ8_0Qs = offsetof(BlockQ8_0, qs);
constexpr int kQ8_KBytes = sizeof(BlockQ8_K);
constexpr int kQ8_KD = offsetof(BlockQ8_K, d);
constexpr int kQ8_KQs = offsetof(BlockQ8_K, qs);
constexpr int kQ8_KBsums = offsetof(BlockQ8_K, bsums);

template <Format F>
struct Int8Codec;

// Q8_0 kind (kernels/avx2/int8_legacy-inl.h):
//   kAct = Format::kQ8_0; kBytes, kD (and kM when kHasMin): the block's size and the offsets
//   of its fp16 d (and m); decode(block) -> W; dot(W, y) -> 8 int32 lanes whose sum is
//   sum(q * y) over the block, q unsigned for Q4_0 / Q5_0 (the driver subtracts the offset:
//   kBiasPerLane * sum(y) per lane).

// Q8_K kind (kernels/avx2/int8_kquant-inl.h):
//   kAct = Format::kQ8_K; kBytes; d(block) -> the super-block scale;
//   block<MR, NR>(blk, yb, da, acc, isum): for the NR weight blocks blk[j] and the MR
//   activation blocks yb[i] (scale da[i]): isum[i][j] = the exact integer dot sum_s sc_s *
//   sum(q * y) over the super-block, offsets included; terms scaled by other factors than
//   d * da (Q4_K / Q5_K mins: dmin * da) go into acc[i][j] directly.

// ---- Q4_0: w = d * (q - 8) ---------------------------------------------------------------------

template <>
struct F32Decoder<Format::kQ4_0> {
  static constexpr int kElems = kQK, kBytes = sizeof(BlockQ4_0);
  const uint8_t* qs;
  __m256 d, off;  // w = d * q - 8 d  (exactly d * (q - 8), one rounding)
  FK_INLINE void init(const uint8_t* blk) {
    qs = blk + offsetof(BlockQ4_0, qs);
    d = bcast_fp16(blk + offsetof(BlockQ4_0, d));
    off = _mm256_mul_ps(d, _mm256_set1_ps(-8.0f));
  }
  FK_INLINE __m256 group(int g) const {
    const __m256i v = u8x8_to_i32(qs + 8 * (g & 1));
    const __m256i q = g < 2 ? _mm256_and_si256(v, _mm256_set1_epi32(15)) : _mm256_srli_epi32(v, 4);
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(q), d, off);
  }
};

// Low nibbles (elements 0-15) in the low 128 bits, high nibbles (16-31) in the high.
FK_INLINE __m256i unpack_nibbles(const uint8_t* qs) {
  const __m256i v = _mm256_broadcastsi128_si256(loadu128(qs));
  return _mm256_and_si256(_mm256_srlv_epi32(v, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4)),
                          _mm256_set1_epi8(15));
}

template <>
struct Int8Codec<Format::kQ4_0> {
  static constexpr Format kAct = Format::kQ8_0;
  static constexpr int kBytes = sizeof(BlockQ4_0);
  static constexpr int kD = offsetof(BlockQ4_0, d);
  static constexpr int kBiasPerLane = 1;  // subtract ysum per lane: 8 lanes -> 8 * sum(y)
  static constexpr bool kHasMin = false;
  using W = __m256i;
  FK_INLINE static W decode(const uint8_t* blk) {
    return unpack_nibbles(blk + offsetof(BlockQ4_0, qs));
  }
  FK_INLINE static __m256i dot(W w, __m256i y) { return dot_us(w, y); }
};

// ---- Q4_1: w = d * q + m -----------------------------------------------------------------------

template <>
struct F32Decoder<Format::kQ4_1> {
  static constexpr int kElems = kQK, kBytes = sizeof(BlockQ4_1);
  const uint8_t* qs;
  __m256 d, m;
  FK_INLINE void init(const uint8_t* blk) {
    qs = blk + offsetof(BlockQ4_1, qs);
    d = bcast_fp16(blk + offsetof(BlockQ4_1, d));
    m = bcast_fp16(blk + offsetof(BlockQ4_1, m));
  }
  FK_INLINE __m256 group(int g) const {
    const __m256i v = u8x8_to_i32(qs + 8 * (g & 1));
    const __m256i q = g < 2 ? _mm256_and_si256(v, _mm256_set1_epi32(15)) : _mm256_srli_epi32(v, 4);
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(q), d, m);
  }
};

template <>
struct Int8Codec<Format::kQ4_1> {
  static constexpr Format kAct = Format::kQ8_0;
  static constexpr int kBytes = sizeof(BlockQ4_1);
  static constexpr int kD = offsetof(BlockQ4_1, d);
  static constexpr int kM = offsetof(BlockQ4_1, m);
  static constexpr int kBiasPerLane = 0;
  static constexpr bool kHasMin = true;
  using W = __m256i;
  FK_INLINE static W decode(const uint8_t* blk) {
    return unpack_nibbles(blk + offsetof(BlockQ4_1, qs));
  }
  FK_INLINE static __m256i dot(W w, __m256i y) { return dot_us(w, y); }
};

// The 32 5-bit quants of a Q5_0 / Q5_1 block as bytes (elements 0..15 in the low 128 bits,
// 16..31 in the high): the nibbles, plus 16 where the element's bit of qh is set. Byte j
// gets qh byte j / 8; keep bit j % 8 by OR-ing all other bits to 1 and comparing with
// all-ones; the 0xFF / 0x00 mask then selects 16.
FK_INLINE __m256i unpack_five_bit(const uint8_t* qs, const uint8_t* qh_bytes) {
  const __m256i lo = unpack_nibbles(qs);
  const __m256i qh = _mm256_set1_epi32(static_cast<int>(load_u32(qh_bytes)));
  const __m256i spread = _mm256_shuffle_epi8(
      qh, _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2,
                           2, 2, 3, 3, 3, 3, 3, 3, 3, 3));
  const __m256i bit = _mm256_set1_epi64x(static_cast<int64_t>(0x7FBFDFEFF7FBFDFEull));
  const __m256i set = _mm256_cmpeq_epi8(_mm256_or_si256(spread, bit), _mm256_set1_epi8(-1));
  return _mm256_or_si256(lo, _mm256_and_si256(set, _mm256_set1_epi8(16)));
}

// The 8 5-bit quants 8g .. 8g + 7 of a Q5_0 / Q5_1 block as int32 (qh broadcast to all
// lanes): bit 8g + t of qh is bit 4 of element 8g + t.
FK_INLINE __m256i five_bit_group(const uint8_t* qs, __m256i qh, int g) {
  const __m256i v = u8x8_to_i32(qs + 8 * (g & 1));
  const __m256i lo = g < 2 ? _mm256_and_si256(v, _mm256_set1_epi32(15)) : _mm256_srli_epi32(v, 4);
  const __m256i shift =
      _mm256_add_epi32(_mm256_set1_epi32(8 * g), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  const __m256i hi =
      _mm256_and_si256(_mm256_slli_epi32(_mm256_srlv_epi32(qh, shift), 4), _mm256_set1_epi32(16));
  return _mm256_or_si256(lo, hi);
}

// ---- Q5_0: w = d * (q - 16), bit 4 of q from qh -------------------------------------------------

template <>
struct F32Decoder<Format::kQ5_0> {
  static constexpr int kElems = kQK, kBytes = sizeof(BlockQ5_0);
  const uint8_t* qs;
  __m256i qh;     // the 32 high bits, broadcast
  __m256 d, off;  // w = d * q - 16 d
  FK_INLINE void init(const uint8_t* blk) {
    d = bcast_fp16(blk + offsetof(BlockQ5_0, d));
    off = _mm256_mul_ps(d, _mm256_set1_ps(-16.0f));
    qh = _mm256_set1_epi32(static_cast<int>(load_u32(blk + offsetof(BlockQ5_0, qh))));
    qs = blk + offsetof(BlockQ5_0, qs);
  }
  FK_INLINE __m256 group(int g) const {
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(five_bit_group(qs, qh, g)), d, off);
  }
};

template <>
struct Int8Codec<Format::kQ5_0> {
  static constexpr Format kAct = Format::kQ8_0;
  static constexpr int kBytes = sizeof(BlockQ5_0);
  static constexpr int kD = offsetof(BlockQ5_0, d);
  static constexpr int kBiasPerLane = 2;  // 8 lanes * 2 * sum(y) = 16 * sum(y)
  static constexpr bool kHasMin = false;
  using W = __m256i;
  FK_INLINE static W decode(const uint8_t* blk) {
    return unpack_five_bit(blk + offsetof(BlockQ5_0, qs), blk + offsetof(BlockQ5_0, qh));
  }
  FK_INLINE static __m256i dot(W w, __m256i y) { return dot_us(w, y); }
};

// ---- Q5_1: w = d * q + m, bit 4 of q from qh ----------------------------------------------------

template <>
struct F32Decoder<Format::kQ5_1> {
  static constexpr int kElems = kQK, kBytes = sizeof(BlockQ5_1);
  const uint8_t* qs;
  __m256i qh;  // the 32 high bits, broadcast
  __m256 d, m;
  FK_INLINE void init(const uint8_t* blk) {
    d = bcast_fp16(blk + offsetof(BlockQ5_1, d));
    m = bcast_fp16(blk + offsetof(BlockQ5_1, m));
    qh = _mm256_set1_epi32(static_cast<int>(load_u32(blk + offsetof(BlockQ5_1, qh))));
    qs = blk + offsetof(BlockQ5_1, qs);
  }
  // d * q is exact (an fp16 significand times a 5-bit integer), so the FMA rounds once, as
  // the reference's d * q + m does.
  FK_INLINE __m256 group(int g) const {
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(five_bit_group(qs, qh, g)), d, m);
  }
};

template <>
struct Int8Codec<Format::kQ5_1> {
  static constexpr Format kAct = Format::kQ8_0;
  static constexpr int kBytes = sizeof(BlockQ5_1);
  static constexpr int kD = offsetof(BlockQ5_1, d);
  static constexpr int kM = offsetof(BlockQ5_1, m);
  static constexpr int kBiasPerLane = 0;
  static constexpr bool kHasMin = true;
  using W = __m256i;
  FK_INLINE static W decode(const uint8_t* blk) {
    return unpack_five_bit(blk + offsetof(BlockQ5_1, qs), blk + offsetof(BlockQ5_1, qh));
  }
  FK_INLINE static __m256i dot(W w, __m256i y) { return dot_us(w, y); }
};

// ---- Q8_0: w = d * q, q signed -------------------------------------------------------------------

template <>
struct F32Decoder<Format::kQ8_0> {
  static constexpr int kElems = kQK, kBytes = sizeof(BlockQ8_0);
  const uint8_t* qs;
  __m256 d;
  FK_INLINE void init(const uint8_t* blk) {
    qs = blk + offsetof(BlockQ8_0, qs);
    d = bcast_fp16(blk + offsetof(BlockQ8_0, d));
  }
  FK_INLINE __m256 group(int g) const {
    return _mm256_mul_ps(_mm256_cvtepi32_ps(s8x8_to_i32(qs + 8 * g)), d);
  }
};

template <>
struct Int8Codec<Format::kQ8_0> {
  static constexpr Format kAct = Format::kQ8_0;
  static constexpr int kBytes = sizeof(BlockQ8_0);
  static constexpr int kD = offsetof(BlockQ8_0, d);
  static constexpr int kBiasPerLane = 0;
  static constexpr bool kHasMin = false;
  struct W {
    __m256i abs, sign;  // |w| and w (whose signs are moved onto y)
  };
  FK_INLINE static W decode(const uint8_t* blk) {
    const __m256i v = loadu256(blk + offsetof(BlockQ8_0, qs));
    return {_mm256_abs_epi8(v), v};
  }
  FK_INLINE static __m256i dot(const W& w, __m256i y) {
    return dot_us(w.abs, _mm256_sign_epi8(y, w.sign));
  }
};

// ---- Q4_K / Q5_K: w = (d * sc) * q - (dmin * m) per sub-block of 32 ------------------------------
// (Q5_K: a fifth bit per weight in qh.) The two share their layout up to qh.
static_assert(offsetof(BlockQ4_K, d) == offsetof(BlockQ5_K, d) &&
                  offsetof(BlockQ4_K, dmin) == offsetof(BlockQ5_K, dmin) &&
                  offsetof(BlockQ4_K, scales) == offsetof(BlockQ5_K, scales),
              "Q4_K and Q5_K headers agree");

template <bool kFive>
struct DecQ45_K {
  using Block = std::conditional_t<kFive, BlockQ5_K, BlockQ4_K>;
  static constexpr int kElems = kQK_K, kBytes = sizeof(Block);
  const uint8_t* qs;
  const uint8_t* qh;
  alignas(32) float ds[8];  // d * sc per sub-block
  alignas(32) float dm[8];  // dmin * m per sub-block
  FK_INLINE void init(const uint8_t* blk) {
    uint64_t sc, mn;
    unpack_k4_scales(blk + offsetof(Block, scales), &sc, &mn);
    const __m256 sc_f = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128(sc)));
    const __m256 mn_f = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128(mn)));
    _mm256_store_ps(ds, _mm256_mul_ps(bcast_fp16(blk + offsetof(Block, d)), sc_f));
    _mm256_store_ps(dm, _mm256_mul_ps(bcast_fp16(blk + offsetof(Block, dmin)), mn_f));
    if constexpr (kFive) qh = blk + offsetof(BlockQ5_K, qh);
    qs = blk + offsetof(Block, qs);
  }
  // Group g: sub-block s = g / 4 (elements 32 s + 8 t .. +7, t = g % 4). Sub-blocks 2c and
  // 2c+1 are the low and high nibbles of qs[32 c .. 32 c + 31]; Q5_K's fifth bit of element
  // l of sub-block s is bit s of qh[l].
  FK_INLINE __m256 group(int g) const {
    const int s = g >> 2, t = g & 3;
    const __m256i v = u8x8_to_i32(qs + 32 * (s >> 1) + 8 * t);
    __m256i q = _mm256_and_si256(_mm256_srl_epi32(v, _mm_cvtsi32_si128(4 * (s & 1))),
                                 _mm256_set1_epi32(15));
    if constexpr (kFive) {
      const __m256i h = _mm256_srl_epi32(u8x8_to_i32(qh + 8 * t), _mm_cvtsi32_si128(s));
      q = _mm256_or_si256(q, _mm256_slli_epi32(_mm256_and_si256(h, _mm256_set1_epi32(1)), 4));
    }
    return _mm256_fmsub_ps(_mm256_cvtepi32_ps(q), _mm256_broadcast_ss(ds + s),
                           _mm256_broadcast_ss(dm + s));
  }
};

// 8 int32 lanes, lane s = v_s | v_s << 16 (the byte v_s as an int16 pair, for madd).
FK_INLINE __m256i pair16(uint64_t bytes8) {
  const __m256i v = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(static_cast<int64_t>(bytes8)));
  return _mm256_or_si256(v, _mm256_slli_epi32(v, 16));
}

// Per 64-element chunk c: the quants of sub-blocks 2c (low nibbles) and 2c+1 (high) against
// the Q8_K quants in element order, each madd'ed with its sub-block's int16 scale; the mins
// use the Q8_K bsums (sums of 16 quants) instead of touching the activations again.
template <bool kFive>
struct Int8Q45_K {
  using Block = std::conditional_t<kFive, BlockQ5_K, BlockQ4_K>;
  static constexpr Format kAct = Format::kQ8_K;
  static constexpr int kBytes = sizeof(Block);
  static FK_INLINE float d(const uint8_t* blk) { return _cvtsh_ss(load_u16(blk + offsetof(Block, d))); }

  template <int MR, int NR>
  static FK_INLINE void block(const uint8_t* const (&blk)[NR], const uint8_t* const (&yb)[MR],
                              const float (&da)[MR], __m256 (&acc)[MR][NR],
                              __m256i (&isum)[MR][NR]) {
    const __m256i m4 = _mm256_set1_epi8(15);
    const __m256i b4 = _mm256_set1_epi8(16);
    __m256i scl[NR];  // the 8 scales as int16, in both 128-bit halves
    for (int j = 0; j < NR; ++j) {
      uint64_t sc, mn;
      unpack_k4_scales(blk[j] + offsetof(Block, scales), &sc, &mn);
      scl[j] = _mm256_broadcastsi128_si256(
          _mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<int64_t>(sc))));
      const __m256i mins = pair16(mn);
      const float dmin = _cvtsh_ss(load_u16(blk[j] + offsetof(Block, dmin)));
      for (int i = 0; i < MR; ++i) {
        // - dmin * da * sum_s m_s * (bsum[2s] + bsum[2s+1])
        const __m256i ms = _mm256_madd_epi16(mins, loadu256(yb[i] + kQ8_KBsums));
        acc[i][j] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(ms), _mm256_set1_ps(dmin * da[i]),
                                     acc[i][j]);
        isum[i][j] = _mm256_setzero_si256();
      }
    }
#pragma GCC unroll 4
    for (int c = 0; c < 4; ++c) {
      // Byte pairs (4c, 4c+1) / (4c+2, 4c+3) everywhere: int16 scale 2c / 2c+1 broadcast.
      const __m256i sel_lo = _mm256_set1_epi16(static_cast<short>(0x0100 * (4 * c + 1) + 4 * c));
      const __m256i sel_hi =
          _mm256_set1_epi16(static_cast<short>(0x0100 * (4 * c + 3) + 4 * c + 2));
      const __m128i qh_shift = _mm_cvtsi32_si128(2 * c);
      for (int j = 0; j < NR; ++j) {
        const __m256i x = loadu256(blk[j] + offsetof(Block, qs) + 32 * c);
        __m256i lo = _mm256_and_si256(x, m4);
        __m256i hi = _mm256_and_si256(_mm256_srli_epi16(x, 4), m4);
        if constexpr (kFive) {
          // Bits 2c and 2c+1 of qh[l] are the fifth bits of sub-blocks 2c and 2c+1: shift
          // them down to bits 0 and 1, then to bit 4 (bits crossing bytes are masked off).
          const __m256i qh = _mm256_srl_epi16(loadu256(blk[j] + offsetof(BlockQ5_K, qh)), qh_shift);
          lo = _mm256_or_si256(lo, _mm256_and_si256(_mm256_slli_epi16(qh, 4), b4));
          hi = _mm256_or_si256(hi, _mm256_and_si256(_mm256_slli_epi16(qh, 3), b4));
        }
        const __m256i s_lo = _mm256_shuffle_epi8(scl[j], sel_lo);
        const __m256i s_hi = _mm256_shuffle_epi8(scl[j], sel_hi);
        for (int i = 0; i < MR; ++i) {
          const uint8_t* q8 = yb[i] + kQ8_KQs + 64 * c;
          const __m256i p_lo = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, loadu256(q8)), s_lo);
          const __m256i p_hi =
              _mm256_madd_epi16(_mm256_maddubs_epi16(hi, loadu256(q8 + 32)), s_hi);
          isum[i][j] = _mm256_add_epi32(isum[i][j], _mm256_add_epi32(p_lo, p_hi));
        }
      }
    }
  }
};

template <>
struct F32Decoder<Format::kQ4_K> : DecQ45_K<false> {};
template <>
struct Int8Codec<Format::kQ4_K> : Int8Q45_K<false> {};
template <>
struct F32Decoder<Format::kQ5_K> : DecQ45_K<true> {};
template <>
struct Int8Codec<Format::kQ5_K> : Int8Q45_K<true> {};

// The integer sums of one half (128 elements, sub-blocks of 16) of weight row j against each
// activation row i's Q8_K quants of that half, added to isum[i][j]: q[r] holds elements 32 r ..
// 32 r + 31 of the half as unsigned bytes in the activations' order (sub-blocks 2r / 2r + 1 in
// its low / high 128 bits), sc8 the half's 8 signed int8 scales. Per r: maddubs(q[r], y), then
// madd by the int16 scale pair sc[2r] (low lane) / sc[2r + 1] (high lane), picked from the 8
// scales widened into both 128-bit lanes. Q6_K and Q2_K / Q3_K share it.
template <int MR, int NR>
FK_INLINE void dot_sub16(__m256i (&isum)[MR][NR], int j, const __m256i (&q)[4], const void* sc8,
                         const uint8_t* const (&yb)[MR], int h) {
  const __m256i pick[4] = {
      _mm256_setr_epi8(0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 2, 3, 2, 3, 2, 3, 2, 3,
                       2, 3, 2, 3, 2, 3, 2, 3),
      _mm256_setr_epi8(4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 6, 7, 6, 7, 6, 7, 6, 7,
                       6, 7, 6, 7, 6, 7, 6, 7),
      _mm256_setr_epi8(8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 10, 11, 10, 11, 10, 11,
                       10, 11, 10, 11, 10, 11, 10, 11, 10, 11),
      _mm256_setr_epi8(12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 14, 15,
                       14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15)};
  const __m256i sc_half = _mm256_cvtepi8_epi16(_mm_unpacklo_epi64(loadu64(sc8), loadu64(sc8)));
  for (int r = 0; r < 4; ++r) {
    const __m256i scv = _mm256_shuffle_epi8(sc_half, pick[r]);
    for (int i = 0; i < MR; ++i) {
      const __m256i p = _mm256_maddubs_epi16(q[r], loadu256(yb[i] + kQ8_KQs + 128 * h + 32 * r));
      isum[i][j] = _mm256_add_epi32(isum[i][j], _mm256_madd_epi16(p, scv));
    }
  }
}

// ---- Q6_K: w = (d * sc) * (q - 32) per sub-block of 16, q 6-bit, int8 scales ----------------------

template <>
struct F32Decoder<Format::kQ6_K> {
  static constexpr int kElems = kQK_K, kBytes = sizeof(BlockQ6_K);
  const uint8_t* ql;
  const uint8_t* qh;
  alignas(32) float ds[16];   // d * sc
  alignas(32) float off[16];  // -32 * d * sc
  // fma(q, D, -32 D) is exactly D * (q - 32) rounded once.
  FK_INLINE void init(const uint8_t* blk) {
    ql = blk + offsetof(BlockQ6_K, ql);
    qh = blk + offsetof(BlockQ6_K, qh);
    const uint8_t* sc = blk + offsetof(BlockQ6_K, scales);
    const __m256 d = bcast_fp16(blk + offsetof(BlockQ6_K, d));
    const __m256 m32 = _mm256_set1_ps(-32.0f);
    for (int h = 0; h < 2; ++h) {
      const __m256 v = _mm256_mul_ps(d, _mm256_cvtepi32_ps(s8x8_to_i32(sc + 8 * h)));
      _mm256_store_ps(ds + 8 * h, v);
      _mm256_store_ps(off + 8 * h, _mm256_mul_ps(v, m32));
    }
  }
  // Element e = 128 h + 32 r + l (l = 8 t .. 8 t + 7): low 4 bits are nibble (r >> 1) of
  // ql[64 h + 32 (r & 1) + l], high 2 bits are bits 2r, 2r+1 of qh[32 h + l].
  FK_INLINE __m256 group(int g) const {
    const int h = g >> 4, r = (g >> 2) & 3, t = g & 3;
    const __m256i lo =
        _mm256_and_si256(_mm256_srl_epi32(u8x8_to_i32(ql + 64 * h + 32 * (r & 1) + 8 * t),
                                          _mm_cvtsi32_si128(4 * (r >> 1))),
                         _mm256_set1_epi32(15));
    const __m256i hi =
        _mm256_and_si256(_mm256_srl_epi32(u8x8_to_i32(qh + 32 * h + 8 * t), _mm_cvtsi32_si128(2 * r)),
                         _mm256_set1_epi32(3));
    const __m256i q = _mm256_or_si256(lo, _mm256_slli_epi32(hi, 4));
    const int s = 8 * h + 2 * r + (t >> 1);
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(q), _mm256_broadcast_ss(ds + s),
                           _mm256_broadcast_ss(off + s));
  }
};

// Per half h of 128 elements: 4 vectors of 32 unsigned quants in element order, each
// maddubs'ed with the activations and madd'ed with the int16 scales of its two sub-blocks
// (dot_sub16); the -32 offset is -32 * sum_s sc_s * bsum_s from the Q8_K bsums, exactly.
template <>
struct Int8Codec<Format::kQ6_K> {
  static constexpr Format kAct = Format::kQ8_K;
  static constexpr int kBytes = sizeof(BlockQ6_K);
  static constexpr int kQl = offsetof(BlockQ6_K, ql), kQh = offsetof(BlockQ6_K, qh);
  static constexpr int kSc = offsetof(BlockQ6_K, scales), kD = offsetof(BlockQ6_K, d);
  static FK_INLINE float d(const uint8_t* blk) { return _cvtsh_ss(load_u16(blk + kD)); }

  template <int MR, int NR>
  static FK_INLINE void block(const uint8_t* const (&blk)[NR], const uint8_t* const (&yb)[MR],
                              const float (&)[MR], __m256 (&)[MR][NR], __m256i (&isum)[MR][NR]) {
    const __m256i m4 = _mm256_set1_epi8(15);
    const __m256i m30 = _mm256_set1_epi8(0x30);
    for (int j = 0; j < NR; ++j) {
      const __m256i sc16 = _mm256_cvtepi8_epi16(loadu128(blk[j] + kSc));
      // Start at -32 * sum_s sc_s * bsum_s: the (q - 32) offset, exactly.
      for (int i = 0; i < MR; ++i)
        isum[i][j] = _mm256_sub_epi32(
            _mm256_setzero_si256(),
            _mm256_slli_epi32(_mm256_madd_epi16(sc16, loadu256(yb[i] + kQ8_KBsums)), 5));
    }
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
      for (int j = 0; j < NR; ++j) {
        const uint8_t* b = blk[j];
        const __m256i ql0 = loadu256(b + kQl + 64 * h);
        const __m256i ql1 = loadu256(b + kQl + 64 * h + 32);
        const __m256i qh = loadu256(b + kQh + 32 * h);
        const __m256i q[4] = {
            _mm256_or_si256(_mm256_and_si256(ql0, m4),
                            _mm256_and_si256(_mm256_slli_epi16(qh, 4), m30)),
            _mm256_or_si256(_mm256_and_si256(ql1, m4),
                            _mm256_and_si256(_mm256_slli_epi16(qh, 2), m30)),
            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                            _mm256_and_si256(qh, m30)),
            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                            _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30))};
        dot_sub16(isum, j, q, b + kSc + 8 * h, yb, h);
      }
    }
  }
};

// ---- Q8_K: w = d * q, q signed, float d ------------------------------------------------------------

template <>
struct F32Decoder<Format::kQ8_K> {
  static constexpr int kElems = kQK_K, kBytes = sizeof(BlockQ8_K);
  const uint8_t* qs;
  __m256 d;
  FK_INLINE void init(const uint8_t* blk) {
    d = _mm256_set1_ps(load_f32(blk + offsetof(BlockQ8_K, d)));
    qs = blk + offsetof(BlockQ8_K, qs);
  }
  FK_INLINE __m256 group(int g) const {
    return _mm256_mul_ps(_mm256_cvtepi32_ps(s8x8_to_i32(qs + 8 * g)), d);
  }
};

template <>
struct Int8Codec<Format::kQ8_K> {
  static constexpr Format kAct = Format::kQ8_K;
  static constexpr int kBytes = sizeof(BlockQ8_K);
  static FK_INLINE float d(const uint8_t* blk) { return load_f32(blk + offsetof(BlockQ8_K, d)); }

  template <int MR, int NR>
  static FK_INLINE void block(const uint8_t* const (&blk)[NR], const uint8_t* const (&yb)[MR],
                              const float (&)[MR], __m256 (&)[MR][NR], __m256i (&isum)[MR][NR]) {
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j) isum[i][j] = _mm256_setzero_si256();
    for (int c = 0; c < kQK_K / 32; ++c) {
      for (int j = 0; j < NR; ++j) {
        const __m256i v = loadu256(blk[j] + offsetof(BlockQ8_K, qs) + 32 * c);
        const __m256i av = _mm256_abs_epi8(v);
        for (int i = 0; i < MR; ++i) {
          const __m256i q8 = loadu256(yb[i] + kQ8_KQs + 32 * c);
          isum[i][j] = _mm256_add_epi32(isum[i][j], dot_us(av, _mm256_sign_epi8(q8, v)));
        }
      }
    }
  }
};

// ---- Q2_K / Q3_K: 2-bit fields (+ Q3_K's third bit in hmask), 16 sub-blocks of 16 ------------------
// Element e = 128 h + 32 r + l: bits 2r, 2r+1 of qs[32 h + l]; Q3_K's third bit is bit
// 4h + r of hmask[l].

// f32 path. Group g: elements 8 g .. 8 g + 7: h = g / 16, r = (g / 4) % 4, l = 8 (g % 4) ..,
// sub-block g / 2. Q2_K: (d * sc) * q - dmin * m; Q3_K: (d * (sc - 32)) * (q - 4 [bit
// clear]); the reference's operations and roundings (no FMA).
template <bool kThree>
struct DecQ23_K {
  using Block = std::conditional_t<kThree, BlockQ3_K, BlockQ2_K>;
  static constexpr int kElems = kQK_K, kBytes = sizeof(Block);
  alignas(32) float dl[16];
  alignas(32) float ml[16];  // Q2_K only
  const uint8_t* qs;
  const uint8_t* hm;
  FK_INLINE void init(const uint8_t* blk) {
    const __m256 d = bcast_fp16(blk + offsetof(Block, d));
    if constexpr (kThree) {
      const __m128i sc = unpack_k3_scales16(blk + offsetof(BlockQ3_K, scales));
      for (int h = 0; h < 2; ++h) {
        const __m256i v = _mm256_sub_epi32(_mm256_cvtepu8_epi32(h ? _mm_srli_si128(sc, 8) : sc),
                                           _mm256_set1_epi32(32));
        _mm256_store_ps(dl + 8 * h, _mm256_mul_ps(d, _mm256_cvtepi32_ps(v)));
      }
      hm = blk + offsetof(BlockQ3_K, hmask);
    } else {
      const __m256 dmin = bcast_fp16(blk + offsetof(BlockQ2_K, dmin));
      for (int h = 0; h < 2; ++h) {
        const __m256i v = u8x8_to_i32(blk + offsetof(BlockQ2_K, scales) + 8 * h);
        _mm256_store_ps(dl + 8 * h, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_and_si256(v, _mm256_set1_epi32(15)))));
        _mm256_store_ps(ml + 8 * h, _mm256_mul_ps(dmin, _mm256_cvtepi32_ps(_mm256_srli_epi32(v, 4))));
      }
    }
    qs = blk + offsetof(Block, qs);
  }
  FK_INLINE __m256 group(int g) const {
    const int h = g >> 4, r = (g >> 2) & 3, t = g & 3, s = g >> 1;
    __m256i q = _mm256_and_si256(_mm256_srl_epi32(u8x8_to_i32(qs + 32 * h + 8 * t), _mm_cvtsi32_si128(2 * r)),
                                 _mm256_set1_epi32(3));
    if constexpr (kThree) {
      // q - 4 where the bit is clear: q - 4 + 4 * bit.
      const __m256i bit = _mm256_and_si256(
          _mm256_srl_epi32(u8x8_to_i32(hm + 8 * t), _mm_cvtsi32_si128(4 * h + r)), _mm256_set1_epi32(1));
      q = _mm256_add_epi32(_mm256_sub_epi32(q, _mm256_set1_epi32(4)), _mm256_slli_epi32(bit, 2));
      return _mm256_mul_ps(_mm256_broadcast_ss(dl + s), _mm256_cvtepi32_ps(q));
    } else {
      return _mm256_sub_ps(_mm256_mul_ps(_mm256_broadcast_ss(dl + s), _mm256_cvtepi32_ps(q)),
                           _mm256_broadcast_ss(ml + s));
    }
  }
};

// int8 path, as Q6_K: per half h of 128 elements, 4 vectors of 32 unsigned quants in element
// order (q[r]: elements 128 h + 32 r ..; sub-blocks 8h + 2r / 8h + 2r + 1 in the low / high
// 128 bits), maddubs'ed with the activations and madd'ed with the int16 scales (dot_sub16). Q2_K:
// scales 0..15; the mins, - dmin * da * sum_s m_s * bsum_s from the Q8_K bsums, go into the
// accumulator. Q3_K: q + 4 in [0, 7], signed scales (stored - 32), and the offset
// -4 * sum_s sc_s * bsum_s in the integer sum, exactly.
template <bool kThree>
struct Int8Q23_K {
  using Block = std::conditional_t<kThree, BlockQ3_K, BlockQ2_K>;
  static constexpr Format kAct = Format::kQ8_K;
  static constexpr int kBytes = sizeof(Block);
  static constexpr int kQs = offsetof(Block, qs);
  static FK_INLINE float d(const uint8_t* blk) { return _cvtsh_ss(load_u16(blk + offsetof(Block, d))); }

  template <int MR, int NR>
  static FK_INLINE void block(const uint8_t* const (&blk)[NR], const uint8_t* const (&yb)[MR],
                              const float (&da)[MR], __m256 (&acc)[MR][NR],
                              __m256i (&isum)[MR][NR]) {
    const __m256i m3 = _mm256_set1_epi8(3);
    alignas(16) int8_t scs[NR][16];  // the 16 signed scales of each row
    for (int j = 0; j < NR; ++j) {
      if constexpr (kThree) {
        const __m128i sc = _mm_sub_epi8(unpack_k3_scales16(blk[j] + offsetof(BlockQ3_K, scales)),
                                        _mm_set1_epi8(32));
        _mm_store_si128(reinterpret_cast<__m128i*>(scs[j]), sc);
        const __m256i sc16 = _mm256_cvtepi8_epi16(sc);
        // Start at -4 * sum_s sc_s * bsum_s: the (q - 4) offset, exactly.
        for (int i = 0; i < MR; ++i)
          isum[i][j] = _mm256_sub_epi32(
              _mm256_setzero_si256(),
              _mm256_slli_epi32(_mm256_madd_epi16(sc16, loadu256(yb[i] + kQ8_KBsums)), 2));
      } else {
        const __m128i raw = loadu128(blk[j] + offsetof(BlockQ2_K, scales));
        _mm_store_si128(reinterpret_cast<__m128i*>(scs[j]), _mm_and_si128(raw, _mm_set1_epi8(15)));
        const __m256i mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(raw, 4), _mm_set1_epi8(15)));
        const float dmin = _cvtsh_ss(load_u16(blk[j] + offsetof(BlockQ2_K, dmin)));
        for (int i = 0; i < MR; ++i) {
          // - dmin * da * sum_s m_s * bsum_s
          const __m256i ms = _mm256_madd_epi16(mins, loadu256(yb[i] + kQ8_KBsums));
          acc[i][j] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(ms), _mm256_set1_ps(dmin * da[i]),
                                       acc[i][j]);
          isum[i][j] = _mm256_setzero_si256();
        }
      }
    }
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
      for (int j = 0; j < NR; ++j) {
        const uint8_t* b = blk[j];
        const __m256i x = loadu256(b + kQs + 32 * h);
        __m256i q[4] = {_mm256_and_si256(x, m3), _mm256_and_si256(_mm256_srli_epi16(x, 2), m3),
                        _mm256_and_si256(_mm256_srli_epi16(x, 4), m3),
                        _mm256_and_si256(_mm256_srli_epi16(x, 6), m3)};
        if constexpr (kThree) {
          // Bit 4h + r of hmask[l] to bit 2 of q[r]'s byte l.
          const __m256i hmv = loadu256(b + offsetof(BlockQ3_K, hmask));
          const __m256i b2 = _mm256_set1_epi8(4);
#pragma GCC unroll 4
          for (int r = 0; r < 4; ++r) {
            const int bit = 4 * h + r;  // constants once unrolled: immediate shifts
            const __m256i sh = bit >= 2 ? _mm256_srli_epi16(hmv, bit - 2)
                                        : _mm256_slli_epi16(hmv, 2 - bit);
            q[r] = _mm256_or_si256(q[r], _mm256_and_si256(sh, b2));
          }
        }
        dot_sub16(isum, j, q, scs[j] + 8 * h, yb, h);
      }
    }
  }
};

template <>
struct F32Decoder<Format::kQ2_K> : DecQ23_K<false> {};
template <>
struct Int8Codec<Format::kQ2_K> : Int8Q23_K<false> {};
template <>
struct F32Decoder<Format::kQ3_K> : DecQ23_K<true> {};
template <>
struct Int8Codec<Format::kQ3_K> : Int8Q23_K<true> {};

// ---- IQ4_NL / IQ4_XS: w = scale * V[q], V the 16-entry codebook kIq4Values -----------------------

// The codebook as bytes in both 128-bit halves (a vpshufb table indexed by the nibbles).
FK_INLINE __m256i iq4_table() {
  return _mm256_broadcastsi128_si256(loadu128(kIq4Values));
}

// f32 path: a block's codebook values V[q] are looked up once, 32 at a time, as bytes
// (vpshufb) into a small buffer; each group of 8 is widened to float (exact) and multiplied
// by the (sub-)block scale, the reference's product scale * V[q].
FK_INLINE void iq4_values32(const uint8_t* qs16, int8_t* out32) {
  _mm256_store_si256(reinterpret_cast<__m256i*>(out32),
                     _mm256_shuffle_epi8(iq4_table(), unpack_nibbles(qs16)));
}

template <>
struct F32Decoder<Format::kIQ4_NL> {
  static constexpr int kElems = kQK, kBytes = sizeof(BlockIQ4_NL);
  alignas(32) int8_t v[32];  // V[q] of elements 0..31
  __m256 d;
  FK_INLINE void init(const uint8_t* blk) {
    iq4_values32(blk + offsetof(BlockIQ4_NL, qs), v);
    d = bcast_fp16(blk + offsetof(BlockIQ4_NL, d));
  }
  FK_INLINE __m256 group(int g) const {
    return _mm256_mul_ps(d, _mm256_cvtepi32_ps(s8x8_to_i32(reinterpret_cast<const uint8_t*>(v) + 8 * g)));
  }
};

// int8 path: the 32 codebook values as signed bytes (vpshufb of the nibbles), dotted as
// |w| x (y with w's sign), as Q8_0 (|V| <= 127: a pair is at most 2 * 127 * 127 = 32258).
template <>
struct Int8Codec<Format::kIQ4_NL> {
  static constexpr Format kAct = Format::kQ8_0;
  static constexpr int kBytes = sizeof(BlockIQ4_NL);
  static constexpr int kD = offsetof(BlockIQ4_NL, d);
  static constexpr int kBiasPerLane = 0;
  static constexpr bool kHasMin = false;
  struct W {
    __m256i abs, sign;
  };
  FK_INLINE static W decode(const uint8_t* blk) {
    const __m256i v = _mm256_shuffle_epi8(iq4_table(), unpack_nibbles(blk + offsetof(BlockIQ4_NL, qs)));
    return {_mm256_abs_epi8(v), v};
  }
  FK_INLINE static __m256i dot(const W& w, __m256i y) {
    return dot_us(w.abs, _mm256_sign_epi8(y, w.sign));
  }
};

// IQ4_XS: the 8 sub-block scales ls - 32 (signed, -32..31) of a super-block as int16.
FK_INLINE __m128i iq4_xs_scales16(const uint8_t* blk) {
  const uint32_t sl = load_u32(blk + offsetof(BlockIQ4_XS, scales_l));
  const uint32_t sh = load_u16(blk + offsetof(BlockIQ4_XS, scales_h));
  const __m256i lo = _mm256_and_si256(
      _mm256_srlv_epi32(_mm256_set1_epi32(static_cast<int>(sl)), _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28)),
      _mm256_set1_epi32(15));
  const __m256i hi = _mm256_and_si256(
      _mm256_srlv_epi32(_mm256_set1_epi32(static_cast<int>(sh)), _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14)),
      _mm256_set1_epi32(3));
  const __m256i ls = _mm256_sub_epi32(_mm256_or_si256(lo, _mm256_slli_epi32(hi, 4)), _mm256_set1_epi32(32));
  // int32 -> int16 (exact): packs works per 128-bit half, then the halves' low quads joined.
  const __m256i p = _mm256_packs_epi32(ls, ls);
  return _mm256_castsi256_si128(_mm256_permute4x64_epi64(p, 0x08));
}

// f32 path: V[q] of all 256 elements as bytes, and dl_s = d * (ls_s - 32) per sub-block, once
// per super-block; group g (elements 8g .. 8g + 7, sub-block g / 4) is dl_s * V[q], as the
// reference.
template <>
struct F32Decoder<Format::kIQ4_XS> {
  static constexpr int kElems = kQK_K, kBytes = sizeof(BlockIQ4_XS);
  alignas(32) int8_t v[kQK_K];
  alignas(32) float dl[8];
  FK_INLINE void init(const uint8_t* blk) {
    const uint8_t* qs = blk + offsetof(BlockIQ4_XS, qs);
    for (int s = 0; s < 8; ++s) iq4_values32(qs + 16 * s, v + 32 * s);
    _mm256_store_ps(dl, _mm256_mul_ps(bcast_fp16(blk + offsetof(BlockIQ4_XS, d)),
                                      _mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(iq4_xs_scales16(blk)))));
  }
  FK_INLINE __m256 group(int g) const {
    return _mm256_mul_ps(_mm256_broadcast_ss(dl + (g >> 2)),
                         _mm256_cvtepi32_ps(s8x8_to_i32(reinterpret_cast<const uint8_t*>(v) + 8 * g)));
  }
};

// int8 path: per 64-element chunk c (sub-blocks 2c, 2c+1 = qs[32 c .. 32 c + 31]), two
// vectors of codebook bytes in element order against the Q8_K quants, |w| x (y with w's
// sign) by maddubs, each madd'ed with its sub-block's signed int16 scale (|pair| <= 32258,
// times |scale| <= 32: exact in int32).
template <>
struct Int8Codec<Format::kIQ4_XS> {
  static constexpr Format kAct = Format::kQ8_K;
  static constexpr int kBytes = sizeof(BlockIQ4_XS);
  static FK_INLINE float d(const uint8_t* blk) {
    return _cvtsh_ss(load_u16(blk + offsetof(BlockIQ4_XS, d)));
  }

  template <int MR, int NR>
  static FK_INLINE void block(const uint8_t* const (&blk)[NR], const uint8_t* const (&yb)[MR],
                              const float (&)[MR], __m256 (&)[MR][NR], __m256i (&isum)[MR][NR]) {
    const __m256i table = iq4_table();
    __m256i scl[NR];  // the 8 scales as int16, in both 128-bit halves
    for (int j = 0; j < NR; ++j) {
      scl[j] = _mm256_broadcastsi128_si256(iq4_xs_scales16(blk[j]));
      for (int i = 0; i < MR; ++i) isum[i][j] = _mm256_setzero_si256();
    }
#pragma GCC unroll 4
    for (int c = 0; c < 4; ++c) {
      // int16 scale 2c / 2c+1 (bytes 4c, 4c+1 / 4c+2, 4c+3) broadcast.
      const __m256i sel_lo = _mm256_set1_epi16(static_cast<short>(0x0100 * (4 * c + 1) + 4 * c));
      const __m256i sel_hi =
          _mm256_set1_epi16(static_cast<short>(0x0100 * (4 * c + 3) + 4 * c + 2));
      for (int j = 0; j < NR; ++j) {
        const uint8_t* qs = blk[j] + offsetof(BlockIQ4_XS, qs) + 32 * c;
        const __m256i v0 = _mm256_shuffle_epi8(table, unpack_nibbles(qs));
        const __m256i v1 = _mm256_shuffle_epi8(table, unpack_nibbles(qs + 16));
        const __m256i a0 = _mm256_abs_epi8(v0), a1 = _mm256_abs_epi8(v1);
        const __m256i s_lo = _mm256_shuffle_epi8(scl[j], sel_lo);
        const __m256i s_hi = _mm256_shuffle_epi8(scl[j], sel_hi);
        for (int i = 0; i < MR; ++i) {
          const uint8_t* q8 = yb[i] + kQ8_KQs + 64 * c;
          const __m256i p0 = _mm256_madd_epi16(
              _mm256_maddubs_epi16(a0, _mm256_sign_epi8(loadu256(q8), v0)), s_lo);
          const __m256i p1 = _mm256_madd_epi16(
              _mm256_maddubs_epi16(a1, _mm256_sign_epi8(loadu256(q8 + 32), v1)), s_hi);
          isum[i][j] = _mm256_add_epi32(isum[i][j], _mm256_add_epi32(p0, p1));
        }
      }
    }
  }
};

// ---- F16 / BF16: 16-bit floats, one per element ----------------------------------------------
// Both conversions are exact (every F16 / BF16 value is a float): F16 by F16C's vcvtph2ps,
// BF16 by shifting its 16 bits into the top of a float. The partial last vector copies its
// elements into a zeroed buffer first (AVX2 has no 16-bit masked load).

// 8 halves at p as floats, through Convert (a 128-bit vector of 8 halves -> 8 floats).
template <__m256 (*Convert)(__m128i)>
struct HalfElems {
  static constexpr int kBytes = 2;
  static FK_INLINE __m256 load(const uint8_t* p) { return Convert(loadu128(p)); }
  static FK_INLINE __m256 load_first(const uint8_t* p, int64_t n) {
    alignas(16) uint8_t buf[16] = {};
    std::memcpy(buf, p, static_cast<size_t>(2 * n));
    return load(buf);
  }
};

FK_INLINE __m256 f16x8_to_f32(__m128i h) { return _mm256_cvtph_ps(h); }
FK_INLINE __m256 bf16x8_to_f32(__m128i h) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

template <>
struct FloatElems<Format::kF16> : HalfElems<f16x8_to_f32> {};
template <>
struct FloatElems<Format::kBF16> : HalfElems<bf16x8_to_f32> {};

}  // namespace
}  // namespace fk

#endif  // KERNELS_AVX2_CODECS_INL_H_
