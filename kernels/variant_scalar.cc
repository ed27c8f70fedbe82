// Scalar variant: the fused reference kernels, plain portable C++ (no intrinsics).
//
// Both paths walk one weight row at a time, decode each of its blocks once into a small
// local buffer, and use that buffer for a group of up to kRowGroup activation rows (so an
// m-row call is a GEMM that decodes every weight block m / kRowGroup times, not m times).
//
// Operation order, fixed for every output (so results never depend on how [0, n) is
// split among calls):
//   f32 path  - a block is decoded with the format's reference dequantizer (exactly the
//               values of formats.h's dequantize_row_*_ref); its dot with the input is
//               summed in float in element order, and the block sums are added up in
//               double; the row total is rounded to float once at the end. F32, F16 and
//               BF16 weights use chunks of kF32Chunk elements as their "blocks".
//   int8 path - per (super-)block an exact integer dot of the weight quants with the
//               activation quants (activations quantized by dispatch to Q8_0 / Q8_K), scaled
//               in float as ggml's generic vec_dot does: legacy formats
//               isum * (d_w * d_a) (+ m * (d_a * sum(q_a)) for Q4_1, Q5_1); K-quants
//               isum * (d * d_a) - imin * (dmin * d_a), the mins taken from Q8_K's bsums
//               (per 16 elements), imin = sum_s m_s * (sum of the activation quants of
//               sub-block s): Q4_K / Q5_K 8 sub-blocks of 32 (two bsums each), Q2_K 16
//               sub-blocks of 16 (one bsum each, 4-bit scales and mins). Q3_K and Q6_K:
//               isum * (d * d_a), 16 sub-blocks of 16 with signed scales (Q3_K: stored - 32)
//               and the quants' offset (-4 / -32) applied to the quants themselves. isum =
//               sum_s sc_s * dot_s in int (exact), the sub-blocks in order.
//               IQ4_NL is a legacy block whose quants are the codebook values
//               kIq4Values[nibble] (isum * (d_w * d_a)); IQ4_XS a K-quant with 8 sub-blocks
//               of 32, isum = sum_s (ls_s - 32) * dot_s over the codebook values, no mins,
//               isum * (d * d_a).
//               Block values are added up in double, rounded to float at the end.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "kernels/formats.h"
#include "kernels/kernel_api.h"

namespace fk {
namespace {

constexpr int kRowGroup = 64;   // activation rows sharing one decoded weight block
constexpr int kF32Chunk = 32;   // F32 weights: elements per "block"

// Unaligned little-endian field reads (blocks sit at any byte offset).
float read_f16(const uint8_t* p) {
  fp16_t h;
  std::memcpy(&h, p, sizeof h);
  return fp16_to_fp32(h);
}
float read_f32(const uint8_t* p) {
  float f;
  std::memcpy(&f, p, sizeof f);
  return f;
}
int read_i16(const uint8_t* p) {
  int16_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// ---- f32 path -----------------------------------------------------------------------------

void f32_path(Format format, const MatmulArgs& a, int64_t n_begin, int64_t n_end) {
  const FormatTraits& t = traits(format);
  // The float formats (F32, F16, BF16: one element per "block") go in chunks of kF32Chunk
  // elements, converted by their reference dequantizer (which reads any alignment).
  const bool elementwise = t.block_elems == 1;
  const int64_t be = elementwise ? kF32Chunk : t.block_elems;
  const int64_t bb = be / t.block_elems * t.block_bytes;
  const int64_t nb = (a.k + be - 1) / be;  // only they can have a partial last chunk
  float w[kQK_K];
  alignas(16) uint8_t blk[sizeof(BlockQ8_K)];  // the largest block
  double acc[kRowGroup];
  for (int64_t j = n_begin; j < n_end; ++j) {
    const uint8_t* row = a.weights + j * a.row_bytes;
    for (int64_t i0 = 0; i0 < a.m; i0 += kRowGroup) {
      const int64_t rows = a.m - i0 < kRowGroup ? a.m - i0 : kRowGroup;
      for (int64_t r = 0; r < rows; ++r) acc[r] = 0.0;
      for (int64_t b = 0; b < nb; ++b) {
        const int64_t len = a.k - b * be < be ? a.k - b * be : be;
        if (elementwise) {
          t.dequantize_row(row + b * bb, w, len);
        } else {
          // The reference dequantizer reads block structs: hand it an aligned copy, since
          // a view's rows may start at any byte.
          std::memcpy(blk, row + b * bb, bb);
          t.dequantize_row(blk, w, be);
        }
        for (int64_t r = 0; r < rows; ++r) {
          const float* x = a.input + (i0 + r) * a.k + b * be;
          float s = 0.0f;
          for (int64_t e = 0; e < len; ++e) s += w[e] * x[e];
          acc[r] += s;
        }
      }
      for (int64_t r = 0; r < rows; ++r)
        a.output[(i0 + r) * a.n + j] = static_cast<float>(acc[r]);
    }
  }
}

// ---- int8 path ----------------------------------------------------------------------------

// One weight block decoded to integers: quants with the format's offset applied, and the
// per-sub-block integer scales (and mins) for K-quants.
struct IntBlock {
  int8_t q[kQK_K];
  int sc[kQK_K / 16];
  int mn[kQK_K / 16];
  float d = 0.0f;
  float m = 0.0f;  // Q4_1: the block's min; Q4_K/Q5_K: dmin
};

// Legacy formats against Q8_0 activations (32 elements; activation block = fp16 d + 32 q).
// Fields are read through the block structs' offsets (blocks sit at any byte offset).
#define FK_FIELD(Block, field, blk) ((blk) + offsetof(Block, field))

struct Q4_0 {
  static constexpr int kElems = kQK, kBytes = sizeof(BlockQ4_0);
  static constexpr bool kHasMin = false;
  static void decode(const uint8_t* blk, IntBlock* o) {
    o->d = read_f16(FK_FIELD(BlockQ4_0, d, blk));
    const uint8_t* qs = FK_FIELD(BlockQ4_0, qs, blk);
    for (int l = 0; l < kQK / 2; ++l) {
      o->q[l] = static_cast<int8_t>((qs[l] & 0xF) - 8);
      o->q[l + kQK / 2] = static_cast<int8_t>((qs[l] >> 4) - 8);
    }
  }
};
struct Q4_1 {
  static constexpr int kElems = kQK, kBytes = sizeof(BlockQ4_1);
  static constexpr bool kHasMin = true;
  static void decode(const uint8_t* blk, IntBlock* o) {
    o->d = read_f16(FK_FIELD(BlockQ4_1, d, blk));
    o->m = read_f16(FK_FIELD(BlockQ4_1, m, blk));
    const uint8_t* qs = FK_FIELD(BlockQ4_1, qs, blk);
    for (int l = 0; l < kQK / 2; ++l) {
      o->q[l] = static_cast<int8_t>(qs[l] & 0xF);
      o->q[l + kQK / 2] = static_cast<int8_t>(qs[l] >> 4);
    }
  }
};
// The 32 five-bit quants of a Q5_0 / Q5_1 block, minus `offset`.
template <class Block>
void decode_q5(const uint8_t* blk, int offset, IntBlock* o) {
  uint32_t qh;
  std::memcpy(&qh, FK_FIELD(Block, qh, blk), sizeof qh);
  const uint8_t* qs = FK_FIELD(Block, qs, blk);
  for (int l = 0; l < kQK / 2; ++l) {
    const int h0 = static_cast<int>((qh >> l) & 1u) << 4;
    const int h1 = static_cast<int>((qh >> (l + kQK / 2)) & 1u) << 4;
    o->q[l] = static_cast<int8_t>(((qs[l] & 0xF) | h0) - offset);
    o->q[l + kQK / 2] = static_cast<int8_t>(((qs[l] >> 4) | h1) - offset);
  }
}
struct Q5_0 {
  static constexpr int kElems = kQK, kBytes = sizeof(BlockQ5_0);
  static constexpr bool kHasMin = false;
  static void decode(const uint8_t* blk, IntBlock* o) {
    o->d = read_f16(FK_FIELD(BlockQ5_0, d, blk));
    decode_q5<BlockQ5_0>(blk, 16, o);
  }
};
struct Q5_1 {
  static constexpr int kElems = kQK, kBytes = sizeof(BlockQ5_1);
  static constexpr bool kHasMin = true;
  static void decode(const uint8_t* blk, IntBlock* o) {
    o->d = read_f16(FK_FIELD(BlockQ5_1, d, blk));
    o->m = read_f16(FK_FIELD(BlockQ5_1, m, blk));
    decode_q5<BlockQ5_1>(blk, 0, o);
  }
};
struct Q8_0 {
  static constexpr int kElems = kQK, kBytes = sizeof(BlockQ8_0);
  static constexpr bool kHasMin = false;
  static void decode(const uint8_t* blk, IntBlock* o) {
    o->d = read_f16(FK_FIELD(BlockQ8_0, d, blk));
    std::memcpy(o->q, FK_FIELD(BlockQ8_0, qs, blk), kQK);
  }
};

// IQ4_NL: the 32 quants are codebook values (int8, -127..113).
struct IQ4_NL {
  static constexpr int kElems = kQK, kBytes = sizeof(BlockIQ4_NL);
  static constexpr bool kHasMin = false;
  static void decode(const uint8_t* blk, IntBlock* o) {
    o->d = read_f16(FK_FIELD(BlockIQ4_NL, d, blk));
    const uint8_t* qs = FK_FIELD(BlockIQ4_NL, qs, blk);
    for (int l = 0; l < kQK / 2; ++l) {
      o->q[l] = kIq4Values[qs[l] & 0xF];
      o->q[l + kQK / 2] = kIq4Values[qs[l] >> 4];
    }
  }
};

// sum of (d_w * d_a) * isum [+ m * (d_a * sum(q_a)) for the formats with a min: Q4_1, Q5_1]
// for one legacy block.
template <class F>
float legacy_block(const IntBlock& w, const uint8_t* act) {
  const float da = read_f16(FK_FIELD(BlockQ8_0, d, act));
  const int8_t* y = reinterpret_cast<const int8_t*>(FK_FIELD(BlockQ8_0, qs, act));
  int isum = 0, ysum = 0;
  for (int l = 0; l < kQK; ++l) {
    isum += w.q[l] * y[l];
    ysum += y[l];
  }
  float v = static_cast<float>(isum) * (w.d * da);
  if constexpr (F::kHasMin) v += w.m * (da * static_cast<float>(ysum));
  return v;
}

// K-quants against Q8_K activations (256 elements; float d, 256 q, 16 int16 bsums).

template <bool kFive>
struct Q45_K {
  static constexpr int kElems = kQK_K;
  static constexpr int kBytes = kFive ? sizeof(BlockQ5_K) : sizeof(BlockQ4_K);
  static constexpr int kSub = 32;
  static constexpr bool kMins = true;
  static void decode(const uint8_t* blk, IntBlock* o) {
    using Block = std::conditional_t<kFive, BlockQ5_K, BlockQ4_K>;
    o->d = read_f16(FK_FIELD(Block, d, blk));
    o->m = read_f16(FK_FIELD(Block, dmin, blk));
    const uint8_t* scales = FK_FIELD(Block, scales, blk);
    const uint8_t* qh = FK_FIELD(BlockQ5_K, qh, blk);  // Q5_K only
    const uint8_t* ql = FK_FIELD(Block, qs, blk);
    for (int s = 0; s < 8; ++s) {
      uint8_t sc, mn;
      unpack_k4_scale_min(s, scales, &sc, &mn);
      o->sc[s] = sc;
      o->mn[s] = mn;
    }
    // Sub-blocks 2g and 2g+1 are the low / high nibbles of ql[32 g .. 32 g + 31]; Q5_K's
    // fifth bit of element l of sub-block s is bit s of qh[l].
    for (int s = 0; s < 8; ++s) {
      for (int l = 0; l < 32; ++l) {
        const uint8_t byte = ql[32 * (s / 2) + l];
        int v = (s & 1) ? (byte >> 4) : (byte & 0xF);
        if (kFive) v |= ((qh[l] >> s) & 1) << 4;
        o->q[32 * s + l] = static_cast<int8_t>(v);
      }
    }
  }
};

struct Q6_K {
  static constexpr int kElems = kQK_K, kBytes = sizeof(BlockQ6_K);
  static constexpr int kSub = 16;
  static constexpr bool kMins = false;
  static void decode(const uint8_t* blk, IntBlock* o) {
    const uint8_t* ql = FK_FIELD(BlockQ6_K, ql, blk);
    const uint8_t* qh = FK_FIELD(BlockQ6_K, qh, blk);
    const int8_t* sc = reinterpret_cast<const int8_t*>(FK_FIELD(BlockQ6_K, scales, blk));
    o->d = read_f16(FK_FIELD(BlockQ6_K, d, blk));
    for (int s = 0; s < 16; ++s) o->sc[s] = sc[s];
    // Half h holds elements 128 h + 32 r + l (r = 0..3, l = 0..31): low 4 bits are nibble
    // r / 2 of ql[64 h + 32 (r % 2) + l], high 2 bits are bits 2r, 2r+1 of qh[32 h + l].
    for (int h = 0; h < 2; ++h) {
      for (int r = 0; r < 4; ++r) {
        for (int l = 0; l < 32; ++l) {
          const uint8_t lo = ql[64 * h + 32 * (r & 1) + l];
          const int v = ((r >> 1) ? (lo >> 4) : (lo & 0xF)) | (((qh[32 * h + l] >> (2 * r)) & 3) << 4);
          o->q[128 * h + 32 * r + l] = static_cast<int8_t>(v - 32);
        }
      }
    }
  }
};

// Q2_K / Q3_K: the 2-bit field of element e = 128 h + 32 r + l: bits 2r, 2r+1 of
// qs[32 h + l].
inline int low2_of(const uint8_t* qs, int e) {
  return (qs[32 * (e / 128) + e % 32] >> (2 * ((e / 32) % 4))) & 3;
}

struct Q2_K {
  static constexpr int kElems = kQK_K, kBytes = sizeof(BlockQ2_K);
  static constexpr int kSub = 16;
  static constexpr bool kMins = true;
  static void decode(const uint8_t* blk, IntBlock* o) {
    o->d = read_f16(FK_FIELD(BlockQ2_K, d, blk));
    o->m = read_f16(FK_FIELD(BlockQ2_K, dmin, blk));
    const uint8_t* scales = FK_FIELD(BlockQ2_K, scales, blk);
    const uint8_t* qs = FK_FIELD(BlockQ2_K, qs, blk);
    for (int s = 0; s < 16; ++s) {
      o->sc[s] = scales[s] & 0xF;
      o->mn[s] = scales[s] >> 4;
    }
    for (int e = 0; e < kQK_K; ++e) o->q[e] = static_cast<int8_t>(low2_of(qs, e));
  }
};

struct Q3_K {
  static constexpr int kElems = kQK_K, kBytes = sizeof(BlockQ3_K);
  static constexpr int kSub = 16;
  static constexpr bool kMins = false;
  static void decode(const uint8_t* blk, IntBlock* o) {
    o->d = read_f16(FK_FIELD(BlockQ3_K, d, blk));
    const uint8_t* qs = FK_FIELD(BlockQ3_K, qs, blk);
    const uint8_t* hmask = FK_FIELD(BlockQ3_K, hmask, blk);
    uint8_t sc[16];
    unpack_k3_scales(FK_FIELD(BlockQ3_K, scales, blk), sc);
    for (int s = 0; s < 16; ++s) o->sc[s] = sc[s] - 32;
    // q = low2 - 4 when bit e / 32 of hmask[e % 32] is clear, low2 when it is set.
    for (int e = 0; e < kQK_K; ++e) {
      const int high = (hmask[e % 32] >> (e / 32)) & 1;
      o->q[e] = static_cast<int8_t>(low2_of(qs, e) - (high ? 0 : 4));
    }
  }
};

// IQ4_XS: sub-block s's integer scale is ls_s - 32, its quants codebook values.
struct IQ4_XS {
  static constexpr int kElems = kQK_K, kBytes = sizeof(BlockIQ4_XS);
  static constexpr int kSub = 32;
  static constexpr bool kMins = false;
  static void decode(const uint8_t* blk, IntBlock* o) {
    o->d = read_f16(FK_FIELD(BlockIQ4_XS, d, blk));
    uint16_t scales_h;
    std::memcpy(&scales_h, FK_FIELD(BlockIQ4_XS, scales_h, blk), sizeof scales_h);
    const uint8_t* scales_l = FK_FIELD(BlockIQ4_XS, scales_l, blk);
    const uint8_t* qs = FK_FIELD(BlockIQ4_XS, qs, blk);
    for (int s = 0; s < 8; ++s) {
      o->sc[s] = iq4_xs_scale(s, scales_l, scales_h) - 32;
      for (int l = 0; l < 16; ++l) {
        o->q[32 * s + l] = kIq4Values[qs[16 * s + l] & 0xF];
        o->q[32 * s + l + 16] = kIq4Values[qs[16 * s + l] >> 4];
      }
    }
  }
};

struct Q8_K {
  static constexpr int kElems = kQK_K, kBytes = sizeof(BlockQ8_K);
  static constexpr int kSub = 32;
  static constexpr bool kMins = false;
  static void decode(const uint8_t* blk, IntBlock* o) {
    o->d = read_f32(FK_FIELD(BlockQ8_K, d, blk));
    for (int s = 0; s < 8; ++s) o->sc[s] = 1;
    std::memcpy(o->q, FK_FIELD(BlockQ8_K, qs, blk), kQK_K);
  }
};

// (d * d_a) * sum_s sc_s * dot_s [- (dmin * d_a) * sum_s mn_s * bsum_s], bsum_s the sum of
// the activation quants of sub-block s (kSub / 16 of Q8_K's bsums).
template <class F>
float k_block(const IntBlock& w, const uint8_t* act) {
  const float da = read_f32(FK_FIELD(BlockQ8_K, d, act));
  const int8_t* y = reinterpret_cast<const int8_t*>(FK_FIELD(BlockQ8_K, qs, act));
  int isum = 0;
  for (int s = 0; s < kQK_K / F::kSub; ++s) {
    int dot = 0;
    for (int l = 0; l < F::kSub; ++l) dot += w.q[F::kSub * s + l] * y[F::kSub * s + l];
    isum += w.sc[s] * dot;
  }
  float v = static_cast<float>(isum) * (w.d * da);
  if constexpr (F::kMins) {
    constexpr int kPer = F::kSub / 16;  // Q8_K bsums per sub-block
    const uint8_t* bsums = FK_FIELD(BlockQ8_K, bsums, act);
    int imin = 0;
    for (int s = 0; s < kQK_K / F::kSub; ++s) {
      int bsum = 0;
      for (int t = 0; t < kPer; ++t) bsum += read_i16(bsums + 2 * (kPer * s + t));
      imin += w.mn[s] * bsum;
    }
    v -= static_cast<float>(imin) * (w.m * da);
  }
  return v;
}

template <class F, float (*kBlock)(const IntBlock&, const uint8_t*)>
void int8_path(const MatmulArgs& a, int64_t n_begin, int64_t n_end) {
  const int64_t nb = a.k / F::kElems;
  const int64_t act_bytes = F::kElems == kQK ? sizeof(BlockQ8_0) : sizeof(BlockQ8_K);
  IntBlock w;
  double acc[kRowGroup];
  for (int64_t j = n_begin; j < n_end; ++j) {
    const uint8_t* row = a.weights + j * a.row_bytes;
    for (int64_t i0 = 0; i0 < a.m; i0 += kRowGroup) {
      const int64_t rows = a.m - i0 < kRowGroup ? a.m - i0 : kRowGroup;
      for (int64_t r = 0; r < rows; ++r) acc[r] = 0.0;
      for (int64_t b = 0; b < nb; ++b) {
        F::decode(row + b * F::kBytes, &w);
        for (int64_t r = 0; r < rows; ++r)
          acc[r] += kBlock(w, a.act + (i0 + r) * a.act_row_bytes + b * act_bytes);
      }
      for (int64_t r = 0; r < rows; ++r)
        a.output[(i0 + r) * a.n + j] = static_cast<float>(acc[r]);
    }
  }
}

#undef FK_FIELD

using Q4_K = Q45_K<false>;
using Q5_K = Q45_K<true>;

}  // namespace

// ---- The registry's entry points (rows in the scalar section of kernels/registry.inc) ----

#define FK_SCALAR_F32(name, format) \
  void name(const MatmulArgs& a, int64_t nb, int64_t ne) { f32_path(format, a, nb, ne); }
FK_SCALAR_F32(f32_f32__scalar, Format::kF32)
FK_SCALAR_F32(f16_f32__scalar, Format::kF16)
FK_SCALAR_F32(bf16_f32__scalar, Format::kBF16)
FK_SCALAR_F32(q4_0_f32__scalar, Format::kQ4_0)
FK_SCALAR_F32(q4_1_f32__scalar, Format::kQ4_1)
FK_SCALAR_F32(q5_0_f32__scalar, Format::kQ5_0)
FK_SCALAR_F32(q5_1_f32__scalar, Format::kQ5_1)
FK_SCALAR_F32(q8_0_f32__scalar, Format::kQ8_0)
FK_SCALAR_F32(q4_k_f32__scalar, Format::kQ4_K)
FK_SCALAR_F32(q5_k_f32__scalar, Format::kQ5_K)
FK_SCALAR_F32(q6_k_f32__scalar, Format::kQ6_K)
FK_SCALAR_F32(q8_k_f32__scalar, Format::kQ8_K)
FK_SCALAR_F32(q2_k_f32__scalar, Format::kQ2_K)
FK_SCALAR_F32(q3_k_f32__scalar, Format::kQ3_K)
FK_SCALAR_F32(iq4_nl_f32__scalar, Format::kIQ4_NL)
FK_SCALAR_F32(iq4_xs_f32__scalar, Format::kIQ4_XS)
#undef FK_SCALAR_F32

// int8 path: the format's integer block (decode) and its block sum (legacy Q8_0 / K-quant Q8_K).
#define FK_SCALAR_INT8(name, F, block) \
  void name(const MatmulArgs& a, int64_t nb, int64_t ne) { int8_path<F, block<F>>(a, nb, ne); }
FK_SCALAR_INT8(q4_0_int8__scalar, Q4_0, legacy_block)
FK_SCALAR_INT8(q4_1_int8__scalar, Q4_1, legacy_block)
FK_SCALAR_INT8(q5_0_int8__scalar, Q5_0, legacy_block)
FK_SCALAR_INT8(q5_1_int8__scalar, Q5_1, legacy_block)
FK_SCALAR_INT8(q8_0_int8__scalar, Q8_0, legacy_block)
FK_SCALAR_INT8(iq4_nl_int8__scalar, IQ4_NL, legacy_block)
FK_SCALAR_INT8(q4_k_int8__scalar, Q4_K, k_block)
FK_SCALAR_INT8(q5_k_int8__scalar, Q5_K, k_block)
FK_SCALAR_INT8(q6_k_int8__scalar, Q6_K, k_block)
FK_SCALAR_INT8(q8_k_int8__scalar, Q8_K, k_block)
FK_SCALAR_INT8(q2_k_int8__scalar, Q2_K, k_block)
FK_SCALAR_INT8(q3_k_int8__scalar, Q3_K, k_block)
FK_SCALAR_INT8(iq4_xs_int8__scalar, IQ4_XS, k_block)
#undef FK_SCALAR_INT8

// bf16 path: the f32 path's reference on the activations dispatch rounded to bf16 (a.act,
// act_bf16_ref rows): every product of two bf16 values is exact in float.
void bf16_bf16__scalar(const MatmulArgs& a, int64_t nb, int64_t ne) {
  static thread_local std::vector<float> x;
  x.resize(static_cast<size_t>(a.m * a.k));
  for (int64_t i = 0; i < a.m; ++i)
    dequantize_row_bf16_ref(a.act + i * a.act_row_bytes, x.data() + i * a.k, a.k);
  MatmulArgs rounded = a;
  rounded.input = x.data();
  f32_path(Format::kBF16, rounded, nb, ne);
}

// f16 path (kernel_api.h): the arithmetic every f16-path kernel follows, step by step: fp16
// chains per lane (fma_fp16, one rounding each), flushed into the f32 lanes, summed in lane
// order; an output that comes out non-finite is f16_path_fallback's.

void f16_f16__scalar(const MatmulArgs& a, int64_t nb, int64_t ne) {
  constexpr int L = kF16PathLanes;
  for (int64_t i = 0; i < a.m; ++i) {
    const uint8_t* act = a.act + i * a.act_row_bytes;
    float unscale;
    std::memcpy(&unscale, act, sizeof unscale);
    const uint8_t* x = act + kF16ActValuesOffset;
    for (int64_t j = nb; j < ne; ++j) {
      const uint8_t* w = a.weights + j * a.row_bytes;
      float acc32[L / 2] = {};
      fp16_t acc16[L] = {};
      const int64_t steps = (a.k + L - 1) / L;
      for (int64_t s = 0; s < steps; ++s) {
        for (int l = 0; l < L; ++l) {
          const int64_t t = s * L + l;
          if (t >= a.k) break;  // 0 * 0 would leave the lane's sum as it is (never -0)
          fp16_t wt, xt;
          std::memcpy(&wt, w + 2 * t, 2);
          std::memcpy(&xt, x + 2 * t, 2);
          acc16[l] = fma_fp16(wt, xt, acc16[l]);
        }
        if ((s + 1) % kF16PathChainSteps == 0 || s + 1 == steps) {
          for (int l = 0; l < L / 2; ++l) acc32[l] += fp16_to_fp32(acc16[l]);
          for (int l = 0; l < L / 2; ++l) acc32[l] += fp16_to_fp32(acc16[l + L / 2]);
          std::fill(acc16, acc16 + L, fp16_t{0});
        }
      }
      float sum = 0.0f;
      for (int l = 0; l < L / 2; ++l) sum += acc32[l];
      float out = sum * unscale;
      if (!std::isfinite(out)) out = f16_path_fallback(a.input + i * a.k, w, a.k);
      a.output[i * a.n + j] = out;
    }
  }
}

}  // namespace fk
