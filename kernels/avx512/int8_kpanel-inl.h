// Batched int8 GEMM for the K-quants (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K), IQ4_XS and the 32-element
// formats (Q4_0, ...; the legacy branch below) on AVX-512: weight panels (textual header, see kernels/simd/common-inl.h; compiled once per AVX-512
// variant, kVnni false or true). The registry's *_int8_panel__avx512[_vnni] rows run it from
// their MIN_M on.
//
// Why: the 4 x 4 tiles of kernels/avx512/int8_kquant-inl.h decode each weight super-block
// once per 4 activation rows and spend, per (activation row, weight row) pair, 4 dot
// products plus 6 operations to apply the sub-block scales and reduce; for Q5_K / Q6_K the
// decoding alone is as costly as the products. Here, for batches, each 16-row strip of
// weights is decoded once into a panel that the micro-kernel then sweeps over all m
// activation rows:
//
//   panel vector g (64 bytes) of super-block b: int32 lane r = the 4 unsigned quants of
//   weight row r at positions 4g .. 4g + 3 of the packed activations (ActQ8_K y order),
//
// so one vpdpbusd against a broadcast of 4 activation bytes does 64 multiply-adds for 16
// weight rows at once (outer product), and each lane stays one output from the first
// product to the store: no horizontal reduction, no shuffles in the inner loop. Per
// sub-block the exact int32 dot is multiplied by the 16 rows' integer scales (vpmulld;
// Q2_K / Q3_K, whose 16-element dots fit int16: two sub-blocks per vpdpwssd);
// per super-block the exact int32 total is scaled to float once (d * da) and accumulated.
// Q4_K / Q5_K mins: sum_s m_s * bsum32_s by vpdpwssd on int16 pairs (exact), scaled by
// dmin * da. Q6_K's -32 offset: sum_s (2 sc_s) * (-16 bsum16_s) by vpdpwssd, added to the
// integer total (exact). IQ4_XS: codebook values V + 128 with VNNI, |V| against
// sign-adjusted activations without (its codec in codecs-inl.h says why).
// With VNNI, Q4_K, Q5_K, Q6_K and IQ4_XS are kWide codecs (run_wide): strips of 32 rows,
// two panels against each activation broadcast, 6 activation rows per micro-tile, each
// sub-block's exact dot scaled in float (a vcvtdq2ps and an FMA instead of vpmulld, 2 uops,
// and an add); Q6_K's and IQ4_XS's dots start from per-call offsets (-32 bsum16, -128
// bsum32) instead of a separate offset step. kernel_bench --hot, 128 x 5632 x 2048, 1 thread:
// IQ4_XS 8.2-8.4 -> 6.2-6.3 ms, Q4_K 7.9 -> 6.6-6.7, Q5_K 8.2 -> 6.7, Q6_K 9.2-9.4 -> 7.4-7.5.
//
// A panel codec (kernels/avx512/codecs-inl.h: PanelCodec<F>) provides Panel (one
// super-block of 16 rows, decoded), Act (the packed activation block), kBlockBytes, kMins,
// build(rows[16], offset, Panel*) and block<MR, kVnni>(panel, act[MR], tot[MR], mins[MR]).
//
// The 32-element formats (Act = ActQ8_0x4, the general rows' packed groups of 4 blocks):
// the panel is one block of 16 rows, built by build(block of the strip's first row, row
// offsets, Panel*) from dword gathers; block<MR, kVnni>(panel, group[MR], sub, tot[MR]) adds
// the exact int32 dots of block `sub` of each group to tot, which starts from the block's
// integer offset when the codec's kOffset<kVnni> says so (the sum of the block's 4 aux
// lanes: the packer's bias times the block's activation sum, computed once per call for all
// m rows); each block then ends with the float step acc += float(dot) * (d_w * da) (Q4_1 /
// Q5_1, kMins: then acc += m_w * aux, the packer's float da * activation sum). Each
// block costs 8 vpdpbusd per (activation row, 16 weight rows) against 3 float operations.
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
#ifndef KERNELS_AVX512_INT8_KPANEL_INL_H_
#define KERNELS_AVX512_INT8_KPANEL_INL_H_

#include <new>
#include <type_traits>

#include "kernels/avx512/act_layouts-inl.h"
#include "kernels/avx512/vec-inl.h"

namespace fk {
namespace {

constexpr int kPanelRows = 16;  // weight rows per strip (one int32 lane each)

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

// Sub-block s of a kWide codec's block_wide (VNNI): each dot is[n][i] starts from activation
// row i's offset o[i][s] (kOffsets) or zero; for each g of gs, panel n's vectors g and g + 1
// meet row i's dwords at y + 4g and 4g + 4 (every codec's panel vector g meets activation
// bytes 4g .. 4g + 3); then tf[n][i] += float(is[n][i]) * the 16 rows' float scales
// p[n]->scf[s].
template <bool kOffsets, int MR, int NP, int kG, class Panel, class Act>
FK_INLINE void wide_sub_block(const Panel* const (&p)[NP], const Act* const (&y)[MR], const int32_t* const (&o)[MR],
                              int s, const int (&gs)[kG], __m512 (&tf)[NP][MR]) {
  __m512i is[NP][MR];
  for (int i = 0; i < MR; ++i) {
    const __m512i init = kOffsets ? _mm512_set1_epi32(o[i][s]) : _mm512_setzero_si512();
    for (int n = 0; n < NP; ++n) is[n][i] = init;
  }
  for (int k = 0; k < kG; ++k) {
    const int g = gs[k];
    __m512i w0[NP], w1[NP];
    for (int n = 0; n < NP; ++n) {
      w0[n] = load512(p[n]->q[g]);
      w1[n] = load512(p[n]->q[g + 1]);
    }
    for (int i = 0; i < MR; ++i) {
      const __m512i y0 = bcast32(y[i]->y + 4 * g), y1 = bcast32(y[i]->y + 4 * g + 4);
      for (int n = 0; n < NP; ++n) is[n][i] = dot2_u8s8<true>(is[n][i], w0[n], y0, w1[n], y1);
    }
  }
  for (int n = 0; n < NP; ++n) {
    const __m512 sc = _mm512_load_ps(p[n]->scf[s]);
    for (int i = 0; i < MR; ++i) tf[n][i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(is[n][i]), sc, tf[n][i]);
  }
}

FK_INLINE __m512 fp16_low_words(__m512i v) {
  return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(v));
}

// ---- Driver ----------------------------------------------------------------------------------

template <class C, bool kVnni>
struct KPanelInt8 {
  using Panel = typename C::Panel;
  using Act = typename C::Act;

  // The 32-element formats (Q4_0, Q5_0, IQ4_NL, Q8_0): the panel is one block of 16 rows,
  // the activations are groups of 4 blocks (ActQ8_0x4).
  static constexpr bool kLegacy = std::is_same_v<Act, ActQ8_0x4>;
  static constexpr int kElems = kLegacy ? kQK : kQK_K;
  static constexpr bool has_offsets() {
    if constexpr (kLegacy) {
      return C::template kOffset<kVnni>;
    } else {
      return false;
    }
  }

  // Legacy: block kSub of the activation groups y[MR] against its panel p; o[i] is the
  // block's integer offset of the tile's activation row i. The exact int32 dot (offset
  // included) of each (activation row, weight row), then acc += float(dot) * (d_w * da), one
  // rounding order for every lane.
  template <int MR, int kSub>
  static FK_INLINE void legacy_block(const Panel* p, const int32_t* o, const Act* const (&y)[MR],
                                     __m512 (&acc)[MR]) {
    __m512i tot[MR];
    for (int i = 0; i < MR; ++i)
      tot[i] = has_offsets() ? _mm512_set1_epi32(o[i]) : _mm512_setzero_si512();
    C::template block<MR, kVnni>(*p, y, kSub, tot);
    const __m512 d = _mm512_load_ps(p->d);
    for (int i = 0; i < MR; ++i) {
      const __m512 da = _mm512_set1_ps(y[i]->da[4 * kSub]);
      acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(tot[i]), _mm512_mul_ps(d, da), acc[i]);
      if constexpr (C::kMins) {
        // Q4_1 / Q5_1: aux lane 4 kSub = da * (the block's activation sum), a float.
        float s;
        std::memcpy(&s, &y[i]->aux[4 * kSub], sizeof s);
        acc[i] = _mm512_fmadd_ps(_mm512_load_ps(p->m), _mm512_set1_ps(s), acc[i]);
      }
    }
  }

  // Output rows i0 .. i0 + MR, columns j0 .. j0 + 16 (lanes of `keep`), over all nb blocks.
  // Legacy: offs[b * m + i] is activation row i's integer offset of block b (see run).
  template <int MR>
  static FK_NOINLINE void micro(const MatmulArgs& a, const Panel* panel, const int32_t* offs,
                                int64_t nb, int64_t i0, int64_t j0, __mmask16 keep) {
    const Act* y[MR];
    tile_acts(a, i0, y);
    __m512 acc[MR];
    for (int i = 0; i < MR; ++i) acc[i] = _mm512_setzero_ps();
    if constexpr (kLegacy) {
      // Groups of 4 blocks, the block's place in its group a constant.
      const int64_t full = nb / 4;
      const int tail = static_cast<int>(nb % 4);
      const int64_t m = a.m;
      const int32_t* o = offs + i0;
      for (int64_t g = 0; g < full; ++g) {
        legacy_block<MR, 0>(panel, o, y, acc);
        legacy_block<MR, 1>(panel + 1, o + m, y, acc);
        legacy_block<MR, 2>(panel + 2, o + 2 * m, y, acc);
        legacy_block<MR, 3>(panel + 3, o + 3 * m, y, acc);
        panel += 4;
        o += 4 * m;
        for (int i = 0; i < MR; ++i) ++y[i];
      }
      if (tail > 0) legacy_block<MR, 0>(panel, o, y, acc);
      if (tail > 1) legacy_block<MR, 1>(panel + 1, o + m, y, acc);
      if (tail > 2) legacy_block<MR, 2>(panel + 2, o + 2 * m, y, acc);
    } else {
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
    }
    for (int i = 0; i < MR; ++i) _mm512_mask_storeu_ps(a.output + (i0 + i) * a.n + j0, keep, acc[i]);
  }

  // A kWide codec with VNNI (Q4_K, Q5_K, Q6_K, IQ4_XS): NP = 1 or 2 panels (strips of 16 or 32
  // weight rows, p[n]: rows j0 + 16 n ..) through C::block_wide, which runs them all against
  // each activation broadcast and returns float totals (each sub-block's exact dot times its
  // scale, summed in float) and the mins sums; with kSubOffsets = S > 0, so[(i nb + b) S + s]
  // is activation row i's integer offset of sub-block s of super-block b (C::sub_offsets),
  // where the dots start. Totals and mins are scaled by d * da and dmin * da as in micro. A
  // lane's operations do not depend on NP or MR. Output columns j0 .. j0 + 16 NP (the last
  // panel's lanes of `keep`).
  template <int MR, int NP>
  static FK_NOINLINE void micro_wide(const MatmulArgs& a, const Panel* const (&p)[NP], const int32_t* so,
                                     int64_t nb, int64_t i0, int64_t j0, __mmask16 keep) {
    const Act* y[MR];
    const int32_t* o[MR] = {};
    for (int i = 0; i < MR; ++i) {
      y[i] = reinterpret_cast<const Act*>(a.act + (i0 + i) * a.act_row_bytes);
      if constexpr (C::kSubOffsets > 0) o[i] = so + (i0 + i) * nb * C::kSubOffsets;
    }
    __m512 acc[NP][MR];
    for (int n = 0; n < NP; ++n)
      for (int i = 0; i < MR; ++i) acc[n][i] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      const Panel* pb[NP];
      for (int n = 0; n < NP; ++n) pb[n] = p[n] + b;
      __m512 tf[NP][MR];
      __m512i ms[NP][MR];
      C::template block_wide<MR, NP>(pb, y, o, tf, ms);
      for (int n = 0; n < NP; ++n) {
        const __m512 d = _mm512_load_ps(pb[n]->d);
        for (int i = 0; i < MR; ++i) {
          const __m512 da = _mm512_set1_ps(y[i]->d);
          acc[n][i] = _mm512_fmadd_ps(tf[n][i], _mm512_mul_ps(d, da), acc[n][i]);
          if constexpr (C::kMins) {
            acc[n][i] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(ms[n][i]), _mm512_mul_ps(_mm512_load_ps(pb[n]->dmin), da),
                                         acc[n][i]);
          }
        }
      }
      for (int i = 0; i < MR; ++i) {
        ++y[i];
        if constexpr (C::kSubOffsets > 0) o[i] += C::kSubOffsets;
      }
    }
    for (int n = 0; n < NP; ++n) {
      for (int i = 0; i < MR; ++i) {
        float* out = a.output + (i0 + i) * a.n + j0 + kPanelRows * n;
        if (n + 1 < NP) {
          _mm512_storeu_ps(out, acc[n][i]);
        } else {
          _mm512_mask_storeu_ps(out, keep, acc[n][i]);
        }
      }
    }
  }

  // The nb panels (blocks or super-blocks) of weight rows j .. j + nv - 1 (the last repeated
  // to 16 rows) into dst.
  static void build_strip(const MatmulArgs& a, int64_t j, int nv, int64_t nb, Panel* dst) {
    if constexpr (kLegacy) {
      // Row r's offset from the strip's first row (the 16 rows span < 2^31 bytes).
      const __m512i rows = _mm512_mullo_epi32(
          _mm512_min_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                           _mm512_set1_epi32(nv - 1)),
          _mm512_set1_epi32(static_cast<int32_t>(a.row_bytes)));
      const uint8_t* w0 = a.weights + j * a.row_bytes;
      for (int64_t b = 0; b < nb; ++b) C::build(w0 + b * C::kBlockBytes, rows, &dst[b]);
    } else {
      const uint8_t* w[kPanelRows];
      for (int r = 0; r < kPanelRows; ++r) w[r] = a.weights + (j + std::min(r, nv - 1)) * a.row_bytes;
      for (int64_t b = 0; b < nb; ++b) C::build(w, b * C::kBlockBytes, &dst[b]);
    }
  }

  // The wide run: strips of 32 rows while they are whole, then one of 16 .. 31 rows as one or
  // two strips of up to 16.
  static void run_wide(const MatmulArgs& a, int64_t n_begin, int64_t n_end) {
    const int64_t nb = a.k / kElems;
    const size_t panel_bytes = static_cast<size_t>(nb) * sizeof(Panel);
    uint8_t* buf = panel_buffer(2 * panel_bytes + static_cast<size_t>(a.m * nb * C::kSubOffsets) * sizeof(int32_t));
    Panel* const panels[2] = {reinterpret_cast<Panel*>(buf), reinterpret_cast<Panel*>(buf + panel_bytes)};
    int32_t* so = reinterpret_cast<int32_t*>(buf + 2 * panel_bytes);
    if constexpr (C::kSubOffsets > 0) {
      for (int64_t i = 0; i < a.m; ++i) {
        const Act* y = reinterpret_cast<const Act*>(a.act + i * a.act_row_bytes);
        for (int64_t b = 0; b < nb; ++b) C::sub_offsets(y[b], so + (i * nb + b) * C::kSubOffsets);
      }
    }
    int64_t j0 = n_begin;
    for (; j0 + 2 * kPanelRows <= n_end; j0 += 2 * kPanelRows) {
      build_strip(a, j0, kPanelRows, nb, panels[0]);
      build_strip(a, j0 + kPanelRows, kPanelRows, nb, panels[1]);
      const Panel* const p[2] = {panels[0], panels[1]};
      int64_t i = 0;
      for (; i + 6 <= a.m; i += 6) micro_wide<6, 2>(a, p, so, nb, i, j0, 0xFFFF);
      if (a.m - i >= 4) {
        micro_wide<4, 2>(a, p, so, nb, i, j0, 0xFFFF);
        i += 4;
      }
      if (a.m - i >= 2) {
        micro_wide<2, 2>(a, p, so, nb, i, j0, 0xFFFF);
        i += 2;
      }
      if (a.m - i >= 1) micro_wide<1, 2>(a, p, so, nb, i, j0, 0xFFFF);
    }
    for (; j0 < n_end; j0 += kPanelRows) {
      const int nv = static_cast<int>(std::min<int64_t>(kPanelRows, n_end - j0));
      build_strip(a, j0, nv, nb, panels[0]);
      const Panel* const p[1] = {panels[0]};
      const __mmask16 keep = static_cast<__mmask16>((1u << nv) - 1);
      int64_t i = 0;
      for (; i + 8 <= a.m; i += 8) micro_wide<8, 1>(a, p, so, nb, i, j0, keep);
      if (a.m - i >= 4) {
        micro_wide<4, 1>(a, p, so, nb, i, j0, keep);
        i += 4;
      }
      if (a.m - i >= 2) {
        micro_wide<2, 1>(a, p, so, nb, i, j0, keep);
        i += 2;
      }
      if (a.m - i >= 1) micro_wide<1, 1>(a, p, so, nb, i, j0, keep);
    }
  }

  static void run(const MatmulArgs& a, int64_t n_begin, int64_t n_end) {
    if constexpr (C::kWide && kVnni) {
      run_wide(a, n_begin, n_end);
    } else {
      run_strips(a, n_begin, n_end);
    }
  }

  static void run_strips(const MatmulArgs& a, int64_t n_begin, int64_t n_end) {
    const int64_t nb = a.k / kElems;
    // Legacy offsets (Q4_0 -8, Q5_0 -16, IQ4_NL / Q8_0 with VNNI -128, times the block's
    // activation sum): the sum of the 4 aux lanes of the block, exact, once per call for all
    // m rows, after the panels in the thread's buffer.
    const size_t panel_bytes = static_cast<size_t>(nb) * sizeof(Panel);
    constexpr bool offsets = has_offsets();
    uint8_t* buf = panel_buffer(panel_bytes + (offsets ? static_cast<size_t>(a.m * nb) * sizeof(int32_t) : 0));
    Panel* panel = reinterpret_cast<Panel*>(buf);
    int32_t* offs = reinterpret_cast<int32_t*>(buf + panel_bytes);
    if constexpr (offsets) {
      for (int64_t i = 0; i < a.m; ++i) {
        const ActQ8_0x4* y = reinterpret_cast<const ActQ8_0x4*>(a.act + i * a.act_row_bytes);
        for (int64_t b = 0; b < nb; ++b) {
          const int32_t* aux = y[b / 4].aux + 4 * (b % 4);
          offs[b * a.m + i] = (aux[0] + aux[1]) + (aux[2] + aux[3]);
        }
      }
    }
    for (int64_t j0 = n_begin; j0 < n_end; j0 += kPanelRows) {
      const int nv = static_cast<int>(std::min<int64_t>(kPanelRows, n_end - j0));
      build_strip(a, j0, nv, nb, panel);
      const __mmask16 keep = static_cast<__mmask16>((1u << nv) - 1);
      // Legacy: the build of a strip waits on its weights from memory (a panel block is read
      // 18..34 bytes at a time); the next strip's rows (contiguous) are prefetched into L2
      // in equal parts before each micro-tile of this one.
      const int64_t next_bytes = std::min<int64_t>(kPanelRows, std::max<int64_t>(0, n_end - j0 - kPanelRows)) * a.row_bytes;
      const uint8_t* next = next_bytes > 0 ? a.weights + (j0 + kPanelRows) * a.row_bytes : a.weights;
      const int64_t part = (next_bytes / ((a.m + 7) / 8) + 63) & ~int64_t{63};
      int64_t fetched = 0;
      auto prefetch_next = [&] {
        if constexpr (kLegacy) {
          for (const int64_t e = std::min(fetched + part, next_bytes); fetched < e; fetched += 64)
            _mm_prefetch(reinterpret_cast<const char*>(next + fetched), _MM_HINT_T1);
        }
      };
      int64_t i = 0;
      for (; i + 8 <= a.m; i += 8) {
        prefetch_next();
        micro<8>(a, panel, offs, nb, i, j0, keep);
      }
      prefetch_next();
      if (a.m - i >= 4) {
        micro<4>(a, panel, offs, nb, i, j0, keep);
        i += 4;
      }
      if (a.m - i >= 2) {
        micro<2>(a, panel, offs, nb, i, j0, keep);
        i += 2;
      }
      if (a.m - i >= 1) micro<1>(a, panel, offs, nb, i, j0, keep);
    }
  }
};

}  // namespace
}  // namespace fk

#endif  // KERNELS_AVX512_INT8_KPANEL_INL_H_
