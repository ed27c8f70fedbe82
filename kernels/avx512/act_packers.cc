// The activation packers of both AVX-512 variants (avx512 and avx512_vnni rows of
// kernels/registry.inc): SIMD quantizers that produce the reference quantizers' values bit for
// bit (same float operations in the same order), laid out as kernels/avx512/act_layouts-inl.h
// describes.
#include "kernels/avx512/act_layouts-inl.h"
#include "kernels/avx512/vec-inl.h"

namespace fk {
namespace {

// roundf (half away from zero), exactly: v - trunc(v) is exact, and so is adding +-1.
FK_INLINE __m512 round_half_away(__m512 v) {
  const __m512 t = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const __m512 frac = _mm512_abs_ps(_mm512_sub_ps(v, t));
  const __mmask16 up = _mm512_cmp_ps_mask(frac, _mm512_set1_ps(0.5f), _CMP_GE_OQ);
  const __m512 one = _mm512_castsi512_ps(_mm512_or_si512(
      _mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32(INT32_MIN)),
      _mm512_castps_si512(_mm512_set1_ps(1.0f))));
  return _mm512_mask_add_ps(t, up, t, one);
}

// One Q8_0 block as quantize_row_q8_0_ref: d = max|x| / 127 (stored as fp16), q =
// (int8_t) roundf(x * (1 / d)), the conversion truncating to int32 and keeping the low byte
// (NaN / out of range: 0). Writes q[0..15] to lo, q[16..31] to hi; returns d as fp16 bits.
FK_INLINE uint16_t quantize_q8_0_block(const float* x, int8_t* lo, int8_t* hi) {
  const __m512 x0 = _mm512_loadu_ps(x), x1 = _mm512_loadu_ps(x + 16);
  const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(x0), _mm512_abs_ps(x1)));
  const float d = amax / 127;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  const __m512 idv = _mm512_set1_ps(id);
  const __m512i q0 = _mm512_cvttps_epi32(round_half_away(_mm512_mul_ps(x0, idv)));
  const __m512i q1 = _mm512_cvttps_epi32(round_half_away(_mm512_mul_ps(x1, idv)));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(lo), _mm512_cvtepi32_epi8(q0));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(hi), _mm512_cvtepi32_epi8(q1));
  return _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}

// Lane sums of a packed group: lane l gets y[4l .. 4l+3] + y[64 + 4l .. 64 + 4l+3].
FK_INLINE __m512i group_lane_sums(const ActQ8_0x4& g) {
  const __m512i ones8 = _mm512_set1_epi8(1), ones16 = _mm512_set1_epi16(1);
  const __m512i a = _mm512_madd_epi16(_mm512_maddubs_epi16(ones8, load512(g.y)), ones16);
  const __m512i b = _mm512_madd_epi16(_mm512_maddubs_epi16(ones8, load512(g.y + 64)), ones16);
  return _mm512_add_epi32(a, b);
}

int64_t q8_0x4_row_bytes(int64_t k) {
  return (k / kQK + 3) / 4 * static_cast<int64_t>(sizeof(ActQ8_0x4));
}

// kBias != 0: aux = kBias * lane sum (Q4_0: -8, Q5_0: -16, Q8_0: -128); kBias == 0: aux =
// da * lane sum as float (Q4_1, Q5_1: a min term, no offset).
template <int kBias>
void pack_q8_0x4(const float* x, int64_t k, uint8_t* out) {
  const int64_t nb = k / kQK;
  ActQ8_0x4* g = reinterpret_cast<ActQ8_0x4*>(out);
  for (int64_t gi = 0; gi < (nb + 3) / 4; ++gi, ++g) {
    for (int b = 0; b < 4; ++b) {
      const int64_t blk = 4 * gi + b;
      float da = 0.0f;
      if (blk < nb) {
        da = _cvtsh_ss(quantize_q8_0_block(x + blk * kQK, g->y + 16 * b, g->y + 64 + 16 * b));
      } else {
        std::memset(g->y + 16 * b, 0, 16);
        std::memset(g->y + 64 + 16 * b, 0, 16);
      }
      for (int t = 0; t < 4; ++t) g->da[4 * b + t] = da;
    }
    const __m512i sums = group_lane_sums(*g);
    if constexpr (kBias != 0) {
      _mm512_store_si512(g->aux, _mm512_mullo_epi32(sums, _mm512_set1_epi32(kBias)));
    } else {
      alignas(64) int32_t lane[16];
      _mm512_store_si512(lane, sums);
      for (int b = 0; b < 4; ++b) {
        const int32_t block = (lane[4 * b] + lane[4 * b + 1]) + (lane[4 * b + 2] + lane[4 * b + 3]);
        const float v = g->da[4 * b] * static_cast<float>(block);
        for (int t = 0; t < 4; ++t) std::memcpy(&g->aux[4 * b + t], &v, sizeof v);
      }
    }
  }
}

void unpack_q8_0x4(const uint8_t* packed, int64_t k, float* out) {
  const ActQ8_0x4* g = reinterpret_cast<const ActQ8_0x4*>(packed);
  for (int64_t blk = 0; blk < k / kQK; ++blk) {
    const ActQ8_0x4& gr = g[blk / 4];
    const int b = static_cast<int>(blk % 4);
    for (int t = 0; t < kQK; ++t) {
      const int8_t q = t < 16 ? gr.y[16 * b + t] : gr.y[64 + 16 * b + t - 16];
      out[blk * kQK + t] = static_cast<float>(q) * gr.da[4 * b];
    }
  }
}

// One Q8_K super-block as quantize_row_q8_K_ref: max = the element of largest magnitude
// (the first on ties), iscale = -127 / max, q = min(127, nearest_int(iscale * x)) with
// nearest_int's magic-number rounding, d = 1 / iscale. q in element order.
FK_INLINE float quantize_q8_k_block(const float* x, int8_t* q) {
  __m512 ax = _mm512_setzero_ps();
  for (int c = 0; c < 16; ++c) ax = _mm512_max_ps(ax, _mm512_abs_ps(_mm512_loadu_ps(x + 16 * c)));
  const float amax = _mm512_reduce_max_ps(ax);
  if (!(amax != 0.0f)) {  // the reference zeroes the block
    std::memset(q, 0, kQK_K);
    return 0.0f;
  }
  float max = 0.0f;
  for (int c = 0; c < 16; ++c) {
    const __mmask16 hit = _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_loadu_ps(x + 16 * c)),
                                             _mm512_set1_ps(amax), _CMP_EQ_OQ);
    if (hit != 0) {
      max = x[16 * c + __builtin_ctz(hit)];
      break;
    }
  }
  const float iscale = -127.f / max;
  const __m512 is = _mm512_set1_ps(iscale);
  const __m512 magic = _mm512_set1_ps(12582912.f);
  for (int c = 0; c < 16; ++c) {
    const __m512 v = _mm512_add_ps(_mm512_mul_ps(is, _mm512_loadu_ps(x + 16 * c)), magic);
    __m512i n = _mm512_sub_epi32(
        _mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32(0x007fffff)),
        _mm512_set1_epi32(0x00400000));
    n = _mm512_min_epi32(n, _mm512_set1_epi32(127));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + 16 * c), _mm512_cvtepi32_epi8(n));
  }
  return 1 / iscale;
}

int64_t q8_k_row_bytes(int64_t k) { return k / kQK_K * static_cast<int64_t>(sizeof(ActQ8_K)); }

template <YOrder kOrder>
void pack_q8_k(const float* x, int64_t k, uint8_t* out) {
  ActQ8_K* s = reinterpret_cast<ActQ8_K*>(out);
  for (int64_t b = 0; b < k / kQK_K; ++b, ++s, x += kQK_K) {
    alignas(64) int8_t q[kQK_K];
    s->d = quantize_q8_k_block(x, q);
    // Sums of 16: psadbw of (q + 128) per 8 bytes, minus 8 * 128.
    alignas(64) uint64_t sad[32];
    for (int c = 0; c < 4; ++c) {
      const __m512i v = _mm512_xor_si512(load512(q + 64 * c), _mm512_set1_epi8(static_cast<char>(0x80)));
      _mm512_store_si512(sad + 8 * c, _mm512_sad_epu8(v, _mm512_setzero_si512()));
    }
    int32_t total = 0;
    for (int t = 0; t < 16; ++t) {
      const int32_t b16 = static_cast<int32_t>(sad[2 * t] + sad[2 * t + 1]) - 16 * 128;
      s->nbsum16[t] = static_cast<int16_t>(-16 * b16);
      total += b16;
    }
    for (int t = 0; t < 8; ++t) {
      s->bsum32[t] = static_cast<int16_t>(static_cast<int32_t>(sad[4 * t] + sad[4 * t + 1] +
                                                               sad[4 * t + 2] + sad[4 * t + 3]) -
                                          32 * 128);
    }
    s->sum = total;
    // 16-element runs stay together in every order.
    for (int r = 0; r < 16; ++r) std::memcpy(s->y + y_pos(kOrder, 16 * r), q + 16 * r, 16);
    std::memset(s->pad, 0, sizeof s->pad);
  }
}

template <YOrder kOrder>
void unpack_q8_k(const uint8_t* packed, int64_t k, float* out) {
  const ActQ8_K* s = reinterpret_cast<const ActQ8_K*>(packed);
  for (int64_t b = 0; b < k / kQK_K; ++b, ++s) {
    for (int e = 0; e < kQK_K; ++e) {
      const int8_t q = s->y[y_pos(kOrder, e)];
      out[b * kQK_K + e] = s->d * static_cast<float>(q);
    }
  }
}

}  // namespace

extern const ActPacker act_q8_0x4_q4_0__avx512 = {"q8_0x4_q4_0__avx512", Format::kQ8_0,
                                                  &q8_0x4_row_bytes, &pack_q8_0x4<-8>,
                                                  &unpack_q8_0x4};
extern const ActPacker act_q8_0x4_q4_1__avx512 = {"q8_0x4_q4_1__avx512", Format::kQ8_0,
                                                  &q8_0x4_row_bytes, &pack_q8_0x4<0>,
                                                  &unpack_q8_0x4};
extern const ActPacker act_q8_0x4_q5_0__avx512 = {"q8_0x4_q5_0__avx512", Format::kQ8_0,
                                                  &q8_0x4_row_bytes, &pack_q8_0x4<-16>,
                                                  &unpack_q8_0x4};
extern const ActPacker act_q8_0x4_q8_0__avx512 = {"q8_0x4_q8_0__avx512", Format::kQ8_0,
                                                  &q8_0x4_row_bytes, &pack_q8_0x4<-128>,
                                                  &unpack_q8_0x4};
extern const ActPacker act_q8_k_nibble__avx512 = {"q8_k_nibble__avx512", Format::kQ8_K,
                                                  &q8_k_row_bytes, &pack_q8_k<YOrder::kNibble>,
                                                  &unpack_q8_k<YOrder::kNibble>};
extern const ActPacker act_q8_k_crumb__avx512 = {"q8_k_crumb__avx512", Format::kQ8_K,
                                                 &q8_k_row_bytes, &pack_q8_k<YOrder::kCrumb>,
                                                 &unpack_q8_k<YOrder::kCrumb>};
extern const ActPacker act_q8_k__avx512 = {"q8_k__avx512", Format::kQ8_K, &q8_k_row_bytes,
                                           &pack_q8_k<YOrder::kElement>,
                                           &unpack_q8_k<YOrder::kElement>};
extern const ActPacker act_q8_k_halves__avx512 = {"q8_k_halves__avx512", Format::kQ8_K,
                                                  &q8_k_row_bytes, &pack_q8_k<YOrder::kHalves>,
                                                  &unpack_q8_k<YOrder::kHalves>};

}  // namespace fk
