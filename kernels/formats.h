// The weight formats: GGUF block layouts and the one traits table that lists them.
//
// This is the only place that says which formats exist. Everything else (WeightFormat,
// the GGUF loader, the kernel registry, tests, benchmarks, the sweep) iterates
// `all_formats()` or looks a row up by enum, name or GGUF type id.
//
// Block layouts are the GGUF on-disk layouts, byte for byte (little-endian, packed as the
// sizes below say). Scales stored as IEEE half are kept as raw uint16_t bits.
#ifndef KERNELS_FORMATS_H_
#define KERNELS_FORMATS_H_

#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace fk {

// Raw IEEE-754 binary16 bits.
using fp16_t = uint16_t;
// Raw bfloat16 bits (the top half of a binary32).
using bf16_t = uint16_t;

// ---- Legacy 32-element blocks --------------------------------------------------------
constexpr int kQK = 32;

// w = d * (q - 8), q in [0, 15]; element j in low nibble of qs[j], element j+16 in high.
struct BlockQ4_0 {
  fp16_t d;
  uint8_t qs[kQK / 2];
};
// w = d * q + m, q in [0, 15]; nibble order as Q4_0.
struct BlockQ4_1 {
  fp16_t d;
  fp16_t m;
  uint8_t qs[kQK / 2];
};
// w = d * (q - 16), q in [0, 31]; low 4 bits as Q4_0, bit 4 of element j is bit j of qh.
struct BlockQ5_0 {
  fp16_t d;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};
// w = d * q + m, q in [0, 31]; low 4 bits as Q4_0, bit 4 of element j is bit j of qh.
struct BlockQ5_1 {
  fp16_t d;
  fp16_t m;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};
// w = d * q, q in [-127, 127].
struct BlockQ8_0 {
  fp16_t d;
  int8_t qs[kQK];
};

// ---- Non-linear 4-bit formats (IQ4_NL, IQ4_XS) ---------------------------------------------
// A 4-bit index selects one of 16 fixed signed int8 levels (ggml's kvalues_iq4nl); the one
// codebook of the project, used by the reference converters and every kernel.
constexpr int8_t kIq4Values[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                   1,    13,   25,  38,  53,  69,  89,  113};

// w = d * kIq4Values[q]; nibble order as Q4_0 (element j low nibble of qs[j], j+16 high).
struct BlockIQ4_NL {
  fp16_t d;
  uint8_t qs[kQK / 2];
};

// ---- K-quants: 256-element super-blocks --------------------------------------------------
constexpr int kQK_K = 256;
constexpr int kKScaleBytes = 12;

// 8 sub-blocks of 32; 6-bit scale and 6-bit min per sub-block packed in `scales`;
// w = d * sc * q - dmin * m, q in [0, 15].
struct BlockQ4_K {
  fp16_t d;
  fp16_t dmin;
  uint8_t scales[kKScaleBytes];
  uint8_t qs[kQK_K / 2];
};
// As Q4_K with a fifth bit per weight in qh; q in [0, 31].
struct BlockQ5_K {
  fp16_t d;
  fp16_t dmin;
  uint8_t scales[kKScaleBytes];
  uint8_t qh[kQK_K / 8];
  uint8_t qs[kQK_K / 2];
};
// 16 sub-blocks of 16 with int8 scales; w = d * scale * (q - 32), q in [0, 63]
// (low 4 bits in ql, high 2 bits in qh).
struct BlockQ6_K {
  uint8_t ql[kQK_K / 2];
  uint8_t qh[kQK_K / 4];
  int8_t scales[kQK_K / 16];
  fp16_t d;
};
// 16 sub-blocks of 16; per sub-block a 4-bit scale (low nibble of scales[s]) and a 4-bit min
// (high nibble); w = (d * sc) * q - dmin * m, q in [0, 3]. Element 128 h + 32 r + l
// (h = 0, 1; r = 0..3; l = 0..31) is bits 2r, 2r+1 of qs[32 h + l]; sub-block = element / 16.
struct BlockQ2_K {
  uint8_t scales[kQK_K / 16];
  uint8_t qs[kQK_K / 4];
  fp16_t d;
  fp16_t dmin;
};
// 16 sub-blocks of 16 with 6-bit scales (stored + 32) packed in 12 bytes; w = (d * (sc - 32)) *
// q, q in [-4, 3]: the low 2 bits as Q2_K's qs, the third bit of element e is bit e / 32 of
// hmask[e % 32], and q = low2 - 4 when that bit is clear, low2 when it is set.
// Scale s: low 4 bits are the low (s < 8) / high (s >= 8) nibble of scales[s % 8], high 2
// bits are bits 2 (s / 4), +1 of scales[8 + s % 4] (unpack_k3_scales below).
struct BlockQ3_K {
  uint8_t hmask[kQK_K / 8];
  uint8_t qs[kQK_K / 4];
  uint8_t scales[kKScaleBytes];
  fp16_t d;
};
// 8 sub-blocks of 32 with 6-bit scales ls (low 4 bits: nibble ib % 2 of scales_l[ib / 2];
// high 2 bits: bits 2 ib, 2 ib + 1 of scales_h); w = d * (ls - 32) * kIq4Values[q]; sub-block
// ib's quants are qs[16 ib .. 16 ib + 15] in Q4_0's nibble order.
struct BlockIQ4_XS {
  fp16_t d;
  uint16_t scales_h;
  uint8_t scales_l[kQK_K / 64];
  uint8_t qs[kQK_K / 2];
};
// Activation format of the K-quant int8 path: w = d * q, plus the sums of each group of 16 q.
struct BlockQ8_K {
  float d;
  int8_t qs[kQK_K];
  int16_t bsums[kQK_K / 16];
};

static_assert(sizeof(BlockQ4_0) == 18, "Q4_0 block is 18 bytes in GGUF");
static_assert(sizeof(BlockQ4_1) == 20, "Q4_1 block is 20 bytes in GGUF");
static_assert(sizeof(BlockQ5_0) == 22, "Q5_0 block is 22 bytes in GGUF");
static_assert(sizeof(BlockQ5_1) == 24, "Q5_1 block is 24 bytes in GGUF");
static_assert(sizeof(BlockQ8_0) == 34, "Q8_0 block is 34 bytes in GGUF");
static_assert(sizeof(BlockQ4_K) == 144, "Q4_K block is 144 bytes in GGUF");
static_assert(sizeof(BlockQ5_K) == 176, "Q5_K block is 176 bytes in GGUF");
static_assert(sizeof(BlockQ6_K) == 210, "Q6_K block is 210 bytes in GGUF");
static_assert(sizeof(BlockQ2_K) == 84, "Q2_K block is 84 bytes in GGUF");
static_assert(sizeof(BlockQ3_K) == 110, "Q3_K block is 110 bytes in GGUF");
static_assert(sizeof(BlockQ8_K) == 292, "Q8_K block is 292 bytes in GGUF");
static_assert(sizeof(BlockIQ4_NL) == 18, "IQ4_NL block is 18 bytes in GGUF");
static_assert(sizeof(BlockIQ4_XS) == 136, "IQ4_XS block is 136 bytes in GGUF");
static_assert(offsetof(BlockIQ4_XS, scales_h) == 2 && offsetof(BlockIQ4_XS, scales_l) == 4 &&
                  offsetof(BlockIQ4_XS, qs) == 8,
              "IQ4_XS field offsets as in GGUF");

// ---- The formats -----------------------------------------------------------------------
// One row per format in kernels/formats.inc. F32 is a row too (a "block" of one float), so
// code can treat all alike.
enum class Format : uint8_t {
#define FK_FORMAT(ID, GGML_NAME, GGUF_TYPE, BLOCK, ELEMS, ACT, LLAMA_FTYPE, FALLBACK, PEER, REF) k##ID,
#include "kernels/formats.inc"
#undef FK_FORMAT
};
constexpr int kNumFormats = 0
#define FK_FORMAT(ID, GGML_NAME, GGUF_TYPE, BLOCK, ELEMS, ACT, LLAMA_FTYPE, FALLBACK, PEER, REF) +1
#include "kernels/formats.inc"
#undef FK_FORMAT
    ;

// GGUF tensor type ids (ggml_type) of the formats, gguf_type::k<ID>.
namespace gguf_type {
#define FK_FORMAT(ID, GGML_NAME, GGUF_TYPE, BLOCK, ELEMS, ACT, LLAMA_FTYPE, FALLBACK, PEER, REF) \
  constexpr uint32_t k##ID = GGUF_TYPE;
#include "kernels/formats.inc"
#undef FK_FORMAT
}  // namespace gguf_type

// Reference row converters. `k` is the number of elements, a multiple of block_elems.
using DequantizeRowFn = void (*)(const void* blocks, float* out, int64_t k);
using QuantizeRowFn = void (*)(const float* in, void* blocks, int64_t k);

// One row of the table (the columns of kernels/formats.inc).
struct FormatTraits {
  Format format;
  const char* name;         // as llama.cpp spells it: "F32", "Q4_0", "Q4_K", ...
  const char* ggml_name;    // ggml_type_name(): "f32", "q4_0", "q4_K", ...
  uint32_t gguf_type;       // ggml_type id
  int block_elems;          // elements per block
  int block_bytes;          // bytes per block
  double bits_per_weight;   // 8 * block_bytes / block_elems
  Format act_format;        // int8 path's activation format (Q8_0 / Q8_K); F32 for F32
  int llama_ftype;          // llama.cpp general.file_type, -1 if none
  Format fallback;          // for rows that are not a multiple of block_elems
  bool ggml_peer;           // ggml has a matmul for weights of this type
  DequantizeRowFn dequantize_row;  // reference; bit-identical to gguf-py
  QuantizeRowFn quantize_row;      // reference; byte-identical to ggml's *_ref
};

// Elements per block of a format, at compile time (the ELEMS column; 1 for the float
// formats F32 / F16 / BF16, whose kernels take any row length).
constexpr int block_elems_of(Format f) {
  switch (f) {
#define FK_FORMAT(ID, GGML_NAME, GGUF_TYPE, BLOCK, ELEMS, ACT, LLAMA_FTYPE, FALLBACK, PEER, REF) \
  case Format::k##ID:                                                                         \
    return ELEMS;
#include "kernels/formats.inc"
#undef FK_FORMAT
  }
  return 0;
}

// True for the formats with an int8 path (activations quantized to act_format); the float
// formats (F32, F16, BF16) have only the f32 path.
inline bool has_int8_path(const FormatTraits& t) { return t.act_format != Format::kF32; }

// All formats, in table (enum) order.
absl::Span<const FormatTraits> all_formats();
const FormatTraits& traits(Format f);
// Case-insensitive ("q4_k" and "Q4_K" both work). nullptr when unknown.
const FormatTraits* find_format(absl::string_view name);
const FormatTraits* find_format_by_gguf_type(uint32_t type);
// Comma-separated list of names in table order, for error messages and --help.
const char* format_names();
// The format a row of `row_len` elements gets when `wanted` is asked for: `wanted` if the row
// is a multiple of its block, else its fallback (again, until one fits; F32 always fits).
Format format_for_row_length(Format wanted, int64_t row_len);

// ---- Scalar conversions (GGUF files carry F16/BF16 tensors; blocks carry f16 scales) ----
float fp16_to_fp32(fp16_t h);
// Round to nearest even; overflow to +-inf; NaN stays NaN (as ggml / F16C).
fp16_t fp32_to_fp16(float f);
float bf16_to_fp32(uint16_t b);
// Round to nearest even; NaN stays a quiet NaN (as ggml).
uint16_t fp32_to_bf16(float f);
// a * b + c in fp16 with one rounding (nearest-even, overflow to inf, subnormals kept), as
// AVX-512 FP16's vfmadd231ph with the default MXCSR: the f16 path's arithmetic
// (kernel_api.h). The sum in double (exact, or too far from a tie to change the result),
// rounded once to fp16.
fp16_t fma_fp16(fp16_t a, fp16_t b, fp16_t c);

// The f16 path's packed activation row (kernel_api.h): the float 2^-e in the first 4 bytes,
// the k values x * 2^e rounded to fp16 (nearest-even) from byte kF16ActValuesOffset, padded
// to a multiple of 64 bytes. e puts the row's largest magnitude (NaN elements skipped) in
// [128, 256): e = 8 - q for max = f * 2^q, f in [0.5, 1), clamped to [-120, 64]; e = 0 for a
// zero or infinite maximum.
constexpr int64_t kF16ActValuesOffset = 64;
int f16_act_exponent(float max_abs);
int64_t f16_act_row_bytes(int64_t k);
void f16_act_pack_row_ref(const float* x, int64_t k, uint8_t* out);
void f16_act_unpack_row(const uint8_t* packed, int64_t k, float* out);
// The f16 path's output when its fp16 sums came out non-finite: the f32 path's sum of
// x[t] * w[t] in t order (w: the row's k fp16 values, any alignment), one definition for
// every kernel of the path.
float f16_path_fallback(const float* x, const uint8_t* w, int64_t k);


// ---- Reference quantizers / dequantizers (kernels/quants_ref.cc) -------------------------
// Quantizers: byte-identical to ggml's quantize_row_*_ref. Dequantizers: bit-identical to
// gguf-py's gguf.quants.dequantize (Q8_K: d * q in float32).
void quantize_row_f16_ref(const float* x, void* y, int64_t k);   // fp32_to_fp16 per element
void quantize_row_bf16_ref(const float* x, void* y, int64_t k);  // fp32_to_bf16 per element
void quantize_row_q4_0_ref(const float* x, void* y, int64_t k);
void quantize_row_q4_1_ref(const float* x, void* y, int64_t k);
void quantize_row_q5_0_ref(const float* x, void* y, int64_t k);
void quantize_row_q5_1_ref(const float* x, void* y, int64_t k);
void quantize_row_q8_0_ref(const float* x, void* y, int64_t k);
void quantize_row_q4_K_ref(const float* x, void* y, int64_t k);
void quantize_row_q5_K_ref(const float* x, void* y, int64_t k);
void quantize_row_q6_K_ref(const float* x, void* y, int64_t k);
void quantize_row_q8_K_ref(const float* x, void* y, int64_t k);
void quantize_row_q2_K_ref(const float* x, void* y, int64_t k);
void quantize_row_q3_K_ref(const float* x, void* y, int64_t k);
// IQ4_NL / IQ4_XS: byte-identical to ggml's quantize_iq4_nl / quantize_iq4_xs without an
// importance matrix (what llama.cpp's quantizer writes; the scale search tries 15 scales).
// For IQ4_XS that is quantize_row_iq4_xs_ref; ggml's quantize_row_iq4_nl_ref differs (it skips
// the search), see golden/README.md.
void quantize_row_iq4_nl_ref(const float* x, void* y, int64_t k);
void quantize_row_iq4_xs_ref(const float* x, void* y, int64_t k);

void dequantize_row_f16_ref(const void* x, float* y, int64_t k);
void dequantize_row_bf16_ref(const void* x, float* y, int64_t k);
void dequantize_row_q4_0_ref(const void* x, float* y, int64_t k);
void dequantize_row_q4_1_ref(const void* x, float* y, int64_t k);
void dequantize_row_q5_0_ref(const void* x, float* y, int64_t k);
void dequantize_row_q5_1_ref(const void* x, float* y, int64_t k);
void dequantize_row_q8_0_ref(const void* x, float* y, int64_t k);
void dequantize_row_q4_K_ref(const void* x, float* y, int64_t k);
void dequantize_row_q5_K_ref(const void* x, float* y, int64_t k);
void dequantize_row_q6_K_ref(const void* x, float* y, int64_t k);
void dequantize_row_q8_K_ref(const void* x, float* y, int64_t k);
void dequantize_row_q2_K_ref(const void* x, float* y, int64_t k);
void dequantize_row_q3_K_ref(const void* x, float* y, int64_t k);
void dequantize_row_iq4_nl_ref(const void* x, float* y, int64_t k);
void dequantize_row_iq4_xs_ref(const void* x, float* y, int64_t k);

// IQ4_XS 6-bit scale ls (0..63) of sub-block ib (0..7); the stored scale is ls - 32.
inline int iq4_xs_scale(int ib, const uint8_t* scales_l, uint16_t scales_h) {
  return ((scales_l[ib / 2] >> (4 * (ib % 2))) & 0xF) | (((scales_h >> (2 * ib)) & 3) << 4);
}

// Q4_K / Q5_K 6-bit scale and min of sub-block j (0..7) from the packed 12 bytes.
inline void unpack_k4_scale_min(int j, const uint8_t* q, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

// Q3_K: the 16 stored 6-bit scales (0..63; the scale is the value - 32) from the packed 12
// bytes (layout at BlockQ3_K).
inline void unpack_k3_scales(const uint8_t* q, uint8_t* out) {
  for (int s = 0; s < 16; ++s) {
    const int lo = s < 8 ? (q[s] & 0xF) : (q[s - 8] >> 4);
    const int hi = (q[8 + s % 4] >> (2 * (s / 4))) & 3;
    out[s] = static_cast<uint8_t>(lo | (hi << 4));
  }
}

}  // namespace fk

#endif  // KERNELS_FORMATS_H_
