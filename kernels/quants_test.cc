// Reference (de)quantizers against golden data from independent oracles (ggml's
// quantize_row_*_ref, gguf-py's dequantize; see golden/README.md), the traits table,
// fp16/bf16 conversion, and the golden reader itself.
#include <algorithm>
#include <cerrno>
#include <cmath>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "kernels/formats.h"
#include "kernels/golden_reader.h"

namespace fk {
namespace {

uint32_t Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float FromBits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

std::vector<Format> AllFormats() {
  std::vector<Format> out;
  for (const FormatTraits& t : all_formats()) out.push_back(t.format);
  return out;
}

std::vector<Format> QuantizedFormats() {
  std::vector<Format> out;
  for (const FormatTraits& t : all_formats()) {
    if (t.format != Format::kF32) out.push_back(t.format);
  }
  return out;
}

std::string FormatName(const ::testing::TestParamInfo<Format>& info) {
  return traits(info.param).name;
}

// ---- Golden: quantize byte-identical, dequantize bit-identical ------------------------------

class GoldenQuantTest : public ::testing::TestWithParam<Format> {};

TEST_P(GoldenQuantTest, CoversEveryDistribution) {
  absl::StatusOr<std::vector<GoldenQuantRow>> rows = read_golden_quant(GetParam());
  ASSERT_TRUE(rows.ok()) << rows.status();
  std::set<uint32_t> dists;
  std::set<int64_t> ks;
  for (const GoldenQuantRow& r : *rows) {
    dists.insert(r.distribution);
    ks.insert(r.k);
  }
  // Ids 1..16 as documented in golden/README.md, with more than one row length; 17
  // (knife-edge blocks for the scale searches) for the K-quants but Q8_K, and IQ4_XS; 18
  // (special values) for the 16-bit float formats.
  const Format f = GetParam();
  std::set<uint32_t> want;
  for (uint32_t d = 1; d <= 16; ++d) want.insert(d);
  if (f == Format::kQ4_K || f == Format::kQ5_K || f == Format::kQ6_K || f == Format::kQ2_K ||
      f == Format::kQ3_K || f == Format::kIQ4_XS)
    want.insert(17);
  if (f == Format::kF16 || f == Format::kBF16) want.insert(18);
  // 19..21 (low-bit stress: near-zero blocks, one outlier per 16 elements, sub-block
  // maxima spanning 64x) for every format.
  for (uint32_t d = 19; d <= 21; ++d) want.insert(d);
  EXPECT_EQ(dists, want);
  EXPECT_GE(ks.size(), 3u);
}

TEST_P(GoldenQuantTest, QuantizeIsByteIdenticalToGgml) {
  const FormatTraits& t = traits(GetParam());
  absl::StatusOr<std::vector<GoldenQuantRow>> rows = read_golden_quant(GetParam());
  ASSERT_TRUE(rows.ok()) << rows.status();
  for (const GoldenQuantRow& r : *rows) {
    // Pre-filled with a pattern: every byte must be written, as ggml writes every byte.
    std::vector<uint8_t> got(r.blocks.size(), 0xAB);
    t.quantize_row(r.x.data(), got.data(), r.k);
    const auto mismatch = std::mismatch(got.begin(), got.end(), r.blocks.begin());
    EXPECT_TRUE(mismatch.first == got.end())
        << t.name << " distribution " << r.distribution << " k=" << r.k
        << ": first differing byte at offset " << (mismatch.first - got.begin()) << " (block "
        << (mismatch.first - got.begin()) / t.block_bytes << "): got "
        << int(*mismatch.first) << ", ggml " << int(*mismatch.second);
  }
}

TEST_P(GoldenQuantTest, DequantizeIsBitIdenticalToGgufPy) {
  const FormatTraits& t = traits(GetParam());
  absl::StatusOr<std::vector<GoldenQuantRow>> rows = read_golden_quant(GetParam());
  ASSERT_TRUE(rows.ok()) << rows.status();
  for (const GoldenQuantRow& r : *rows) {
    std::vector<float> got(static_cast<size_t>(r.k), -12345.0f);
    t.dequantize_row(r.blocks.data(), got.data(), r.k);
    for (int64_t i = 0; i < r.k; ++i) {
      // Bits, not values: NaN and -0.0 must match too.
      if (Bits(got[i]) != Bits(r.dequant[i])) {
        ADD_FAILURE() << t.name << " distribution " << r.distribution << " k=" << r.k
                      << ": element " << i << " is " << got[i] << " (0x" << std::hex
                      << Bits(got[i]) << "), gguf-py " << r.dequant[i] << " (0x"
                      << Bits(r.dequant[i]) << std::dec << ")";
        break;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllQuantized, GoldenQuantTest, ::testing::ValuesIn(QuantizedFormats()),
                         FormatName);

// ---- Golden matmul files agree with the dequantizers ---------------------------------------

class GoldenMatmulTest : public ::testing::TestWithParam<Format> {};

TEST_P(GoldenMatmulTest, ExpectedIsFloat64DotOfDequantizedWeights) {
  const FormatTraits& t = traits(GetParam());
  absl::StatusOr<std::vector<GoldenMatmulCase>> cases = read_golden_matmul(GetParam());
  ASSERT_TRUE(cases.ok()) << cases.status();
  ASSERT_GE(cases->size(), 4u);
  std::set<int64_t> ms;
  for (const GoldenMatmulCase& c : *cases) {
    ms.insert(c.m);
    const size_t row_bytes = static_cast<size_t>(c.k / t.block_elems * t.block_bytes);
    ASSERT_EQ(c.weights.size(), static_cast<size_t>(c.n) * row_bytes);
    std::vector<float> w(static_cast<size_t>(c.n * c.k));
    for (int64_t j = 0; j < c.n; ++j) {
      t.dequantize_row(c.weights.data() + j * row_bytes, w.data() + j * c.k, c.k);
    }
    for (int64_t i = 0; i < c.m; ++i) {
      for (int64_t j = 0; j < c.n; ++j) {
        double dot = 0, abs_sum = 0;
        for (int64_t l = 0; l < c.k; ++l) {
          const double p = double{c.input[i * c.k + l]} * double{w[j * c.k + l]};
          dot += p;
          abs_sum += std::fabs(p);
        }
        // Products of two floats are exact in double (24+24 < 53 mantissa bits), so the two
        // sides differ only by summation order: each is within (k-1)*2^-53*sum|p| of the
        // exact sum, hence the bound 2*k*2^-53*abs_sum.
        const double tol = 2.0 * c.k * std::ldexp(1.0, -53) * c.abs_sum[i * c.n + j];
        const size_t o = static_cast<size_t>(i * c.n + j);
        ASSERT_NEAR(dot, c.expected[o], tol)
            << t.name << " m=" << c.m << " n=" << c.n << " k=" << c.k << " at (" << i << ","
            << j << ")";
        ASSERT_NEAR(abs_sum, c.abs_sum[o], tol) << t.name << " abs_sum at (" << i << "," << j
                                                << ")";
        ASSERT_GT(c.abs_sum[o], 0.0);  // the data is not degenerate
      }
    }
  }
  EXPECT_GE(ms.size(), 3u);  // several activation row counts
}

INSTANTIATE_TEST_SUITE_P(AllFormats, GoldenMatmulTest, ::testing::ValuesIn(AllFormats()),
                         FormatName);

TEST(GoldenMatmulTest, EveryTableFormatHasAGoldenFile) {
  for (const FormatTraits& t : all_formats()) {
    EXPECT_TRUE(read_golden_matmul(t.format).ok()) << t.name;
    if (t.format != Format::kF32) {
      EXPECT_TRUE(read_golden_quant(t.format).ok()) << t.name;
    }
  }
}

// ---- Round-trip error on random data ---------------------------------------------------------

// Distance from x to the nearest of the values s*q - offset, q = 0..nmax (s >= 0).
double DistanceToGrid(double x, double s, double offset, int nmax) {
  double best = std::fabs(x + offset);
  for (int q = 1; q <= nmax; ++q) best = std::min(best, std::fabs(x - (s * q - offset)));
  return best;
}

// Distance from x to the nearest of the values s * kIq4Values[q], q = 0..15 (any sign of s).
double DistanceToCodebook(double x, double s) {
  double best = std::fabs(x - s * kIq4Values[0]);
  for (int q = 1; q < 16; ++q) best = std::min(best, std::fabs(x - s * kIq4Values[q]));
  return best;
}

// Largest |x - dequant(quant(x))| allowed for element `x` of sub-block `sub` of the quantized
// block `blk`. u = 2^-11 is the relative rounding error of the fp16 scales.
//   Q4_0/Q5_0: q = trunc(x/d + 8.5) hits the clamp at q = 15 (31) only for x/d = +8 (+16),
//              the element opposite in sign to the max, so error <= 1 step |d|; the fp16
//              rounding of d adds |q - 8| * |d| * u <= 8|d|u (16|d|u).
//   Q4_1:      q = trunc((x - min)/d + 0.5) <= 15, error <= d/2, plus 15*d*u from fp16 d and
//              |min|*u from fp16 m.
//   Q5_1:      the same with d = (max - min)/31 and q <= 31: error <= d/2 + 31*d*u + |min|*u.
//   Q8_0:      round(x/d), |x/d| <= 127: error <= d/2 + 127*d*u.
//   Q8_K:      nearest_int(x * -127/max) in [-127, 127] with d kept in float32: error <= |d|/2
//              plus float32 rounding of x*iscale and of d (~1e-5 |d|); we allow 0.501 |d|.
//   IQ4_NL / IQ4_XS: the final pass picks the codebook value nearest to x against a float32
//              scale d_f (IQ4_NL: the fit's scale; IQ4_XS: d * (ls - 32) with the super-block
//              d before its fp16 rounding) whose stored value is s = d_f (1 + e), |e| <= u: the
//              pick is at most 2 * 127 |s| u (1 + u) farther from x than the nearest of
//              {s V[q]}, plus float32 rounding of x / d_f.
//   Q4_K/Q5_K/Q6_K: the final pass requantizes every element with nearest_int and a clamp
//              against exactly the stored sub-block scale s and offset, so the result is the
//              grid point nearest to x: error == distance to the grid {s*q - offset}, up to
//              float32 rounding of the division and of the dequantization (a few 2^-24
//              relative to the magnitudes involved). How well the grid fits the data is
//              checked by the RMS bound in the test.
double AllowedError(Format f, const uint8_t* blk, int sub, float x) {
  const double u = std::ldexp(1.0, -11);
  const double f32_slop = 8 * std::ldexp(1.0, -24);
  switch (f) {
    case Format::kQ4_0: {
      const double d = std::fabs(fp16_to_fp32(reinterpret_cast<const BlockQ4_0*>(blk)->d));
      return d * (1 + 8 * u) + 1e-30;
    }
    case Format::kQ5_0: {
      const double d = std::fabs(fp16_to_fp32(reinterpret_cast<const BlockQ5_0*>(blk)->d));
      return d * (1 + 16 * u) + 1e-30;
    }
    case Format::kQ4_1: {
      const auto* b = reinterpret_cast<const BlockQ4_1*>(blk);
      const double d = fp16_to_fp32(b->d), m = fp16_to_fp32(b->m);
      return d * (0.5 + 15 * u) + std::fabs(m) * u + 1e-30;
    }
    case Format::kQ5_1: {
      const auto* b = reinterpret_cast<const BlockQ5_1*>(blk);
      const double d = fp16_to_fp32(b->d), m = fp16_to_fp32(b->m);
      return d * (0.5 + 31 * u) + std::fabs(m) * u + 1e-30;
    }
    case Format::kQ8_0: {
      const double d = fp16_to_fp32(reinterpret_cast<const BlockQ8_0*>(blk)->d);
      return d * (0.5 + 127 * u) + 1e-30;
    }
    case Format::kQ8_K:
      return std::fabs(reinterpret_cast<const BlockQ8_K*>(blk)->d) * 0.501 + 1e-30;
    case Format::kQ4_K:
    case Format::kQ5_K: {
      const auto* b = reinterpret_cast<const BlockQ4_K*>(blk);  // same header as Q5_K
      const int nmax = f == Format::kQ4_K ? 15 : 31;
      uint8_t sc, m;
      unpack_k4_scale_min(sub, b->scales, &sc, &m);
      const double s = fp16_to_fp32(b->d) * static_cast<float>(sc);
      const double offset = fp16_to_fp32(b->dmin) * static_cast<float>(m);
      return DistanceToGrid(x, s, offset, nmax) +
             f32_slop * (std::fabs(x) + nmax * s + offset) + 1e-30;
    }
    case Format::kQ6_K: {
      const auto* b = reinterpret_cast<const BlockQ6_K*>(blk);
      const double s = fp16_to_fp32(b->d) * static_cast<float>(b->scales[sub]);
      // Values s*(q - 32), q = 0..63; written as a grid with step |s|.
      const double dist = s >= 0 ? DistanceToGrid(x, s, 32 * s, 63)
                                 : DistanceToGrid(-x, -s, -32 * s, 63);
      return dist + f32_slop * (std::fabs(x) + 32 * std::fabs(s)) + 1e-30;
    }
    case Format::kQ2_K: {
      // As Q4_K with 4-bit scales and mins per sub-block of 16: the final pass requantizes
      // to the grid point nearest to x.
      const auto* b = reinterpret_cast<const BlockQ2_K*>(blk);
      const double s = fp16_to_fp32(b->d) * static_cast<float>(b->scales[sub] & 0xF);
      const double offset = fp16_to_fp32(b->dmin) * static_cast<float>(b->scales[sub] >> 4);
      return DistanceToGrid(x, s, offset, 3) + f32_slop * (std::fabs(x) + 3 * s + offset) +
             1e-30;
    }
    case Format::kQ3_K: {
      // As Q6_K: values s*(q - 4), q = 0..7, with s = d * (stored 6-bit scale - 32).
      const auto* b = reinterpret_cast<const BlockQ3_K*>(blk);
      uint8_t sc[16];
      unpack_k3_scales(b->scales, sc);
      const double s = fp16_to_fp32(b->d) * static_cast<float>(sc[sub] - 32);
      const double dist = s >= 0 ? DistanceToGrid(x, s, 4 * s, 7)
                                 : DistanceToGrid(-x, -s, -4 * s, 7);
      return dist + f32_slop * (std::fabs(x) + 4 * std::fabs(s)) + 1e-30;
    }
    case Format::kIQ4_NL: {
      const double s = fp16_to_fp32(reinterpret_cast<const BlockIQ4_NL*>(blk)->d);
      return DistanceToCodebook(x, s) + 2 * 127 * std::fabs(s) * u * (1 + u) +
             f32_slop * (std::fabs(x) + 127 * std::fabs(s)) + 1e-30;
    }
    case Format::kIQ4_XS: {
      const auto* b = reinterpret_cast<const BlockIQ4_XS*>(blk);
      const double s = fp16_to_fp32(b->d) *
                       static_cast<float>(iq4_xs_scale(sub, b->scales_l, b->scales_h) - 32);
      return DistanceToCodebook(x, s) + 2 * 127 * std::fabs(s) * u * (1 + u) +
             f32_slop * (std::fabs(x) + 127 * std::fabs(s)) + 1e-30;
    }
    case Format::kF16: {
      // Round to nearest: half an ulp, 2^-11 relative for normals, 2^-25 absolute below the
      // smallest normal half (2^-14).
      return std::max(std::fabs(double{x}) * std::ldexp(1.0, -11), std::ldexp(1.0, -25));
    }
    case Format::kBF16:
      return std::fabs(double{x}) * std::ldexp(1.0, -8);  // 8 significant bits
    case Format::kF32:
      break;
  }
  return 0;
}

class RoundTripTest : public ::testing::TestWithParam<Format> {};

TEST_P(RoundTripTest, ErrorWithinDerivedBound) {
  const FormatTraits& t = traits(GetParam());
  const int64_t k = 4 * 256;
  std::mt19937 rng(1234);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> x(k);
  for (float& v : x) v = dist(rng);
  std::vector<uint8_t> blocks(static_cast<size_t>(k / t.block_elems * t.block_bytes));
  std::vector<float> y(k);
  t.quantize_row(x.data(), blocks.data(), k);
  t.dequantize_row(blocks.data(), y.data(), k);

  // Sub-block size for the K-quants' per-sub-block scales.
  const int sub_elems = (GetParam() == Format::kQ6_K || GetParam() == Format::kQ2_K ||
                         GetParam() == Format::kQ3_K)
                            ? 16
                        : (GetParam() == Format::kQ4_K || GetParam() == Format::kQ5_K ||
                           GetParam() == Format::kIQ4_XS)
                            ? 32
                            : t.block_elems;
  double sum_sq_err = 0;
  for (int64_t i = 0; i < k; ++i) {
    const int64_t b = i / t.block_elems;
    const int sub = static_cast<int>((i % t.block_elems) / sub_elems);
    const double bound = AllowedError(GetParam(), blocks.data() + b * t.block_bytes, sub, x[i]);
    const double err = std::fabs(double{x[i]} - y[i]);
    ASSERT_LE(err, bound) << t.name << " element " << i << " x=" << x[i] << " y=" << y[i];
    sum_sq_err += err * err;
  }
  // The max bound alone would accept a grid far coarser than the format allows. Each format
  // spreads `levels` values over at most [-amax, amax] of its block (amax <= the row's max
  // |x|), so its step is at most 2*amax_row/(levels-1), and uniform rounding noise has RMS
  // step/sqrt(12). Allow 1.5x that for the 6-bit quantization of the K-quant sub-block
  // scales and the fits' clipping. (Q8_0 and Q8_K: 255 levels; Q6_K: 64; 5-bit: 32; 4-bit:
  // 16; Q3_K: 8; Q2_K: 4; IQ4_NL / IQ4_XS: 16, their levels unevenly spaced but denser near
  // 0, where most of the gaussian data is.)
  const Format f = GetParam();
  if (t.block_elems == 1) return;  // float formats: no grid; the per-element bound is exact
  const double levels = f == Format::kQ8_0 || f == Format::kQ8_K ? 255
                        : f == Format::kQ6_K                     ? 64
                        : f == Format::kQ5_0 || f == Format::kQ5_1 || f == Format::kQ5_K ? 32
                        : f == Format::kQ3_K                                             ? 8
                        : f == Format::kQ2_K                                             ? 4
                                                                   : 16;
  double amax = 0;
  for (float v : x) amax = std::max(amax, std::fabs(double{v}));
  const double step = 2 * amax / (levels - 1);
  const double rms = std::sqrt(sum_sq_err / k);
  EXPECT_LE(rms, 1.5 * step / std::sqrt(12.0)) << t.name << ": RMS error " << rms << ", step "
                                               << step;
}

INSTANTIATE_TEST_SUITE_P(AllQuantized, RoundTripTest, ::testing::ValuesIn(QuantizedFormats()),
                         FormatName);

// ---- Traits table ------------------------------------------------------------------------

// The table's facts (names, ids, block sizes, llama.cpp file types) are checked against
// gguf-py's constants in //tools/gguf_interop:gguf_interop_test; here, its internal rules.
TEST(TraitsTest, TableIsConsistent) {
  ASSERT_EQ(all_formats().size(), static_cast<size_t>(kNumFormats));
  EXPECT_EQ(all_formats()[0].format, Format::kF32);
  std::set<std::string> names;
  std::set<uint32_t> ids;
  for (size_t i = 0; i < all_formats().size(); ++i) {
    const FormatTraits& t = all_formats()[i];
    SCOPED_TRACE(t.name);
    EXPECT_EQ(static_cast<size_t>(t.format), i);
    EXPECT_EQ(&traits(t.format), &t);
    EXPECT_TRUE(names.insert(t.name).second);
    EXPECT_TRUE(ids.insert(t.gguf_type).second);
    EXPECT_EQ(find_format_by_gguf_type(t.gguf_type), &t);
    EXPECT_EQ(find_format(t.name), &t);
    EXPECT_EQ(find_format(t.ggml_name), &t);  // same name, ggml's case
    EXPECT_GT(t.block_elems, 0);
    EXPECT_GT(t.block_bytes, 0);
    EXPECT_DOUBLE_EQ(t.bits_per_weight, 8.0 * t.block_bytes / t.block_elems);
    EXPECT_NE(t.quantize_row, nullptr);
    EXPECT_NE(t.dequantize_row, nullptr);
    EXPECT_NE(std::string(format_names()).find(t.name), std::string::npos);
    if (!has_int8_path(t)) {  // the float formats: one element per "block", no int8 path
      EXPECT_EQ(t.block_elems, 1);
      EXPECT_EQ(t.act_format, Format::kF32);
      EXPECT_EQ(format_for_row_length(t.format, 37), t.format);  // every row fits
      continue;
    }
    // The int8 path's activations: Q8_0 blocks for 32-element formats, Q8_K otherwise (the
    // block of the activations must tile the weights' block).
    EXPECT_TRUE(t.act_format == Format::kQ8_0 || t.act_format == Format::kQ8_K);
    EXPECT_EQ(t.block_elems % traits(t.act_format).block_elems, 0);
    EXPECT_LT(traits(t.fallback).block_elems, t.block_elems);  // the chain ends
    // A row of whole blocks takes the format; one that is not, the fallback (or F32).
    EXPECT_EQ(format_for_row_length(t.format, t.block_elems), t.format);
    EXPECT_EQ(format_for_row_length(t.format, 3 * t.block_elems), t.format);
    EXPECT_EQ(format_for_row_length(t.format, t.block_elems + traits(t.fallback).block_elems),
              t.fallback);
    EXPECT_EQ(format_for_row_length(t.format, t.block_elems + 1), Format::kF32);
  }
  EXPECT_DOUBLE_EQ(traits(Format::kQ4_0).bits_per_weight, 4.5);
  EXPECT_DOUBLE_EQ(traits(Format::kQ4_K).bits_per_weight, 4.5);
  EXPECT_DOUBLE_EQ(traits(Format::kQ6_K).bits_per_weight, 6.5625);
}

TEST(TraitsTest, FindFormatIsCaseInsensitive) {
  EXPECT_EQ(find_format("q4_k"), &traits(Format::kQ4_K));
  EXPECT_EQ(find_format("Q4_K"), &traits(Format::kQ4_K));
  EXPECT_EQ(find_format("q8_0"), &traits(Format::kQ8_0));
  EXPECT_EQ(find_format("f32"), &traits(Format::kF32));
  EXPECT_EQ(find_format("Q4_2"), nullptr);
  EXPECT_EQ(find_format("Q4_K_M"), nullptr);
  EXPECT_EQ(find_format(""), nullptr);
  EXPECT_EQ(find_format_by_gguf_type(1), &traits(Format::kF16));
  EXPECT_EQ(find_format_by_gguf_type(19), nullptr);  // IQ1_S: not a format here
  EXPECT_EQ(find_format_by_gguf_type(999), nullptr);
}

// ---- fp16 / bf16 -----------------------------------------------------------------------

TEST(Fp16Test, HandKnownBitPatterns) {
  EXPECT_EQ(fp32_to_fp16(1.0f), 0x3C00);
  EXPECT_EQ(fp32_to_fp16(-2.0f), 0xC000);
  EXPECT_EQ(fp32_to_fp16(0.0f), 0x0000);
  EXPECT_EQ(fp32_to_fp16(-0.0f), 0x8000);
  EXPECT_EQ(fp32_to_fp16(65504.0f), 0x7BFF);  // largest finite half
  EXPECT_EQ(fp32_to_fp16(0.1f), 0x2E66);
  // Ties to even: 1 + 2^-11 is halfway between 0x3C00 and 0x3C01 -> 0x3C00 (even);
  // 1 + 3*2^-11 is halfway between 0x3C01 and 0x3C02 -> 0x3C02; just above half rounds up.
  EXPECT_EQ(fp32_to_fp16(1.0f + std::ldexp(1.0f, -11)), 0x3C00);
  EXPECT_EQ(fp32_to_fp16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3C02);
  EXPECT_EQ(fp32_to_fp16(1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -20)), 0x3C01);
  // Overflow: 65519 rounds down to 65504; 65520 is the tie with 65536 -> even -> inf.
  EXPECT_EQ(fp32_to_fp16(65519.0f), 0x7BFF);
  EXPECT_EQ(fp32_to_fp16(65520.0f), 0x7C00);
  EXPECT_EQ(fp32_to_fp16(-1e30f), 0xFC00);
  EXPECT_EQ(fp32_to_fp16(INFINITY), 0x7C00);
  EXPECT_EQ(fp32_to_fp16(-INFINITY), 0xFC00);
  const fp16_t nan = fp32_to_fp16(NAN);
  EXPECT_EQ(nan & 0x7C00, 0x7C00);
  EXPECT_NE(nan & 0x03FF, 0);
  // Subnormal halves: units of 2^-24; 2^-25 ties to 0, 3*2^-25 ties to 2 (even).
  EXPECT_EQ(fp32_to_fp16(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(fp32_to_fp16(std::ldexp(1.0f, -25)), 0x0000);
  EXPECT_EQ(fp32_to_fp16(3 * std::ldexp(1.0f, -25)), 0x0002);
  EXPECT_EQ(fp32_to_fp16(-std::ldexp(1.0f, -24)), 0x8001);
  EXPECT_EQ(fp32_to_fp16(std::ldexp(1.0f, -14)), 0x0400);  // smallest normal
  // 1023.5 * 2^-24 ties between 0x03FF and 0x0400 -> 0x0400 (even).
  EXPECT_EQ(fp32_to_fp16(1023.5f * std::ldexp(1.0f, -24)), 0x0400);
  EXPECT_EQ(fp32_to_fp16(1e-10f), 0x0000);
  EXPECT_EQ(fp32_to_fp16(FromBits(0x00000001)), 0x0000);  // float subnormal

  EXPECT_EQ(fp16_to_fp32(0x3C00), 1.0f);
  EXPECT_EQ(fp16_to_fp32(0x3555), 0.333251953125f);
  EXPECT_EQ(fp16_to_fp32(0x7BFF), 65504.0f);
  EXPECT_EQ(fp16_to_fp32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(fp16_to_fp32(0x03FF), 1023.0f * std::ldexp(1.0f, -24));
  EXPECT_EQ(Bits(fp16_to_fp32(0x8000)), 0x80000000u);
  EXPECT_EQ(fp16_to_fp32(0x7C00), INFINITY);
  EXPECT_EQ(fp16_to_fp32(0xFC00), -INFINITY);
  EXPECT_TRUE(std::isnan(fp16_to_fp32(0x7E00)));
}

TEST(Fp16Test, EveryHalfRoundTrips) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = fp16_to_fp32(static_cast<fp16_t>(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(fp32_to_fp16(f), h) << std::hex << h;
  }
}

TEST(Fp16Test, RowConversions) {
  const fp16_t h[3] = {0x3C00, 0xC000, 0x0001};
  float f[3];
  dequantize_row_f16_ref(h, f, 3);
  EXPECT_EQ(f[0], 1.0f);
  EXPECT_EQ(f[1], -2.0f);
  EXPECT_EQ(f[2], std::ldexp(1.0f, -24));
  const uint16_t b[2] = {0x3F80, 0x4049};
  dequantize_row_bf16_ref(b, f, 2);
  EXPECT_EQ(f[0], 1.0f);
  EXPECT_EQ(f[1], 3.140625f);
}

// fma_fp16: the f16 path's arithmetic (one rounding of the exact a * b + c).
TEST(Fp16FmaTest, HandKnownCases) {
  const fp16_t one = 0x3C00, two = 0x4000, three = 0x4200, half = 0x3800, max = 0x7BFF;
  EXPECT_EQ(fma_fp16(two, three, one), 0x4700);  // 7
  EXPECT_EQ(fma_fp16(0x0000, 0x0000, 0x0000), 0x0000);
  EXPECT_EQ(fma_fp16(0x8000, one, 0x8000), 0x8000);  // -0 + -0 = -0
  EXPECT_EQ(fma_fp16(two, 0xC000, 0x4400), 0x0000);  // 2 * -2 + 4 = +0
  // 1 + 2^-11: the tie between 1 and 1 + 2^-10 goes to even (1); 1 + 2^-11 + 2^-21 (the
  // product 2^-11 * (1 + 2^-10)) is above the tie and goes up. 2 + 2^-10: tie, even (2).
  const fp16_t eps11 = fp32_to_fp16(std::ldexp(1.0f, -11));
  const fp16_t one_up = 0x3C01, one_down = 0x3BFF;  // 1 + 2^-10, 1 - 2^-11
  EXPECT_EQ(fma_fp16(eps11, one, one), 0x3C00);
  EXPECT_EQ(fma_fp16(eps11, one_up, one), 0x3C01);
  EXPECT_EQ(fma_fp16(one, one, one_up), 0x4000);
  // (1 + 2^-10)(1 - 2^-11) - 1 = 2^-11 - 2^-21 exactly; a rounded product (1) would give 0.
  EXPECT_EQ(fp16_to_fp32(fma_fp16(one_up, one_down, 0xBC00)), std::ldexp(1023.0f, -21));
  // Overflow: 65504 + 8 rounds back to 65504 (below the tie at 65520); 65504 + 16 is the
  // tie with 65536 -> even -> inf.
  EXPECT_EQ(fma_fp16(max, one, 0x4800), 0x7BFF);  // + 8
  EXPECT_EQ(fma_fp16(max, one, 0x4C00), 0x7C00);  // + 16
  EXPECT_EQ(fma_fp16(max, two, 0xFBFF), 0x7BFF);  // 2 * 65504 - 65504: exact, no overflow
  // Subnormals kept: 2^-24 * 0.5 = 2^-25 ties to 0 (even); 3 * 2^-25 ties to 2 * 2^-24.
  EXPECT_EQ(fma_fp16(0x0001, half, 0x0000), 0x0000);
  EXPECT_EQ(fma_fp16(0x0001, fp32_to_fp16(1.5f), 0x0000), 0x0002);
  EXPECT_EQ(fma_fp16(0x0001, one, 0x03FF), 0x0400);  // into the smallest normal
  // inf / NaN.
  EXPECT_EQ(fma_fp16(0x7C00, one, one), 0x7C00);
  const fp16_t nan = fma_fp16(0x7C00, 0x0000, one);
  EXPECT_EQ(nan & 0x7C00, 0x7C00);
  EXPECT_NE(nan & 0x3FF, 0);
  EXPECT_NE(fma_fp16(0x7C00, one, 0xFC00) & 0x3FF, 0);  // inf - inf
}

// An independent formulation of the same rounding, in integers: the exact a * b + c in
// units of 2^-48 (the smallest product exponent), rounded once to 11 significant bits or to
// the subnormal grid 2^-24. Slow (a bit-length loop), so only the oracle of fma_fp16.
fp16_t ExactFmaFp16(fp16_t a, fp16_t b, fp16_t c) {
  struct Parts {
    bool neg;
    int64_t m;
    int e;
  };
  auto parts = [](fp16_t h) {
    const int exp = (h >> 10) & 0x1F;
    const int64_t mant = h & 0x3FF;
    if (exp == 0) return Parts{(h & 0x8000u) != 0, mant, -24};
    return Parts{(h & 0x8000u) != 0, mant | 0x400, exp - 25};
  };
  const Parts x = parts(a), y = parts(b), z = parts(c);
  const bool pneg = x.neg != y.neg;
  const __int128 p = static_cast<__int128>(x.m * y.m) << (x.e + y.e + 48);
  const __int128 q = static_cast<__int128>(z.m) << (z.e + 48);
  const __int128 sum = (pneg ? -p : p) + (z.neg ? -q : q);
  if (sum == 0) return (pneg && z.neg) ? fp16_t{0x8000} : fp16_t{0};
  const bool neg = sum < 0;
  const unsigned __int128 mag = static_cast<unsigned __int128>(neg ? -sum : sum);
  int bits = 0;
  for (unsigned __int128 t = mag; t != 0; t >>= 1) ++bits;
  const int shift = std::max(24, bits - 11);
  uint64_t kept = static_cast<uint64_t>(mag >> shift);
  const unsigned __int128 rest = mag & ((static_cast<unsigned __int128>(1) << shift) - 1);
  const unsigned __int128 half = static_cast<unsigned __int128>(1) << (shift - 1);
  if (rest > half || (rest == half && (kept & 1))) ++kept;
  // kept * 2^(shift - 48) < 2^11 * 2^(shift - 48): exact in float (inf from 65536 up).
  const fp16_t h = fp32_to_fp16(std::ldexp(static_cast<float>(kept), shift - 48));
  return static_cast<fp16_t>(h | (neg ? 0x8000u : 0u));
}

// Random finite fp16 operands of every magnitude; every other c near -a * b (cancellation,
// exact zeros, subnormal results). Calls check(a, b, c) on each triple.
template <class Check>
void ForRandomFmaOperands(int count, Check check) {
  std::mt19937_64 rng(0xf16f);
  auto finite = [&]() {
    fp16_t h;
    do h = static_cast<fp16_t>(rng()); while ((h & 0x7C00) == 0x7C00);
    return h;
  };
  for (int i = 0; i < count; ++i) {
    const fp16_t a = finite(), b = finite();
    fp16_t c = finite();
    if (i % 2 == 1) {
      c = static_cast<fp16_t>(fp32_to_fp16(-fp16_to_fp32(a) * fp16_to_fp32(b)) ^ (rng() & 3));
      if ((c & 0x7C00) == 0x7C00) continue;
    }
    check(a, b, c);
  }
}

// fma_fp16 (double arithmetic) against the integer formulation, on every CPU: random
// operands, and a grid of tiny products against large addends (where the double sum rounds).
TEST(Fp16FmaTest, MatchesTheIntegerFormulation) {
  int64_t checked = 0, subnormal = 0, overflowed = 0, zeros = 0;
  ForRandomFmaOperands(2000000, [&](fp16_t a, fp16_t b, fp16_t c) {
    const fp16_t want = ExactFmaFp16(a, b, c), got = fma_fp16(a, b, c);
    ASSERT_EQ(got, want) << std::hex << a << " * " << b << " + " << c;
    ++checked;
    if ((got & 0x7C00) == 0 && (got & 0x3FF) != 0) ++subnormal;
    if ((got & 0x7FFF) == 0x7C00) ++overflowed;
    if ((got & 0x7FFF) == 0) ++zeros;
  });
  EXPECT_GT(checked, 1800000);
  EXPECT_GT(subnormal, 1000) << "subnormal results";
  EXPECT_GT(overflowed, 1000) << "results that overflow to inf";
  EXPECT_GT(zeros, 1000) << "exact zeros";
  // Products far below c (the addends more than 53 bits apart, where the double sum rounds):
  // a * b of 2^-48 .. 2^-30 against every c of 2^8 .. 2^15 and their fp16 neighbours.
  for (int ea = 0x0001; ea < 0x0400; ea += 37) {
    for (int eb = 0x0001; eb < 0x1400; eb += 41) {
      for (int ec = 0x5C00; ec < 0x7C00; ec += 97) {
        for (int sign = 0; sign < 8; ++sign) {
          const fp16_t a = static_cast<fp16_t>(ea | (sign & 1 ? 0x8000 : 0));
          const fp16_t b = static_cast<fp16_t>(eb | (sign & 2 ? 0x8000 : 0));
          const fp16_t c = static_cast<fp16_t>(ec | (sign & 4 ? 0x8000 : 0));
          ASSERT_EQ(fma_fp16(a, b, c), ExactFmaFp16(a, b, c))
              << std::hex << a << " * " << b << " + " << c;
        }
      }
    }
  }
}

#if defined(__x86_64__)
__attribute__((target("avx512fp16,avx512vl"))) fp16_t hardware_fma(fp16_t a, fp16_t b,
                                                                     fp16_t c) {
  const __m128h va = _mm_castsi128_ph(_mm_cvtsi32_si128(a));
  const __m128h vb = _mm_castsi128_ph(_mm_cvtsi32_si128(b));
  const __m128h vc = _mm_castsi128_ph(_mm_cvtsi32_si128(c));
  return static_cast<fp16_t>(_mm_cvtsi128_si32(_mm_castph_si128(_mm_fmadd_sh(va, vb, vc))));
}
#endif

// Against AVX-512 FP16's own vfmadd (the instruction the f16 path's kernels run), where the
// CPU has it: random finite operands of every magnitude, and near-cancelling ones.
TEST(Fp16FmaTest, MatchesTheHardwareFma) {
#if defined(__x86_64__)
  if (!__builtin_cpu_supports("avx512fp16")) GTEST_SKIP() << "CPU lacks avx512fp16";
  int64_t checked = 0, subnormal = 0, overflowed = 0;
  ForRandomFmaOperands(2000000, [&](fp16_t a, fp16_t b, fp16_t c) {
    const fp16_t want = hardware_fma(a, b, c), got = fma_fp16(a, b, c);
    if ((want & 0x7C00) == 0x7C00 && (want & 0x3FF) != 0) {
      ASSERT_TRUE((got & 0x7C00) == 0x7C00 && (got & 0x3FF) != 0);
    } else {
      ASSERT_EQ(got, want) << std::hex << a << " * " << b << " + " << c;
    }
    ++checked;
    if ((got & 0x7C00) == 0 && (got & 0x3FF) != 0) ++subnormal;
    if ((got & 0x7FFF) == 0x7C00) ++overflowed;
  });
  // About 7 % of the near-cancelling pairs overflow in -a * b and are left out.
  EXPECT_GT(checked, 1800000);
  EXPECT_GT(subnormal, 1000) << "subnormal results";
  EXPECT_GT(overflowed, 1000) << "results that overflow to inf";
#else
  GTEST_SKIP() << "not an x86-64 build";
#endif
}

TEST(Bf16Test, HandKnownBitPatterns) {
  EXPECT_EQ(fp32_to_bf16(1.0f), 0x3F80);
  EXPECT_EQ(fp32_to_bf16(-2.0f), 0xC000);
  EXPECT_EQ(fp32_to_bf16(3.14159265f), 0x4049);
  // Ties to even: 1 + 2^-8 -> 0x3F80; 1 + 3*2^-8 -> 0x3F82.
  EXPECT_EQ(fp32_to_bf16(1.0f + std::ldexp(1.0f, -8)), 0x3F80);
  EXPECT_EQ(fp32_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3F82);
  EXPECT_EQ(fp32_to_bf16(INFINITY), 0x7F80);
  EXPECT_EQ(fp32_to_bf16(FromBits(0x7F7FFFFF)), 0x7F80);  // FLT_MAX rounds up to inf
  EXPECT_EQ(fp32_to_bf16(FromBits(0x7FA00000)), 0x7FE0);  // signalling NaN made quiet
  EXPECT_EQ(fp32_to_bf16(FromBits(0x00000001)), 0x0000);  // subnormal rounds to zero
  EXPECT_EQ(bf16_to_fp32(0x4049), 3.140625f);
  EXPECT_EQ(Bits(bf16_to_fp32(0x8000)), 0x80000000u);
  EXPECT_TRUE(std::isnan(bf16_to_fp32(0x7FC0)));
}

// ---- Golden reader errors --------------------------------------------------------------

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteAll(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

class GoldenReaderErrorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    real_q4_0_ = ReadAll(golden_dir() + "/quant_q4_0.bin");
    real_mm_q8_0_ = ReadAll(golden_dir() + "/matmul_q8_0.bin");
    ASSERT_GT(real_q4_0_.size(), 100u);
    ASSERT_GT(real_mm_q8_0_.size(), 100u);
    const char* tmp = std::getenv("TEST_TMPDIR");
    dir_ = std::string(tmp != nullptr ? tmp : "/tmp") + "/golden_reader_test";
    ASSERT_TRUE(::mkdir(dir_.c_str(), 0755) == 0 || errno == EEXIST) << dir_;
    ASSERT_EQ(setenv("FK_GOLDEN_DIR", dir_.c_str(), 1), 0);
  }
  void TearDown() override { unsetenv("FK_GOLDEN_DIR"); }

  std::string dir_, real_q4_0_, real_mm_q8_0_;
};

TEST_F(GoldenReaderErrorTest, TruncatedQuantFileNamesFileAndOffset) {
  const std::string path = dir_ + "/quant_q4_0.bin";
  for (size_t len : {size_t{0}, size_t{7}, size_t{12}, size_t{16}, size_t{20}, size_t{100},
                     real_q4_0_.size() / 2, real_q4_0_.size() - 1}) {
    WriteAll(path, real_q4_0_.substr(0, len));
    absl::StatusOr<std::vector<GoldenQuantRow>> r = read_golden_quant(Format::kQ4_0);
    ASSERT_FALSE(r.ok()) << "length " << len;
    EXPECT_NE(r.status().message().find(path), absl::string_view::npos) << r.status();
    EXPECT_NE(r.status().message().find("offset"), absl::string_view::npos) << r.status();
  }
  WriteAll(path, real_q4_0_);  // the intact copy reads fine
  EXPECT_TRUE(read_golden_quant(Format::kQ4_0).ok());
  WriteAll(path, real_q4_0_ + "x");  // trailing garbage is an error too
  EXPECT_FALSE(read_golden_quant(Format::kQ4_0).ok());
}

TEST_F(GoldenReaderErrorTest, TruncatedMatmulFile) {
  const std::string path = dir_ + "/matmul_q8_0.bin";
  for (size_t len : {size_t{11}, size_t{20}, size_t{40}, real_mm_q8_0_.size() - 8}) {
    WriteAll(path, real_mm_q8_0_.substr(0, len));
    absl::StatusOr<std::vector<GoldenMatmulCase>> r = read_golden_matmul(Format::kQ8_0);
    ASSERT_FALSE(r.ok()) << "length " << len;
    EXPECT_NE(r.status().message().find(path), absl::string_view::npos) << r.status();
  }
}

TEST_F(GoldenReaderErrorTest, BadMagicWrongTypeBadKAndMissingFile) {
  std::string bad = real_q4_0_;
  bad[0] = 'X';
  WriteAll(dir_ + "/quant_q4_0.bin", bad);
  absl::StatusOr<std::vector<GoldenQuantRow>> r = read_golden_quant(Format::kQ4_0);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("magic"), absl::string_view::npos) << r.status();

  WriteAll(dir_ + "/quant_q4_1.bin", real_q4_0_);  // a Q4_0 file where Q4_1 is expected
  r = read_golden_quant(Format::kQ4_1);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("gguf_type"), absl::string_view::npos) << r.status();

  bad = real_q4_0_;
  bad[16] = 33;  // first row's k = 33: not whole blocks
  WriteAll(dir_ + "/quant_q4_0.bin", bad);
  r = read_golden_quant(Format::kQ4_0);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("offset 16"), absl::string_view::npos) << r.status();

  absl::StatusOr<std::vector<GoldenMatmulCase>> m = read_golden_matmul(Format::kQ6_K);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("matmul_q6_k.bin"), absl::string_view::npos)
      << m.status();
}

}  // namespace
}  // namespace fk
