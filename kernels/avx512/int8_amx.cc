// The amx rows of the int8 path (kernels/registry.inc): batched int8 GEMM on Intel AMX tiles
// (AMX-TILE + AMX-INT8), for batches from the rows' MIN_M on; batch 1 and small batches stay
// on avx512_vnni, whose general rows the amx variant uses (kernels/registry.h: base_variant).
// Every amx row gives the bits of an AVX-512 panel row of its format (the same packed
// activations, the same int32 sums, the same float operations in the same order;
// //kernels:matmul_test AmxTest checks it): avx512_vnni's, except Q4_K, Q5_K, Q6_K and IQ4_XS,
// whose avx512_vnni panel rows scale each sub-block's dot in float (AmxScaled): avx512's.
// kernel_api.h's amx_bits_of says which; each codec below asserts it agrees.
//
// The weights start as the AVX-512 panel kernels' panels (kernels/avx512/int8_kpanel-inl.h),
// 16 weight rows of a block decoded by the same PanelCodec build: vector g holds in int32
// lane r the 4 bytes of weight row r that meet activation bytes 4g .. 4g + 3. That is AMX's
// B-tile layout as it is. The activations are copied once per call into A tiles (16 rows of
// a block's bytes side by side, with the 16 rows' scales), so each tile load is one
// contiguous run. A C tile holds the int32 dots of 16 activation rows x 16 weight rows; it
// is stored to memory and the panel kernel's float steps are applied to it with AVX-512.
//
// Two kinds, by what the panel kernels do with a block's dots:
//   * kLegacy (Q4_0, Q5_0, IQ4_NL, Q8_0, Q4_1, Q5_1): a float scale per 32-element block and
//     row pair (d_w da), so one C tile per block (K = 32, 16 cycles). Where the VNNI kernels
//     start a dot from an integer offset (-8, -16, -128 times the activation sum), the panel
//     holds the signed weight q - bias instead (one byte operation per vector) and the signed
//     x signed tdpbssd gives the same integer. Q4_1 / Q5_1 keep their float mins step.
//   * kDigits (the K-quants, IQ4_XS, Q8_K): the super-block's total is an exact integer,
//     sum_s sc_s dot_s in int32, so the weights carry their sub-block scales (v = sc q; Q2_K
//     as it is, Q3_K as -v, which fits a signed byte; Q4_K, Q5_K, Q6_K, IQ4_XS as two digits;
//     Q8_K has no sub-block scales: v = q) and four K = 64 products per tile give the whole
//     super-block's total: one C tile per 256 elements (two with digits; Q2_K: one more for
//     its mins term, a single product against the activations' sub-block sums) instead of
//     one per sub-block. Two groups of 16 activation rows share each loaded tile (2 x 2
//     blocking).
// Measured on this design's first machine (Xeon, AMX; kernel_bench --hot, 1 thread): a tdp
// takes 16 cycles whatever its K (16, 32 or 64 bytes); storing a C tile and loading it back
// costs about as much again, which is why the digits matter (a C tile per float-scaled
// sub-block measured no faster than avx512_vnni; README: "AMX").
//
// Activation rows go 16 at a time (one A tile); the last group starts at m - 16 and repeats
// rows of the one before (same bits: a lane's operations do not depend on its group), so the
// rows need m >= 16 (their MIN_M). Tile configuration is loaded per call and released after.
#include "kernels/avx512/int8_path-inl.h"

namespace fk {
namespace {

constexpr int kAmxRows = 16;         // activation rows per A tile
constexpr int64_t kAmxMinColumns = 256;  // Q4_1 / Q5_1: narrower column chunks run avx512_vnni (run)

struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

enum class AmxKind {
  kDigits,  // K-quants, IQ4_XS, Q8_K: the scales folded into the weights, whole super-blocks per tile
  kLegacy,  // 32-element blocks: acc += float(dot) * (d * da) per block
};

// A codec (AmxCodec<F>) says how A tiles are cut from the packed activations: a block has
// kSteps steps of kKB bytes per activation row, each made of kPieces runs of kKB / kPieces
// bytes at yoff(st, j) of the block's activations (Q8_K: the super-block; Q8_0 x 4: the
// group, at block 0 of the group).
template <Format F>
struct AmxCodec;

// Signed bytes: every panel vector's bytes minus `bias` (8, 16; 128 as xor 0x80).
template <int kVectors, int kBias, class Panel>
FK_INLINE void panel_minus(Panel* p) {
  const __m512i bias = _mm512_set1_epi8(static_cast<char>(kBias));
  for (int g = 0; g < kVectors; ++g) {
    const __m512i v = load512(p->q[g]);
    _mm512_store_si512(p->q[g], kBias == 128 ? _mm512_xor_si512(v, bias) : _mm512_sub_epi8(v, bias));
  }
}

// Q2_K / Q3_K: the VNNI panel kernels' totals are exact integers (sum over sub-blocks s of the
// scale times the sub-block's dot), so here each weight carries its scale: v = sc_s q (Q2_K,
// 0..45) or -v = sc_s (4 - q) (Q3_K, its -4 offset included; v reaches 128, -v is -128..124,
// a signed byte; the total is then minus the tile's), and four K = 64 products give the
// super-block's whole total at once. Q2_K's mins term sum_s m_s bsum16_s is one more product: the
// activations' 16 sub-block sums as bytes h_s, l_s (bsum16_s = 16 h_s + l_s) against 16 m_s
// and m_s (v[1] rows 0..7). Same integers as the VNNI kernels', so the same float steps give
// the same bits.
struct alignas(64) DigitPanel {
  int32_t v[2][64][16];  // tile e's vector g: row r's 4 bytes at activation bytes 4g .. 4g + 3
                         // (Q2_K: v[1] is its mins tile)
  float d[16], dmin[16];
};

// Q4_K, Q5_K, Q6_K, IQ4_XS: the two digits of v = (q - kBias) sc for the 4 bytes q of each
// int32 lane (sc: the lane's scale as an int16 pair, |v| < 2^15), v = 2^kShift h + l:
// l = v & (2^kShift - 1) (unsigned) into *l, h = v >> kShift (arithmetic: signed where v is)
// into *h, byte for byte.
template <int kBias, int kShift>
FK_INLINE void scaled_digits(__m512i q, __m512i scw, int32_t* l, int32_t* h) {
  const __m512i lo8 = _mm512_set1_epi16(0x00FF), low = _mm512_set1_epi16((1 << kShift) - 1);
  const __m512i bias = _mm512_set1_epi16(kBias);
  const __m512i ve = _mm512_mullo_epi16(_mm512_sub_epi16(_mm512_and_si512(q, lo8), bias), scw);
  const __m512i vo = _mm512_mullo_epi16(_mm512_sub_epi16(_mm512_srli_epi16(q, 8), bias), scw);
  _mm512_store_si512(l, _mm512_or_si512(_mm512_and_si512(ve, low), _mm512_slli_epi16(_mm512_and_si512(vo, low), 8)));
  _mm512_store_si512(h, _mm512_or_si512(_mm512_and_si512(_mm512_srai_epi16(ve, kShift), lo8),
                                        _mm512_slli_epi16(_mm512_srai_epi16(vo, kShift), 8)));
}

// Q3_K: the bytes -v = (kBias - q) sc of the 4 bytes q of each int32 lane (sc: the lane's
// scale as an int16 pair), -128 .. 124: one signed byte where v itself (up to 128) is not.
// Per word w, x = (257 kBias - w) sc = L + 256 H exactly (L, H the two bytes' products);
// its low byte is L's, its high byte H - 1 where L < 0, which adding back bit 7 of L at
// bit 8 undoes.
template <int kBias>
FK_INLINE void negated_scaled(__m512i q, __m512i scw, int32_t* v) {
  const __m512i x = _mm512_mullo_epi16(_mm512_sub_epi16(_mm512_set1_epi16(kBias * 257), q), scw);
  _mm512_store_si512(v, _mm512_add_epi16(x, _mm512_and_si512(_mm512_slli_epi16(x, 1), _mm512_set1_epi16(0x0100))));
}

// What every kDigits codec shares (a codec restates what differs): A tiles of the 256
// activation bytes as they are (4 steps of 64), tile 1 (if any) unsigned, no shift between the
// tiles' totals, no mins tile, no Q3_K negation.
struct AmxSuperBlock {
  static constexpr AmxKind kKind = AmxKind::kDigits;
  static constexpr int kKB = 64, kSteps = 4, kPieces = 1;
  static constexpr int yoff(int st, int) { return 64 * st; }
  static constexpr bool kThree = false;
  static constexpr bool kSigned1 = false;
  static constexpr int kShift = 0;
  static constexpr bool kMinsTile = false;
};

template <Format F>
struct AmxQ23 : AmxSuperBlock {
  static_assert(amx_bits_of(F) == Variant::kAvx512Vnni, "exact integer totals, as the VNNI panel row's");
  using P = PanelCodec<F>;
  static constexpr bool kThree = F == Format::kQ3_K;
  static constexpr int kTiles = 1;                        // Q2_K: v; Q3_K: -v
  static constexpr bool kSigned0 = kThree;                // tile 0: Q3_K's -v is signed
  static constexpr bool kMinsTile = !kThree;              // Q2_K: the mins, one more product

  static FK_INLINE void digits(const typename P::Panel& src, DigitPanel* dst) {
    for (int s = 0; s < 16; ++s) {
      // Lane r: the row's scale of sub-block s (Q2_K 0..15, Q3_K stored - 32: signed), as an
      // int16 pair; the sub-block's four vectors g0 .. g0 + 3.
      const __m512i sp = load512(src.sp[s / 2]);
      const __m512i sc = s % 2 == 0 ? _mm512_srai_epi32(_mm512_slli_epi32(sp, 16), 16) : _mm512_srai_epi32(sp, 16);
      const __m512i scw = int16_pair(sc, sc);
      const int g0 = 16 * ((s % 8) / 2) + 8 * (s / 8) + 4 * (s % 2);
      if constexpr (kThree) {
        for (int g = g0; g < g0 + 4; ++g) negated_scaled<4>(load512(src.q[g]), scw, dst->v[0][g]);
      } else {
        // q <= 3, sc <= 15: each byte's product (<= 45) stays in its byte, so one 16-bit
        // multiply scales both bytes of a word.
        for (int g = g0; g < g0 + 4; ++g) _mm512_store_si512(dst->v[0][g], _mm512_mullo_epi16(load512(src.q[g]), scw));
      }
    }
    if constexpr (!kThree) {
      // The mins tile (B of K = 32, rows 8 .. 15 zero): row kr < 4 holds 16 m_s, s = 4 kr ..
      // 4 kr + 3 (<= 240, unsigned), row 4 + kr holds m_s; against the activation bytes
      // h_s, l_s of bsum16_s = 16 h_s + l_s (relayout), its dot is sum_s m_s bsum16_s.
      for (int kr = 0; kr < 4; ++kr) {
        const __m512i a = load512(src.mp[2 * kr]), b = load512(src.mp[2 * kr + 1]);
        const __m512i m = int16_pair(_mm512_or_si512(a, _mm512_srli_epi32(a, 8)), _mm512_or_si512(b, _mm512_srli_epi32(b, 8)));
        _mm512_store_si512(dst->v[1][kr], _mm512_slli_epi32(m, 4));
        _mm512_store_si512(dst->v[1][4 + kr], m);
      }
      for (int kr = 8; kr < 16; ++kr) _mm512_store_si512(dst->v[1][kr], _mm512_setzero_si512());
    }
    _mm512_store_ps(dst->d, _mm512_load_ps(src.d));
    if constexpr (!kThree) _mm512_store_ps(dst->dmin, _mm512_load_ps(src.dmin));
  }
};

template <>
struct AmxCodec<Format::kQ2_K> : AmxQ23<Format::kQ2_K> {};
template <>
struct AmxCodec<Format::kQ3_K> : AmxQ23<Format::kQ3_K> {};

// Q4_K, Q5_K, Q6_K, IQ4_XS: their avx512_vnni panel rows scale each sub-block's dot in float
// (fewer uops on VNNI; exact only while the partial sums stay below 2^24), which would need a
// C tile per sub-block here. Their avx512 panel rows (the same panels and packed activations)
// instead sum the exact integer total T = sum_s sc_s dot_s (+ Q6_K's -32 offset) and scale it
// once, acc += float(T) (d da) (Q4_K / Q5_K: then acc -= float(ms) (dmin da), ms = sum_s m_s
// bsum32_s): those are the bits the amx rows give. The weights carry their scales, v = (q -
// kBias) sc, as two digits v = 2^kShift h + l (scaled_digits), so two C tiles (tile 0: l,
// unsigned; tile 1: h) give T = 2^kShift H + L for a whole super-block:
//   Q4_K  v = q sc            0 .. 945     base 64:  h 0 .. 14
//   Q5_K  v = q sc            0 .. 1953    base 64:  h 0 .. 30
//   Q6_K  v = (q - 32) sc     -4064 .. 4096 base 128: h -32 .. 32 (signed)
//   IQ4_XS v = V sc (q = V + 128)  -3937 .. 4064 base 128: h -31 .. 31 (signed)
// |T| <= 256 * 127 * 4096 < 2^27: int32 is exact. The mins sum ms is the avx512 row's
// (vpdpwssd of the mins and the 32-element activation sums, the same integer).
template <Format F>
struct AmxScaled : AmxSuperBlock {
  static_assert(amx_bits_of(F) == Variant::kAvx512, "the avx512 panel row's integer totals");
  using P = PanelCodec<F>;
  static constexpr int kTiles = 2;
  static constexpr bool kSigned0 = false;
  static constexpr bool kSix = F == Format::kQ6_K, kIq4 = F == Format::kIQ4_XS;
  static constexpr bool kSigned1 = kSix || kIq4;
  static constexpr int kBias = kSix ? 32 : kIq4 ? 128 : 0;
  static constexpr int kShift = kSigned1 ? 7 : 6;

  // Sub-block s's scale of each row as an int16 pair, and its panel vectors (every codec's
  // vector g meets activation bytes 4g .. 4g + 3).
  static constexpr int kSubBlocks = kSix ? 16 : 8;
  static constexpr int kVectors = 64 / kSubBlocks;
  static FK_INLINE __m512i scale_pair(const typename P::Panel& src, int s) {
    if constexpr (kIq4) {
      return load512(src.sc2[s]);  // already (sc, sc)
    } else {
      const __m512i sc = load512(src.sc[s]);
      return int16_pair(sc, sc);
    }
  }
  static constexpr int vector(int s, int j) {
    if constexpr (kIq4) {
      return 32 * (s / 4) + 4 * (s % 4) + (j < 4 ? j : 12 + j);  // halves order
    } else {
      return kVectors * s + j;  // Q4_K / Q5_K: slot s (nibble order); Q6_K: element order
    }
  }

  static FK_INLINE void digits(const typename P::Panel& src, DigitPanel* dst) {
    for (int s = 0; s < kSubBlocks; ++s) {
      const __m512i scw = scale_pair(src, s);
      for (int j = 0; j < kVectors; ++j) {
        const int g = vector(s, j);
        scaled_digits<kBias, kShift>(load512(src.q[g]), scw, dst->v[0][g], dst->v[1][g]);
      }
    }
    _mm512_store_ps(dst->d, _mm512_load_ps(src.d));
    if constexpr (P::kMins) _mm512_store_ps(dst->dmin, _mm512_load_ps(src.dmin));
  }
};
template <>
struct AmxCodec<Format::kQ4_K> : AmxScaled<Format::kQ4_K> {};
template <>
struct AmxCodec<Format::kQ5_K> : AmxScaled<Format::kQ5_K> {};
template <>
struct AmxCodec<Format::kQ6_K> : AmxScaled<Format::kQ6_K> {};
template <>
struct AmxCodec<Format::kIQ4_XS> : AmxScaled<Format::kIQ4_XS> {};

// Q8_K: signed weights, one float scale per super-block: the VNNI panel kernel's total
// (-128 sum(y) + sum (q + 128) y) is sum q y, which the signed x signed tdpbssd gives from the
// weights as they are (the panel's q + 128 turned back), one C tile per super-block.
struct AmxQ8K : AmxSuperBlock {
  static_assert(amx_bits_of(Format::kQ8_K) == Variant::kAvx512Vnni, "the VNNI panel row's total");
  using P = PanelCodec<Format::kQ8_K>;
  static constexpr int kTiles = 1;
  static constexpr bool kSigned0 = true;
  static FK_INLINE void digits(const typename P::Panel& src, DigitPanel* dst) {
    const __m512i bias = _mm512_set1_epi8(static_cast<char>(0x80));
    for (int g = 0; g < 64; ++g) _mm512_store_si512(dst->v[0][g], _mm512_xor_si512(load512(src.q[g]), bias));
    _mm512_store_ps(dst->d, _mm512_load_ps(src.d));
  }
};
template <>
struct AmxCodec<Format::kQ8_K> : AmxQ8K {};

// The 32-element formats: block `sub` of an activation group, vectors 0..3 against y[16 sub ..]
// (elements 0..15), vectors 4..7 against y[64 + 16 sub ..] (16..31); yoff is for sub = 0.
template <Format F, int kBias>
struct AmxLegacy {
  static_assert(amx_bits_of(F) == Variant::kAvx512Vnni, "the VNNI panel row's float steps");
  using P = PanelCodec<F>;
  static constexpr AmxKind kKind = AmxKind::kLegacy;
  static constexpr bool kSigned = kBias != 0;
  static constexpr bool kNarrowToPanel = P::kMins;  // Q4_1 / Q5_1 (run)
  static constexpr int kKB = 32, kSteps = 1, kPieces = 2;
  static constexpr bool kMinsTile = false;
  static constexpr int yoff(int, int j) { return 64 * j; }
  static FK_INLINE void to_signed(typename P::Panel* p) {
    if constexpr (kBias != 0) panel_minus<8, kBias>(p);
  }
};
template <>
struct AmxCodec<Format::kQ4_0> : AmxLegacy<Format::kQ4_0, 8> {};
template <>
struct AmxCodec<Format::kQ5_0> : AmxLegacy<Format::kQ5_0, 16> {};
template <>
struct AmxCodec<Format::kIQ4_NL> : AmxLegacy<Format::kIQ4_NL, 128> {};
template <>
struct AmxCodec<Format::kQ8_0> : AmxLegacy<Format::kQ8_0, 128> {};
template <>
struct AmxCodec<Format::kQ4_1> : AmxLegacy<Format::kQ4_1, 0> {};
template <>
struct AmxCodec<Format::kQ5_1> : AmxLegacy<Format::kQ5_1, 0> {};

// kDigits: the next strip's weight rows (rows j0 + 16 .. j0 + 31 of the chunk: one contiguous
// run), prefetched into L2 in `parts` equal parts while the current strip runs (step() once
// per part): the panel builds otherwise wait on memory. kernel_bench, 2 threads, from DRAM,
// batch 64, 5632 x 2048: Q3_K 1347 -> 969 us, IQ4_XS 1547 -> 1238, Q6_K 1815 -> 1639 (the
// legacy formats, whose strips are built whole before their groups run, measured no change).
struct NextStrip {
  const uint8_t* p;
  int64_t bytes, part, done = 0;
  NextStrip(const MatmulArgs& a, int64_t j0, int64_t n_end, int64_t parts) {
    const int64_t rows = std::min<int64_t>(kPanelRows, std::max<int64_t>(0, n_end - j0 - kPanelRows));
    p = a.weights + (j0 + kPanelRows) * a.row_bytes;
    bytes = rows * a.row_bytes;
    part = (bytes / std::max<int64_t>(parts, 1) + 63) & ~int64_t{63};
  }
  FK_INLINE void step() {
    for (const int64_t e = std::min(done + part, bytes); done < e; done += 64)
      _mm_prefetch(reinterpret_cast<const char*>(p + done), _MM_HINT_T1);
  }
};

template <Format F>
struct AmxInt8 {
  using A = AmxCodec<F>;
  using P = typename A::P;
  using Panel = typename P::Panel;
  using Act = typename P::Act;
  static constexpr AmxKind kKind = A::kKind;
  static constexpr bool kLegacy = kKind == AmxKind::kLegacy;
  static constexpr int kElems = kLegacy ? kQK : kQK_K;

  // The relaid-out activations (relayout): per group of 16 rows and block, one unit: the A
  // tiles of the block's steps (16 rows x kKB bytes each, contiguous), then the scalars the
  // float steps need of the 16 rows side by side (one cache line instead of 16 rows' lines,
  // which for k = 2048 are 4 KB apart and share an L1 set). Only what the format uses: the
  // units of a call stay in L2 (Q2_K at m = 256, k = 5632: 1.6 MB).
  struct alignas(64) ScalarsDa {
    float da[kAmxRows];  // the activation block's scale
  };
  struct alignas(64) ScalarsAux : ScalarsDa {
    float aux[kAmxRows];  // Q4_1 / Q5_1: the packer's float da * (block sum)
  };
  struct alignas(64) ScalarsMins : ScalarsDa {
    int16_t bsum32[kAmxRows][8];  // Q4_K / Q5_K: the 32-element sums (the mins term)
  };
  // Q4_K / Q5_K: two digit tiles and a mins sum by vpdpwssd.
  static constexpr bool kDigitMins = [] {
    if constexpr (kLegacy) {
      return false;
    } else {
      return P::kMins && A::kTiles == 2;
    }
  }();
  using Scalars =
      std::conditional_t<kDigitMins, ScalarsMins, std::conditional_t<P::kMins && kLegacy, ScalarsAux, ScalarsDa>>;
  static constexpr int64_t kTileBytes = kAmxRows * A::kKB;
  // Q2_K's mins tile: 16 rows of 32 bytes (h_s, l_s), loaded with a 32-byte stride as
  // 64-byte rows whose second halves (the next row's bytes, then 64 bytes of padding) meet
  // the zero rows 8..15 of its B tile.
  static constexpr int64_t kMinsBytes = A::kMinsTile ? kAmxRows * 32 + 64 : 0;
  static constexpr int64_t kTilesBytes = A::kSteps * kTileBytes + kMinsBytes;
  static constexpr int64_t kUnitBytes = kTilesBytes + static_cast<int64_t>(sizeof(Scalars));
  static FK_INLINE const Scalars* scalars(const uint8_t* at, int64_t b) {
    return reinterpret_cast<const Scalars*>(at + b * kUnitBytes + kTilesBytes);
  }

  // C tiles 0 .. 3 (16 x 16 int32); kLegacy: A 4, 5 (16 x kKB) and B 6, 7 (kKB / 4 x 64
  // bytes); kDigits: A 4, 5 and B 6, 7 of 16 x 64 bytes.
  static void configure() {
    TileConfig c;
    for (int t = 0; t < 8; ++t) {
      c.rows[t] = kAmxRows;
      c.colsb[t] = 64;
    }
    if constexpr (kLegacy) {
      for (int t = 4; t < 6; ++t) c.colsb[t] = A::kKB;
      for (int t = 6; t < 8; ++t) c.rows[t] = A::kKB / 4;
    }
    _tile_loadconfig(&c);
  }

  // Byte offset in an activation row of piece j of step st of block b.
  static FK_INLINE int64_t act_offset(int64_t b, int st, int j) {
    if constexpr (kLegacy) {
      return (b / 4) * static_cast<int64_t>(sizeof(ActQ8_0x4)) + 16 * (b % 4) + A::yoff(st, j);
    } else {
      return b * static_cast<int64_t>(sizeof(Act)) + A::yoff(st, j);
    }
  }

  // ---- kLegacy: one C tile per block, a ring of four ----------------------------------------

  // GCC's tile intrinsics paste their tile numbers into the assembly text, so every tile is
  // named by a literal. Block s into C tile kC (= s % 4), with A 4 / B 6 for even blocks and
  // A 5 / B 7 for odd ones.
#define FK_AMX_ISSUE(C, TA, TB)                                  \
  do {                                                           \
    _tile_zero(C);                                               \
    _tile_loadd(TA, at + s * kUnitBytes, A::kKB);                \
    _tile_loadd(TB, panel[s].q[0], 64);                          \
    if constexpr (A::kSigned) {                                  \
      _tile_dpbssd(C, TA, TB);                                   \
    } else {                                                     \
      _tile_dpbsud(C, TA, TB);                                   \
    }                                                            \
  } while (0)
  template <int kC>
  static FK_INLINE void legacy_issue(const uint8_t* at, const Panel* panel, int64_t s) {
    if constexpr (kC == 0) {
      FK_AMX_ISSUE(0, 4, 6);
    } else if constexpr (kC == 1) {
      FK_AMX_ISSUE(1, 5, 7);
    } else if constexpr (kC == 2) {
      FK_AMX_ISSUE(2, 4, 6);
    } else {
      FK_AMX_ISSUE(3, 5, 7);
    }
  }
#undef FK_AMX_ISSUE

  // Block s's dots out of C tile kC, block s + 2 into the ring (its A / B pair is block s's,
  // whose product is done), then the VNNI kernel's float step: acc += float(dot) (d da)
  // (Q4_1 / Q5_1: then acc += m aux).
  template <int kC>
  static FK_INLINE void legacy_advance(const uint8_t* at, const Panel* panel, int64_t s, int64_t nb,
                                       int32_t (*cb)[kAmxRows][16], __m512 (&acc)[kAmxRows]) {
    if constexpr (kC == 0) {
      _tile_stored(0, cb[0], 64);
    } else if constexpr (kC == 1) {
      _tile_stored(1, cb[1], 64);
    } else if constexpr (kC == 2) {
      _tile_stored(2, cb[2], 64);
    } else {
      _tile_stored(3, cb[3], 64);
    }
    if (s + 2 < nb) legacy_issue<(kC + 2) % 4>(at, panel, s + 2);
    const Panel& p = panel[s];
    const __m512 d = _mm512_load_ps(p.d);
    const Scalars* sc = scalars(at, s);
#pragma GCC unroll 16
    for (int i = 0; i < kAmxRows; ++i) {
      const __m512 da = _mm512_set1_ps(sc->da[i]);
      acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(load512(cb[kC][i])), _mm512_mul_ps(d, da), acc[i]);
      if constexpr (P::kMins) acc[i] = _mm512_fmadd_ps(_mm512_load_ps(p.m), _mm512_set1_ps(sc->aux[i]), acc[i]);
    }
  }

  // Activation rows i0 .. i0 + 15 (units at) against one strip of nb blocks, into output
  // columns j0 .. (the lanes of keep).
  static FK_NOINLINE void legacy_group(const MatmulArgs& a, const Panel* panel, const uint8_t* at, int64_t nb,
                                       int64_t i0, int64_t j0, __mmask16 keep) {
    __m512 acc[kAmxRows];
#pragma GCC unroll 16
    for (int i = 0; i < kAmxRows; ++i) acc[i] = _mm512_setzero_ps();
    alignas(64) int32_t cb[4][kAmxRows][16];
    legacy_issue<0>(at, panel, 0);
    if (nb > 1) legacy_issue<1>(at, panel, 1);
    for (int64_t s = 0; s < nb; s += 4) {
      legacy_advance<0>(at, panel, s, nb, cb, acc);
      if (s + 1 < nb) legacy_advance<1>(at, panel, s + 1, nb, cb, acc);
      if (s + 2 < nb) legacy_advance<2>(at, panel, s + 2, nb, cb, acc);
      if (s + 3 < nb) legacy_advance<3>(at, panel, s + 3, nb, cb, acc);
    }
#pragma GCC unroll 16
    for (int i = 0; i < kAmxRows; ++i) _mm512_mask_storeu_ps(a.output + (i0 + i) * a.n + j0, keep, acc[i]);
  }

  // ---- kDigits: two groups at once ------------------------------------------------------------
  // Intel's 2 x 2 tile blocking: per step t of a block, A 4 / 5 = the two groups' 64
  // activation bytes, B 6 / 7 = digit tiles 0 / 1 of the panel, C 0 / 1 = group 0's totals,
  // C 2 / 3 = group 1's: every loaded tile feeds two products.
#define FK_AMX_DP(C, TA, TB, SIGNED) \
  do {                               \
    if constexpr (SIGNED) {          \
      _tile_dpbssd(C, TA, TB);       \
    } else {                         \
      _tile_dpbsud(C, TA, TB);       \
    }                                \
  } while (0)

  static FK_INLINE void digits_block(const uint8_t* at0, const uint8_t* at1, const DigitPanel& dp) {
    _tile_zero(0);
    _tile_zero(2);
    if constexpr (A::kTiles == 2 || A::kMinsTile) {
      _tile_zero(1);
      _tile_zero(3);
    }
    for (int t = 0; t < 4; ++t) {
      _tile_loadd(4, at0 + t * kTileBytes, 64);
      _tile_loadd(6, dp.v[0][16 * t], 64);
      FK_AMX_DP(0, 4, 6, A::kSigned0);
      _tile_loadd(5, at1 + t * kTileBytes, 64);
      FK_AMX_DP(2, 5, 6, A::kSigned0);
      if constexpr (A::kTiles == 2) {
        _tile_loadd(7, dp.v[1][16 * t], 64);
        FK_AMX_DP(1, 4, 7, A::kSigned1);
        FK_AMX_DP(3, 5, 7, A::kSigned1);
      }
    }
    if constexpr (A::kMinsTile) {
      _tile_loadd(4, at0 + A::kSteps * kTileBytes, 32);
      _tile_loadd(7, dp.v[1][0], 64);
      FK_AMX_DP(1, 4, 7, false);
      _tile_loadd(5, at1 + A::kSteps * kTileBytes, 32);
      FK_AMX_DP(3, 5, 7, false);
    }
  }

  // The panel kernel's float steps on block b's totals of one group (c0: tile 0 / 2, c1:
  // tile 1 / 3): Q2_K acc += tot (d da), acc -= ms (dmin da); Q3_K tot = -(tile 0), acc +=
  // tot (d da); AmxScaled tot = 2^kShift h + l, acc += tot (d da), Q4_K / Q5_K then acc -=
  // ms (dmin da), ms the panel kernel's mins sum. acc: the group's 16 output rows.
  static FK_INLINE void digits_scale(const Scalars* sc, const DigitPanel& dp, const Panel& p, const int32_t (*c0)[16],
                                     const int32_t (*c1)[16], float (*acc)[16]) {
    const __m512 d = _mm512_load_ps(dp.d);
#pragma GCC unroll 16
    for (int i = 0; i < kAmxRows; ++i) {
      const __m512 da = _mm512_set1_ps(sc->da[i]);
      // Q3_K: tile 0 holds minus the total; AmxScaled: tiles 0 / 1 the digits l / h of one
      // total; Q2_K: total and mins.
      __m512i tot;
      if constexpr (A::kThree) {
        tot = _mm512_sub_epi32(_mm512_setzero_si512(), load512(c0[i]));
      } else if constexpr (A::kTiles == 2) {
        tot = _mm512_add_epi32(_mm512_slli_epi32(load512(c1[i]), A::kShift), load512(c0[i]));
      } else {
        tot = load512(c0[i]);
      }
      __m512 r = _mm512_fmadd_ps(_mm512_cvtepi32_ps(tot), _mm512_mul_ps(d, da), _mm512_load_ps(acc[i]));
      if constexpr (P::kMins) {
        __m512i ms;
        if constexpr (kDigitMins) {
          ms = _mm512_setzero_si512();
          for (int q = 0; q < 4; ++q) ms = _mm512_dpwssd_epi32(ms, load512(p.mins[q]), bcast32(sc->bsum32[i] + 2 * q));
        } else {
          ms = load512(c1[i]);
        }
        r = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(ms), _mm512_mul_ps(_mm512_load_ps(dp.dmin), da), r);
      }
      _mm512_store_ps(acc[i], r);
    }
  }

  // One strip: block by block, the block's panel built and turned into digits (both stay in
  // L1), then swept over every pair of groups (the digit tiles are reread from L1, the
  // activation units stream from L2); acc holds every group's 16 x 16 outputs. The next
  // pair's products run while a pair's totals are scaled.
  static FK_NOINLINE void digits_strip(const MatmulArgs& a, const uint8_t* const (&w)[kPanelRows], Panel* panel,
                                       DigitPanel* dp, const uint8_t* units, int64_t nb, int64_t groups, int64_t j0,
                                       __mmask16 keep, float (*acc)[kAmxRows][16], NextStrip* next) {
    const int64_t group_bytes = nb * kUnitBytes;
    const int64_t pairs = (groups + 1) / 2;
    // Pair q: groups g0 = 2q and g1 = 2q + 1; an odd last group pairs with the one before
    // (recomputed, the same bits).
    auto pair_groups = [&](int64_t q, int64_t* g0, int64_t* g1) {
      *g0 = std::min(2 * q, std::max<int64_t>(0, groups - 2));
      *g1 = std::min(*g0 + 1, groups - 1);
    };
    auto row0 = [&](int64_t g) { return std::min(g * kAmxRows, a.m - kAmxRows); };
    std::memset(acc, 0, static_cast<size_t>(groups) * sizeof(acc[0]));
    alignas(64) int32_t cb[2][4][kAmxRows][16];  // pairs in turn
    for (int64_t b = 0; b < nb; ++b) {
      next->step();
      P::build(w, b * P::kBlockBytes, &panel[b]);
      A::digits(panel[b], dp);
      int64_t g0, g1;
      pair_groups(0, &g0, &g1);
      digits_block(units + g0 * group_bytes + b * kUnitBytes, units + g1 * group_bytes + b * kUnitBytes, *dp);
      for (int64_t q = 0; q < pairs; ++q) {
        int32_t (*c)[kAmxRows][16] = cb[q % 2];
        _tile_stored(0, c[0], 64);
        _tile_stored(2, c[2], 64);
        if constexpr (A::kTiles == 2 || A::kMinsTile) {
          _tile_stored(1, c[1], 64);
          _tile_stored(3, c[3], 64);
        }
        pair_groups(q, &g0, &g1);
        if (q + 1 < pairs) {
          int64_t h0, h1;
          pair_groups(q + 1, &h0, &h1);
          digits_block(units + h0 * group_bytes + b * kUnitBytes, units + h1 * group_bytes + b * kUnitBytes, *dp);
        }
        const int64_t gs[2] = {g0, g1};
        for (int u = 0; u < 2; ++u) {
          // A group repeated to fill a pair (one group in all, or an odd last one) is
          // scaled once, by the pair that owns it.
          if (gs[u] < 2 * q || (u == 1 && gs[1] == gs[0])) continue;
          digits_scale(scalars(units + gs[u] * group_bytes, b), *dp, panel[b], c[2 * u], c[2 * u + 1], acc[gs[u]]);
        }
      }
    }
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t i0 = row0(g);
      for (int i = 0; i < kAmxRows; ++i) _mm512_mask_storeu_ps(a.output + (i0 + i) * a.n + j0, keep, _mm512_load_ps(acc[g][i]));
    }
  }
#undef FK_AMX_DP

  // ---- Driver -------------------------------------------------------------------------------

  // The units of every group of 16 activation rows (the last one starting at m - 16): group g,
  // block b at (g nb + b) kUnitBytes; step st's A tile holds activation row i0 + i's kKB bytes
  // of the step (its pieces side by side) at row i. A tile is then one contiguous run of
  // 16 kKB bytes: the strided rows of the packed activations are read once per call instead
  // of once per strip.
  static void relayout(const MatmulArgs& a, int64_t nb, int64_t groups, uint8_t* dst) {
    constexpr int kPiece = A::kKB / A::kPieces;
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t i0 = std::min(g * kAmxRows, a.m - kAmxRows);
      for (int i = 0; i < kAmxRows; ++i) {
        const uint8_t* y = a.act + (i0 + i) * a.act_row_bytes;
        for (int64_t b = 0; b < nb; ++b) {
          uint8_t* unit = dst + (g * nb + b) * kUnitBytes;
          for (int st = 0; st < A::kSteps; ++st) {
            uint8_t* t = unit + st * kTileBytes + i * A::kKB;
            for (int j = 0; j < A::kPieces; ++j) std::memcpy(t + j * kPiece, y + act_offset(b, st, j), kPiece);
          }
          Scalars* sc = reinterpret_cast<Scalars*>(unit + kTilesBytes);
          if constexpr (kLegacy) {
            const ActQ8_0x4* yg = reinterpret_cast<const ActQ8_0x4*>(y) + b / 4;
            sc->da[i] = yg->da[4 * (b % 4)];
            if constexpr (P::kMins) std::memcpy(&sc->aux[i], &yg->aux[4 * (b % 4)], sizeof(float));
          } else {
            const Act* yb = reinterpret_cast<const Act*>(y) + b;
            if constexpr (A::kMinsTile) {
              // Q2_K: bsum16_s = 16 h_s + l_s, h_s = bsum16_s >> 4 (-128 .. 127) at byte s,
              // l_s (0 .. 15) at byte 16 + s of the row's 32 (kMinsBytes; AmxQ23::digits:
              // the mins tile).
              int8_t* t = reinterpret_cast<int8_t*>(unit + A::kSteps * kTileBytes + i * 32);
              for (int q = 0; q < 16; ++q) {
                const int bsum = -yb->nbsum16[q] / 16;
                t[q] = static_cast<int8_t>(bsum >> 4);
                t[16 + q] = static_cast<int8_t>(bsum & 15);
              }
              if (i == kAmxRows - 1) std::memset(t + 32, 0, 64);  // the padding
            }
            sc->da[i] = yb->d;
            if constexpr (kDigitMins) std::memcpy(sc->bsum32[i], yb->bsum32, sizeof sc->bsum32[i]);
          }
        }
      }
    }
  }

  static void run(const MatmulArgs& a, int64_t n_begin, int64_t n_end) {
    using Builder = KPanelInt8<P, /*kVnni=*/true>;
    // Every call copies all m activation rows into A tiles (relayout), once per column chunk
    // of a thread. On chunks narrower than kAmxMinColumns (SmolLM2's 576- and 192-wide
    // matrices at 2 threads) that copy costs Q4_1 / Q5_1 more than their tiles save
    // (kernel_bench, 2 threads, m = 128: 10-25 % slower than avx512_vnni), so there such a
    // chunk runs the avx512_vnni panel kernel, whose bits these are; every other format's
    // tiles were as fast or faster there (Q2_K / Q3_K 1.7-1.9x, the K-quants' digits
    // 1.2-1.6x).
    if constexpr (kLegacy) {
      if (A::kNarrowToPanel && n_end - n_begin < kAmxMinColumns) {
        Builder::run(a, n_begin, n_end);
        return;
      }
    }
    const int64_t nb = a.k / kElems;
    const int64_t groups = (a.m + kAmxRows - 1) / kAmxRows;
    const size_t panel_bytes = static_cast<size_t>(nb) * sizeof(Panel);
    const size_t digit_bytes = kLegacy ? 0 : sizeof(DigitPanel) + static_cast<size_t>(groups) * kAmxRows * 16 * sizeof(float);
    const int64_t group_bytes = nb * kUnitBytes;
    uint8_t* buf = panel_buffer(panel_bytes + digit_bytes + static_cast<size_t>(groups * group_bytes));
    Panel* panel = reinterpret_cast<Panel*>(buf);
    uint8_t* units = buf + panel_bytes + digit_bytes;
    relayout(a, nb, groups, units);
    configure();
    for (int64_t j0 = n_begin; j0 < n_end; j0 += kPanelRows) {
      const int nv = static_cast<int>(std::min<int64_t>(kPanelRows, n_end - j0));
      const __mmask16 keep = static_cast<__mmask16>((1u << nv) - 1);
      if constexpr (kLegacy) {
        Builder::build_strip(a, j0, nv, nb, panel);
        for (int64_t b = 0; b < nb; ++b) A::to_signed(&panel[b]);
        for (int64_t g = 0; g < groups; ++g)
          legacy_group(a, panel, units + g * group_bytes, nb, std::min(g * kAmxRows, a.m - kAmxRows), j0, keep);
      } else {
        // The strip's rows (the last repeated to 16, as build_strip does).
        const uint8_t* w[kPanelRows];
        for (int r = 0; r < kPanelRows; ++r) w[r] = a.weights + (j0 + std::min(r, nv - 1)) * a.row_bytes;
        DigitPanel* dp = reinterpret_cast<DigitPanel*>(buf + panel_bytes);
        float (*acc)[kAmxRows][16] = reinterpret_cast<float (*)[kAmxRows][16]>(buf + panel_bytes + sizeof(DigitPanel));
        NextStrip next(a, j0, n_end, nb);
        digits_strip(a, w, panel, dp, units, nb, groups, j0, keep, acc, &next);
      }
    }
    _tile_release();
  }
};

}  // namespace

#define FK_ENTRY_kAmx_kInt8(FORMAT, MIN_M) AmxInt8<Format::FORMAT>::run(a, n_begin, n_end)
#include "kernels/simd/entry_points-inl.h"

}  // namespace fk
