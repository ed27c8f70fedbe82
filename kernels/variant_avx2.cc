// AVX2 + FMA + F16C variant of the fused dequantize+matmul kernels (kernels/kernel_api.h).
//
// Two paths per format:
//   f32 path  - weights are decoded to scaled floats, 8 at a time, in registers and fed to
//               FMAs against the f32 activations.
//   int8 path - activations arrive quantized (Q8_0 for the 32-element formats, Q8_K for the
//               K-quants); weight blocks are unpacked to bytes and multiplied with
//               _mm256_maddubs_epi16 (unsigned x signed) + _mm256_madd_epi16; integer sums
//               are exact, then scaled in float once per block (legacy) or super-block
//               (K-quants).
//
// Tiling: the shared driver (kernels/simd/driver-inl.h) with this ISA's traits (VecAvx2,
// kernels/avx2/vec-inl.h): batch 1 runs 1 x 4 tiles, batch > 1 runs 4 x 2 tiles. The f32 path
// and F32 weights are the shared ones (kernels/simd/f32_path-inl.h) over the block decoders
// below.
//
// Integer ranges used below (maddubs saturates at +-32767 per int16 lane, a pair of
// products): |y| <= 127 for activations (both reference quantizers map to [-127, 127]);
// 4-bit q: 2*15*127 = 3810; 5-bit: 2*31*127 = 7874; 6-bit: 2*63*127 = 16002; signed 8-bit
// via |w| x sign(y, w): 2*128*127 = 32512. All fit, and every int32 sum stays below 2^31.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "kernels/avx2/vec-inl.h"
#include "kernels/kernel_api.h"
#include "kernels/simd/driver-inl.h"
#include "kernels/simd/f32_path-inl.h"

namespace fk {
namespace {

// =========================================================================================
// f32 path
// =========================================================================================

// Block decoders for the f32 path. Each has kElems/kBytes (block size), init(block) and
// group(g): the 8 dequantized weights g*8 .. g*8+7 of the block, in element order.

struct DecQ4_0 {
  static constexpr int kElems = kQK, kBytes = sizeof(BlockQ4_0);
  const uint8_t* qs;
  __m256 d, off;  // w = d * q - 8 d  (exactly d * (q - 8), one rounding)
  FK_INLINE void init(const uint8_t* blk) {
    qs = blk + 2;
    d = bcast_fp16(blk);
    off = _mm256_mul_ps(d, _mm256_set1_ps(-8.0f));
  }
  FK_INLINE __m256 group(int g) const {
    const __m256i v = u8x8_to_i32(qs + 8 * (g & 1));
    const __m256i q = g < 2 ? _mm256_and_si256(v, _mm256_set1_epi32(15)) : _mm256_srli_epi32(v, 4);
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(q), d, off);
  }
};

struct DecQ4_1 {
  static constexpr int kElems = kQK, kBytes = sizeof(BlockQ4_1);
  const uint8_t* qs;
  __m256 d, m;  // w = d * q + m
  FK_INLINE void init(const uint8_t* blk) {
    qs = blk + 4;
    d = bcast_fp16(blk);
    m = bcast_fp16(blk + 2);
  }
  FK_INLINE __m256 group(int g) const {
    const __m256i v = u8x8_to_i32(qs + 8 * (g & 1));
    const __m256i q = g < 2 ? _mm256_and_si256(v, _mm256_set1_epi32(15)) : _mm256_srli_epi32(v, 4);
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(q), d, m);
  }
};

struct DecQ5_0 {
  static constexpr int kElems = kQK, kBytes = sizeof(BlockQ5_0);
  const uint8_t* qs;
  __m256i qh;  // the 32 high bits, broadcast
  __m256 d, off;  // w = d * q - 16 d
  FK_INLINE void init(const uint8_t* blk) {
    d = bcast_fp16(blk);
    off = _mm256_mul_ps(d, _mm256_set1_ps(-16.0f));
    qh = _mm256_set1_epi32(static_cast<int>(load_u32(blk + 2)));
    qs = blk + 6;
  }
  FK_INLINE __m256 group(int g) const {
    const __m256i v = u8x8_to_i32(qs + 8 * (g & 1));
    const __m256i lo = g < 2 ? _mm256_and_si256(v, _mm256_set1_epi32(15)) : _mm256_srli_epi32(v, 4);
    // Bit 8g + t of qh is bit 4 of element 8g + t.
    const __m256i shift =
        _mm256_add_epi32(_mm256_set1_epi32(8 * g), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    const __m256i hi =
        _mm256_and_si256(_mm256_slli_epi32(_mm256_srlv_epi32(qh, shift), 4), _mm256_set1_epi32(16));
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_or_si256(lo, hi)), d, off);
  }
};

struct DecQ8_0 {
  static constexpr int kElems = kQK, kBytes = sizeof(BlockQ8_0);
  const uint8_t* qs;
  __m256 d;
  FK_INLINE void init(const uint8_t* blk) {
    qs = blk + 2;
    d = bcast_fp16(blk);
  }
  FK_INLINE __m256 group(int g) const {
    return _mm256_mul_ps(_mm256_cvtepi32_ps(s8x8_to_i32(qs + 8 * g)), d);
  }
};

// Q4_K and Q5_K (kFive): w = (d * sc) * q - (dmin * m) per sub-block of 32.
template <bool kFive>
struct DecQ45_K {
  static constexpr int kElems = kQK_K;
  static constexpr int kBytes = kFive ? sizeof(BlockQ5_K) : sizeof(BlockQ4_K);
  const uint8_t* qs;
  const uint8_t* qh;
  alignas(32) float ds[8];  // d * sc per sub-block
  alignas(32) float dm[8];  // dmin * m per sub-block
  FK_INLINE void init(const uint8_t* blk) {
    uint64_t sc, mn;
    unpack_k4_scales(blk + 4, &sc, &mn);
    const __m256 sc_f = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128(sc)));
    const __m256 mn_f = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128(mn)));
    _mm256_store_ps(ds, _mm256_mul_ps(bcast_fp16(blk), sc_f));
    _mm256_store_ps(dm, _mm256_mul_ps(bcast_fp16(blk + 2), mn_f));
    qh = blk + 16;
    qs = blk + 16 + (kFive ? kQK_K / 8 : 0);
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

// Q6_K: w = (d * sc) * (q - 32) per sub-block of 16, computed as fma(q, D, -32 D) which is
// exactly D * (q - 32) rounded once.
struct DecQ6_K {
  static constexpr int kElems = kQK_K, kBytes = sizeof(BlockQ6_K);
  const uint8_t* ql;
  const uint8_t* qh;
  alignas(32) float ds[16];   // d * sc
  alignas(32) float off[16];  // -32 * d * sc
  FK_INLINE void init(const uint8_t* blk) {
    ql = blk;
    qh = blk + kQK_K / 2;
    const uint8_t* sc = blk + kQK_K / 2 + kQK_K / 4;
    const __m256 d = bcast_fp16(sc + kQK_K / 16);
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

struct DecQ8_K {
  static constexpr int kElems = kQK_K, kBytes = sizeof(BlockQ8_K);
  const uint8_t* qs;
  __m256 d;
  FK_INLINE void init(const uint8_t* blk) {
    d = _mm256_set1_ps(load_f32(blk));
    qs = blk + 4;
  }
  FK_INLINE __m256 group(int g) const {
    return _mm256_mul_ps(_mm256_cvtepi32_ps(s8x8_to_i32(qs + 8 * g)), d);
  }
};

// =========================================================================================
// int8 path, 32-element formats against Q8_0 activations
// =========================================================================================
//
// Per block: integer dot of the unpacked weights with the activation bytes (exact int32
// lanes), converted to float and FMA'd with the block scale dw * da. The scales of 8
// consecutive blocks are gathered with scalar loads into one vector and converted together
// (cheaper than a broadcast + conversion per block); they are kept on the stack and
// broadcast from there. Q4_0 and Q5_0 are dotted as unsigned q against y and corrected by
// the exact integer 8 * sum(y) (16 * sum(y)); Q4_1's offset term m * da * sum(y) is a float
// product accumulated per group of 8 blocks.

constexpr int kQ8_0Bytes = sizeof(BlockQ8_0);
constexpr int kScaleGroup = 8;

// Per activation row and block (padded to a multiple of kScaleGroup with zeros, which the
// last partial group of blocks reads): da = the block's scale; ysum = the exact sum of its
// 32 quants; dasum = da * ysum. Held in per-thread buffers that only grow, so a warm call
// allocates nothing.
struct LegacyPrep {
  int64_t nb = 0, stride = 0;
  const float* da = nullptr;
  const float* dasum = nullptr;
  const int32_t* ysum = nullptr;
  explicit LegacyPrep(const MatmulArgs& a) {
    thread_local std::vector<float> da_buf, dasum_buf;
    thread_local std::vector<int32_t> ysum_buf;
    nb = a.k / kQK;
    stride = (nb + kScaleGroup - 1) / kScaleGroup * kScaleGroup;
    const size_t size = static_cast<size_t>(a.m * stride);
    if (da_buf.size() < size) {
      da_buf.resize(size);
      dasum_buf.resize(size);
      ysum_buf.resize(size);
    }
    const __m256i ones = _mm256_set1_epi8(1);
    for (int64_t i = 0; i < a.m; ++i) {
      const uint8_t* row = a.act + i * a.act_row_bytes;
      float* da_row = da_buf.data() + i * stride;
      float* dasum_row = dasum_buf.data() + i * stride;
      int32_t* ysum_row = ysum_buf.data() + i * stride;
      for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* blk = row + b * kQ8_0Bytes;
        const __m256i s = dot_us(ones, loadu256(blk + 2));
        __m128i t = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
        t = _mm_add_epi32(t, _mm_unpackhi_epi64(t, t));
        t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 1));
        const int32_t sum = _mm_cvtsi128_si32(t);
        const float d = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(load_u16(blk))));
        da_row[b] = d;
        ysum_row[b] = sum;
        dasum_row[b] = d * static_cast<float>(sum);
      }
      for (int64_t b = nb; b < stride; ++b) {
        da_row[b] = 0.0f;
        dasum_row[b] = 0.0f;
        ysum_row[b] = 0;
      }
    }
    da = da_buf.data();
    dasum = dasum_buf.data();
    ysum = ysum_buf.data();
  }
};

// The halves at p, p + kBytes, ..., p + (cnt - 1) * kBytes (the same field of cnt <= 8
// consecutive blocks) as 8 floats; lanes >= cnt are 0.
template <int kBytes>
FK_INLINE __m256 gather_fp16(const uint8_t* p, int cnt) {
  uint64_t lo = 0, hi = 0;
  if (cnt == kScaleGroup) {
    for (int t = 0; t < 4; ++t) lo |= static_cast<uint64_t>(load_u16(p + t * kBytes)) << (16 * t);
    for (int t = 0; t < 4; ++t)
      hi |= static_cast<uint64_t>(load_u16(p + (4 + t) * kBytes)) << (16 * t);
  } else {
    for (int t = 0; t < cnt; ++t) {
      const uint64_t h = load_u16(p + t * kBytes);
      if (t < 4) lo |= h << (16 * t); else hi |= h << (16 * (t - 4));
    }
  }
  return _mm256_cvtph_ps(_mm_set_epi64x(static_cast<int64_t>(hi), static_cast<int64_t>(lo)));
}

// Weight codecs for the int8 legacy path: decode(block) -> W, dot(W, y) -> 8 int32 lanes
// whose sum is sum(q * y) (for Q4_0/Q5_0 still with the unsigned q; the bias is separate).
struct Int8Q4_0 {
  static constexpr int kBytes = sizeof(BlockQ4_0);
  static constexpr int kBiasPerLane = 1;  // subtract ysum per lane: 8 lanes -> 8 * sum(y)
  static constexpr bool kHasMin = false;
  using W = __m256i;
  // Low nibbles (elements 0-15) in the low 128 bits, high nibbles (16-31) in the high.
  FK_INLINE static W decode(const uint8_t* blk) {
    const __m256i v = _mm256_broadcastsi128_si256(loadu128(blk + 2));
    return _mm256_and_si256(_mm256_srlv_epi32(v, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4)),
                            _mm256_set1_epi8(15));
  }
  FK_INLINE static __m256i dot(W w, __m256i y) { return dot_us(w, y); }
};

struct Int8Q4_1 {
  static constexpr int kBytes = sizeof(BlockQ4_1);
  static constexpr int kBiasPerLane = 0;
  static constexpr bool kHasMin = true;  // m at byte 2
  using W = __m256i;
  FK_INLINE static W decode(const uint8_t* blk) {
    const __m256i v = _mm256_broadcastsi128_si256(loadu128(blk + 4));
    return _mm256_and_si256(_mm256_srlv_epi32(v, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4)),
                            _mm256_set1_epi8(15));
  }
  FK_INLINE static __m256i dot(W w, __m256i y) { return dot_us(w, y); }
};

struct Int8Q5_0 {
  static constexpr int kBytes = sizeof(BlockQ5_0);
  static constexpr int kBiasPerLane = 2;  // 8 lanes * 2 * sum(y) = 16 * sum(y)
  static constexpr bool kHasMin = false;
  using W = __m256i;
  FK_INLINE static W decode(const uint8_t* blk) {
    const __m256i v = _mm256_broadcastsi128_si256(loadu128(blk + 6));
    const __m256i lo = _mm256_and_si256(
        _mm256_srlv_epi32(v, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4)), _mm256_set1_epi8(15));
    // Byte j gets qh byte j / 8; keep bit j % 8 by OR-ing all other bits to 1 and comparing
    // with all-ones; the 0xFF / 0x00 mask then selects 16.
    const __m256i qh = _mm256_set1_epi32(static_cast<int>(load_u32(blk + 2)));
    const __m256i spread = _mm256_shuffle_epi8(
        qh, _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2,
                             2, 2, 3, 3, 3, 3, 3, 3, 3, 3));
    const __m256i bit = _mm256_set1_epi64x(static_cast<int64_t>(0x7FBFDFEFF7FBFDFEull));
    const __m256i set = _mm256_cmpeq_epi8(_mm256_or_si256(spread, bit), _mm256_set1_epi8(-1));
    return _mm256_or_si256(lo, _mm256_and_si256(set, _mm256_set1_epi8(16)));
  }
  FK_INLINE static __m256i dot(W w, __m256i y) { return dot_us(w, y); }
};

struct Int8Q8_0 {
  static constexpr int kBytes = sizeof(BlockQ8_0);
  static constexpr int kBiasPerLane = 0;
  static constexpr bool kHasMin = false;
  struct W {
    __m256i abs, sign;  // |w| and w (whose signs are moved onto y)
  };
  FK_INLINE static W decode(const uint8_t* blk) {
    const __m256i v = loadu256(blk + 2);
    return {_mm256_abs_epi8(v), v};
  }
  FK_INLINE static __m256i dot(const W& w, __m256i y) {
    return dot_us(w.abs, _mm256_sign_epi8(y, w.sign));
  }
};

template <class C>
struct LegacyInt8 {
  using Prep = LegacyPrep;
  template <int MR, int NR>
  static FK_INLINE void tile(const MatmulArgs& a, const Prep& p, int64_t i0, int64_t j0, int nv) {
    const int64_t nb = p.nb;
    const uint8_t* w[NR];
    const uint8_t* y[MR];
    const float* da[MR];
    const float* dasum[MR];
    const int32_t* ysum[MR];
    tile_rows(a, j0, nv, w);
    for (int i = 0; i < MR; ++i) {
      y[i] = a.act + (i0 + i) * a.act_row_bytes + 2;
      da[i] = p.da + (i0 + i) * p.stride;
      dasum[i] = p.dasum + (i0 + i) * p.stride;
      ysum[i] = p.ysum + (i0 + i) * p.stride;
    }
    __m256 acc[MR][NR];
    __m256 macc[MR][NR];  // Q4_1: sum over blocks of m * da * sum(y)
    zero(acc);
    zero(macc);
    // dw * da of the current group of blocks, broadcast per block from here (a load, which
    // keeps the shuffle port free).
    alignas(32) float scale[MR][NR][kScaleGroup];
    for (int64_t b0 = 0; b0 < nb; b0 += kScaleGroup) {
      const int cnt = static_cast<int>(std::min<int64_t>(kScaleGroup, nb - b0));
      prefetch_ahead<VecAvx2>(w, a.row_bytes, b0 * C::kBytes, cnt * C::kBytes);
      for (int j = 0; j < NR; ++j) {
        const uint8_t* blk0 = w[j] + b0 * C::kBytes;
        const __m256 dw = gather_fp16<C::kBytes>(blk0, cnt);
        for (int i = 0; i < MR; ++i)
          _mm256_store_ps(scale[i][j], _mm256_mul_ps(dw, _mm256_loadu_ps(da[i] + b0)));
        if constexpr (C::kHasMin) {
          const __m256 mw = gather_fp16<C::kBytes>(blk0 + 2, cnt);
          for (int i = 0; i < MR; ++i)
            macc[i][j] = _mm256_fmadd_ps(mw, _mm256_loadu_ps(dasum[i] + b0), macc[i][j]);
        }
      }
      for (int t = 0; t < cnt; ++t) {
        const int64_t b = b0 + t;
        for (int j = 0; j < NR; ++j) {
          const typename C::W wd = C::decode(w[j] + b * C::kBytes);
          for (int i = 0; i < MR; ++i) {
            __m256i s = C::dot(wd, loadu256(y[i] + b * kQ8_0Bytes));
            if constexpr (C::kBiasPerLane != 0)
              s = _mm256_sub_epi32(s, _mm256_set1_epi32(C::kBiasPerLane * ysum[i][b]));
            acc[i][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s),
                                        _mm256_broadcast_ss(&scale[i][j][t]), acc[i][j]);
          }
        }
      }
    }
    if constexpr (C::kHasMin) {
      for (int i = 0; i < MR; ++i)
        for (int j = 0; j < NR; ++j) acc[i][j] = _mm256_add_ps(acc[i][j], macc[i][j]);
    }
    store_tile(a, i0, j0, nv, acc);
  }
};

// =========================================================================================
// int8 path, K-quants against Q8_K activations
// =========================================================================================
//
// Per super-block: the integer sum of sc_s * q * y over all sub-blocks (exact, int32
// lanes), then one float FMA with d * da; the mins (Q4_K/Q5_K) and Q6_K's -32 offset use
// Q8_K's bsums (sums of 16 quants) instead of touching the activations again.

constexpr int kQ8_KBytes = sizeof(BlockQ8_K);
constexpr int kQ8_KQs = 4;       // byte offset of qs in BlockQ8_K
constexpr int kQ8_KBsums = 260;  // byte offset of bsums

template <int MR>
FK_INLINE void act_rows(const MatmulArgs& a, int64_t i0, const uint8_t* (&y)[MR]) {
  for (int i = 0; i < MR; ++i) y[i] = a.act + (i0 + i) * a.act_row_bytes;
}

// 8 int32 lanes, lane s = v_s | v_s << 16 (the byte v_s as an int16 pair, for madd).
FK_INLINE __m256i pair16(uint64_t bytes8) {
  const __m256i v = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(static_cast<int64_t>(bytes8)));
  return _mm256_or_si256(v, _mm256_slli_epi32(v, 16));
}

// Q4_K (kFive = false) and Q5_K.
template <bool kFive>
struct Int8Q45_K {
  using Prep = NoPrep;
  static constexpr int kBytes = kFive ? sizeof(BlockQ5_K) : sizeof(BlockQ4_K);
  template <int MR, int NR>
  static FK_INLINE void tile(const MatmulArgs& a, const Prep&, int64_t i0, int64_t j0, int nv) {
    const int64_t nb = a.k / kQK_K;
    const uint8_t* w[NR];
    const uint8_t* y[MR];
    tile_rows(a, j0, nv, w);
    act_rows(a, i0, y);
    const __m256i m4 = _mm256_set1_epi8(15);
    const __m256i b4 = _mm256_set1_epi8(16);
    __m256 acc[MR][NR];
    zero(acc);
    for (int64_t b = 0; b < nb; ++b) {
      prefetch_ahead<VecAvx2>(w, a.row_bytes, b * kBytes, kBytes);
      const uint8_t* yb[MR];
      float da[MR];
      for (int i = 0; i < MR; ++i) {
        yb[i] = y[i] + b * kQ8_KBytes;
        da[i] = load_f32(yb[i]);
      }
      __m256i scl[NR];  // the 8 scales as int16, in both 128-bit halves
      __m256i isum[MR][NR];
      for (int j = 0; j < NR; ++j) {
        const uint8_t* blk = w[j] + b * kBytes;
        uint64_t sc, mn;
        unpack_k4_scales(blk + 4, &sc, &mn);
        scl[j] = _mm256_broadcastsi128_si256(
            _mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<int64_t>(sc))));
        const __m256i mins = pair16(mn);
        const float dmin = _cvtsh_ss(load_u16(blk + 2));
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
          const uint8_t* blk = w[j] + b * kBytes;
          const __m256i x = loadu256(blk + 16 + (kFive ? 32 : 0) + 32 * c);
          __m256i lo = _mm256_and_si256(x, m4);
          __m256i hi = _mm256_and_si256(_mm256_srli_epi16(x, 4), m4);
          if constexpr (kFive) {
            // Bits 2c and 2c+1 of qh[l] are the fifth bits of sub-blocks 2c and 2c+1: shift
            // them down to bits 0 and 1, then to bit 4 (bits crossing bytes are masked off).
            const __m256i qh = _mm256_srl_epi16(loadu256(blk + 16), qh_shift);
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
      for (int j = 0; j < NR; ++j) {
        const float d = _cvtsh_ss(load_u16(w[j] + b * kBytes));
        for (int i = 0; i < MR; ++i)
          acc[i][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[i][j]), _mm256_set1_ps(d * da[i]),
                                      acc[i][j]);
      }
    }
    store_tile(a, i0, j0, nv, acc);
  }
};

struct Int8Q6_K {
  using Prep = NoPrep;
  static constexpr int kBytes = sizeof(BlockQ6_K);
  static constexpr int kQh = kQK_K / 2, kSc = kQK_K / 2 + kQK_K / 4, kD = kSc + kQK_K / 16;
  template <int MR, int NR>
  static FK_INLINE void tile(const MatmulArgs& a, const Prep&, int64_t i0, int64_t j0, int nv) {
    const int64_t nb = a.k / kQK_K;
    const uint8_t* w[NR];
    const uint8_t* y[MR];
    tile_rows(a, j0, nv, w);
    act_rows(a, i0, y);
    const __m256i m4 = _mm256_set1_epi8(15);
    const __m256i m30 = _mm256_set1_epi8(0x30);
    // Group g of 32 elements covers sub-blocks 2g (low 128 bits) and 2g+1 (high 128 bits);
    // with the 8 scales of its half as int16 in both 128-bit lanes, this picks sc[2g'] for
    // the low lane and sc[2g'+1] for the high lane (g' = g % 4).
    const __m256i pick[4] = {
        _mm256_setr_epi8(0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 2, 3, 2, 3, 2, 3, 2, 3,
                         2, 3, 2, 3, 2, 3, 2, 3),
        _mm256_setr_epi8(4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 6, 7, 6, 7, 6, 7, 6, 7,
                         6, 7, 6, 7, 6, 7, 6, 7),
        _mm256_setr_epi8(8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 10, 11, 10, 11, 10, 11,
                         10, 11, 10, 11, 10, 11, 10, 11, 10, 11),
        _mm256_setr_epi8(12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 14, 15,
                         14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15)};
    __m256 acc[MR][NR];
    zero(acc);
    for (int64_t b = 0; b < nb; ++b) {
      prefetch_ahead<VecAvx2>(w, a.row_bytes, b * kBytes, kBytes);
      const uint8_t* yb[MR];
      float da[MR];
      for (int i = 0; i < MR; ++i) {
        yb[i] = y[i] + b * kQ8_KBytes;
        da[i] = load_f32(yb[i]);
      }
      __m256i isum[MR][NR];
      for (int j = 0; j < NR; ++j) {
        const uint8_t* blk = w[j] + b * kBytes;
        const __m256i sc16 = _mm256_cvtepi8_epi16(loadu128(blk + kSc));
        // Start at -32 * sum_s sc_s * bsum_s: the (q - 32) offset, exactly.
        for (int i = 0; i < MR; ++i)
          isum[i][j] = _mm256_sub_epi32(
              _mm256_setzero_si256(),
              _mm256_slli_epi32(_mm256_madd_epi16(sc16, loadu256(yb[i] + kQ8_KBsums)), 5));
      }
      for (int h = 0; h < 2; ++h) {
        for (int j = 0; j < NR; ++j) {
          const uint8_t* blk = w[j] + b * kBytes;
          const __m256i sc_half = _mm256_cvtepi8_epi16(
              _mm_unpacklo_epi64(loadu64(blk + kSc + 8 * h), loadu64(blk + kSc + 8 * h)));
          const __m256i ql0 = loadu256(blk + 64 * h);
          const __m256i ql1 = loadu256(blk + 64 * h + 32);
          const __m256i qh = loadu256(blk + kQh + 32 * h);
          const __m256i q[4] = {
              _mm256_or_si256(_mm256_and_si256(ql0, m4),
                              _mm256_and_si256(_mm256_slli_epi16(qh, 4), m30)),
              _mm256_or_si256(_mm256_and_si256(ql1, m4),
                              _mm256_and_si256(_mm256_slli_epi16(qh, 2), m30)),
              _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                              _mm256_and_si256(qh, m30)),
              _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                              _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30))};
          for (int r = 0; r < 4; ++r) {
            const __m256i scv = _mm256_shuffle_epi8(sc_half, pick[r]);
            for (int i = 0; i < MR; ++i) {
              const __m256i p = _mm256_maddubs_epi16(
                  q[r], loadu256(yb[i] + kQ8_KQs + 128 * h + 32 * r));
              isum[i][j] = _mm256_add_epi32(isum[i][j], _mm256_madd_epi16(p, scv));
            }
          }
        }
      }
      for (int j = 0; j < NR; ++j) {
        const float d = _cvtsh_ss(load_u16(w[j] + b * kBytes + kD));
        for (int i = 0; i < MR; ++i)
          acc[i][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[i][j]), _mm256_set1_ps(d * da[i]),
                                      acc[i][j]);
      }
    }
    store_tile(a, i0, j0, nv, acc);
  }
};

struct Int8Q8_K {
  using Prep = NoPrep;
  static constexpr int kBytes = sizeof(BlockQ8_K);
  template <int MR, int NR>
  static FK_INLINE void tile(const MatmulArgs& a, const Prep&, int64_t i0, int64_t j0, int nv) {
    const int64_t nb = a.k / kQK_K;
    const uint8_t* w[NR];
    const uint8_t* y[MR];
    tile_rows(a, j0, nv, w);
    act_rows(a, i0, y);
    __m256 acc[MR][NR];
    zero(acc);
    for (int64_t b = 0; b < nb; ++b) {
      prefetch_ahead<VecAvx2>(w, a.row_bytes, b * kBytes, kBytes);
      __m256i isum[MR][NR];
      for (int i = 0; i < MR; ++i)
        for (int j = 0; j < NR; ++j) isum[i][j] = _mm256_setzero_si256();
      for (int c = 0; c < kQK_K / 32; ++c) {
        for (int j = 0; j < NR; ++j) {
          const __m256i v = loadu256(w[j] + b * kBytes + kQ8_KQs + 32 * c);
          const __m256i av = _mm256_abs_epi8(v);
          for (int i = 0; i < MR; ++i) {
            const __m256i q8 = loadu256(y[i] + b * kQ8_KBytes + kQ8_KQs + 32 * c);
            isum[i][j] = _mm256_add_epi32(isum[i][j], dot_us(av, _mm256_sign_epi8(q8, v)));
          }
        }
      }
      for (int j = 0; j < NR; ++j) {
        const float d = load_f32(w[j] + b * kBytes);
        for (int i = 0; i < MR; ++i) {
          const float da = load_f32(y[i] + b * kQ8_KBytes);
          acc[i][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[i][j]), _mm256_set1_ps(d * da),
                                      acc[i][j]);
        }
      }
    }
    store_tile(a, i0, j0, nv, acc);
  }
};

// =============================================================================================
// Activation packers: the reference quantizers' blocks (BlockQ8_0 / BlockQ8_K, byte for byte,
// so the int8 kernels above read them unchanged), computed with the same float operations
// in the same order, 8 lanes at a time.
// =============================================================================================

FK_INLINE __m256 abs256(__m256 v) {
  return _mm256_and_ps(v, _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF)));
}
FK_INLINE float hmax(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

// roundf (half away from zero), exactly: v - trunc(v) is exact, and so is adding +-1.
FK_INLINE __m256 round_half_away(__m256 v) {
  const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const __m256 up = _mm256_cmp_ps(abs256(_mm256_sub_ps(v, t)), _mm256_set1_ps(0.5f), _CMP_GE_OQ);
  const __m256 one = _mm256_or_ps(_mm256_and_ps(v, _mm256_castsi256_ps(_mm256_set1_epi32(INT32_MIN))),
                                  _mm256_set1_ps(1.0f));
  return _mm256_add_ps(t, _mm256_and_ps(up, one));
}

// The low bytes of 4 x 8 int32 lanes, in order (the C conversion int32 -> int8).
FK_INLINE __m256i low_bytes(__m256i a, __m256i b, __m256i c, __m256i d) {
  const __m256i m = _mm256_set1_epi32(0xFF);
  const __m256i ab = _mm256_packus_epi32(_mm256_and_si256(a, m), _mm256_and_si256(b, m));
  const __m256i cd = _mm256_packus_epi32(_mm256_and_si256(c, m), _mm256_and_si256(d, m));
  // 128-bit lane 0: a0-3 b0-3 c0-3 d0-3, lane 1: a4-7 b4-7 c4-7 d4-7.
  return _mm256_permutevar8x32_epi32(_mm256_packus_epi16(ab, cd),
                                     _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

// quantize_row_q8_0_ref: d = max|x| / 127 (fp16), q = (int8_t) roundf(x * (1 / d)), the
// conversion truncating to int32 (NaN / out of range: INT32_MIN) and keeping the low byte.
void pack_q8_0_avx2(const float* x, int64_t k, uint8_t* out) {
  for (int64_t b = 0; b < k / kQK; ++b, x += kQK, out += sizeof(BlockQ8_0)) {
    __m256 v[4];
    for (int c = 0; c < 4; ++c) v[c] = _mm256_loadu_ps(x + 8 * c);
    const float amax = hmax(_mm256_max_ps(_mm256_max_ps(abs256(v[0]), abs256(v[1])),
                                          _mm256_max_ps(abs256(v[2]), abs256(v[3]))));
    const float d = amax / 127;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    const __m256 idv = _mm256_set1_ps(id);
    __m256i q[4];
    for (int c = 0; c < 4; ++c) q[c] = _mm256_cvttps_epi32(round_half_away(_mm256_mul_ps(v[c], idv)));
    const uint16_t dh = static_cast<uint16_t>(_cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    std::memcpy(out, &dh, sizeof dh);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 2), low_bytes(q[0], q[1], q[2], q[3]));
  }
}

// quantize_row_q8_K_ref: max = the element of largest magnitude (the first on ties),
// iscale = -127 / max, q = min(127, nearest_int(iscale * x)) (magic-number rounding), low
// byte; bsums = sums of 16 quants; d = 1 / iscale. An all-zero block is all zero bytes.
void pack_q8_k_avx2(const float* x, int64_t k, uint8_t* out) {
  for (int64_t b = 0; b < k / kQK_K; ++b, x += kQK_K, out += sizeof(BlockQ8_K)) {
    __m256 ax = _mm256_setzero_ps();
    for (int c = 0; c < 32; ++c) ax = _mm256_max_ps(ax, abs256(_mm256_loadu_ps(x + 8 * c)));
    const float amax = hmax(ax);
    if (!(amax != 0.0f)) {
      std::memset(out, 0, sizeof(BlockQ8_K));
      continue;
    }
    float max = 0.0f;
    for (int c = 0; c < 32; ++c) {
      const int hit = _mm256_movemask_ps(
          _mm256_cmp_ps(abs256(_mm256_loadu_ps(x + 8 * c)), _mm256_set1_ps(amax), _CMP_EQ_OQ));
      if (hit != 0) {
        max = x[8 * c + __builtin_ctz(static_cast<unsigned>(hit))];
        break;
      }
    }
    const float iscale = -127.f / max;
    const __m256 is = _mm256_set1_ps(iscale), magic = _mm256_set1_ps(12582912.f);
    const __m256i ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
    __m256i quad[8];  // int32 sums of 4 quants: vector v, lane l = bytes 32 v + 4 l .. + 3
    for (int c = 0; c < 8; ++c) {
      __m256i q[4];
      for (int t = 0; t < 4; ++t) {
        const __m256 f = _mm256_add_ps(_mm256_mul_ps(is, _mm256_loadu_ps(x + 32 * c + 8 * t)), magic);
        const __m256i n = _mm256_sub_epi32(
            _mm256_and_si256(_mm256_castps_si256(f), _mm256_set1_epi32(0x007fffff)),
            _mm256_set1_epi32(0x00400000));
        q[t] = _mm256_min_epi32(n, _mm256_set1_epi32(127));
      }
      const __m256i bytes = low_bytes(q[0], q[1], q[2], q[3]);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 4 + 32 * c), bytes);
      quad[c] = _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, bytes), ones16);
    }
    // Sums of 16: quad lanes 0-3 / 4-7 of vector v are sub-blocks 2v / 2v + 1.
    alignas(32) int32_t lane[8][8];
    for (int c = 0; c < 8; ++c) _mm256_store_si256(reinterpret_cast<__m256i*>(lane[c]), quad[c]);
    int16_t bsums[16];
    for (int c = 0; c < 8; ++c) {
      bsums[2 * c] = static_cast<int16_t>(lane[c][0] + lane[c][1] + lane[c][2] + lane[c][3]);
      bsums[2 * c + 1] = static_cast<int16_t>(lane[c][4] + lane[c][5] + lane[c][6] + lane[c][7]);
    }
    std::memcpy(out + 4 + kQK_K, bsums, sizeof bsums);
    const float d = 1 / iscale;
    std::memcpy(out, &d, sizeof d);
  }
}

template <Format F>
int64_t ref_layout_row_bytes(int64_t k) {
  return k / traits(F).block_elems * traits(F).block_bytes;
}

}  // namespace

// ---- Activation packers (used by the avx2 rows of kernels/registry.inc) -----------------

extern const ActPacker act_q8_0__avx2 = {"q8_0__avx2", Format::kQ8_0,
                                         &ref_layout_row_bytes<Format::kQ8_0>, &pack_q8_0_avx2,
                                         [](const uint8_t* p, int64_t k, float* out) {
                                           dequantize_row_q8_0_ref(p, out, k);
                                         }};
extern const ActPacker act_q8_k__avx2 = {"q8_k__avx2", Format::kQ8_K,
                                         &ref_layout_row_bytes<Format::kQ8_K>, &pack_q8_k_avx2,
                                         [](const uint8_t* p, int64_t k, float* out) {
                                           dequantize_row_q8_K_ref(p, out, k);
                                         }};

// ---- The registry's entry points (rows in the avx2 section of kernels/registry.inc) ------

void f32_f32__avx2(const MatmulArgs& a, int64_t nb, int64_t ne) { run_tiles<VecAvx2, F32Weights<VecAvx2>>(a, nb, ne); }
void q4_0_f32__avx2(const MatmulArgs& a, int64_t nb, int64_t ne) { run_tiles<VecAvx2, F32Path<VecAvx2, DecQ4_0>>(a, nb, ne); }
void q4_1_f32__avx2(const MatmulArgs& a, int64_t nb, int64_t ne) { run_tiles<VecAvx2, F32Path<VecAvx2, DecQ4_1>>(a, nb, ne); }
void q5_0_f32__avx2(const MatmulArgs& a, int64_t nb, int64_t ne) { run_tiles<VecAvx2, F32Path<VecAvx2, DecQ5_0>>(a, nb, ne); }
void q8_0_f32__avx2(const MatmulArgs& a, int64_t nb, int64_t ne) { run_tiles<VecAvx2, F32Path<VecAvx2, DecQ8_0>>(a, nb, ne); }
void q4_k_f32__avx2(const MatmulArgs& a, int64_t nb, int64_t ne) {
  run_tiles<VecAvx2, F32Path<VecAvx2, DecQ45_K<false>>>(a, nb, ne);
}
void q5_k_f32__avx2(const MatmulArgs& a, int64_t nb, int64_t ne) {
  run_tiles<VecAvx2, F32Path<VecAvx2, DecQ45_K<true>>>(a, nb, ne);
}
void q6_k_f32__avx2(const MatmulArgs& a, int64_t nb, int64_t ne) { run_tiles<VecAvx2, F32Path<VecAvx2, DecQ6_K>>(a, nb, ne); }
void q8_k_f32__avx2(const MatmulArgs& a, int64_t nb, int64_t ne) { run_tiles<VecAvx2, F32Path<VecAvx2, DecQ8_K>>(a, nb, ne); }

void q4_0_int8__avx2(const MatmulArgs& a, int64_t nb, int64_t ne) {
  run_tiles<VecAvx2, LegacyInt8<Int8Q4_0>>(a, nb, ne);
}
void q4_1_int8__avx2(const MatmulArgs& a, int64_t nb, int64_t ne) {
  run_tiles<VecAvx2, LegacyInt8<Int8Q4_1>>(a, nb, ne);
}
void q5_0_int8__avx2(const MatmulArgs& a, int64_t nb, int64_t ne) {
  run_tiles<VecAvx2, LegacyInt8<Int8Q5_0>>(a, nb, ne);
}
void q8_0_int8__avx2(const MatmulArgs& a, int64_t nb, int64_t ne) {
  run_tiles<VecAvx2, LegacyInt8<Int8Q8_0>>(a, nb, ne);
}
void q4_k_int8__avx2(const MatmulArgs& a, int64_t nb, int64_t ne) { run_tiles<VecAvx2, Int8Q45_K<false>>(a, nb, ne); }
void q5_k_int8__avx2(const MatmulArgs& a, int64_t nb, int64_t ne) { run_tiles<VecAvx2, Int8Q45_K<true>>(a, nb, ne); }
void q6_k_int8__avx2(const MatmulArgs& a, int64_t nb, int64_t ne) { run_tiles<VecAvx2, Int8Q6_K>(a, nb, ne); }
void q8_k_int8__avx2(const MatmulArgs& a, int64_t nb, int64_t ne) { run_tiles<VecAvx2, Int8Q8_K>(a, nb, ne); }

}  // namespace fk
