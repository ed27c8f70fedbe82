#include "kernels/formats.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"

namespace fk {
namespace {

void dequantize_row_f32_ref(const void* x, float* y, int64_t k) {
  std::memcpy(y, x, static_cast<size_t>(k) * sizeof(float));
}
void quantize_row_f32_ref(const float* x, void* y, int64_t k) {
  std::memcpy(y, x, static_cast<size_t>(k) * sizeof(float));
}

constexpr double bpw(int bytes, int elems) { return 8.0 * bytes / elems; }

// The table, built from kernels/formats.inc; nothing else in the project lists formats.
const FormatTraits kFormats[kNumFormats] = {
#define FK_FORMAT(ID, GGML_NAME, GGUF_TYPE, BLOCK, ELEMS, ACT, LLAMA_FTYPE, FALLBACK, PEER, REF) \
  {Format::k##ID,                                                                         \
   #ID,                                                                                   \
   GGML_NAME,                                                                             \
   GGUF_TYPE,                                                                             \
   ELEMS,                                                                                 \
   static_cast<int>(sizeof(BLOCK)),                                                       \
   bpw(sizeof(BLOCK), ELEMS),                                                             \
   Format::k##ACT,                                                                        \
   LLAMA_FTYPE,                                                                           \
   Format::k##FALLBACK,                                                                   \
   PEER,                                                                                  \
   dequantize_row_##REF##_ref,                                                            \
   quantize_row_##REF##_ref},
#include "kernels/formats.inc"
#undef FK_FORMAT
};

// Every row sits at its enumerator's index (traits() indexes the table by enum value).
constexpr bool rows_in_enum_order() {
  int i = 0;
#define FK_FORMAT(ID, GGML_NAME, GGUF_TYPE, BLOCK, ELEMS, ACT, LLAMA_FTYPE, FALLBACK, PEER, REF) \
  if (static_cast<int>(Format::k##ID) != i++) return false;
#include "kernels/formats.inc"
#undef FK_FORMAT
  return true;
}
static_assert(rows_in_enum_order(), "formats.inc rows and Format enumerators disagree");

std::string JoinNames() {
  std::string out;
  for (const FormatTraits& t : kFormats) {
    if (!out.empty()) out += ", ";
    out += t.name;
  }
  return out;
}

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

const char* format_names() {
  static const std::string* names = new std::string(JoinNames());
  return names->c_str();
}

Format format_for_row_length(Format wanted, int64_t row_len) {
  Format f = wanted;
  // Each step moves to a smaller block; F32's block of 1 always fits (and is its own fallback).
  for (int step = 0; step < kNumFormats && row_len % traits(f).block_elems != 0; ++step) {
    f = traits(f).fallback;
  }
  return row_len % traits(f).block_elems == 0 ? f : Format::kF32;
}

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

namespace {

bool fp16_finite(fp16_t h) { return ((h >> 10) & 0x1F) != 0x1F; }

// A finite double rounded to fp16, nearest-even, with overflow to inf and fp16's subnormals.
fp16_t fp64_to_fp16(double s) {
  const fp16_t sign = std::signbit(s) ? fp16_t{0x8000} : fp16_t{0};
  const double a = std::fabs(s);
  if (a >= 65520.0) return static_cast<fp16_t>(sign | 0x7C00u);  // the tie with 65536 and up
  if (a < 6.103515625e-05) {  // below 2^-14: the subnormal grid 2^-24 (scaling is exact)
    return static_cast<fp16_t>(sign | static_cast<uint32_t>(std::nearbyint(a * 16777216.0)));
  }
  // Normal: keep 10 of the 52 mantissa bits, half to even; a carry moves into the exponent.
  uint64_t x;
  std::memcpy(&x, &a, sizeof x);
  const uint64_t rounded = x + ((uint64_t{1} << 41) - 1) + ((x >> 42) & 1);
  return static_cast<fp16_t>(sign | ((rounded >> 42) - (uint64_t{1023 - 15} << 10)));
}

}  // namespace

// a * b is exact in double (22 significant bits), and so is the sum with c unless the two
// addends are more than 53 bits apart. Then either |a * b| >= 2^30 and the result is inf
// either way, or |a * b| < 2^-32 |c|, too small to reach half an fp16 ulp of c: the double
// sum then rounds to the same fp16 as the exact one (no tie is within reach). One rounding,
// as the hardware FMA (and the integer formulation in quants_test) does.
fp16_t fma_fp16(fp16_t a, fp16_t b, fp16_t c) {
  if (!fp16_finite(a) || !fp16_finite(b) || !fp16_finite(c)) {
    // inf / NaN: float gives the same class (inf * 0 and inf - inf are NaN, the product is
    // exact), and rounding cannot matter.
    return fp32_to_fp16(fp16_to_fp32(a) * fp16_to_fp32(b) + fp16_to_fp32(c));
  }
  // An exact zero sum is +0 (round to nearest) unless both addends are -0, as IEEE gives.
  const double s = static_cast<double>(fp16_to_fp32(a)) * static_cast<double>(fp16_to_fp32(b)) +
                   static_cast<double>(fp16_to_fp32(c));
  return fp64_to_fp16(s);
}

int f16_act_exponent(float max_abs) {
  if (!(max_abs > 0.0f) || !std::isfinite(max_abs)) return 0;
  int q;
  std::frexp(max_abs, &q);
  return std::clamp(8 - q, -120, 64);
}

int64_t f16_act_row_bytes(int64_t k) { return kF16ActValuesOffset + (2 * k + 63) / 64 * 64; }

void f16_act_pack_row_ref(const float* x, int64_t k, uint8_t* out) {
  float max_abs = 0.0f;
  for (int64_t t = 0; t < k; ++t) max_abs = std::max(max_abs, std::fabs(x[t]));
  const int e = f16_act_exponent(max_abs);
  const float unscale = std::ldexp(1.0f, -e);
  std::memcpy(out, &unscale, sizeof unscale);
  for (int64_t t = 0; t < k; ++t) {
    const fp16_t h = fp32_to_fp16(std::ldexp(x[t], e));
    std::memcpy(out + kF16ActValuesOffset + 2 * t, &h, 2);
  }
}

void f16_act_unpack_row(const uint8_t* packed, int64_t k, float* out) {
  float unscale;
  std::memcpy(&unscale, packed, sizeof unscale);
  for (int64_t t = 0; t < k; ++t) {
    fp16_t h;
    std::memcpy(&h, packed + kF16ActValuesOffset + 2 * t, 2);
    out[t] = fp16_to_fp32(h) * unscale;
  }
}

float f16_path_fallback(const float* x, const uint8_t* w, int64_t k) {
  float s = 0.0f;
  for (int64_t t = 0; t < k; ++t) {
    fp16_t h;
    std::memcpy(&h, w + 2 * t, 2);
    s += x[t] * fp16_to_fp32(h);
  }
  return s;
}

float bf16_to_fp32(uint16_t b) { return float_of(static_cast<uint32_t>(b) << 16); }

uint16_t fp32_to_bf16(float f) {
  const uint32_t x = bits_of(f);
  if ((x & 0x7FFFFFFFu) > 0x7F800000u) {  // NaN: force quiet
    return static_cast<uint16_t>((x >> 16) | 64);
  }
  return static_cast<uint16_t>((x + (0x7FFFu + ((x >> 16) & 1u))) >> 16);
}

// F16 / BF16 "blocks" are single elements; rows may sit at any byte offset (views of a file),
// so the 16-bit values are read and written with memcpy.
void quantize_row_f16_ref(const float* x, void* y, int64_t k) {
  uint8_t* out = static_cast<uint8_t*>(y);
  for (int64_t i = 0; i < k; ++i) {
    const fp16_t h = fp32_to_fp16(x[i]);
    std::memcpy(out + 2 * i, &h, 2);
  }
}
void dequantize_row_f16_ref(const void* x, float* y, int64_t k) {
  const uint8_t* in = static_cast<const uint8_t*>(x);
  for (int64_t i = 0; i < k; ++i) {
    fp16_t h;
    std::memcpy(&h, in + 2 * i, 2);
    y[i] = fp16_to_fp32(h);
  }
}
void quantize_row_bf16_ref(const float* x, void* y, int64_t k) {
  uint8_t* out = static_cast<uint8_t*>(y);
  for (int64_t i = 0; i < k; ++i) {
    const bf16_t b = fp32_to_bf16(x[i]);
    std::memcpy(out + 2 * i, &b, 2);
  }
}
void dequantize_row_bf16_ref(const void* x, float* y, int64_t k) {
  const uint8_t* in = static_cast<const uint8_t*>(x);
  for (int64_t i = 0; i < k; ++i) {
    bf16_t b;
    std::memcpy(&b, in + 2 * i, 2);
    y[i] = bf16_to_fp32(b);
  }
}

}  // namespace fk
