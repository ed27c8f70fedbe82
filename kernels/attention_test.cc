// Every attention kernel against the scalar reference, bit for bit, and the reference
// against an independent double-precision softmax attention.
#include "kernels/attention.h"

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu_features.h"

namespace fk {
namespace {

struct Case {
  int64_t head_dim, stride, lo, hi;
  float scale;
};

// head_dim: 1 (no 8-lane part), 7, 8, 20 (one vector + tail), 64 (one 64-column block),
// 72, 256 (Gemma 3), 200 (blocks + vectors + tail); runs of 1 .. 300 positions, with lo > 0
// (a sliding window) and lengths not a multiple of 4.
const Case kCases[] = {
    {1, 3, 0, 0, 1.0f},        {7, 7, 0, 5, 0.5f},       {8, 24, 0, 3, 0.35f},
    {20, 40, 2, 9, 0.2f},      {64, 192, 0, 0, 0.125f},  {64, 192, 0, 130, 0.125f},
    {64, 64, 17, 212, 0.125f}, {72, 144, 0, 33, 0.118f}, {256, 256, 0, 299, 0.0625f},
    {200, 400, 5, 66, 0.07f},
};

struct Data {
  std::vector<float> q, k, v;
};

Data MakeData(const Case& c, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.5f);
  Data d;
  d.q.resize(c.head_dim);
  d.k.resize((c.hi + 1) * c.stride);
  d.v.resize(d.k.size());
  for (float& x : d.q) x = dist(rng);
  for (float& x : d.k) x = dist(rng);
  for (float& x : d.v) x = dist(rng);
  return d;
}

std::vector<float> RunRow(AttentionFn fn, const Case& c, const Data& d) {
  std::vector<float> scores(c.hi + 1, NAN), out(c.head_dim, NAN);
  AttentionRow r;
  r.q = d.q.data();
  r.k = d.k.data();
  r.v = d.v.data();
  r.stride = c.stride;
  r.head_dim = c.head_dim;
  r.lo = c.lo;
  r.hi = c.hi;
  r.scale = c.scale;
  r.scores = scores.data();
  r.out = out.data();
  fn(r);
  return out;
}

std::string Name(const Case& c) {
  return "head_dim " + std::to_string(c.head_dim) + ", positions " + std::to_string(c.lo) +
         ".." + std::to_string(c.hi);
}

TEST(AttentionTest, ReferenceMatchesDoublePrecisionSoftmax) {
  for (const Case& c : kCases) {
    const Data d = MakeData(c, 7);
    const std::vector<float> out = RunRow(&attention_row_ref, c, d);
    std::vector<double> s;
    double mx = -INFINITY;
    for (int64_t j = c.lo; j <= c.hi; ++j) {
      double dot = 0;
      for (int64_t i = 0; i < c.head_dim; ++i)
        dot += static_cast<double>(d.q[i]) * d.k[j * c.stride + i];
      s.push_back(dot * c.scale);
      mx = std::max(mx, s.back());
    }
    double sum = 0;
    for (double& x : s) sum += (x = std::exp(x - mx));
    for (int64_t i = 0; i < c.head_dim; ++i) {
      double want = 0, mag = 0;
      for (int64_t j = c.lo; j <= c.hi; ++j) {
        const double term = s[j - c.lo] / sum * d.v[j * c.stride + i];
        want += term;
        mag += std::fabs(term);
      }
      // float rounding of scores (relative ~1e-6 of |dot| <= ~|q||k|) moves the weights;
      // bound the error by a small multiple of the magnitude of the terms.
      EXPECT_NEAR(out[i], want, 2e-4 * mag + 1e-6) << Name(c) << ", column " << i;
    }
  }
}

TEST(AttentionTest, EveryKernelIsBitIdenticalToTheReference) {
  for (const AttentionKernel& a : all_attention_kernels()) {
    SCOPED_TRACE(a.name);
    if (!cpu_has(a.features)) {
      std::printf("[ SKIPPED  ] %s: this CPU lacks %s\n", a.name,
                  missing_cpu_features(a.features).c_str());
      continue;
    }
    for (const Case& c : kCases) {
      for (uint32_t seed : {1u, 2u, 3u}) {
        const Data d = MakeData(c, seed);
        const std::vector<float> want = RunRow(&attention_row_ref, c, d);
        const std::vector<float> got = RunRow(a.fn, c, d);
        ASSERT_EQ(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)), 0)
            << Name(c) << ", seed " << seed;
      }
    }
  }
}

// Scores far apart (one position dominates; exp underflows to 0 for the rest) and equal
// scores (uniform weights).
TEST(AttentionTest, ExtremeScoresAreBitIdenticalToo) {
  const Case c = {64, 64, 0, 40, 1.0f};
  Data d = MakeData(c, 5);
  for (int64_t i = 0; i < c.head_dim; ++i) d.k[9 * c.stride + i] = 30.0f * d.q[i];
  Data flat = MakeData(c, 6);
  for (float& x : flat.k) x = 0.0f;
  for (const AttentionKernel& a : all_attention_kernels()) {
    if (!cpu_has(a.features)) continue;
    for (const Data* data : {&d, &flat}) {
      const std::vector<float> want = RunRow(&attention_row_ref, c, *data);
      const std::vector<float> got = RunRow(a.fn, c, *data);
      ASSERT_EQ(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)), 0) << a.name;
    }
  }
  // One dominant position: the output is its value row.
  const std::vector<float> out = RunRow(&attention_row_ref, c, d);
  for (int64_t i = 0; i < c.head_dim; ++i) EXPECT_FLOAT_EQ(out[i], d.v[9 * c.stride + i]);
}

TEST(AttentionTest, SelectionFollowsTheVariantAndTheCpu) {
  EXPECT_EQ(select_attention(Variant::kScalar).variant, Variant::kScalar);
  const AttentionKernel& best = select_attention();
  EXPECT_TRUE(cpu_has(best.features));
  for (const AttentionKernel& a : all_attention_kernels()) {
    if (cpu_has(a.features)) {
      EXPECT_GE(best.variant, a.variant) << a.name;
    }
  }
  // avx512_vnni has no attention kernel of its own: it runs avx512's where the CPU can.
  const AttentionKernel& vnni = select_attention(Variant::kAvx512Vnni);
  EXPECT_LE(vnni.variant, Variant::kAvx512);
  EXPECT_EQ(vnni.variant, best.variant);
  // A CPU without AVX2 gets the reference.
  const uint32_t saved = disabled_cpu_features();
  set_disabled_cpu_features_for_testing(kCpuAvx2);
  EXPECT_EQ(select_attention().variant, Variant::kScalar);
  EXPECT_EQ(select_attention(Variant::kAvx512).variant, Variant::kScalar);
  set_disabled_cpu_features_for_testing(saved);
}

}  // namespace
}  // namespace fk
