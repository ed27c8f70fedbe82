// Every attention kernel against the scalar reference, bit for bit, and the reference
// against an independent double-precision softmax attention.
#include "kernels/attention.h"

#include <algorithm>
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

// attention_exp against the C library's double exp, rounded to float: the correctly rounded
// value but for arguments within ~1e-14 of a rounding boundary (none expected among 2^21
// samples); the special values by hand.
TEST(AttentionExpTest, CorrectlyRoundedOverTheFloatRange) {
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> wide(-110.0f, 90.0f), near0(-1.0f, 1.0f);
  int64_t checked = 0, off = 0;
  for (int i = 0; i < (1 << 21); ++i) {
    const float x = i % 2 ? wide(rng) : near0(rng);
    const float want = static_cast<float>(std::exp(static_cast<double>(x)));
    const float got = attention_exp(x);
    ++checked;
    if (got != want) {
      ++off;
      // Never more than one float step away.
      EXPECT_EQ(std::nextafter(want, got), got) << x;
    }
  }
  EXPECT_EQ(off, 0) << "of " << checked;
  EXPECT_EQ(attention_exp(0.0f), 1.0f);
  EXPECT_EQ(attention_exp(-0.0f), 1.0f);
  EXPECT_EQ(attention_exp(1.0f), 2.71828182845904523536f);
  EXPECT_EQ(attention_exp(-INFINITY), 0.0f);
  EXPECT_EQ(attention_exp(-104.0f), 0.0f);  // below half the smallest subnormal
  EXPECT_EQ(attention_exp(-103.0f), static_cast<float>(std::exp(-103.0)));  // subnormal
  EXPECT_GT(attention_exp(-103.0f), 0.0f);
  EXPECT_EQ(attention_exp(88.0f), static_cast<float>(std::exp(88.0)));
  EXPECT_EQ(attention_exp(89.0f), INFINITY);
  EXPECT_EQ(attention_exp(INFINITY), INFINITY);
  EXPECT_TRUE(std::isnan(attention_exp(NAN)));
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

// Blocks of consecutive rows (a prompt's) against the reference row by row, bit for bit:
// row counts that are and are not multiples of the kernels' 4-row blocks, with and without a
// sliding window (windows shorter than the block, so some blocks share no position), head
// dims with and without 8-lane tails and 16-column remainders, blocks starting at 0 and
// further on.
TEST(AttentionTest, BlocksOfRowsAreTheRowsBitForBit) {
  struct BlockCase {
    int64_t head_dim, rows, hi0, window, pos_step = 1;
  };
  const BlockCase cases[] = {
      {64, 1, 0, 0},   {64, 4, 0, 0},    {64, 13, 0, 0},  {64, 128, 0, 0}, {64, 9, 50, 0},
      {64, 37, 3, 8},  {64, 12, 20, 2},  {64, 8, 0, 1},   {7, 11, 0, 0},   {20, 10, 5, 0},
      {72, 9, 30, 16}, {256, 16, 0, 0},  {256, 6, 40, 3}, {200, 7, 12, 0}, {1, 5, 0, 0},
      {48, 21, 0, 5},
      // The query heads of one token sharing a key / value head (pos_step 0).
      {64, 8, 100, 0, 0}, {64, 3, 40, 0, 0},  {64, 4, 0, 0, 0},  {64, 8, 70, 16, 0},
      {128, 5, 33, 0, 0},
  };
  for (const AttentionKernel& a : all_attention_kernels()) {
    SCOPED_TRACE(a.name);
    if (!cpu_has(a.features)) {
      std::printf("[ SKIPPED  ] %s: this CPU lacks %s\n", a.name,
                  missing_cpu_features(a.features).c_str());
      continue;
    }
    for (const BlockCase& c : cases) {
      SCOPED_TRACE(::testing::Message() << "head_dim " << c.head_dim << " rows " << c.rows
                                        << " hi0 " << c.hi0 << " window " << c.window
                                        << " pos_step " << c.pos_step);
      const int64_t positions = c.hi0 + c.rows;
      const int64_t stride = c.head_dim + 3, q_stride = 2 * c.head_dim + 1;
      std::mt19937 rng(static_cast<uint32_t>(c.head_dim * 1000 + c.rows));
      std::normal_distribution<float> dist(0.0f, 1.5f);
      std::vector<float> q(static_cast<size_t>(c.rows * q_stride)), k(positions * stride),
          v(positions * stride);
      for (float& x : q) x = dist(rng);
      for (float& x : k) x = dist(rng);
      for (float& x : v) x = dist(rng);
      if (c.rows % 3 == 0) {  // scores far apart: exps from 1 down to underflow
        for (int64_t j = 0; j < positions; ++j)
          for (int64_t i = 0; i < c.head_dim; ++i) k[j * stride + i] *= 1.0f + 4.0f * (j % 5);
      }
      AttentionRows block;
      block.q = q.data();
      block.q_stride = q_stride;
      block.k = k.data();
      block.v = v.data();
      block.stride = stride;
      block.head_dim = c.head_dim;
      block.rows = c.rows;
      block.hi0 = c.hi0;
      block.pos_step = c.pos_step;
      block.window = c.window;
      block.scale = 0.125f;
      block.out_stride = c.head_dim + 5;
      std::vector<float> got(static_cast<size_t>(c.rows * block.out_stride), NAN);
      std::vector<float> scratch(static_cast<size_t>(kAttentionScratchRows * positions), NAN);
      block.out = got.data();
      block.scores = scratch.data();
      block.scores_stride = positions;
      a.rows_fn(block);
      for (int64_t r = 0; r < c.rows; ++r) {
        // The reference on row r alone, positions from the block's rule.
        const int64_t hi = c.hi0 + r * c.pos_step;
        const int64_t lo = c.window > 0 ? std::max<int64_t>(0, hi - c.window + 1) : 0;
        std::vector<float> scores(static_cast<size_t>(positions), NAN);
        std::vector<float> want(static_cast<size_t>(c.head_dim), NAN);
        AttentionRow row;
        row.q = q.data() + r * q_stride;
        row.k = k.data();
        row.v = v.data();
        row.stride = stride;
        row.head_dim = c.head_dim;
        row.lo = lo;
        row.hi = hi;
        row.scale = 0.125f;
        row.scores = scores.data();
        row.out = want.data();
        attention_row_ref(row);
        ASSERT_EQ(std::memcmp(want.data(), got.data() + r * block.out_stride,
                              want.size() * sizeof(float)),
                  0)
            << "row " << r << " (positions " << lo << ".." << hi << ")";
        // Nothing written between rows.
        for (int64_t i = c.head_dim; i < block.out_stride; ++i)
          ASSERT_TRUE(std::isnan(got[r * block.out_stride + i])) << "row " << r << " col " << i;
      }
    }
  }
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
