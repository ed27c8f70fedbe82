#include "kernels/formats.h"

#include <cmath>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"

namespace fk {
namespace {

void dequantize_row_f32(const void* x, float* y, int64_t k) {
  std::memcpy(y, x, static_cast<size_t>(k) * sizeof(float));
}
void quantize_row_f32(const float* x, void* y, int64_t k) {
  std::memcpy(y, x, static_cast<size_t>(k) * sizeof(float));
}

constexpr double bpw(int bytes, int elems) { return 8.0 * bytes / elems; }

// The table. One row per format; nothing else in the project lists formats.
const FormatTraits kFormats[kNumFormats] = {
    {Format::kF32, "F32", gguf_type::kF32, 1, 4, bpw(4, 1), dequantize_row_f32,
     quantize_row_f32},
    {Format::kQ4_0, "Q4_0", gguf_type::kQ4_0, kQK, sizeof(BlockQ4_0),
     bpw(sizeof(BlockQ4_0), kQK), dequantize_row_q4_0_ref, quantize_row_q4_0_ref},
    {Format::kQ4_1, "Q4_1", gguf_type::kQ4_1, kQK, sizeof(BlockQ4_1),
     bpw(sizeof(BlockQ4_1), kQK), dequantize_row_q4_1_ref, quantize_row_q4_1_ref},
    {Format::kQ5_0, "Q5_0", gguf_type::kQ5_0, kQK, sizeof(BlockQ5_0),
     bpw(sizeof(BlockQ5_0), kQK), dequantize_row_q5_0_ref, quantize_row_q5_0_ref},
    {Format::kQ8_0, "Q8_0", gguf_type::kQ8_0, kQK, sizeof(BlockQ8_0),
     bpw(sizeof(BlockQ8_0), kQK), dequantize_row_q8_0_ref, quantize_row_q8_0_ref},
    {Format::kQ4_K, "Q4_K", gguf_type::kQ4_K, kQK_K, sizeof(BlockQ4_K),
     bpw(sizeof(BlockQ4_K), kQK_K), dequantize_row_q4_K_ref, quantize_row_q4_K_ref},
    {Format::kQ5_K, "Q5_K", gguf_type::kQ5_K, kQK_K, sizeof(BlockQ5_K),
     bpw(sizeof(BlockQ5_K), kQK_K), dequantize_row_q5_K_ref, quantize_row_q5_K_ref},
    {Format::kQ6_K, "Q6_K", gguf_type::kQ6_K, kQK_K, sizeof(BlockQ6_K),
     bpw(sizeof(BlockQ6_K), kQK_K), dequantize_row_q6_K_ref, quantize_row_q6_K_ref},
    {Format::kQ8_K, "Q8_K", gguf_type::kQ8_K, kQK_K, sizeof(BlockQ8_K),
     bpw(sizeof(BlockQ8_K), kQK_K), dequantize_row_q8_K_ref, quantize_row_q8_K_ref},
};

}  // namespace

absl::Span<const FormatTraits> all_formats() { return absl::MakeConstSpan(kFormats); }

const FormatTraits& traits(Format f) { return kFormats[static_cast<int>(f)]; }

const FormatTraits* find_format(absl::string_view name) {
  for (const FormatTraits& t : kFormats) {
    if (absl::EqualsIgnoreCase(name, t.name)) return &t;
  }
  return nullptr;
}

const FormatTraits* find_format_by_gguf_type(uint32_t type) {
  for (const FormatTraits& t : kFormats) {
    if (t.gguf_type == type) return &t;
  }
  return nullptr;
}

const char* format_names() { return "F32, Q4_0, Q4_1, Q5_0, Q8_0, Q4_K, Q5_K, Q6_K, Q8_K"; }

// ---- half / bfloat16 ------------------------------------------------------------------

static inline uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
static inline float float_of(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

float fp16_to_fp32(fp16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1Fu;
  uint32_t mant = h & 0x3FFu;
  if (exp == 0x1F) {  // inf / NaN (keep the payload)
    return float_of(sign | 0x7F800000u | (mant << 13));
  }
  if (exp != 0) {  // normal
    return float_of(sign | ((exp + 112) << 23) | (mant << 13));
  }
  if (mant == 0) return float_of(sign);  // +-0
  // Subnormal half: value = mant * 2^-24, exact in float.
  const float v = static_cast<float>(mant) * 5.9604644775390625e-08f;
  return sign ? -v : v;
}

fp16_t fp32_to_fp16(float f) {
  const uint32_t x = bits_of(f);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t ax = x & 0x7FFFFFFFu;
  if (ax > 0x7F800000u) {  // NaN: keep it quiet and keep the top payload bits
    return static_cast<fp16_t>(sign | 0x7E00u | ((ax >> 13) & 0x3FFu));
  }
  if (ax >= 0x477FF000u) {  // rounds to >= 65520 -> inf (also inf itself)
    return static_cast<fp16_t>(sign | 0x7C00u);
  }
  if (ax < 0x38800000u) {  // below the smallest normal half (2^-14): subnormal or zero
    // Scale to units of 2^-24 and round to nearest even via the float adder.
    const float a = float_of(ax);
    const float scaled = a * 16777216.0f;  // exact (power of two)
    // Round half to even: nearbyint in the default rounding mode.
    const uint32_t q = static_cast<uint32_t>(std::nearbyint(scaled));
    return static_cast<fp16_t>(sign | q);  // q <= 0x400 (0x400 is the smallest normal)
  }
  // Normal: rebias exponent and round mantissa to 10 bits, half to even.
  const uint32_t mant_lsb = (ax >> 13) & 1u;
  const uint32_t rounded = ax + 0xFFFu + mant_lsb;
  return static_cast<fp16_t>(sign | ((rounded - 0x38000000u) >> 13));
}

float bf16_to_fp32(uint16_t b) { return float_of(static_cast<uint32_t>(b) << 16); }

uint16_t fp32_to_bf16(float f) {
  const uint32_t x = bits_of(f);
  if ((x & 0x7FFFFFFFu) > 0x7F800000u) {  // NaN: force quiet
    return static_cast<uint16_t>((x >> 16) | 64);
  }
  return static_cast<uint16_t>((x + (0x7FFFu + ((x >> 16) & 1u))) >> 16);
}

void fp16_to_fp32_row(const fp16_t* in, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = fp16_to_fp32(in[i]);
}

void bf16_to_fp32_row(const uint16_t* in, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = bf16_to_fp32(in[i]);
}

}  // namespace fk
