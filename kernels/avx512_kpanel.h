// Batched int8 GEMM for the K-quants (Q4_K, Q5_K, Q6_K) on AVX-512: weight panels.
// Included by kernels/avx512_int8.h (and so compiled once per AVX-512 variant, kVnni false
// or true, each into its own anonymous namespace).
//
// Why: the 4 x 4 tiles of avx512_int8.h decode each weight super-block once per 4 activation
// rows and spend, per (activation row, weight row) pair, 4 dot products plus 6 operations to
// apply the sub-block scales and reduce; for Q5_K / Q6_K the decoding alone is as costly as
// the products. Here, for batches (m >= kPanelMinM), each 16-row strip of weights is decoded
// once into a panel that the micro-kernel then sweeps over all m activation rows:
//
//   panel vector g (64 bytes) of super-block b: int32 lane r = the 4 unsigned quants of
//   weight row r at positions 4g .. 4g + 3 of the packed activations (ActQ8_K y order),
//
// so one vpdpbusd against a broadcast of 4 activation bytes does 64 multiply-adds for 16
// weight rows at once (outer product), and each lane stays one output from the first
// product to the store: no horizontal reduction, no shuffles in the inner loop. Per
// sub-block the exact int32 dot is multiplied by the 16 rows' integer scales (vpmulld);
// per super-block the exact int32 total is scaled to float once (d * da) and accumulated.
// Q4_K / Q5_K mins: sum_s m_s * bsum32_s by vpdpwssd on int16 pairs (exact), scaled by
// dmin * da. Q6_K's -32 offset: sum_s (2 sc_s) * (-16 bsum16_s) by vpdpwssd, added to the
// integer total (exact).
//
// Integer ranges (int32 never overflows): Q5_K sub-block dot <= 32 * 31 * 127 = 125984,
// times scale <= 63, 8 sub-blocks: < 6.4e7; Q6_K sub-block dot <= 16 * 63 * 127 = 128016,
// times |scale| <= 128, 16 sub-blocks: < 2.7e8, offset < 16 * 128 * 32 * 2032 = 1.4e8.
// Without VNNI the 4-product sums are built with vpmaddubsw pairs added as int16:
// at most 4 * 63 * 127 = 32004 < 32767.
//
// Determinism: lane r of the accumulators of activation row i sees exactly the same
// operations whatever strip, micro-tile height or thread computes it; rows past n_end
// repeat the last valid row and are never stored.
#ifndef KERNELS_AVX512_KPANEL_H_
#define KERNELS_AVX512_KPANEL_H_

#include <new>

#include "kernels/avx512_common.h"

namespace fk {
namespace {

constexpr int kPanelRows = 16;    // weight rows per strip (one int32 lane each)
constexpr int64_t kPanelMinM = 8;  // batches from this size use panels

// The thread's panel buffer (64-byte aligned, grows to the largest k seen; freed at thread
// exit). Dispatch runs a call's tasks on the caller's pool threads, so no call allocates
// once the buffer has grown.
FK_INLINE uint8_t* panel_buffer(size_t bytes) {
  struct Buffer {
    uint8_t* p = nullptr;
    size_t size = 0;
    ~Buffer() { ::operator delete(p, std::align_val_t{64}); }
  };
  static thread_local Buffer buf;
  if (buf.size < bytes) {
    ::operator delete(buf.p, std::align_val_t{64});
    buf.p = nullptr;
    buf.size = 0;
    buf.p = static_cast<uint8_t*>(::operator new(bytes, std::align_val_t{64}));
    buf.size = bytes;
  }
  return buf.p;
}

// dst[w] lane r <- dword w of the 64 bytes at row[r] + off (a 16 x 16 dword transpose).
FK_INLINE void transpose_rows(const uint8_t* const (&row)[kPanelRows], int64_t off, __m512i* dst) {
  __m512i t[16], u[16];
  for (int p = 0; p < 8; ++p) {
    const __m512i a = loadu512(row[2 * p] + off), b = loadu512(row[2 * p + 1] + off);
    t[2 * p] = _mm512_unpacklo_epi32(a, b);      // lane L: a.4L, b.4L, a.4L+1, b.4L+1
    t[2 * p + 1] = _mm512_unpackhi_epi32(a, b);  // lane L: a.4L+2, b.4L+2, a.4L+3, b.4L+3
  }
  // u[4q + j], 128-bit lane L: dword 4L + j of rows 4q .. 4q + 3.
  for (int q = 0; q < 4; ++q) {
    const __m512i lo0 = t[4 * q], hi0 = t[4 * q + 1], lo1 = t[4 * q + 2], hi1 = t[4 * q + 3];
    u[4 * q + 0] = _mm512_unpacklo_epi64(lo0, lo1);
    u[4 * q + 1] = _mm512_unpackhi_epi64(lo0, lo1);
    u[4 * q + 2] = _mm512_unpacklo_epi64(hi0, hi1);
    u[4 * q + 3] = _mm512_unpackhi_epi64(hi0, hi1);
  }
  // A 4 x 4 transpose of 128-bit lanes for each j: dst[4L + j] lane q = u[4q + j] lane L.
  for (int j = 0; j < 4; ++j) {
    const __m512i y0 = _mm512_shuffle_i32x4(u[j], u[4 + j], 0x44);
    const __m512i y1 = _mm512_shuffle_i32x4(u[j], u[4 + j], 0xEE);
    const __m512i y2 = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0x44);
    const __m512i y3 = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0xEE);
    _mm512_store_si512(dst + j, _mm512_shuffle_i32x4(y0, y2, 0x88));
    _mm512_store_si512(dst + 4 + j, _mm512_shuffle_i32x4(y0, y2, 0xDD));
    _mm512_store_si512(dst + 8 + j, _mm512_shuffle_i32x4(y1, y3, 0x88));
    _mm512_store_si512(dst + 12 + j, _mm512_shuffle_i32x4(y1, y3, 0xDD));
  }
}

// vpshufb pattern: per dword d of a 128-bit lane, bytes {4d + src[0..3]} (0x80 = zero).
constexpr Bytes dword_pattern(int b0, int b1, int b2, int b3) {
  Bytes r{};
  const int src[4] = {b0, b1, b2, b3};
  for (int p = 0; p < 64; ++p) {
    const int s = src[p % 4];
    r.v[p] = s < 0 ? 0x80 : static_cast<uint8_t>(4 * ((p % 16) / 4) + s);
  }
  return r;
}

FK_INLINE __m512i bcast32(const void* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof v);
  return _mm512_set1_epi32(v);
}

template <bool kVnni>
FK_INLINE __m512i panel_dpwssd(__m512i acc, __m512i a, __m512i b) {
  if constexpr (kVnni) {
    return _mm512_dpwssd_epi32(acc, a, b);
  } else {
    return _mm512_add_epi32(acc, _mm512_madd_epi16(a, b));
  }
}

FK_INLINE __m512 fp16_low_words(__m512i v) {
  return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(v));
}

// ---- Q4_K / Q5_K -----------------------------------------------------------------------------

struct alignas(64) PanelQ45 {
  int32_t q[64][16];    // vector 8 t + c: slot t (sub-block nibble_slot(t)), bytes 4c .. 4c+3
  int32_t sc[8][16];    // slot t: the sub-block's 6-bit scale
  int32_t mins[4][16];  // p: int16 pair (m_2p, m_2p+1), sub-blocks in element order
  float d[16], dmin[16];
};

template <bool kFive>
struct PanelCodecQ45 {
  using Panel = PanelQ45;
  using Act = ActQ8_K;
  static constexpr int kBlockBytes = kFive ? sizeof(BlockQ5_K) : sizeof(BlockQ4_K);
  static constexpr bool kMins = true;
  // Block dwords: 0 d|dmin, 1-3 scales, then (Q5_K) 4-11 qh, then qs (32 dwords).
  static constexpr int kQsDword = kFive ? 12 : 4;
  static constexpr int kThirdOff = kBlockBytes - 64;  // a last transpose ending at the block's end

  static FK_INLINE void build(const uint8_t* const (&w)[kPanelRows], int64_t off, Panel* p) {
    alignas(64) __m512i t[48];  // dwords 0..15, 16..31, and kThirdOff/4 .. +15
    transpose_rows(w, off, t);
    transpose_rows(w, off + 64, t + 16);
    transpose_rows(w, off + kThirdOff, t + 32);
    auto dword = [&](int v) -> __m512i {  // block dword v, lane r = row r
      return v < 32 ? load512(&t[v]) : load512(&t[32 + v - kThirdOff / 4]);
    };
    const __m512i h0 = dword(0), s0 = dword(1), s1 = dword(2), s2 = dword(3);
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
      _mm512_store_si512(p->sc[t8], _mm512_shuffle_epi8(s < 4 ? sc_lo : sc_hi, load512(&kByte[s % 4])));
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
        const __m512i qh = dword(4 + c);
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

// ---- Q6_K ------------------------------------------------------------------------------------

struct alignas(64) PanelQ6 {
  int32_t q[64][16];    // vector g: elements 4g .. 4g+3 (element order), unsigned 6-bit
  int32_t sc[16][16];   // sub-block s: the signed scale
  int32_t sc2[8][16];   // p: int16 pair (2 sc_2p, 2 sc_2p+1)
  float d[16];
};

struct PanelCodecQ6 {
  using Panel = PanelQ6;
  using Act = ActQ8_K;
  static constexpr int kBlockBytes = sizeof(BlockQ6_K);
  static constexpr bool kMins = false;
  static constexpr int kQh = kQK_K / 2, kSc = kQh + kQK_K / 4, kD = kSc + kQK_K / 16;

  static FK_INLINE void build(const uint8_t* const (&w)[kPanelRows], int64_t off, Panel* p) {
    alignas(64) __m512i t[48];  // ql dwords 0..31, qh dwords 0..15
    transpose_rows(w, off, t);
    transpose_rows(w, off + 64, t + 16);
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
      _mm512_store_si512(p->sc[s], _mm512_srai_epi32(_mm512_slli_epi32(v, 24 - 8 * (s % 4)), 24));
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

// ---- Driver ----------------------------------------------------------------------------------

template <class C, bool kVnni>
struct KPanelInt8 {
  using Panel = typename C::Panel;
  using Act = typename C::Act;

  // Output rows i0 .. i0 + MR, columns j0 .. j0 + 16 (lanes of `keep`), over all nb blocks.
  template <int MR>
  static FK_NOINLINE void micro(const MatmulArgs& a, const Panel* panel, int64_t nb, int64_t i0,
                                int64_t j0, __mmask16 keep) {
    const Act* y[MR];
    for (int i = 0; i < MR; ++i) y[i] = reinterpret_cast<const Act*>(a.act + (i0 + i) * a.act_row_bytes);
    __m512 acc[MR];
    for (int i = 0; i < MR; ++i) acc[i] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      __m512i tot[MR], ms[MR];
      C::template block<MR, kVnni>(panel[b], y, tot, ms);
      const __m512 d = _mm512_load_ps(panel[b].d);
      for (int i = 0; i < MR; ++i) {
        const __m512 da = _mm512_set1_ps(y[i]->d);
        acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(tot[i]), _mm512_mul_ps(d, da), acc[i]);
        if constexpr (C::kMins) {
          acc[i] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(ms[i]),
                                    _mm512_mul_ps(_mm512_load_ps(panel[b].dmin), da), acc[i]);
        }
        ++y[i];
      }
    }
    for (int i = 0; i < MR; ++i) _mm512_mask_storeu_ps(a.output + (i0 + i) * a.n + j0, keep, acc[i]);
  }

  static void run(const MatmulArgs& a, int64_t n_begin, int64_t n_end) {
    const int64_t nb = a.k / kQK_K;
    Panel* panel = reinterpret_cast<Panel*>(panel_buffer(static_cast<size_t>(nb) * sizeof(Panel)));
    for (int64_t j0 = n_begin; j0 < n_end; j0 += kPanelRows) {
      const int nv = static_cast<int>(std::min<int64_t>(kPanelRows, n_end - j0));
      const uint8_t* w[kPanelRows];
      for (int r = 0; r < kPanelRows; ++r) w[r] = a.weights + (j0 + std::min(r, nv - 1)) * a.row_bytes;
      for (int64_t b = 0; b < nb; ++b) C::build(w, b * C::kBlockBytes, &panel[b]);
      const __mmask16 keep = static_cast<__mmask16>((1u << nv) - 1);
      int64_t i = 0;
      for (; i + 8 <= a.m; i += 8) micro<8>(a, panel, nb, i, j0, keep);
      if (a.m - i >= 4) {
        micro<4>(a, panel, nb, i, j0, keep);
        i += 4;
      }
      if (a.m - i >= 2) {
        micro<2>(a, panel, nb, i, j0, keep);
        i += 2;
      }
      if (a.m - i >= 1) micro<1>(a, panel, nb, i, j0, keep);
    }
  }
};

}  // namespace
}  // namespace fk

#endif  // KERNELS_AVX512_KPANEL_H_
