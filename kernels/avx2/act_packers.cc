// The avx2 activation packers of the int8 path: the reference quantizers' blocks (BlockQ8_0 /
// BlockQ8_K, byte for byte, so the avx2 int8 kernels read them as the reference layout),
// computed with the same float operations in the same order, 8 lanes at a time.
#include "kernels/avx2/vec-inl.h"

namespace fk {
namespace {

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
    std::memcpy(out + offsetof(BlockQ8_0, d), &dh, sizeof dh);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + offsetof(BlockQ8_0, qs)),
                        low_bytes(q[0], q[1], q[2], q[3]));
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
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + offsetof(BlockQ8_K, qs) + 32 * c), bytes);
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
    std::memcpy(out + offsetof(BlockQ8_K, bsums), bsums, sizeof bsums);
    const float d = 1 / iscale;
    std::memcpy(out + offsetof(BlockQ8_K, d), &d, sizeof d);
  }
}

template <Format F>
int64_t ref_layout_row_bytes(int64_t k) {
  return k / traits(F).block_elems * traits(F).block_bytes;
}

}  // namespace

// Used by the avx2 rows of kernels/registry.inc.

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

}  // namespace fk
