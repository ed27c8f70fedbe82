// gate_exp against the C library's double exp, the gated reference against double-precision
// SiLU / GELU-tanh, and every gated kernel against the reference, bit for bit.
#include "kernels/activation.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu_features.h"

namespace fk {
namespace {

uint32_t Bits(float x) {
  uint32_t b;
  std::memcpy(&b, &x, sizeof b);
  return b;
}

float FromBits(uint32_t b) {
  float x;
  std::memcpy(&x, &b, sizeof x);
  return x;
}

// Max relative error of gate_exp against e^x (in double) over an even sweep of [-87, 88]
// (2^24 points) and random points near 0; also in ulps of the correctly rounded float.
TEST(GateExpTest, WithinFourUlpOfExp) {
  double max_rel = 0, max_rel_x = 0;
  uint32_t max_ulp = 0;
  const auto check = [&](float x) {
    const double want = std::exp(static_cast<double>(x));
    const float got = gate_exp(x);
    const double rel = std::fabs(got - want) / want;
    if (rel > max_rel) {
      max_rel = rel;
      max_rel_x = x;
    }
    const uint32_t a = Bits(got), b = Bits(static_cast<float>(want));  // both positive
    max_ulp = std::max(max_ulp, a > b ? a - b : b - a);
  };
  constexpr int kSteps = 1 << 24;
  for (int i = 0; i <= kSteps; ++i) check(-87.0f + 175.0f * static_cast<float>(i) / kSteps);
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> near0(-1.0f, 1.0f);
  for (int i = 0; i < (1 << 20); ++i) check(near0(rng) * (i % 2 ? 1.0f : 1e-3f));
  std::printf("gate_exp: max relative error %.3g (%.3f * 2^-23) at x = %.9g; max %u ulp from "
              "the correctly rounded float\n",
              max_rel, max_rel / 0x1p-23, max_rel_x, max_ulp);
  EXPECT_LT(max_rel, 4 * 0x1p-23);
  EXPECT_LE(max_ulp, 4u);
}

TEST(GateExpTest, SpecialValues) {
  EXPECT_EQ(gate_exp(0.0f), 1.0f);
  EXPECT_EQ(gate_exp(-0.0f), 1.0f);
  EXPECT_TRUE(std::isnan(gate_exp(NAN)));
  EXPECT_TRUE(std::isnan(gate_exp(-NAN)));
  // Beyond the clamp: the clamp bound's value, a normal float (never 0, inf or subnormal).
  const float lo = gate_exp(kGateExpMin), hi = gate_exp(kGateExpMax);
  EXPECT_TRUE(std::isnormal(lo)) << lo;
  EXPECT_TRUE(std::isnormal(hi)) << hi;
  EXPECT_NEAR(lo / std::exp(static_cast<double>(kGateExpMin)), 1.0, 4 * 0x1p-23);
  EXPECT_NEAR(hi / std::exp(static_cast<double>(kGateExpMax)), 1.0, 4 * 0x1p-23);
  for (float x : {-87.31f, -88.0f, -104.0f, -1e30f, -FLT_MAX, -INFINITY}) {
    EXPECT_EQ(gate_exp(x), lo) << x;
  }
  for (float x : {88.31f, 88.7f, 89.0f, 1e30f, FLT_MAX, INFINITY}) EXPECT_EQ(gate_exp(x), hi) << x;
  // Subnormal arguments: e^x rounds to 1.
  EXPECT_EQ(gate_exp(1e-40f), 1.0f);
  EXPECT_EQ(gate_exp(-1e-40f), 1.0f);
  EXPECT_EQ(gate_exp(1.0f), static_cast<float>(std::exp(1.0)));
}

// SiLU and GELU-tanh against double precision: 0.5 g (1 + tanh(u)) with the exact
// sqrt(2 / pi) (the logistic form where 1 + tanh(u) would cancel). GELU's float argument
// carries a few roundings of its constants and products, an absolute error of a few 1e-7 of
// |2u| that exp turns into a relative one; the tolerance grows with |2u| accordingly.
TEST(GatedTest, ReferenceMatchesDoublePrecision) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> ups(-2.0f, 2.0f);
  std::vector<float> g, up;
  for (int i = 0; i <= 200000; ++i) {
    g.push_back(-80.0f + 160.0f * static_cast<float>(i) / 200000);
    up.push_back(ups(rng));
  }
  for (GateKind kind : {GateKind::kSilu, GateKind::kGeluTanh}) {
    std::vector<float> out = g;
    gated_ref(kind, out.data(), up.data(), static_cast<int64_t>(out.size()));
    double worst = 0;  // error / tolerance
    for (size_t i = 0; i < g.size(); ++i) {
      const double x = g[i];
      double want, arg;
      if (kind == GateKind::kSilu) {
        arg = x;
        want = x / (1.0 + std::exp(-x)) * up[i];
      } else {
        const double u = std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x);
        arg = 2 * u;
        if (arg < -87.0) continue;  // past the clamp: gate_exp(-arg) is not e^-arg there
        want = (u > -5.0 ? 0.5 * x * (1.0 + std::tanh(u)) : x / (1.0 + std::exp(-2 * u))) * up[i];
      }
      const double tol = (1e-6 + 6e-7 * std::fabs(arg)) * std::fabs(want) + 1e-37;
      const double err = std::fabs(out[i] - want);
      worst = std::max(worst, err / tol);
      ASSERT_LE(err, tol) << (kind == GateKind::kSilu ? "silu" : "gelu_tanh") << " g = " << g[i]
                          << " up = " << up[i] << ": " << out[i] << " vs " << want;
    }
    std::printf("%s: worst error %.3f of the tolerance\n",
                kind == GateKind::kSilu ? "silu" : "gelu_tanh", worst);
  }
  // GELU's large arguments: g for g >> 0, -0 (or a tiny negative) for g << 0.
  float big[2] = {20.0f, -20.0f};
  const float one[2] = {1.0f, 1.0f};
  gated_ref(GateKind::kGeluTanh, big, one, 2);
  EXPECT_EQ(big[0], 20.0f);
  EXPECT_LE(std::fabs(big[1]), 1e-36f);
}

// ---- every kernel against the reference, bit for bit ---------------------------------------

class GatedKernelTest : public ::testing::TestWithParam<GatedKernel> {
 protected:
  void SetUp() override {
    if (!cpu_has(GetParam().features)) {
      GTEST_SKIP() << GetParam().name << ": this CPU lacks "
                   << missing_cpu_features(GetParam().features);
    }
  }

  // gate[0 .. n) through the kernel and the reference, at `offset` floats into buffers
  // guarded by sentinels on both sides; every output bit equal, no sentinel touched.
  void ExpectSame(GateKind kind, const std::vector<float>& gate, const std::vector<float>& up,
                  int offset, const std::string& what) {
    const int64_t n = static_cast<int64_t>(gate.size());
    constexpr int kGuard = 20;
    const float sentinel = FromBits(0x7FC01234u);  // a NaN with a payload
    std::vector<float> want(gate), got(n + offset + 2 * kGuard, sentinel);
    std::vector<float> up_buf(n + offset + kGuard, 0.0f);
    std::copy(gate.begin(), gate.end(), got.begin() + kGuard + offset);
    std::copy(up.begin(), up.end(), up_buf.begin() + offset);
    gated_ref(kind, want.data(), up.data(), n);
    GetParam().fn(kind, got.data() + kGuard + offset, up_buf.data() + offset, n);
    const char* kind_name = kind == GateKind::kSilu ? "silu" : "gelu_tanh";
    for (int64_t i = 0; i < n; ++i) {
      if (std::isnan(gate[i]) && std::isnan(up[i])) {  // which payload: see activation.h
        ASSERT_TRUE(std::isnan(got[kGuard + offset + i])) << what << ", element " << i;
        ASSERT_TRUE(std::isnan(want[i])) << what << ", element " << i;
        continue;
      }
      ASSERT_EQ(Bits(got[kGuard + offset + i]), Bits(want[i]))
          << what << ", " << kind_name << ", n " << n << ", offset " << offset << ", element "
          << i << ": gate " << gate[i] << " up " << up[i] << " -> " << got[kGuard + offset + i]
          << ", reference " << want[i];
    }
    for (int64_t i = 0; i < kGuard + offset; ++i) ASSERT_EQ(Bits(got[i]), Bits(sentinel)) << i;
    for (int64_t i = kGuard + offset + n; i < static_cast<int64_t>(got.size()); ++i) {
      ASSERT_EQ(Bits(got[i]), Bits(sentinel)) << what << ", n " << n << ": wrote past the end";
    }
  }
};

// Every n from 0 to 40 (every tail of 8 and 16 lanes, one and two vectors per iteration),
// 1000, and a SmolLM2 FFN row (1536); unaligned starts; gates around 0 (both branches of
// the exp's range reduction), wide (the clamp), and the clamp's neighbourhood.
TEST_P(GatedKernelTest, RandomInputsAreBitIdenticalToTheReference) {
  std::vector<int64_t> sizes;
  for (int64_t n = 0; n <= 40; ++n) sizes.push_back(n);
  sizes.push_back(1000);
  sizes.push_back(1536);
  std::mt19937 rng(17);
  std::normal_distribution<float> narrow(0.0f, 2.0f), wide(0.0f, 30.0f), ups(0.0f, 1.0f);
  std::uniform_real_distribution<float> edge(86.0f, 90.0f);
  for (int64_t n : sizes) {
    std::vector<float> gate(n), up(n);
    for (int64_t i = 0; i < n; ++i) {
      switch (i % 4) {
        case 0: gate[i] = narrow(rng); break;
        case 1: gate[i] = wide(rng); break;
        case 2: gate[i] = (rng() & 1 ? 1.0f : -1.0f) * edge(rng); break;
        default: gate[i] = narrow(rng) * 0.01f; break;
      }
      up[i] = ups(rng);
    }
    std::shuffle(gate.begin(), gate.end(), rng);
    for (GateKind kind : {GateKind::kSilu, GateKind::kGeluTanh}) {
      for (int offset : {0, 1, 3}) ExpectSame(kind, gate, up, offset, "random");
    }
  }
}

// Zeros, subnormals, the clamp's bounds and beyond, the largest floats, infinities and NaN as
// gates, against ups of the same kinds, every pair, in several arrangements (so each value
// meets every lane and the masked tail).
TEST_P(GatedKernelTest, SpecialValuesAreBitIdenticalToTheReference) {
  const float kDenormMin = std::numeric_limits<float>::denorm_min();
  const std::vector<float> gates = {
      0.0f,     -0.0f,      kDenormMin,  -kDenormMin, 1e-40f,   -1e-40f,  FLT_MIN,  -FLT_MIN,
      1e-20f,   -1e-20f,    1.0f,        -1.0f,       9.5f,     -9.5f,    10.5f,    -10.5f,
      87.3f,    -87.3f,     88.3f,       -88.3f,      88.7f,    -88.7f,   89.0f,    -89.0f,
      100.0f,   -100.0f,    1e20f,       -1e20f,      FLT_MAX,  -FLT_MAX, INFINITY, -INFINITY,
      NAN,      -NAN,       FromBits(0x7FA00001u) /* signalling NaN */};
  const std::vector<float> ups = {1.0f,     -1.0f,   0.0f,     -0.0f,     kDenormMin,
                                  1e-20f,   1e-38f,  1e30f,    -FLT_MAX,  INFINITY,
                                  -INFINITY, NAN};
  std::vector<float> gate, up;
  for (float g : gates) {
    for (float u : ups) {
      gate.push_back(g);
      up.push_back(u);
    }
  }
  std::mt19937 rng(23);
  for (int arrangement = 0; arrangement < 8; ++arrangement) {
    for (GateKind kind : {GateKind::kSilu, GateKind::kGeluTanh}) {
      ExpectSame(kind, gate, up, arrangement % 3, "special values");
      // The first 13 alone: every value in the masked tail of one vector.
      ExpectSame(kind, std::vector<float>(gate.begin(), gate.begin() + 13),
                 std::vector<float>(up.begin(), up.begin() + 13), 0, "special values (tail)");
    }
    std::vector<size_t> order(gate.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::shuffle(order.begin(), order.end(), rng);
    std::vector<float> g2(gate.size()), u2(up.size());
    for (size_t i = 0; i < order.size(); ++i) {
      g2[i] = gate[order[i]];
      u2[i] = up[order[i]];
    }
    gate.swap(g2);
    up.swap(u2);
  }
}

// Outputs that come out subnormal: tiny gates times tiny ups, and gates past the clamp on the
// negative side (g / e^|g|).
TEST_P(GatedKernelTest, SubnormalResultsAreBitIdenticalToTheReference) {
  std::mt19937 rng(29);
  std::uniform_real_distribution<float> tiny(-1e-19f, 1e-19f), neg(-95.0f, -60.0f),
      small_up(-1e-3f, 1e-3f);
  std::vector<float> gate(777), up(777);
  for (size_t i = 0; i < gate.size(); ++i) {
    gate[i] = i % 2 ? tiny(rng) : neg(rng);
    up[i] = i % 2 ? tiny(rng) : small_up(rng);
  }
  for (GateKind kind : {GateKind::kSilu, GateKind::kGeluTanh}) {
    std::vector<float> out = gate;
    gated_ref(kind, out.data(), up.data(), static_cast<int64_t>(out.size()));
    int subnormal = 0;
    for (float x : out) subnormal += std::fpclassify(x) == FP_SUBNORMAL;
    EXPECT_GT(subnormal, 100);  // the case is really exercised
    ExpectSame(kind, gate, up, 0, "subnormal results");
  }
}

INSTANTIATE_TEST_SUITE_P(Kernels, GatedKernelTest, ::testing::ValuesIn(all_gated_kernels()),
                         [](const ::testing::TestParamInfo<GatedKernel>& info) {
                           return std::string(info.param.name);
                         });

TEST(GatedTest, KernelsAreNamedAfterTheirVariant) {
  const auto kernels = all_gated_kernels();
  ASSERT_EQ(kernels.size(), 3u);
  EXPECT_EQ(kernels[0].fn, &gated_ref);
  EXPECT_STREQ(kernels[0].name, "gated__scalar");
  EXPECT_STREQ(kernels[1].name, "gated__avx2");
  EXPECT_STREQ(kernels[2].name, "gated__avx512");
  EXPECT_EQ(kernels[0].variant, Variant::kScalar);
  EXPECT_EQ(kernels[1].variant, Variant::kAvx2);
  EXPECT_EQ(kernels[2].variant, Variant::kAvx512);
}

TEST(GatedTest, SelectionFollowsTheVariantAndTheCpu) {
  EXPECT_EQ(select_gated(Variant::kScalar).variant, Variant::kScalar);
  const GatedKernel& best = select_gated();
  EXPECT_TRUE(cpu_has(best.features));
  for (const GatedKernel& g : all_gated_kernels()) {
    if (cpu_has(g.features)) {
      EXPECT_GE(best.variant, g.variant) << g.name;
    }
  }
  // avx512_vnni has no gated kernel of its own: it runs avx512's where the CPU can.
  const GatedKernel& vnni = select_gated(Variant::kAvx512Vnni);
  EXPECT_LE(vnni.variant, Variant::kAvx512);
  EXPECT_EQ(vnni.variant, best.variant);
  // A CPU without AVX-512 gets avx2 (where it has AVX2), one without AVX2 the reference.
  const uint32_t saved = disabled_cpu_features();
  set_disabled_cpu_features_for_testing(kCpuAvx512F);
  EXPECT_EQ(select_gated(Variant::kAvx512).variant,
            cpu_has(kFeaturesAvx2) ? Variant::kAvx2 : Variant::kScalar);
  set_disabled_cpu_features_for_testing(kCpuAvx2);
  EXPECT_EQ(select_gated().variant, Variant::kScalar);
  EXPECT_EQ(select_gated(Variant::kAvx512).variant, Variant::kScalar);
  set_disabled_cpu_features_for_testing(saved);
}

}  // namespace
}  // namespace fk
