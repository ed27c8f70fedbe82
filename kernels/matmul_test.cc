// Correctness gates for the fused kernels and for dispatch:
//   * every registry entry against the golden matmul cases of its format (float64 oracle),
//     with tolerances tight enough that a kernel writing zeros, the kernel of another
//     format, or a kernel dropping one block fails (checked, not assumed),
//   * every activation packer against the reference quantizer, bit for bit,
//   * every non-scalar entry against the scalar entry of the same format and path on random
//     shapes, unaligned pointers and extreme-but-finite inputs,
//   * bit-identical output for 1, 2, 3 and 7 threads,
//   (rows with a MIN_M, kernels for batches only, run on every such shape with m >= MIN_M),
//   * dispatch's errors, selection rules, fallbacks on a CPU without some features (faked
//     by masking features), the thread pool, and the registry's invariants.
// Entries this CPU cannot run are skipped with the missing features named.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <ostream>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/cpu_features.h"
#include "kernels/golden_reader.h"
#include "kernels/matmul.h"
#include "kernels/registry.h"
#include "kernels/thread_pool.h"
#include "kernels/weight_format.h"

namespace fk {
namespace {

using ::testing::HasSubstr;

constexpr double kEps = std::numeric_limits<float>::epsilon();  // 2^-23 = 2 u

#define SKIP_IF_NOT_RUNNABLE(e)                                                       \
  if (!kernel_runnable(e))                                                            \
  GTEST_SKIP() << (e).name << " needs " << missing_cpu_features((e).features) \
               << " (CPU lacks them)"

// ---- Error bounds -------------------------------------------------------------------------
//
// u = kEps / 2 is the float unit roundoff. For an output sum_e x_e w_e, S is the sum of the
// terms' magnitudes, widened per block:
//   S = sum_e |x_e| * (|w_e| + 2 * max|w| over e's block).
// The 2 max|w| covers kernels that form w = d * q + m (or d*sc*q - dmin*m) with one fused
// multiply-add or in a different order than the reference: each part is at most about the
// block's largest |w|, so rounding them costs u (|w| + 2 max|w|) per element instead of u |w|.
//
// f32 path. Kernels sum in float along some tree (16 or 8 lanes, per-block partial sums,
// a final reduction); every addition rounds once, by at most u times its partial sum. The
// worst case grows linearly with the tree's depth (about k / 16 + block), but the roundings
// of distinct additions are independent and of either sign, so their total behaves like a
// random walk of about sqrt(k) steps: we allow
//   tol_f32 = kEps * sqrt(k) * S   (= 2 u sqrt(k) S),
// 10-20 times tighter than the worst case for k >= 32. Over all golden cases and kernels the
// largest error seen is 0.06 of it; the inputs are fixed seeds, so the test is deterministic.
//
// int8 path. The activations are quantized (Q8_0 / Q8_K, the reference quantizer): that
// error is known exactly, |sum (x - xq) w| <= sum |x - xq| |w| (the activation quantization
// step). The integer dots are exact; what remains is the float scaling: one rounded term
// per block plus its accumulation (depth 2 * blocks + 64, bounded linearly: it is small
// next to the quantization term), and the golden dequantized weights' own two roundings
// (gguf-py forms d * q + m in two steps).
double magnitude(const float* x, const float* w, int64_t k, int64_t block) {
  double s = 0.0;
  for (int64_t b0 = 0; b0 < k; b0 += block) {
    const int64_t end = std::min(k, b0 + block);
    double mx = 0.0;
    for (int64_t e = b0; e < end; ++e) mx = std::max(mx, std::fabs(static_cast<double>(w[e])));
    for (int64_t e = b0; e < end; ++e)
      s += std::fabs(static_cast<double>(x[e])) * (std::fabs(static_cast<double>(w[e])) + 2 * mx);
  }
  return s;
}

double f32_tolerance(const float* x, const float* w, int64_t k, int64_t block) {
  return kEps * std::sqrt(static_cast<double>(k)) * magnitude(x, w, k, block);
}
int64_t int8_depth(int64_t k, int64_t block) { return 2 * (k / block) + 64; }

// The exact activation quantization error bound sum |x - xq| |w|.
double quantization_error(const float* x, const float* xq, const float* w, int64_t k) {
  double s = 0.0;
  for (int64_t t = 0; t < k; ++t) s += std::fabs(double{x[t]} - xq[t]) * std::fabs(double{w[t]});
  return s;
}

// The activations a path sees: each row quantized by the reference quantizer of `act`
// (int8 path: the weights' act_format, Q8_0 / Q8_K; bf16 path: BF16) and dequantized back.
std::vector<float> view_of_input(Format act_fmt, const float* x, int64_t m, int64_t k) {
  const FormatTraits& act = traits(act_fmt);
  const int64_t rb = k / act.block_elems * act.block_bytes;
  std::vector<uint8_t> q(static_cast<size_t>(rb));
  std::vector<float> out(static_cast<size_t>(m * k));
  for (int64_t i = 0; i < m; ++i) {
    act.quantize_row(x + i * k, q.data(), k);
    act.dequantize_row(q.data(), out.data() + i * k, k);
  }
  return out;
}

std::vector<float> int8_view_of_input(Format weights, const float* x, int64_t m, int64_t k) {
  return view_of_input(act_format(weights), x, m, k);
}

// bf16 path. The activations are rounded to bf16: that error is known exactly, as on the
// int8 path. Products of two bf16 values are exact in float and summed in float as on the
// f32 path (tol_f32 on the rounded activations). vdpbf16ps also reads bf16 subnormals as 0
// and flushes subnormal results: each element's share of that is below 2^-126 (1 + |w|).
double bf16_flush_bound(const float* w, int64_t k) {
  double s = 0.0;
  for (int64_t t = 0; t < k; ++t) s += 0x1p-126 * (1.0 + std::fabs(double{w[t]}));
  return s;
}

// f16 path (kernel_api.h). The activations, scaled by 2^e and rounded to fp16, are known
// exactly (the reference packer's rows, read back), and so is that error, as on the int8
// path. Each fused multiply-add of an fp16 chain rounds once, by at most half an ulp of its
// result: 2^-11 of it, or 2^-25 (half the subnormal spacing) in scaled units. Adding up
// those worst cases, chains of 16 steps would be allowed 30-40 times the errors seen, and a
// kernel dropping 32 elements at k = 4096 would pass. Roundings of distinct additions are
// independent and of either sign, so we allow 8 times the root-sum-square of the per-step
// bounds (Hoeffding's inequality: exceeded with probability below 2 exp(-8^2 / 2) = 2.5e-14
// for independent zero-mean errors; the probabilistic rounding error analysis of Higham and
// Mary, SIAM J. Sci. Comput. 2019). Each step's bound is taken from the exact partial sum plus
// the worst-case error so far. The chains then add in f32 (tol_f32 on the rounded
// activations); an output that overflowed fp16 is the f32 path's sum of x, inside the same.
constexpr double kF16Sigmas = 8.0;

// The 2^-e of the f16 path's packed row for x[0..k) (act_f16_ref's first four bytes).
float f16_row_unscale(const float* x, int64_t k) {
  std::vector<uint8_t> packed(static_cast<size_t>(act_f16_ref.row_bytes(k)));
  act_f16_ref.pack_row(x, k, packed.data());
  float unscale;
  std::memcpy(&unscale, packed.data(), sizeof unscale);
  return unscale;
}

double f16_chain_bound(const float* xh, float unscale, const float* w, int64_t k) {
  const double floor = 0x1p-25 * unscale;
  const int64_t steps = (k + kF16PathLanes - 1) / kF16PathLanes;
  double sum_sq = 0.0;
  for (int64_t c0 = 0; c0 < steps; c0 += kF16PathChainSteps) {
    for (int l = 0; l < kF16PathLanes; ++l) {
      double s = 0.0, worst = 0.0;
      for (int64_t st = c0; st < std::min(steps, c0 + kF16PathChainSteps); ++st) {
        const int64_t t = st * kF16PathLanes + l;
        if (t >= k) break;
        s += double{w[t]} * xh[t];  // exact: two fp16 values (times 2^-e)
        const double b = 0x1p-11 * (std::fabs(s) + worst) + floor;
        worst += b;
        sum_sq += b * b;
      }
    }
  }
  return kF16Sigmas * std::sqrt(sum_sq);
}

// unscale: the row's 2^-e (f16_row_unscale).
double f16_path_tolerance(const float* x, const float* xh, float unscale, const float* w,
                          int64_t k, int64_t block) {
  return quantization_error(x, xh, w, k) + f16_chain_bound(xh, unscale, w, k) +
         f32_tolerance(xh, w, k, block);
}

// The view of the input the entry's path sees (empty on the f32 path).
std::vector<float> path_view_of_input(const KernelEntry& e, const float* x, int64_t m,
                                      int64_t k) {
  if (e.path == Path::kInt8) return int8_view_of_input(e.format, x, m, k);
  if (e.path == Path::kBf16) return view_of_input(Format::kBF16, x, m, k);
  if (e.path == Path::kF16) {
    std::vector<uint8_t> packed(static_cast<size_t>(act_f16_ref.row_bytes(k)));
    std::vector<float> out(static_cast<size_t>(m * k));
    for (int64_t i = 0; i < m; ++i) {
      act_f16_ref.pack_row(x + i * k, k, packed.data());
      act_f16_ref.unpack_row(packed.data(), k, out.data() + i * k);
    }
    return out;
  }
  return {};
}

std::vector<size_t> all_entries() {
  std::vector<size_t> out(all_kernels().size());
  for (size_t i = 0; i < out.size(); ++i) out[i] = i;
  return out;
}

std::string entry_name(const ::testing::TestParamInfo<size_t>& info) {
  return all_kernels()[info.param].name;
}

// ---- Golden cases ---------------------------------------------------------------------------

const std::vector<GoldenMatmulCase>* golden_cases(Format f, std::string* error) {
  static std::map<Format, absl::StatusOr<std::vector<GoldenMatmulCase>>> cache;
  auto it = cache.find(f);
  if (it == cache.end()) it = cache.emplace(f, read_golden_matmul(f)).first;
  if (!it->second.ok()) {
    *error = std::string(it->second.status().message());
    return nullptr;
  }
  return &*it->second;
}

struct GoldenParam {
  size_t entry;
  int golden_case;  // -1: the format's golden file could not be read
};

// Every (entry, golden case of its format) with m >= the entry's MIN_M.
std::vector<GoldenParam> golden_params() {
  std::vector<GoldenParam> out;
  const auto entries = all_kernels();
  for (size_t i = 0; i < entries.size(); ++i) {
    std::string error;
    const std::vector<GoldenMatmulCase>* cases = golden_cases(entries[i].format, &error);
    if (cases == nullptr || cases->empty()) {
      out.push_back({i, -1});
      continue;
    }
    const size_t before = out.size();
    for (size_t c = 0; c < cases->size(); ++c) {
      if ((*cases)[c].m >= entries[i].min_m) out.push_back({i, static_cast<int>(c)});
    }
    if (out.size() == before) out.push_back({i, -1});  // fails: no case is big enough
  }
  return out;
}

void PrintTo(const GoldenParam& p, std::ostream* os) {
  *os << all_kernels()[p.entry].name << " case " << p.golden_case;
}

// How many outputs of `out` (m x n) lie outside entry e's tolerance around golden case gc's
// expected values; `wf` is the case's weights dequantized. NaN counts as outside.
struct GoldenCheck {
  int64_t outside = 0;
  int64_t discriminating = 0;  // outputs whose expected value is itself beyond the tolerance
  std::string first;           // description of the first output outside
};

GoldenCheck check_golden(const KernelEntry& e, const GoldenMatmulCase& gc,
                         const std::vector<float>& wf, const float* out) {
  const int64_t m = gc.m, n = gc.n, k = gc.k;
  const int64_t block = traits(e.format).block_elems;
  const std::vector<float> xq = path_view_of_input(e, gc.input.data(), m, k);
  GoldenCheck r;
  for (int64_t i = 0; i < m; ++i) {
    const float* x = gc.input.data() + i * k;
    const float unscale = e.path == Path::kF16 ? f16_row_unscale(x, k) : 1.0f;
    for (int64_t j = 0; j < n; ++j) {
      const float* wr = wf.data() + j * k;
      const double exp = gc.expected[i * n + j];
      double tol;
      if (e.path == Path::kF32) {
        tol = f32_tolerance(x, wr, k, block);
      } else if (e.path == Path::kBf16) {
        const float* xr = xq.data() + i * k;
        tol = quantization_error(x, xr, wr, k) + f32_tolerance(xr, wr, k, block) +
              bf16_flush_bound(wr, k);
      } else if (e.path == Path::kF16) {
        tol = f16_path_tolerance(x, xq.data() + i * k, unscale, wr, k, block);
      } else {
        const float* xr = xq.data() + i * k;
        tol = quantization_error(x, xr, wr, k) +
              int8_depth(k, block) * kEps * magnitude(xr, wr, k, block) +
              2 * kEps * magnitude(x, wr, k, block);
      }
      tol += 1e-30;  // all-zero rows: exp == 0 exactly
      const double got = out[i * n + j];
      if (!(std::fabs(got - exp) <= tol)) {
        if (r.outside++ == 0) {
          r.first = absl::StrCat("output [", i, "][", j, "]: got ", got, ", expected ", exp,
                                 ", tolerance ", tol, ", abs_sum ", gc.abs_sum[i * n + j]);
        }
      }
      if (std::fabs(exp) > tol) ++r.discriminating;
    }
  }
  return r;
}

// A golden case's weights, dequantized (the test's own view of them, from the reference).
std::vector<float> dequantized(const KernelEntry& e, const GoldenMatmulCase& gc) {
  absl::StatusOr<WeightFormat> w =
      WeightFormat::FromBytes(e.format, gc.n, gc.k, gc.weights.data(), gc.weights.size());
  EXPECT_TRUE(w.ok()) << w.status();
  absl::StatusOr<std::vector<float>> wf = w->ToF32();
  EXPECT_TRUE(wf.ok()) << wf.status();
  return wf.ok() ? *wf : std::vector<float>();
}

class GoldenTest : public ::testing::TestWithParam<GoldenParam> {};

TEST_P(GoldenTest, MatchesFloat64Oracle) {
  const KernelEntry& e = all_kernels()[GetParam().entry];
  std::string error;
  const std::vector<GoldenMatmulCase>* cases = golden_cases(e.format, &error);
  ASSERT_NE(cases, nullptr) << error;
  ASSERT_GE(GetParam().golden_case, 0)
      << "no golden cases for " << traits(e.format).name << " with m >= " << e.min_m;
  SKIP_IF_NOT_RUNNABLE(e);
  const GoldenMatmulCase& gc = (*cases)[GetParam().golden_case];
  const int64_t m = gc.m, n = gc.n, k = gc.k;
  absl::StatusOr<WeightFormat> w =
      WeightFormat::FromBytes(e.format, n, k, gc.weights.data(), gc.weights.size());
  ASSERT_TRUE(w.ok()) << w.status();
  std::vector<float> out(static_cast<size_t>(m * n), std::nanf(""));
  ASSERT_TRUE(run_kernel(e, gc.input.data(), *w, m, out.data(), m * n).ok());

  const GoldenCheck r = check_golden(e, gc, dequantized(e, gc), out.data());
  EXPECT_EQ(r.outside, 0) << e.name << " case " << GetParam().golden_case << " (m=" << m
                          << " n=" << n << " k=" << k << "): " << r.outside << " of " << m * n
                          << " outputs outside the tolerance; first: " << r.first;
  // The tolerances must be tight enough that a kernel writing zeros fails on most outputs
  // (GoldenToleranceTest below checks that, and more, directly).
  EXPECT_GE(r.discriminating * 2, m * n) << "tolerance too loose to tell outputs from 0";
}

std::string golden_name(const ::testing::TestParamInfo<GoldenParam>& info) {
  const KernelEntry& e = all_kernels()[info.param.entry];
  return absl::StrCat(e.name, "_case",
                      info.param.golden_case < 0 ? std::string("missing")
                                                 : std::to_string(info.param.golden_case));
}

INSTANTIATE_TEST_SUITE_P(AllKernels, GoldenTest, ::testing::ValuesIn(golden_params()),
                         golden_name);

// ---- The golden tolerances reject wrong kernels ---------------------------------------------

// Runs `g`'s kernel function on golden case gc's weights of another format (as a registry
// row pointing at the wrong function would), its activations packed by g's packer. The
// weights are copied into a buffer padded for g's longer rows, if any.
std::vector<float> run_foreign_kernel(const KernelEntry& g, const GoldenMatmulCase& gc,
                                      int64_t row_bytes) {
  const int64_t g_row = gc.k / traits(g.format).block_elems * traits(g.format).block_bytes;
  std::vector<uint8_t> w(gc.weights.size() + static_cast<size_t>(std::max<int64_t>(0, g_row)) + 64, 0);
  std::memcpy(w.data(), gc.weights.data(), gc.weights.size());
  MatmulArgs a;
  a.m = gc.m;
  a.k = gc.k;
  a.n = gc.n;
  a.input = gc.input.data();
  a.weights = w.data();
  a.row_bytes = row_bytes;
  std::vector<uint8_t> act;
  if (g.act != nullptr) {
    a.act = pack_activations(*g.act, gc.input.data(), gc.m, gc.k, nullptr, &act, &a.act_row_bytes);
  }
  std::vector<float> out(static_cast<size_t>(gc.m * gc.n));
  a.output = out.data();
  g.fn(a, 0, gc.n);
  return out;
}

class GoldenToleranceTest : public ::testing::TestWithParam<size_t> {};

TEST_P(GoldenToleranceTest, RejectsZerosForeignKernelsAndADroppedBlock) {
  const KernelEntry& e = all_kernels()[GetParam()];
  SKIP_IF_NOT_RUNNABLE(e);
  std::string error;
  const std::vector<GoldenMatmulCase>* cases = golden_cases(e.format, &error);
  ASSERT_NE(cases, nullptr) << error;
  // Case 2 is m = 8, n = 20, k = 256 for every format: a whole number of blocks for all (and
  // a batch the rows with a MIN_M up to 8 run). Rows with a larger MIN_M (the float formats'
  // panels, MIN_M 16) take the first case with m >= MIN_M (F32 / F16 / BF16: m = 17, k = 37).
  ASSERT_GT(cases->size(), 2u);
  size_t pick = 2;
  while (pick < cases->size() && (*cases)[pick].m < e.min_m) ++pick;
  ASSERT_LT(pick, cases->size()) << "no golden case with m >= " << e.min_m << " for " << e.name;
  const GoldenMatmulCase& gc = (*cases)[pick];
  if (pick == 2) {
    ASSERT_EQ(gc.k, 256);
  }
  ASSERT_GE(gc.k, 32) << "the dropped-block check drops 32 elements";
  const int64_t outputs = gc.m * gc.n;
  const std::vector<float> wf = dequantized(e, gc);

  // A kernel writing zeros.
  const std::vector<float> zeros(static_cast<size_t>(outputs), 0.0f);
  EXPECT_GE(check_golden(e, gc, wf, zeros.data()).outside * 2, outputs) << "zeros pass";

  // A kernel that drops the last block of every row (an off-by-one in a tail loop).
  const int64_t block = traits(e.format).block_elems == 1 ? 32 : traits(e.format).block_elems;
  std::vector<float> dropped(static_cast<size_t>(outputs));
  for (int64_t i = 0; i < gc.m; ++i) {
    for (int64_t j = 0; j < gc.n; ++j) {
      double last = 0.0;
      for (int64_t t = gc.k - block; t < gc.k; ++t)
        last += double{gc.input[i * gc.k + t]} * wf[j * gc.k + t];
      dropped[i * gc.n + j] = static_cast<float>(gc.expected[i * gc.n + j] - last);
    }
  }
  EXPECT_GE(check_golden(e, gc, wf, dropped.data()).outside * 2, outputs)
      << "dropping the last block passes";

  // The kernel of every other format of the same variant and path, on these weights (the
  // bf16 and f16 paths have BF16 / F16 weights only: there, the same variant's kernels of the
  // other 16-bit format, which read the same 2 bytes per weight as fp16 / bf16).
  const int64_t row_bytes = static_cast<int64_t>(gc.weights.size()) / gc.n;
  int foreign = 0;
  for (const KernelEntry& g : all_kernels()) {
    if (g.format == e.format || g.variant != e.variant || !kernel_runnable(g)) continue;
    if (e.path == Path::kBf16 || e.path == Path::kF16) {
      if (g.format != (e.format == Format::kF16 ? Format::kBF16 : Format::kF16)) continue;
    } else if (g.path != e.path) {
      continue;
    }
    if (g.min_m > gc.m) continue;
    const std::vector<float> out = run_foreign_kernel(g, gc, row_bytes);
    EXPECT_GE(check_golden(e, gc, wf, out.data()).outside * 2, outputs)
        << g.name << " on " << traits(e.format).name << " weights passes";
    ++foreign;
  }
  EXPECT_GE(foreign, 1);
}

INSTANTIATE_TEST_SUITE_P(AllKernels, GoldenToleranceTest, ::testing::ValuesIn(all_entries()),
                         entry_name);

// ---- Random shapes against the scalar entry -------------------------------------------------

// n x k weights N(0, 0.02) quantized by the reference quantizer, held one byte past an
// aligned address (kernels must not assume alignment).
struct UnalignedWeights {
  std::vector<uint8_t> buffer;
  WeightFormat view;     // one byte past an aligned address
  WeightFormat aligned;  // the same weights, owned and aligned (for the test's own decoding)
};

UnalignedWeights make_weights(Format f, int64_t n, int64_t k, std::mt19937_64& rng,
                              bool extreme) {
  std::normal_distribution<float> nd(0.0f, 0.02f);
  std::uniform_real_distribution<float> expo(-3.0f, 3.0f);
  std::vector<float> w(static_cast<size_t>(n * k));
  for (float& v : w) v = nd(rng) * (extreme ? std::pow(10.0f, expo(rng)) : 1.0f);
  absl::StatusOr<WeightFormat> q = WeightFormat::Quantize(w.data(), n, k, f);
  EXPECT_TRUE(q.ok()) << q.status();
  UnalignedWeights u;
  u.buffer.assign(q->memory_bytes() + 1, 0);
  std::memcpy(u.buffer.data() + 1, q->data(), q->memory_bytes());
  absl::StatusOr<WeightFormat> v =
      WeightFormat::View(f, n, k, u.buffer.data() + 1, q->memory_bytes(), nullptr);
  EXPECT_TRUE(v.ok()) << v.status();
  u.view = *v;
  u.aligned = *q;
  return u;
}

// m x k activations, starting one float past the buffer's start. Extreme inputs span
// 1e-4 .. 3e4 in magnitude (finite, and their Q8 scales stay inside the fp16 range), with
// whole-zero rows and single outliers.
std::vector<float> make_input(int64_t m, int64_t k, std::mt19937_64& rng, bool extreme) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::uniform_real_distribution<float> expo(-4.0f, 4.0f);
  std::vector<float> buf(static_cast<size_t>(m * k + 1), 0.0f);
  for (int64_t i = 0; i < m * k; ++i) {
    float v = nd(rng);
    if (extreme) v = std::clamp(v * std::pow(10.0f, expo(rng)), -3e4f, 3e4f);
    buf[i + 1] = v;
  }
  if (extreme && m > 1) std::fill(buf.begin() + 1, buf.begin() + 1 + k, 0.0f);  // zero row
  return buf;
}

struct Shape {
  int64_t m, n, blocks;
  bool extreme;
  bool float_panels_only = false;  // run by the float panel rows (f32 path, MIN_M > 1) only
};

// m in {1..9, 15, 16, 17, 20, 33, 40, 64}; n never a multiple of 4 or 8 tiles except where
// it must be small; k from one block up to 14336 (the largest FFN width of the models we run).
const Shape kShapes[] = {
    {1, 13, 1, false},  {2, 7, 3, false},    {3, 9, 8, false},   {4, 5, 2, false},
    {5, 11, 5, false},  {6, 6, 1, false},    {7, 3, 4, false},   {8, 17, 9, false},
    {9, 10, 2, false},  {17, 13, 3, false},  {64, 9, 4, false},  {1, 21, -1, false},
    {3, 5, -1, false},  {1, 19, 7, true},    {6, 10, 3, true},   {9, 7, 2, true},
    // The K-quant panel rows (MIN_M 8, kernels/avx512/int8_kpanel-inl.h): 15 rows take
    // micro-tiles of 8, 4, 2 and 1 rows; 37 columns are two 16-row strips and a partial one.
    {15, 37, 3, false},
    // The float formats' panel rows (MIN_M 16, kernels/simd/f32_panel-inl.h): 16 = one full
    // panel, 33 = three panels (the last of 1 row), 20 = two; 29 and 31 columns leave partial
    // strips of 6 to 24 rows; k = 296 and 14336 (float formats) span 2 and 56 k blocks;
    // 64 x 2100 is two column groups (341 six-row strips of partial sums each); only the
    // panel rows run it, it would cost every other row seconds under ASan.
    {16, 50, 9, false},  {33, 29, 8, false},   {20, 31, -1, false}, {40, 7, 2, true},
    {64, 2100, 1, false, /*float_panels_only=*/true},
    // Rows for batches beyond 64 (amx's MIN_M 128 rows): whole and partial 16-row groups.
    {128, 21, 2, false}, {130, 13, 1, true}, {150, 9, 3, false}, {129, 33, 2, false},
    {160, 17, 1, true},
};
constexpr int64_t kMaxK = 14336;

std::vector<size_t> non_scalar_entries() {
  std::vector<size_t> out;
  for (size_t i = 0; i < all_kernels().size(); ++i)
    if (all_kernels()[i].variant != Variant::kScalar) out.push_back(i);
  return out;
}

class VsScalarTest : public ::testing::TestWithParam<size_t> {};

TEST_P(VsScalarTest, RandomShapes) {
  const KernelEntry& e = all_kernels()[GetParam()];
  const KernelEntry* ref = find_kernel(e.format, Variant::kScalar, e.path);
  ASSERT_NE(ref, nullptr) << "no scalar kernel for " << e.name;
  SKIP_IF_NOT_RUNNABLE(e);
  const int64_t block = traits(e.format).block_elems;
  std::mt19937_64 rng(0x5eed0000 + GetParam());
  int ran = 0, ran_off_tile = 0;  // shapes run; ... with m not a multiple of the m tile
  for (const Shape& s : kShapes) {
    if (s.m < e.min_m) continue;  // a row for batches of at least MIN_M
    if (s.float_panels_only && !(e.path == Path::kF32 && e.min_m > 1)) continue;
    ++ran;
    if (s.m % e.m_tile != 0) ++ran_off_tile;
    // Float weights (F32, F16, BF16): k is a count of elements, deliberately not a multiple
    // of 8 or 32.
    int64_t k = s.blocks < 0 ? kMaxK : s.blocks * block;
    if (block == 1 && s.blocks > 0) k = 37 * s.blocks;
    const int64_t m = s.m, n = s.n;
    SCOPED_TRACE(absl::StrCat(e.name, " m=", m, " n=", n, " k=", k, s.extreme ? " extreme" : ""));
    UnalignedWeights w = make_weights(e.format, n, k, rng, s.extreme);
    std::vector<float> buf = make_input(m, k, rng, s.extreme);
    const float* x = buf.data() + 1;
    std::vector<float> got(static_cast<size_t>(m * n)), want(static_cast<size_t>(m * n));
    ASSERT_TRUE(run_kernel(e, x, w.view, m, got.data(), m * n).ok());
    ASSERT_TRUE(run_kernel(*ref, x, w.view, m, want.data(), m * n).ok());

    absl::StatusOr<std::vector<float>> wf = w.aligned.ToF32();
    ASSERT_TRUE(wf.ok());
    const std::vector<float> xq = path_view_of_input(e, x, m, k);
    for (int64_t i = 0; i < m; ++i) {
      const float unscale = e.path == Path::kF16 ? f16_row_unscale(x + i * k, k) : 1.0f;
      for (int64_t j = 0; j < n; ++j) {
        const float* wr = wf->data() + j * k;
        // Both compute the same sum: f32 path from the same dequantized values; int8 path
        // with identical quantized activations and exact integer dots, so only the float
        // scaling and accumulation order differ: the difference is at most the sum of both
        // rounding bounds. bf16 path: the same rounded activations, exact products, float
        // sums in different orders, and vdpbf16ps's flushing of subnormals. f16 path: below.
        double tol;
        if (e.path == Path::kF32) {
          tol = 2 * f32_tolerance(x + i * k, wr, k, block);
        } else if (e.path == Path::kBf16) {
          tol = 2 * f32_tolerance(xq.data() + i * k, wr, k, block) + bf16_flush_bound(wr, k);
        } else if (e.path == Path::kF16) {
          // Every f16-path kernel does the same fp16 and f32 operations up to the final sum
          // of the 16 f32 lanes (kernel_api.h), each lane at most the sum of its |terms| (and
          // of the subnormal roundings): 15 roundings of at most u times that, or the same
          // sequential fallback sum.
          double terms = 0x1p-25 * unscale * static_cast<double>(k);
          for (int64_t t = 0; t < k; ++t)
            terms += std::fabs(double{xq[i * k + t]}) * std::fabs(double{wr[t]});
          tol = 16 * kEps * terms;
        } else {
          tol = 2 * int8_depth(k, block) * kEps * magnitude(xq.data() + i * k, wr, k, block);
        }
        ASSERT_TRUE(std::isfinite(got[i * n + j])) << "[" << i << "][" << j << "]";
        ASSERT_LE(std::fabs(double{got[i * n + j]} - want[i * n + j]), tol + 1e-30)
            << "[" << i << "][" << j << "] got " << got[i * n + j] << " scalar "
            << want[i * n + j];
      }
    }
  }
  EXPECT_GE(ran, 5) << "too few shapes with m >= MIN_M " << e.min_m;
  if (e.m_tile > 1) {
    EXPECT_GE(ran_off_tile, 2) << "too few shapes with m % " << e.m_tile << " != 0";
  }
}

INSTANTIATE_TEST_SUITE_P(NonScalar, VsScalarTest, ::testing::ValuesIn(non_scalar_entries()),
                         entry_name);

// ---- Activation packers ------------------------------------------------------------------

// Every packer named in the registry holds exactly the reference quantizer's values.
TEST(ActPackerTest, ValuesAreTheReferenceQuantizersBitForBit) {
  std::set<const ActPacker*> packers;
  for (const KernelEntry& e : all_kernels()) {
    if (e.path == Path::kF32) {
      // No packer, or one of the input floats as they are (checked below).
      if (e.act != nullptr) {
        EXPECT_EQ(e.act->format, Format::kF32) << e.name;
      }
      continue;
    }
    ASSERT_NE(e.act, nullptr) << e.name;
    const Format want = e.path == Path::kBf16  ? Format::kBF16
                        : e.path == Path::kF16 ? Format::kF16
                                               : act_format(e.format);
    EXPECT_EQ(e.act->format, want) << e.name << " packs " << e.act->name;
    // The f16 path's packers hold scaled rows (F16PackerTest below checks them).
    if (kernel_runnable(e) && e.path != Path::kF16) packers.insert(e.act);
  }
  ASSERT_FALSE(packers.empty());
  std::mt19937_64 rng(0xac7);
  for (const ActPacker* p : packers) {
    const FormatTraits& t = traits(p->format);
    // Legacy: 1..9 blocks (partial last groups); Q8_K: 1..3 super-blocks; BF16 (one element
    // per block): runs of 37. Rows: N(0,1), extreme magnitudes, an all-zero row, ties of
    // +-max (the first one wins in Q8_K).
    const int64_t step = t.block_elems == 1 ? 37 : t.block_elems;
    for (int blocks : {1, 2, 3, 4, 5, 7, 9}) {
      const int64_t k = blocks * step;
      for (int kind = 0; kind < 4; ++kind) {
        SCOPED_TRACE(absl::StrCat(p->name, " k=", k, " kind=", kind));
        std::vector<float> x = make_input(1, k, rng, kind == 1);
        x.erase(x.begin());
        if (kind == 2) std::fill(x.begin(), x.end(), 0.0f);
        if (kind == 3) {
          for (int64_t b = 0; b < k; b += step) {
            x[b + 3] = -2.5f;
            x[b + 7] = 2.5f;
          }
        }
        std::vector<uint8_t> ref(static_cast<size_t>(k / t.block_elems * t.block_bytes));
        t.quantize_row(x.data(), ref.data(), k);
        std::vector<float> want(static_cast<size_t>(k)), got(static_cast<size_t>(k), std::nanf(""));
        t.dequantize_row(ref.data(), want.data(), k);
        const int64_t rb = p->row_bytes(k);
        ASSERT_GT(rb, 0);
        std::vector<uint8_t> buf(static_cast<size_t>(rb + 64), 0xCD);
        uint8_t* packed = buf.data() + ((64 - reinterpret_cast<uintptr_t>(buf.data()) % 64) % 64);
        p->pack_row(x.data(), k, packed);
        p->unpack_row(packed, k, got.data());
        ASSERT_EQ(std::memcmp(got.data(), want.data(), want.size() * sizeof(float)), 0)
            << "first difference at "
            << std::mismatch(got.begin(), got.end(), want.begin(),
                             [](float a, float b) { return std::memcmp(&a, &b, 4) == 0; })
                       .first -
                   got.begin();
      }
    }
  }
}

// The float panel packers (group_rows > 1) hold every input float bit for bit (NaN payloads,
// -0, infinities, subnormals), zeros for the rows past m, and write nothing past their
// groups; packing on a pool gives the same bytes.
// The f16 path's reference packer, against values worked out by hand: the scale puts the
// row's largest magnitude in [128, 256), NaN elements do not choose it, an infinite or zero
// row keeps 2^0, and e stays within [-120, 64].
TEST(F16PackerTest, ReferenceScaleAndRounding) {
  struct Case {
    std::vector<float> x;
    float unscale;
    std::vector<uint16_t> want;  // fp16 bits
  };
  const float inf = std::numeric_limits<float>::infinity();
  const Case cases[] = {
      // max 3 = 1.5 * 2^1 -> e = 6: 3 * 64 = 192 (0x5A00); 1 -> 64 (0x5400); -0.5 -> -32.
      {{3.0f, 1.0f, -0.5f}, 0x1p-6f, {0x5A00, 0x5400, 0xD000}},
      // max 128 -> e = 0 (already in [128, 256)); 1 + 2^-11 rounds to even 1 (0x3C00),
      // 1 + 3 * 2^-11 up to 1 + 2^-9 (0x3C02).
      {{128.0f, 1.0f + 0x1p-11f, 1.0f + 3 * 0x1p-11f}, 1.0f, {0x5800, 0x3C00, 0x3C02}},
      // max 255.9 -> e = 0; 65504 never reached.
      {{255.9f, -2.0f}, 1.0f, {0x5BFF, 0xC000}},
      // max 256 -> e = -1: 128 (0x5800); 2^-30 -> 2^-31, below half the smallest fp16
      // subnormal (2^-25) -> +0.
      {{256.0f, 0x1p-30f}, 2.0f, {0x5800, 0x0000}},
      // NaN does not choose the scale (max 1 -> e = 7) and stays NaN.
      {{std::nanf(""), 1.0f}, 0x1p-7f, {0x7E00, 0x5800}},
      // An infinity: e = 0.
      {{inf, 2.0f}, 1.0f, {0x7C00, 0x4000}},
      // Zeros: e = 0, and -0 stays -0.
      {{0.0f, -0.0f}, 1.0f, {0x0000, 0x8000}},
      // Tiny rows: e capped at 64; 2^-70 * 2^64 = 2^-6 (0x2400).
      {{0x1p-70f}, 0x1p-64f, {0x2400}},
      // Huge rows: max 2^127 -> e = -120: 2^7 (0x5800).
      {{0x1p127f}, 0x1p120f, {0x5800}},
  };
  for (const Case& c : cases) {
    const int64_t k = static_cast<int64_t>(c.x.size());
    SCOPED_TRACE(absl::StrCat("x[0] = ", c.x[0], " k = ", k));
    std::vector<uint8_t> packed(static_cast<size_t>(act_f16_ref.row_bytes(k)), 0xCD);
    ASSERT_GE(packed.size(), static_cast<size_t>(kF16ActValuesOffset + 2 * k));
    act_f16_ref.pack_row(c.x.data(), k, packed.data());
    float unscale;
    std::memcpy(&unscale, packed.data(), sizeof unscale);
    EXPECT_EQ(unscale, c.unscale);
    for (int64_t t = 0; t < k; ++t) {
      uint16_t h;
      std::memcpy(&h, packed.data() + kF16ActValuesOffset + 2 * t, 2);
      if ((c.want[t] & 0x7C00) == 0x7C00 && (c.want[t] & 0x3FF) != 0) {
        EXPECT_EQ(h & 0x7C00, 0x7C00) << t;  // any NaN
        EXPECT_NE(h & 0x3FF, 0) << t;
      } else {
        EXPECT_EQ(h, c.want[t]) << "element " << t;
      }
    }
    std::vector<float> back(static_cast<size_t>(k));
    act_f16_ref.unpack_row(packed.data(), k, back.data());
    for (int64_t t = 0; t < k; ++t) {
      uint16_t h;
      std::memcpy(&h, packed.data() + kF16ActValuesOffset + 2 * t, 2);
      const float want = fp16_to_fp32(h) * c.unscale;
      if (std::isnan(want)) {
        EXPECT_TRUE(std::isnan(back[t]));
      } else {
        EXPECT_EQ(back[t], want);
      }
    }
  }
}

// Every other f16-path packer writes the reference packer's bytes (scale and values).
TEST(F16PackerTest, SimdPackersWriteTheReferenceBytes) {
  std::set<const ActPacker*> packers;
  for (const KernelEntry& e : all_kernels())
    if (e.path == Path::kF16 && e.act != &act_f16_ref) {
      if (!kernel_runnable(e)) {
        std::printf("skipping %s: needs %s (CPU lacks them)\n", e.act->name,
                    missing_cpu_features(e.features).c_str());
        continue;
      }
      packers.insert(e.act);
    }
  if (packers.empty()) GTEST_SKIP() << "this CPU runs no SIMD f16-path packer";
  std::mt19937_64 rng(0xf16);
  for (const ActPacker* p : packers) {
    for (int64_t k : {1, 15, 16, 17, 37, 64, 100, 4096 + 7}) {
      for (int kind = 0; kind < 5; ++kind) {
        SCOPED_TRACE(absl::StrCat(p->name, " k=", k, " kind=", kind));
        std::vector<float> x = make_input(1, k, rng, kind == 1);
        x.erase(x.begin());
        if (kind == 2) std::fill(x.begin(), x.end(), 0.0f);
        if (kind == 3) x[static_cast<size_t>(k / 2)] = std::nanf("");
        if (kind == 4)  // tiny values: subnormal halves after scaling, and float subnormals
          for (float& v : x) v *= 0x1p-140f;
        const int64_t rb = p->row_bytes(k);
        ASSERT_EQ(rb, act_f16_ref.row_bytes(k));
        std::vector<uint8_t> want(static_cast<size_t>(rb), 0), got(static_cast<size_t>(rb + 64), 0);
        uint8_t* packed = got.data() + ((64 - reinterpret_cast<uintptr_t>(got.data()) % 64) % 64);
        act_f16_ref.pack_row(x.data(), k, want.data());
        p->pack_row(x.data(), k, packed);
        EXPECT_EQ(std::memcmp(packed, want.data(), 4), 0) << "scale";
        EXPECT_EQ(std::memcmp(packed + kF16ActValuesOffset, want.data() + kF16ActValuesOffset,
                              static_cast<size_t>(2 * k)),
                  0)
            << "values";
      }
    }
  }
}

// Every f16-path kernel runs the path's fp16 chains bit for bit as the reference does: with
// each weight row nonzero in one or two lanes l, l + 16 of the 32 (every element t with
// t % 32 == l), only f32 lane l is nonzero, so the final sum of the 16 f32 lanes is exact in
// any order and the outputs must be the reference's bits. The weights span 2^-24 .. 2^2
// (subnormal fp16 products and sums, long carries); k covers several chains and a partial
// step. This is what checks avx2's emulated FMA (TwoSum, round to odd) against fma_fp16.
TEST(F16PathTest, OneLaneChainsAreTheReferenceBitForBit) {
  const KernelEntry* ref = find_kernel(Format::kF16, Variant::kScalar, Path::kF16);
  ASSERT_NE(ref, nullptr);
  int tested = 0;
  for (const KernelEntry& e : all_kernels()) {
    if (e.path != Path::kF16 || &e == ref) continue;
    if (!kernel_runnable(e)) {
      std::printf("skipping %s: needs %s (CPU lacks them)\n", e.name,
                  missing_cpu_features(e.features).c_str());
      continue;
    }
    std::mt19937_64 rng(0x0f16);
    for (int64_t k : {int64_t{32}, int64_t{517}, int64_t{1543}, int64_t{2048}}) {
      const int64_t n = 9, m = 5;
      std::vector<float> w(static_cast<size_t>(n * k), 0.0f);
      std::uniform_real_distribution<float> frac(1.0f, 2.0f);
      std::uniform_int_distribution<int> expo(-24, 1);
      for (int64_t j = 0; j < n; ++j) {
        const int lane = static_cast<int>((j * 7) % 32);
        for (int64_t t = 0; t < k; ++t) {
          const int l = static_cast<int>(t % 32);
          if (l != lane && !(j % 2 == 0 && l == (lane + 16) % 32)) continue;
          const float v = std::ldexp(frac(rng), expo(rng));
          w[static_cast<size_t>(j * k + t)] = (rng() & 1) ? -v : v;
        }
      }
      absl::StatusOr<WeightFormat> wf = WeightFormat::Quantize(w.data(), n, k, Format::kF16);
      ASSERT_TRUE(wf.ok()) << wf.status();
      const std::vector<float> x = make_input(m, k, rng, false);
      std::vector<float> got(static_cast<size_t>(m * n)), want(got.size());
      ASSERT_TRUE(run_kernel(e, x.data() + 1, *wf, m, got.data(), m * n).ok());
      ASSERT_TRUE(run_kernel(*ref, x.data() + 1, *wf, m, want.data(), m * n).ok());
      for (size_t i = 0; i < got.size(); ++i) {
        ASSERT_EQ(std::memcmp(&got[i], &want[i], sizeof(float)), 0)
            << e.name << " k=" << k << " output " << i << ": " << got[i] << " vs the reference's "
            << want[i];
      }
    }
    ++tested;
  }
  if (tested == 0) GTEST_SKIP() << "this CPU runs no SIMD f16-path kernel";
}

TEST(ActPackerTest, GroupPackersHoldTheInputFloatsBitForBit) {
  std::set<const ActPacker*> packers;
  for (const KernelEntry& e : all_kernels())
    if (e.act != nullptr && e.act->group_rows > 1 && kernel_runnable(e)) packers.insert(e.act);
  if (packers.empty()) GTEST_SKIP() << "no runnable kernel with a group packer on this CPU";
  std::mt19937_64 rng(0x9a9e1);
  ThreadPool pool(2);
  for (const ActPacker* p : packers) {
    EXPECT_EQ(p->format, Format::kF32) << p->name;
    ASSERT_NE(p->pack_group, nullptr) << p->name;
    ASSERT_NE(p->unpack_group, nullptr) << p->name;
    const int64_t gr = p->group_rows;
    for (int64_t m : {int64_t{1}, gr - 1, gr, gr + 1, 3 * gr - 5}) {
      for (int64_t k : {1, 7, 255, 256, 257, 600}) {
        SCOPED_TRACE(absl::StrCat(p->name, " m=", m, " k=", k));
        std::vector<float> x = make_input(m, k, rng, false);
        const uint32_t specials[] = {0x7fc01234u, 0xffa00001u, 0x80000000u, 0x7f800000u,
                                     0xff800000u, 0x00000001u, 0x807fffffu};
        for (size_t i = 0; i < std::size(specials) && i < x.size(); ++i)
          std::memcpy(&x[(i * 37) % x.size()], &specials[i], 4);
        const int64_t groups = (m + gr - 1) / gr;
        const int64_t rb = (p->row_bytes(k) + 63) / 64 * 64;
        std::vector<uint8_t> a(static_cast<size_t>(groups * rb + 64 + 4096), 0xCD), b = a;
        int64_t rb_a = 0, rb_b = 0;
        const uint8_t* pa = pack_activations(*p, x.data(), m, k, nullptr, &a, &rb_a);
        const uint8_t* pb = pack_activations(*p, x.data(), m, k, &pool, &b, &rb_b);
        ASSERT_EQ(rb_a, rb);
        ASSERT_EQ(rb_b, rb);
        EXPECT_EQ(std::memcmp(pa, pb, static_cast<size_t>(groups * rb)), 0);
        for (const uint8_t* q = pa + groups * rb; q < a.data() + a.size(); ++q)
          ASSERT_EQ(*q, 0xCD) << "written past the groups at byte " << (q - pa);
        for (const uint8_t* q = pb + groups * rb; q < b.data() + b.size(); ++q)
          ASSERT_EQ(*q, 0xCD) << "written past the groups (pool) at byte " << (q - pb);
        for (int64_t g = 0; g < groups; ++g) {
          std::vector<float> got(static_cast<size_t>(gr * k), std::nanf("1"));
          p->unpack_group(pa, m, k, g, got.data());
          for (int64_t r = 0; r < gr; ++r) {
            const int64_t row = g * gr + r;
            for (int64_t kk = 0; kk < k; ++kk) {
              const float want = row < m ? x[row * k + kk] : 0.0f;
              ASSERT_EQ(std::memcmp(&got[r * k + kk], &want, 4), 0)
                  << "row " << row << " k " << kk << ": " << got[r * k + kk] << " vs " << want;
            }
          }
        }
      }
    }
  }
}

// The avx2 packers write the reference quantizers' blocks themselves (the avx2 int8 kernels
// read BlockQ8_0 / BlockQ8_K): every byte, Q8_K's bsums included, must be the reference's.
TEST(ActPackerTest, Avx2PackersWriteTheReferenceBlocksByteForByte) {
  std::set<const ActPacker*> packers;
  for (const KernelEntry& e : all_kernels())
    if (e.variant == Variant::kAvx2 && e.path == Path::kInt8 && kernel_runnable(e)) packers.insert(e.act);
  if (packers.empty()) GTEST_SKIP() << "this CPU lacks " << missing_cpu_features(kFeaturesAvx2);
  EXPECT_EQ(packers.size(), 2u);
  std::mt19937_64 rng(0xa2);
  for (const ActPacker* p : packers) {
    const FormatTraits& t = traits(p->format);
    for (int blocks : {1, 2, 3, 5, 9}) {
      const int64_t k = blocks * t.block_elems;
      for (int kind = 0; kind < 5; ++kind) {
        SCOPED_TRACE(absl::StrCat(p->name, " k=", k, " kind=", kind));
        std::vector<float> x = make_input(1, k, rng, kind == 1);
        x.erase(x.begin());
        if (kind == 2) std::fill(x.begin(), x.end(), 0.0f);
        if (kind == 3) {  // ties of +-max (the first wins in Q8_K); max 127 makes the scale 1,
                          // so 2.5 and -0.5 are exact halves (Q8_0 rounds them away from 0)
          for (int64_t b = 0; b < k; b += t.block_elems) {
            x[b + 3] = -127.0f;
            x[b + 7] = 127.0f;
            x[b + 9] = 2.5f;
            x[b + 10] = -0.5f;
          }
        }
        if (kind == 4) {  // tiny magnitudes: fp16 subnormal / zero scales, huge 1 / d
          for (float& v : x) v *= 1e-9f;
        }
        const size_t bytes = static_cast<size_t>(k / t.block_elems * t.block_bytes);
        ASSERT_EQ(p->row_bytes(k), static_cast<int64_t>(bytes));
        std::vector<uint8_t> want(bytes, 0xAB), got(bytes + 64, 0xCD);
        t.quantize_row(x.data(), want.data(), k);
        uint8_t* packed = got.data() + ((64 - reinterpret_cast<uintptr_t>(got.data()) % 64) % 64);
        p->pack_row(x.data(), k, packed);
        ASSERT_EQ(std::memcmp(packed, want.data(), bytes), 0)
            << "first difference at byte "
            << std::mismatch(want.begin(), want.end(), packed).first - want.begin();
      }
    }
  }
}

// ---- Thread-count determinism ----------------------------------------------------------------

class DeterminismTest : public ::testing::TestWithParam<size_t> {};

TEST_P(DeterminismTest, SameBitsForAnyThreadCount) {
  const KernelEntry& e = all_kernels()[GetParam()];
  SKIP_IF_NOT_RUNNABLE(e);
  static ThreadPool* pools[] = {new ThreadPool(1), new ThreadPool(2), new ThreadPool(3),
                                new ThreadPool(7)};
  const int64_t block = traits(e.format).block_elems;
  std::mt19937_64 rng(0xd37e0000 + GetParam());
  // n of many tiles, so 2, 3 and 7 threads split it at different places (weights this small
  // are cut into one chunk per thread, matmul.cc's kMinChunkBytes).
  // (The batch rows (MIN_M 8) run the last three: m = 9 and 17 are not multiples of their
  // 8-row micro-tiles, 77 and 150 columns split into many 16-row strips.)
  // (The float formats' panel rows, MIN_M 16, also run 33 rows over k = 315, 2 k blocks.)
  const Shape shapes[] = {{1, 67, 3, false},  {1, 203, 2, true},  {5, 41, 2, false},
                          {17, 30, 1, true},  {9, 77, 2, false},  {17, 150, 1, true},
                          {33, 100, 7, false}, {130, 77, 2, false}, {129, 50, 1, true},
                          {160, 40, 2, false}};
  int ran = 0;
  for (const Shape& s : shapes) {
    if (s.m < e.min_m) continue;  // a row for batches of at least MIN_M
    ++ran;
    const int64_t k = block == 1 ? 45 * s.blocks : s.blocks * block;
    SCOPED_TRACE(absl::StrCat(e.name, " m=", s.m, " n=", s.n, " k=", k));
    UnalignedWeights w = make_weights(e.format, s.n, k, rng, s.extreme);
    std::vector<float> buf = make_input(s.m, k, rng, s.extreme);
    std::vector<std::vector<float>> outs;
    for (ThreadPool* pool : pools) {
      std::vector<float> out(static_cast<size_t>(s.m * s.n));
      ASSERT_TRUE(run_kernel(e, buf.data() + 1, w.view, s.m, out.data(), s.m * s.n, pool).ok());
      outs.push_back(std::move(out));
    }
    for (size_t p = 1; p < outs.size(); ++p) {
      EXPECT_EQ(std::memcmp(outs[0].data(), outs[p].data(), outs[0].size() * sizeof(float)), 0)
          << pools[p]->size() << " threads differ from 1 thread";
    }
    // Software prefetch (dispatch's choice per CPU and kernel) is a hint: the other setting
    // gives the same bits.
    const bool prefetch = software_prefetch_for(e.path, w.view.row_bytes());
    std::vector<float> flipped(static_cast<size_t>(s.m * s.n));
    set_software_prefetch_for_testing(!prefetch);
    const absl::Status st = run_kernel(e, buf.data() + 1, w.view, s.m, flipped.data(), s.m * s.n, pools[1]);
    set_software_prefetch_for_testing(std::nullopt);
    ASSERT_TRUE(st.ok()) << st;
    EXPECT_EQ(std::memcmp(outs[0].data(), flipped.data(), flipped.size() * sizeof(float)), 0)
        << "software prefetch " << (prefetch ? "off" : "on") << " changes the results";
  }
  EXPECT_GE(ran, 3) << "too few shapes with m >= MIN_M " << e.min_m;
}

INSTANTIATE_TEST_SUITE_P(AllKernels, DeterminismTest, ::testing::ValuesIn(all_entries()),
                         entry_name);

// Batch 1 reads a thread's rows as 4 streams q rows apart (kernels/simd/driver-inl.h). Where
// that distance would give the streams the same L1 set and way-predictor tag on AMD Zen, the
// driver takes one row less per stream and the rows left over through the tail. Q5_1 with
// k = 352 (264-byte rows) and n = 16384 is such a shape at 1 thread (4096 rows = 0x108000
// bytes apart); every row must come out as when the rows are computed in slices whose
// streams do not collide, bit for bit.
TEST(GemvStreamsTest, CollidingStreamDistanceKeepsEveryRow) {
  constexpr int64_t n = 16384, k = 352, slice = 1000;
  std::mt19937_64 rng(0x5a5e);
  UnalignedWeights w = make_weights(Format::kQ5_1, n, k, rng, false);
  ASSERT_EQ(w.view.row_bytes(), 264);
  std::vector<float> x = make_input(1, k, rng, false);
  static ThreadPool* pool = new ThreadPool(1);
  int ran = 0;
  for (const KernelEntry& e : all_kernels()) {
    if (e.format != Format::kQ5_1 || e.min_m != 1 || !kernel_runnable(e)) continue;
    ++ran;
    SCOPED_TRACE(e.name);
    std::vector<float> whole(n), sliced(n, std::nanf(""));
    ASSERT_TRUE(run_kernel(e, x.data() + 1, w.view, 1, whole.data(), n, pool).ok());
    for (int64_t r = 0; r < n; r += slice) {
      const int64_t rows = std::min(slice, n - r);
      absl::StatusOr<WeightFormat> part = WeightFormat::View(
          Format::kQ5_1, rows, k, w.view.row_data(r), static_cast<size_t>(rows * 264), nullptr);
      ASSERT_TRUE(part.ok()) << part.status();
      ASSERT_TRUE(run_kernel(e, x.data() + 1, *part, 1, sliced.data() + r, rows, pool).ok());
    }
    EXPECT_EQ(std::memcmp(whole.data(), sliced.data(), n * sizeof(float)), 0);
  }
  EXPECT_GT(ran, 1);
}

// ---- Variants that promise another variant's bits --------------------------------------------

// The amx rows compute the int32 dots in AMX tiles and scale them with a panel row's float
// steps in the same order (kernels/avx512/int8_amx.cc): their outputs must be that row's bit
// for bit, for ordinary and extreme values, partial 16-row groups and strips. The panel row is
// avx512_vnni's, except for the formats whose avx512_vnni panel row scales each sub-block's
// dot in float (Q4_K, Q5_K, Q6_K, IQ4_XS): there the amx row sums the exact integer total, as
// their avx512 panel row does.
std::vector<size_t> amx_entries() {
  std::vector<size_t> out;
  for (size_t i = 0; i < all_kernels().size(); ++i)
    if (all_kernels()[i].variant == Variant::kAmx) out.push_back(i);
  return out;
}

class AmxTest : public ::testing::TestWithParam<size_t> {};

TEST_P(AmxTest, BitIdenticalToItsPanelRow) {
  const KernelEntry& e = all_kernels()[GetParam()];
  const Variant rv = amx_bits_of(e.format);
  const KernelEntry* ref = find_kernel(e.format, rv, e.path, e.min_m);
  ASSERT_NE(ref, nullptr) << e.name;
  ASSERT_GT(ref->min_m, 1) << e.name << ": no " << variant_name(rv) << " panel row to match";
  EXPECT_EQ(ref->act, e.act) << "the same packed activations";
  SKIP_IF_NOT_RUNNABLE(e);
  const int64_t block = traits(e.format).block_elems;
  std::mt19937_64 rng(0xa3c00000 + GetParam());
  // m: one group, one plus a row (the last group overlaps), several; n: partial strips.
  // n >= 256 (kAmxMinColumns) runs the tiles; the two narrow shapes run Q4_1's and Q5_1's
  // delegation to avx512_vnni, and every other format's tiles on a narrow strip.
  const Shape shapes[] = {{16, 256, 1, false},  {17, 293, 3, false}, {33, 261, 5, true},
                          {64, 300, 2, false},  {16, 5, 4, true},    {40, 270, 8, false},
                          {128, 256, 2, false}, {131, 277, 3, true}, {160, 20, 1, false},
                          {150, 264, 2, true}};
  int ran = 0;
  for (const Shape& s : shapes) {
    if (s.m < e.min_m) continue;  // a row for batches of at least MIN_M
    ++ran;
    const int64_t k = s.blocks * block;
    SCOPED_TRACE(absl::StrCat(e.name, " m=", s.m, " n=", s.n, " k=", k, s.extreme ? " extreme" : ""));
    UnalignedWeights w = make_weights(e.format, s.n, k, rng, s.extreme);
    std::vector<float> buf = make_input(s.m, k, rng, s.extreme);
    if (s.extreme) {
      // Every third row dense (+-1: every quant at full scale): the integer totals at their
      // largest, and the float sums of sub-block dots far from exact.
      std::uniform_int_distribution<int> sign(0, 1);
      for (int64_t i = 0; i < s.m; i += 3)
        for (int64_t t = 0; t < k; ++t) buf[1 + i * k + t] = sign(rng) ? 1.0f : -1.0f;
    }
    std::vector<float> got(static_cast<size_t>(s.m * s.n)), want(got.size());
    ASSERT_TRUE(run_kernel(e, buf.data() + 1, w.view, s.m, got.data(), s.m * s.n).ok());
    ASSERT_TRUE(run_kernel(*ref, buf.data() + 1, w.view, s.m, want.data(), s.m * s.n).ok());
    for (size_t t = 0; t < got.size(); ++t) {
      ASSERT_EQ(std::memcmp(&got[t], &want[t], sizeof(float)), 0)
          << "[" << t / s.n << "][" << t % s.n << "] amx " << got[t] << " " << variant_name(rv) << " " << want[t];
    }
  }
  EXPECT_GE(ran, 4) << "too few shapes with m >= MIN_M " << e.min_m;
}

INSTANTIATE_TEST_SUITE_P(AmxRows, AmxTest, ::testing::ValuesIn(amx_entries()), entry_name);

// ---- Registry -----------------------------------------------------------------------------

TEST(RegistryTest, NamesAreUniqueAndFollowTheRule) {
  std::set<std::string> names;
  for (const KernelEntry& e : all_kernels()) {
    EXPECT_TRUE(names.insert(e.name).second) << "duplicate " << e.name;
    // <format>_<path>__<variant>; a row for batches (MIN_M > 1): <format>_<path>_<kind>__<variant>.
    const std::string head =
        absl::StrCat(absl::AsciiStrToLower(traits(e.format).name), "_", path_name(e.path));
    const std::string tail = absl::StrCat("__", variant_name(e.variant));
    const std::string name = e.name;
    if (e.min_m == 1) {
      EXPECT_EQ(name, head + tail);
    } else {
      EXPECT_TRUE(absl::StartsWith(name, head + "_") && absl::EndsWith(name, tail) &&
                  name.size() > head.size() + 1 + tail.size() &&
                  name.substr(head.size() + 1, name.size() - head.size() - 1 - tail.size())
                          .find("__") == std::string::npos)
          << name << " is not " << head << "_<kind>" << tail;
    }
    EXPECT_NE(e.fn, nullptr) << e.name;
    EXPECT_GE(e.n_tile, 1) << e.name;
    EXPECT_GE(e.m_tile, 1) << e.name;
    EXPECT_EQ(find_kernel(e.format, e.variant, e.path, e.min_m), &e) << e.name;
    EXPECT_FALSE(!has_int8_path(traits(e.format)) && e.path == Path::kInt8) << e.name;
    if (e.variant == Variant::kScalar) {
      EXPECT_EQ(e.features, kCpuNone) << e.name;
    }
  }
}

// Every (format, variant, path) has exactly one general row (MIN_M 1), of its own or, for a
// variant that extends another (amx: batch rows only), its base variant's; rows for larger
// batches share its features and packer format, and dispatch picks them only from their MIN_M.

TEST(RegistryTest, EachTripleHasOneGeneralRowAndBatchRowsFollowIt) {
  for (const KernelEntry& e : all_kernels()) {
    SCOPED_TRACE(e.name);
    int general = 0;
    for (const KernelEntry& o : all_kernels()) {
      if (o.format == e.format && o.variant == e.variant && o.path == e.path && o.min_m == 1) {
        ++general;
      }
    }
    EXPECT_EQ(general, base_variant(e.variant) ? general : 1);
    EXPECT_LE(general, 1);
    EXPECT_GE(e.min_m, 1);
    const KernelEntry* g = find_general_kernel(e.format, e.variant, e.path);
    ASSERT_NE(g, nullptr);
    EXPECT_EQ(g->min_m, 1);
    EXPECT_EQ(find_kernel(e.format, e.variant, e.path, e.min_m), &e);
    if (e.min_m > 1) {
      if (const KernelEntry* below = find_kernel(e.format, e.variant, e.path, e.min_m - 1)) {
        EXPECT_LT(below->min_m, e.min_m);
      }
      EXPECT_EQ(e.features & g->features, g->features);
      if (e.path != Path::kF32) {
        ASSERT_NE(e.act, nullptr) << e.name;
        EXPECT_EQ(e.act->format, g->act->format);
      }
      if (kernel_runnable(e)) {
        MatmulOptions o;
        o.variant = e.variant;
        o.path = e.path;
        absl::StatusOr<KernelChoice> c = KernelChoice::Resolve(e.format, o);
        ASSERT_TRUE(c.ok()) << c.status();
        EXPECT_EQ(&c->ForBatch(e.min_m), &e);
        EXPECT_NE(&c->ForBatch(e.min_m - 1), &e);
        EXPECT_EQ(&c->ForBatch(1), g);
      }
    }
  }
}

TEST(RegistryTest, EveryFormatHasScalarKernels) {
  for (const FormatTraits& t : all_formats()) {
    EXPECT_NE(find_kernel(t.format, Variant::kScalar, Path::kF32), nullptr) << t.name;
    if (has_int8_path(t)) {
      EXPECT_NE(find_kernel(t.format, Variant::kScalar, Path::kInt8), nullptr) << t.name;
    }
    // The bf16 path (BF16 weights only) has its reference too.
    EXPECT_EQ(find_kernel(t.format, Variant::kScalar, Path::kBf16) != nullptr,
              t.format == Format::kBF16)
        << t.name;
    // has_path says the same from the registry.
    EXPECT_TRUE(has_path(t.format, Path::kF32)) << t.name;
    EXPECT_EQ(has_path(t.format, Path::kInt8), has_int8_path(t)) << t.name;
    EXPECT_EQ(has_path(t.format, Path::kBf16), t.format == Format::kBF16) << t.name;
    // The f16 path: F16 weights only, with its reference.
    EXPECT_EQ(find_kernel(t.format, Variant::kScalar, Path::kF16) != nullptr,
              t.format == Format::kF16)
        << t.name;
    EXPECT_EQ(has_path(t.format, Path::kF16), t.format == Format::kF16) << t.name;
  }
  // Scalar entries come first (registry.inc order).
  EXPECT_EQ(all_kernels()[0].variant, Variant::kScalar);
}

// A non-scalar variant covers every format on each path it has (avx512_vnni only adds the
// int8 path), so dispatch never falls back to a slower variant for one format.
TEST(RegistryTest, EachVariantCoversEveryFormatOfItsPaths) {
  std::set<std::pair<Variant, Path>> sections;
  for (const KernelEntry& e : all_kernels()) sections.insert({e.variant, e.path});
  for (const auto& [v, p] : sections) {
    for (const FormatTraits& t : all_formats()) {
      if (p == Path::kInt8 && !has_int8_path(t)) continue;
      if (p == Path::kBf16 && t.format != Format::kBF16) continue;  // BF16 weights only
      if (p == Path::kF16 && t.format != Format::kF16) continue;    // F16 weights only
      EXPECT_NE(find_general_kernel(t.format, v, p), nullptr)
          << variant_name(v) << " " << path_name(p) << " lacks " << t.name;
    }
  }
  // Features only grow along the variant order (dispatch's "best" = the highest variant that
  // runs a (format, path)).
  for (const KernelEntry& a : all_kernels())
    for (const KernelEntry& b : all_kernels())
      if (a.variant < b.variant && a.format == b.format && a.path == b.path) {
        EXPECT_EQ(a.features & ~b.features, 0u) << a.name << " needs more than " << b.name;
      }
}

TEST(RegistryTest, NamesParseBack) {
  for (Variant v : {Variant::kScalar, Variant::kAvx2, Variant::kAvx512, Variant::kAvx512Vnni}) {
    absl::StatusOr<Variant> p = parse_variant(variant_name(v));
    ASSERT_TRUE(p.ok()) << p.status();
    EXPECT_EQ(*p, v);
    EXPECT_THAT(variant_names(), HasSubstr(variant_name(v)));
  }
  EXPECT_EQ(*parse_variant("AVX2"), Variant::kAvx2);
  EXPECT_EQ(*parse_path("INT8"), Path::kInt8);
  EXPECT_EQ(*parse_path("f32"), Path::kF32);
  EXPECT_EQ(*parse_path("BF16"), Path::kBf16);
  EXPECT_STREQ(path_name(Path::kBf16), "bf16");
  for (Path p : kAllPaths) {
    absl::StatusOr<Path> back = parse_path(path_name(p));
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(*back, p);
    EXPECT_THAT(path_names(), HasSubstr(path_name(p)));
  }
  EXPECT_EQ(*parse_path("F16"), Path::kF16);
  absl::StatusOr<Variant> bad = parse_variant("sse9");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("sse9"));
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr(variant_names()));
  EXPECT_FALSE(parse_path("int4").ok());
}

TEST(RegistryTest, ActivationFormats) {
  EXPECT_EQ(act_format(Format::kQ4_K), Format::kQ8_K);
  EXPECT_EQ(act_format(Format::kQ5_K), Format::kQ8_K);
  EXPECT_EQ(act_format(Format::kQ6_K), Format::kQ8_K);
  EXPECT_EQ(act_format(Format::kQ8_K), Format::kQ8_K);
  EXPECT_EQ(act_format(Format::kQ4_0), Format::kQ8_0);
  EXPECT_EQ(act_format(Format::kQ4_1), Format::kQ8_0);
  EXPECT_EQ(act_format(Format::kQ5_0), Format::kQ8_0);
  EXPECT_EQ(act_format(Format::kQ8_0), Format::kQ8_0);
}

TEST(CpuFeaturesTest, NamesAndMissing) {
  EXPECT_EQ(cpu_feature_names(kFeaturesAvx2), "avx2, fma, f16c");
  EXPECT_EQ(cpu_feature_names(kCpuNone), "");
  EXPECT_EQ(missing_cpu_features(kCpuNone), "");
  EXPECT_TRUE(cpu_has(kCpuNone));
  EXPECT_EQ(missing_cpu_features(cpu_features()), "");
  EXPECT_EQ(cpu_has(kFeaturesAvx512Vnni), missing_cpu_features(kFeaturesAvx512Vnni).empty());
  // AVX-512 is only ever reported with the AVX2 family (the registry's masks rely on it).
  if (cpu_features() & kCpuAvx512F) {
    EXPECT_TRUE(cpu_has(kFeaturesAvx2));
  }
}

// cpuid's vendor string is the kernel's vendor_id in /proc/cpuinfo.
TEST(CpuFeaturesTest, VendorIsTheKernelsVendorId) {
  std::ifstream in("/proc/cpuinfo");
  std::string line, want;
  while (want.empty() && std::getline(in, line)) {
    std::vector<std::string> kv = absl::StrSplit(line, absl::MaxSplits(':', 1));
    if (kv.size() == 2 && absl::StripAsciiWhitespace(kv[0]) == "vendor_id") {
      want = std::string(absl::StripAsciiWhitespace(kv[1]));
    }
  }
  if (want.empty()) GTEST_SKIP() << "no vendor_id in /proc/cpuinfo";
  EXPECT_EQ(cpu_vendor(), want);
}

// ---- Software prefetch -----------------------------------------------------------------------

// The measured defaults (kernels/matmul.h): off only on AMD's int8 path, for short rows.
TEST(SoftwarePrefetchTest, DefaultsByVendorPathAndRowLength) {
  EXPECT_FALSE(software_prefetch_default("AuthenticAMD", Path::kInt8, 2304));
  EXPECT_FALSE(software_prefetch_default("AuthenticAMD", Path::kInt8, kShortRowBytes - 1));
  EXPECT_TRUE(software_prefetch_default("AuthenticAMD", Path::kInt8, kShortRowBytes));
  EXPECT_TRUE(software_prefetch_default("AuthenticAMD", Path::kInt8, 8064));
  for (Path p : {Path::kF32, Path::kBf16, Path::kF16}) {
    EXPECT_TRUE(software_prefetch_default("AuthenticAMD", p, 2304)) << path_name(p);
  }
  for (Path p : {Path::kInt8, Path::kF32, Path::kBf16, Path::kF16}) {
    for (int64_t rb : {int64_t{64}, int64_t{2304}, int64_t{8064}}) {
      EXPECT_TRUE(software_prefetch_default("GenuineIntel", p, rb)) << path_name(p) << " " << rb;
      EXPECT_TRUE(software_prefetch_default("", p, rb)) << path_name(p) << " " << rb;
    }
  }
}

// What a kernel saw in MatmulArgs::software_prefetch, per call.
std::vector<bool>* g_seen_prefetch = new std::vector<bool>;
void record_software_prefetch(const MatmulArgs& a, int64_t n_begin, int64_t n_end) {
  g_seen_prefetch->push_back(a.software_prefetch);
  for (int64_t i = 0; i < a.m; ++i) {
    for (int64_t j = n_begin; j < n_end; ++j) a.output[i * a.n + j] = 0.0f;
  }
}

// Dispatch hands every kernel software_prefetch_for(its path, the weights' row bytes): the
// testing override if set, else (FK_PREFETCH unset) the default for this CPU's vendor, that
// path and that row length.
TEST(SoftwarePrefetchTest, DispatchPassesTheChoiceToTheKernel) {
  if (std::getenv("FK_PREFETCH") != nullptr) GTEST_SKIP() << "FK_PREFETCH is set";
  std::mt19937_64 rng(7);
  UnalignedWeights w = make_weights(Format::kQ4_0, 3, 64, rng, false);
  std::vector<float> input = make_input(1, 64, rng, false);
  std::vector<float> out(3);
  for (Path path : {Path::kF32, Path::kInt8}) {
    const KernelEntry fake{Format::kQ4_0, Variant::kScalar, path, kCpuNone, 1, 1, 1,
                           record_software_prefetch, "q4_0_fake__scalar",
                           path == Path::kInt8 ? &act_q8_0_ref : nullptr};
    const bool dflt = software_prefetch_default(cpu_vendor(), path, w.view.row_bytes());
    EXPECT_EQ(software_prefetch_for(path, w.view.row_bytes()), dflt);
    for (std::optional<bool> set : {std::optional<bool>(), std::optional<bool>(true),
                                    std::optional<bool>(false)}) {
      SCOPED_TRACE(absl::StrCat(path_name(path), " override ", set ? (*set ? "on" : "off") : "none"));
      g_seen_prefetch->clear();
      set_software_prefetch_for_testing(set);
      const absl::Status st = run_kernel(fake, input.data(), w.view, 1, out.data(), 3);
      set_software_prefetch_for_testing(std::nullopt);
      ASSERT_TRUE(st.ok()) << st;
      ASSERT_EQ(g_seen_prefetch->size(), 1u);
      EXPECT_EQ((*g_seen_prefetch)[0], set.value_or(dflt));
    }
  }
}

// Restores the disabled-feature mask when a test ends.
class DisabledFeaturesGuard {
 public:
  explicit DisabledFeaturesGuard(uint32_t mask) : saved_(disabled_cpu_features()) {
    set_disabled_cpu_features_for_testing(mask);
  }
  ~DisabledFeaturesGuard() { set_disabled_cpu_features_for_testing(saved_); }

 private:
  uint32_t saved_;
};

TEST(CpuFeaturesTest, DisablingAFeatureDisablesWhatNeedsIt) {
  {
    DisabledFeaturesGuard g(kCpuAvx2);
    EXPECT_EQ(cpu_features() & (kCpuAvx2 | kCpuAvx512F | kCpuAvx512Vnni), 0u);
    EXPECT_EQ(missing_cpu_features(kCpuAvx2), "avx2");
  }
  {
    DisabledFeaturesGuard g(kCpuAvx512Vnni);
    EXPECT_EQ(cpu_features() & kCpuAvx512Vnni, 0u);
    EXPECT_EQ(cpu_features() & kCpuAvx2, cpu_has(kCpuAvx2) ? kCpuAvx2 : 0u);
  }
  {
    // The amx rows need VNNI, AMX-INT8 needs the tiles.
    DisabledFeaturesGuard g(kCpuAvx512Vnni);
    EXPECT_EQ(cpu_features() & (kCpuAmxTile | kCpuAmxInt8), 0u);
  }
  {
    DisabledFeaturesGuard g(kCpuAmxTile);
    EXPECT_EQ(cpu_features() & kCpuAmxInt8, 0u);
  }
  EXPECT_EQ(cpu_feature_by_name("avx512vnni"), kCpuAvx512Vnni);
  EXPECT_EQ(cpu_feature_by_name("amxint8"), kCpuAmxInt8);
  EXPECT_EQ(cpu_feature_by_name("sse9"), kCpuNone);
}

// AMX is reported only where the CPU lists it (cpuid's AMX-TILE / AMX-INT8 as Linux shows
// them in /proc/cpuinfo); and where it is reported, the permission was granted, so a tile
// instruction runs (the amx rows' tests) instead of dying of SIGILL.
TEST(CpuFeaturesTest, AmxOnlyWhereTheCpuHasIt) {
  std::ifstream in("/proc/cpuinfo");
  if (!in) GTEST_SKIP() << "no /proc/cpuinfo";
  std::string line;
  bool tile = false, int8 = false;
  while (std::getline(in, line)) {
    if (!absl::StartsWith(line, "flags")) continue;
    for (absl::string_view f : absl::StrSplit(line, ' ')) {
      tile |= f == "amx_tile";
      int8 |= f == "amx_int8";
    }
    break;
  }
  const uint32_t d = detected_cpu_features();
  if ((d & kCpuAmxInt8) != 0) {
    EXPECT_TRUE(tile && int8) << "amx detected, /proc/cpuinfo lists no amx_tile / amx_int8";
    EXPECT_NE(d & kCpuAmxTile, 0u);
  }
  std::printf("amx: cpuinfo %s, detected %s\n", tile && int8 ? "yes" : "no", (d & kCpuAmxInt8) ? "yes" : "no");
}

// The tier this test target emulates (kernels/BUILD, MATMUL_TEST_TIERS): the features named
// in FK_DISABLE_CPU_FEATURES (read once at start-up) are gone, dispatch never picks a variant
// above FK_EXPECT_BEST_VARIANT, and picks exactly that one when the real CPU has it.
TEST(CpuFeaturesTest, ThisTargetsTier) {
  const char* disable = std::getenv("FK_DISABLE_CPU_FEATURES");
  const char* best = std::getenv("FK_EXPECT_BEST_VARIANT");
  if (best == nullptr) GTEST_SKIP() << "FK_EXPECT_BEST_VARIANT unset: not run as a tier target";
  std::printf("tier: FK_DISABLE_CPU_FEATURES='%s', detected: %s; left: %s\n",
              disable ? disable : "", cpu_feature_names(detected_cpu_features()).c_str(),
              cpu_feature_names(cpu_features()).c_str());
  for (absl::string_view name : absl::StrSplit(disable ? disable : "", ',', absl::SkipEmpty())) {
    const uint32_t bit = cpu_feature_by_name(std::string(name));
    ASSERT_NE(bit, kCpuNone) << "unknown feature '" << name << "' in FK_DISABLE_CPU_FEATURES";
    EXPECT_EQ(cpu_features() & bit, 0u) << name << " should be hidden";
  }
  absl::StatusOr<Variant> want = parse_variant(best);
  ASSERT_TRUE(want.ok()) << want.status();
  const KernelEntry* top = find_kernel(Format::kQ4_K, *want, Path::kInt8);
  ASSERT_NE(top, nullptr);
  const bool cpu_has_tier = (detected_cpu_features() & top->features) == top->features;
  for (const FormatTraits& t : all_formats()) {
    absl::StatusOr<const KernelEntry*> e = select_kernel(t.format);
    ASSERT_TRUE(e.ok()) << t.name << ": " << e.status();
    EXPECT_LE((*e)->variant, *want) << (*e)->name;
    if (cpu_has_tier && t.format == Format::kQ4_K) {
      EXPECT_EQ((*e)->variant, *want) << (*e)->name;
    }
  }
  if (!cpu_has_tier) {
    std::printf("tier: this CPU lacks %s, so it runs a smaller tier than %s\n",
                missing_cpu_features(top->features).c_str(), best);
  }
}

// ---- Thread pool ---------------------------------------------------------------------------

TEST(ThreadPoolTest, RunsEveryTaskOnce) {
  for (int threads : {1, 2, 3, 7}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.size(), threads);
    for (int64_t n : {0, 1, 2, 5, 64, 1000}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      for (int rep = 0; rep < 3; ++rep) {
        pool.ParallelFor(n, [&](int64_t t) { hits[t].fetch_add(1); });
      }
      for (int64_t t = 0; t < n; ++t) EXPECT_EQ(hits[t].load(), 3) << threads << " " << n;
    }
  }
}

// task_counts: every task of every ParallelFor is counted once, and by_workers is exactly
// the tasks that ran on a thread other than the caller.
TEST(ThreadPoolTest, TaskCountsSayWhoRan) {
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    const std::thread::id caller = std::this_thread::get_id();
    std::atomic<int64_t> off_caller{0};
    int64_t all = 0;
    for (int rep = 0; rep < 200; ++rep) {
      const int64_t n = 1 + rep % 9;
      all += n;
      pool.ParallelFor(n, [&](int64_t) {
        if (std::this_thread::get_id() != caller) off_caller.fetch_add(1);
        volatile int spin = 0;
        for (int i = 0; i < 20000; ++i) spin = spin + i;  // long enough for a worker to join
      });
    }
    const ThreadPool::TaskCounts c = pool.task_counts();
    EXPECT_EQ(c.all, all) << threads;
    EXPECT_EQ(c.by_workers, off_caller.load()) << threads;
    if (threads == 1) {
      EXPECT_EQ(c.by_workers, 0);
    }
  }
}

// Many back-to-back jobs (workers spinning between them), uneven task counts, and jobs
// after the workers fell asleep: every task runs exactly once, and ParallelFor returns
// only when all are done.
TEST(ThreadPoolTest, BackToBackAndAfterSleeping) {
  for (int threads : {2, 3, 7}) {
    ThreadPool pool(threads);
    std::vector<int64_t> hits(64, 0);
    std::atomic<int64_t> total{0};
    for (int rep = 0; rep < 3000; ++rep) {
      const int64_t n = 1 + rep % 17;
      pool.ParallelFor(n, [&](int64_t t) {
        ++hits[t];  // distinct tasks touch distinct slots
        total.fetch_add(1, std::memory_order_relaxed);
      });
      if (rep % 1000 == 999) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    int64_t want = 0, got = 0;
    for (int rep = 0; rep < 3000; ++rep) want += 1 + rep % 17;
    for (int64_t h : hits) got += h;
    EXPECT_EQ(got, want) << threads << " threads";
    EXPECT_EQ(total.load(), want) << threads << " threads";
  }
}

// ---- Dispatch -----------------------------------------------------------------------------

class EnvGuard {
 public:
  EnvGuard(const char* name, const char* value) : name_(name) {
    setenv(name, value, 1);
  }
  ~EnvGuard() { unsetenv(name_); }

 private:
  const char* name_;
};

WeightFormat small_weights(Format f, int64_t n, int64_t k) {
  std::mt19937_64 rng(7);
  std::normal_distribution<float> nd(0.0f, 0.02f);
  std::vector<float> w(static_cast<size_t>(n * k));
  for (float& v : w) v = nd(rng);
  return *WeightFormat::Quantize(w.data(), n, k, f);
}

TEST(DispatchTest, PicksTheBestRunnableVariantAndDefaultPath) {
  for (const FormatTraits& t : all_formats()) {
    absl::StatusOr<const KernelEntry*> e = select_kernel(t.format);
    ASSERT_TRUE(e.ok()) << t.name << ": " << e.status();
    EXPECT_EQ((*e)->path, has_int8_path(t) ? Path::kInt8 : Path::kF32) << t.name;
    EXPECT_TRUE(kernel_runnable(**e));
    for (const KernelEntry& other : all_kernels()) {
      // (Batch-only variants, amx, serve batches on top of the general row's variant.)
      if (other.format == t.format && other.path == (*e)->path && kernel_runnable(other) &&
          other.min_m == 1) {
        EXPECT_LE(other.variant, (*e)->variant) << other.name << " beats " << (*e)->name;
      }
    }
  }
}

// From its MIN_M on, a runnable batch row of a variant that extends the chosen general row's
// (amx on avx512_vnni) is what dispatch runs when no variant is named; naming the base variant
// keeps it out; naming it where the CPU lacks it fails, naming what is missing.
TEST(DispatchTest, ExtendingVariantsServeBatches) {
  int checked = 0;
  for (const KernelEntry& e : all_kernels()) {
    if (e.variant != Variant::kAmx) continue;
    ASSERT_GT(e.min_m, 1) << e.name << ": amx has batch rows only";
    ASSERT_EQ(base_variant(e.variant), Variant::kAvx512Vnni);
    MatmulOptions named;
    named.variant = Variant::kAmx;
    MatmulOptions base;
    base.variant = Variant::kAvx512Vnni;
    if (!kernel_runnable(e)) {
      absl::StatusOr<KernelChoice> c = KernelChoice::Resolve(e.format, named);
      ASSERT_FALSE(c.ok()) << e.name;
      EXPECT_EQ(c.status().code(), absl::StatusCode::kFailedPrecondition);
      EXPECT_THAT(std::string(c.status().message()), HasSubstr(missing_cpu_features(e.features)));
      continue;
    }
    ++checked;
    absl::StatusOr<KernelChoice> best = KernelChoice::Resolve(e.format);
    ASSERT_TRUE(best.ok()) << best.status();
    if (best->general().variant != Variant::kAvx512Vnni) continue;  // FK_VARIANT set
    EXPECT_EQ(&best->ForBatch(e.min_m), &e);
    EXPECT_EQ(best->ForBatch(1).variant, Variant::kAvx512Vnni);
    EXPECT_NE(best->ForBatch(e.min_m - 1).variant, Variant::kAmx);
    absl::StatusOr<KernelChoice> b = KernelChoice::Resolve(e.format, base);
    ASSERT_TRUE(b.ok()) << b.status();
    EXPECT_NE(b->ForBatch(4096).variant, Variant::kAmx) << "naming avx512_vnni keeps amx out";
    absl::StatusOr<KernelChoice> n = KernelChoice::Resolve(e.format, named);
    ASSERT_TRUE(n.ok()) << n.status();
    EXPECT_EQ(&n->ForBatch(e.min_m), &e);
    EXPECT_EQ(n->general().variant, Variant::kAvx512Vnni) << "amx's general rows are avx512_vnni's";
  }
  if (checked == 0) GTEST_SKIP() << "this CPU lacks " << missing_cpu_features(kFeaturesAmx) << " (amx)";
}

TEST(DispatchTest, OptionsAndEnvironmentChooseTheKernel) {
  MatmulOptions opt;
  opt.variant = Variant::kScalar;
  opt.path = Path::kF32;
  EXPECT_EQ(*select_kernel(Format::kQ4_K, opt), find_kernel(Format::kQ4_K, Variant::kScalar, Path::kF32));
  {
    EnvGuard v("FK_VARIANT", "scalar");
    EnvGuard p("FK_PATH", "f32");
    EXPECT_EQ(*select_kernel(Format::kQ6_K), find_kernel(Format::kQ6_K, Variant::kScalar, Path::kF32));
    // Options win over the environment.
    MatmulOptions int8;
    int8.path = Path::kInt8;
    EXPECT_EQ((*select_kernel(Format::kQ6_K, int8))->path, Path::kInt8);
  }
  {
    EnvGuard v("FK_VARIANT", "bogus");
    absl::StatusOr<const KernelEntry*> e = select_kernel(Format::kQ4_0);
    ASSERT_FALSE(e.ok());
    EXPECT_EQ(e.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(e.status().message()), HasSubstr("FK_VARIANT"));
    EXPECT_THAT(std::string(e.status().message()), HasSubstr("bogus"));
    // ... and dispatch reports it too.
    WeightFormat w = small_weights(Format::kQ4_0, 4, 32);
    std::vector<float> x(32, 1.0f);
    EXPECT_FALSE(dispatch_matmul(x.data(), w, 1, 32, 4).ok());
  }
  {
    EnvGuard p("FK_PATH", "int3");
    EXPECT_FALSE(select_kernel(Format::kQ4_0).ok());
  }
  MatmulOptions f32_int8;
  f32_int8.path = Path::kInt8;
  EXPECT_FALSE(select_kernel(Format::kF32, f32_int8).ok());
  MatmulOptions bf16;
  bf16.path = Path::kBf16;
  absl::StatusOr<const KernelEntry*> q4_bf16 = select_kernel(Format::kQ4_0, bf16);
  ASSERT_FALSE(q4_bf16.ok());
  EXPECT_THAT(std::string(q4_bf16.status().message()), HasSubstr("no bf16 path for Q4_0"));
  EXPECT_EQ((*select_kernel(Format::kBF16, bf16))->path, Path::kBf16);
}

TEST(DispatchTest, VariantTheCpuLacksIsFailedPrecondition) {
  const auto check_lacking = [] {
    int tested = 0;
    for (const KernelEntry& e : all_kernels()) {
      if (kernel_runnable(e)) continue;
      MatmulOptions opt;
      opt.variant = e.variant;
      opt.path = e.path;
      absl::StatusOr<const KernelEntry*> s = select_kernel(e.format, opt);
      EXPECT_FALSE(s.ok()) << e.name;
      if (s.ok()) continue;
      EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition) << s.status();
      EXPECT_THAT(std::string(s.status().message()), HasSubstr(variant_name(e.variant)));
      EXPECT_THAT(std::string(s.status().message()), HasSubstr(missing_cpu_features(e.features)));
      ++tested;
    }
    return tested;
  };
  if (check_lacking() > 0) return;
  // This CPU runs every kernel: pretend it lacks VNNI.
  DisabledFeaturesGuard g(kCpuAvx512Vnni);
  if (check_lacking() == 0) GTEST_SKIP() << "no kernel needs avx512vnni";
}

TEST(DispatchTest, ShapeAndBufferErrors) {
  const WeightFormat w = small_weights(Format::kQ4_0, 6, 64);
  std::vector<float> x(3 * 64, 0.5f), out(3 * 6);
  const auto msg = [](const absl::Status& s) { return std::string(s.message()); };
  const auto bad = [&](const absl::Status& s, const std::string& part) {
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_THAT(msg(s), HasSubstr(part));
  };
  EXPECT_TRUE(dispatch_matmul(x.data(), w, 3, 64, 6, out.data(), 18).ok());
  bad(dispatch_matmul(x.data(), w, 3, 32, 6, out.data(), 18), "k=32");    // k != cols
  bad(dispatch_matmul(x.data(), w, 3, 64, 5, out.data(), 18), "n=5");     // n != rows
  bad(dispatch_matmul(x.data(), w, 3, 40, 6, out.data(), 18), "block of 32");
  bad(dispatch_matmul(x.data(), w, 0, 64, 6, out.data(), 18), "m=0");
  bad(dispatch_matmul(x.data(), w, 3, -64, 6, out.data(), 18), "k=-64");
  bad(dispatch_matmul(nullptr, w, 3, 64, 6, out.data(), 18), "input");
  bad(dispatch_matmul(x.data(), w, 3, 64, 6, nullptr, 18), "output");
  bad(dispatch_matmul(x.data(), w, 3, 64, 6, out.data(), 17), "output_size=17");
  bad(dispatch_matmul(x.data(), WeightFormat(), 1, 64, 6, out.data(), 18), "");
  EXPECT_FALSE(dispatch_matmul(x.data(), w, 3, 64, 7).ok());

  const KernelEntry* q8 = find_kernel(Format::kQ8_0, Variant::kScalar, Path::kF32);
  bad(run_kernel(*q8, x.data(), w, 3, out.data(), 18), "Q4_0");  // wrong format
}

// A choice resolved once gives the same bytes as dispatch by options, reads no environment
// afterwards, and refuses weights of another format.
TEST(DispatchTest, ResolvedChoiceMatchesDispatchAndIgnoresLaterEnvironment) {
  const int64_t n = 13, k = 256;
  const WeightFormat w = small_weights(Format::kQ4_K, n, k);
  std::vector<float> x(9 * k);
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.37f * static_cast<float>(i));
  absl::StatusOr<KernelChoice> c = KernelChoice::Resolve(Format::kQ4_K);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->general().min_m, 1);
  for (int64_t m : {1, 3, 9}) {
    std::vector<float> a(m * n), b(m * n);
    ASSERT_TRUE(dispatch_matmul(x.data(), w, m, k, n, a.data(), m * n).ok());
    {
      EnvGuard v("FK_VARIANT", "scalar");  // read at Resolve only: no effect now
      ASSERT_TRUE(dispatch_matmul(*c, x.data(), w, m, b.data(), m * n).ok());
    }
    EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float))) << "m=" << m;
    EXPECT_EQ(c->ForBatch(m).variant, c->general().variant);
  }
  const WeightFormat other = small_weights(Format::kQ8_0, n, k);
  std::vector<float> out(n);
  const absl::Status s = dispatch_matmul(*c, x.data(), other, 1, out.data(), n);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("Q4_K"));
}

TEST(DispatchTest, MatchesTheKernelAndUsesScratch) {
  const int64_t m = 5, n = 23, k = 512;
  const WeightFormat w = small_weights(Format::kQ4_K, n, k);
  std::mt19937_64 rng(11);
  std::vector<float> buf = make_input(m, k, rng, false);
  const float* x = buf.data() + 1;
  absl::StatusOr<const KernelEntry*> e = select_kernel(Format::kQ4_K);
  ASSERT_TRUE(e.ok());
  std::vector<float> want(m * n), got(m * n);
  ASSERT_TRUE(run_kernel(**e, x, w, m, want.data(), m * n).ok());
  ThreadPool pool(3);
  MatmulOptions opt;
  opt.pool = &pool;
  MatmulScratch scratch;
  const uint8_t* first = nullptr;
  for (int rep = 0; rep < 3; ++rep) {
    ASSERT_TRUE(dispatch_matmul(x, w, m, k, n, got.data(), m * n, opt, &scratch).ok());
    EXPECT_EQ(std::memcmp(got.data(), want.data(), want.size() * sizeof(float)), 0);
    // Warm scratch is reused, never reallocated.
    if (rep == 0) first = scratch.act.data();
    EXPECT_EQ(scratch.act.data(), first);
  }
  // m packed rows of at least 2 Q8_K super-blocks each.
  EXPECT_GE(scratch.act.size(), static_cast<size_t>(m * 2 * sizeof(BlockQ8_K)));
  absl::StatusOr<std::vector<float>> v = dispatch_matmul(x, w, m, k, n, opt);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(std::memcmp(v->data(), want.data(), want.size() * sizeof(float)), 0);
}

TEST(DispatchTest, MatmulTransposed) {
  const int64_t m = 3, n = 10, k = 19;
  std::vector<float> x(m * k), w(n * k);
  for (int64_t i = 0; i < m * k; ++i) x[i] = static_cast<float>(i % 7) - 3.0f;
  for (int64_t i = 0; i < n * k; ++i) w[i] = static_cast<float>(i % 5) * 0.25f - 0.5f;
  absl::StatusOr<std::vector<float>> out = matmul_transposed(x.data(), w.data(), m, k, n);
  ASSERT_TRUE(out.ok()) << out.status();
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t t = 0; t < k; ++t) s += double{x[i * k + t]} * w[j * k + t];
      // Small integers and quarters: every partial sum is exact in float.
      EXPECT_EQ(double{(*out)[i * n + j]}, s) << i << " " << j;
    }
  }
  EXPECT_FALSE(matmul_transposed(x.data(), nullptr, m, k, n).ok());
}

// On a CPU without VNNI (or without AVX-512, or AVX2) the kernels it lacks are never
// chosen, asking for them is a clear error naming the missing feature, and the skip
// message of the parameterized tests names it too.
TEST(DispatchTest, FakedSmallerCpusFallBackAndExplain) {
  struct Case {
    uint32_t disable;
    Variant lost;          // a variant that stops being runnable
    const char* missing;   // the feature its error names
  };
  const Case cases[] = {{kCpuAvx512Vnni, Variant::kAvx512Vnni, "avx512vnni"},
                        {kCpuAvx512F, Variant::kAvx512, "avx512f"},
                        {kCpuAvx2, Variant::kAvx2, "avx2"}};
  bool tested = false;
  for (const Case& c : cases) {
    const KernelEntry* lost = find_kernel(Format::kQ4_K, c.lost, Path::kInt8);
    if (lost == nullptr || !kernel_runnable(*lost)) continue;  // this CPU lacks it anyway
    DisabledFeaturesGuard g(c.disable);
    SCOPED_TRACE(variant_name(c.lost));
    EXPECT_FALSE(kernel_runnable(*lost));
    EXPECT_THAT(missing_cpu_features(lost->features), HasSubstr(c.missing));
    for (const FormatTraits& t : all_formats()) {
      absl::StatusOr<const KernelEntry*> e = select_kernel(t.format);
      ASSERT_TRUE(e.ok()) << t.name << ": " << e.status();
      EXPECT_TRUE(kernel_runnable(**e)) << (*e)->name;
      EXPECT_LT((*e)->variant, c.lost) << (*e)->name;
    }
    MatmulOptions opt;
    opt.variant = c.lost;
    absl::StatusOr<const KernelEntry*> s = select_kernel(Format::kQ4_K, opt);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(std::string(s.status().message()), HasSubstr(c.missing));
    // And dispatch still computes, on what is left.
    const WeightFormat w = small_weights(Format::kQ4_K, 5, 256);
    std::vector<float> x(256, 0.25f);
    absl::StatusOr<std::vector<float>> out = dispatch_matmul(x.data(), w, 1, 256, 5);
    EXPECT_TRUE(out.ok()) << out.status();
    EXPECT_FALSE(run_kernel(*lost, x.data(), w, 1, out->data(), 5).ok());
    tested = true;
  }
  if (!tested) GTEST_SKIP() << "this CPU has none of avx2, avx512f, avx512vnni";
}

// A path that only the scalar reference runs on this CPU says so (the f16 path without AVX2
// and AVX-512 FP16); a choice above scalar, or a named variant, does not. Without AVX-512
// FP16 alone, the f16 path is avx2's emulation.
TEST(DispatchTest, ScalarFallbackOfAFasterPathIsNoted) {
  MatmulOptions f16;
  f16.path = Path::kF16;
  const KernelEntry* emulated = find_kernel(Format::kF16, Variant::kAvx2, Path::kF16);
  ASSERT_NE(emulated, nullptr);
  if (kernel_runnable(*emulated)) {
    DisabledFeaturesGuard g(kCpuAvx512Fp16);
    absl::StatusOr<KernelChoice> c = KernelChoice::Resolve(Format::kF16, f16);
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_EQ(&c->general(), emulated);
    EXPECT_EQ(c->slow_note(), "");
  }
  {
    DisabledFeaturesGuard g(kCpuAvx2 | kCpuAvx512Fp16);
    absl::StatusOr<KernelChoice> c = KernelChoice::Resolve(Format::kF16, f16);
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_EQ(c->general().variant, Variant::kScalar);
    EXPECT_THAT(c->slow_note(), HasSubstr("f16_f16__scalar"));
    EXPECT_THAT(c->slow_note(), HasSubstr("f16_f16__avx2"));
    EXPECT_THAT(c->slow_note(), HasSubstr("avx2"));
    MatmulOptions named = f16;
    named.variant = Variant::kScalar;
    absl::StatusOr<KernelChoice> n = KernelChoice::Resolve(Format::kF16, named);
    ASSERT_TRUE(n.ok()) << n.status();
    EXPECT_EQ(n->slow_note(), "");
  }
  absl::StatusOr<KernelChoice> q = KernelChoice::Resolve(Format::kQ4_K);
  ASSERT_TRUE(q.ok()) << q.status();
  // Above scalar: no note; on a (pretended) CPU without AVX2, Q4_K's SIMD rows are missed.
  EXPECT_EQ(q->slow_note().empty(), q->general().variant != Variant::kScalar) << q->slow_note();
  const KernelEntry* fp16 = find_kernel(Format::kF16, Variant::kAvx512, Path::kF16);
  ASSERT_NE(fp16, nullptr);
  if (kernel_runnable(*fp16)) {
    absl::StatusOr<KernelChoice> c = KernelChoice::Resolve(Format::kF16, f16);
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_EQ(c->slow_note(), "");
  }
}

// avx512_vnni has only int8 kernels: asking for it on the f32 path gets avx512's.
TEST(DispatchTest, Avx512VnniFallsBackToAvx512ForTheF32Path) {
  MatmulOptions opt;
  opt.variant = Variant::kAvx512Vnni;
  opt.path = Path::kF32;
  for (Format f : {Format::kF32, Format::kQ4_K}) {
    if (find_kernel(f, Variant::kAvx512Vnni, Path::kF32) != nullptr) continue;
    const KernelEntry* avx512 = find_kernel(f, Variant::kAvx512, Path::kF32);
    ASSERT_NE(avx512, nullptr);
    absl::StatusOr<const KernelEntry*> e = select_kernel(f, opt);
    if (!kernel_runnable(*avx512)) {
      EXPECT_FALSE(e.ok());
      continue;
    }
    ASSERT_TRUE(e.ok()) << e.status();
    EXPECT_EQ(*e, avx512);
  }
}

// ---- dispatch_matmuls: several matmuls of one input in one parallel region ------------------

struct GroupResult {
  std::vector<std::vector<float>> outs;
};

// The jobs' weights: formats[j] with n[j] rows of k = 256 (a multiple of every block).
std::vector<WeightFormat> group_weights(const std::vector<Format>& formats,
                                        const std::vector<int64_t>& n) {
  std::vector<WeightFormat> w;
  for (size_t j = 0; j < formats.size(); ++j) w.push_back(small_weights(formats[j], n[j], 256));
  return w;
}

TEST(DispatchMatmulsTest, BitIdenticalToSeparateCallsForEveryFormatPathBatchAndThreads) {
  const int64_t k = 256;
  std::mt19937_64 rng(11);
  std::vector<std::vector<Format>> groups;
  for (const FormatTraits& t : all_formats()) groups.push_back({t.format, t.format, t.format});
  // A llama.cpp K-quant file's mix: different activation packers within one group.
  groups.push_back({Format::kQ4_K, Format::kQ5_0, Format::kQ8_0});
  const std::vector<int64_t> n = {72, 24, 40};
  for (const std::vector<Format>& formats : groups) {
    const std::vector<WeightFormat> w = group_weights(formats, n);
    for (Path path : {Path::kF32, Path::kInt8}) {
      std::vector<KernelChoice> choices;
      for (const WeightFormat& wf : w) {
        MatmulOptions o;
        o.path = has_int8_path(wf.format_traits()) ? path : Path::kF32;
        absl::StatusOr<KernelChoice> c = KernelChoice::Resolve(wf.format(), o);
        ASSERT_TRUE(c.ok()) << c.status();
        choices.push_back(*c);
      }
      for (int64_t m : {1, 3, 70}) {
        const std::vector<float> x = make_input(m, k, rng, false);
        std::vector<std::vector<float>> want(w.size());
        for (size_t j = 0; j < w.size(); ++j) {
          want[j].assign(static_cast<size_t>(m * n[j]), NAN);
          ASSERT_TRUE(dispatch_matmul(choices[j], x.data(), w[j], m, want[j].data(),
                                      m * n[j]).ok());
        }
        for (int threads : {1, 2, 3}) {
          ThreadPool pool(threads);
          MatmulScratch scratch;
          std::vector<std::vector<float>> got(w.size());
          std::vector<MatmulJob> jobs;
          for (size_t j = 0; j < w.size(); ++j) {
            got[j].assign(static_cast<size_t>(m * n[j]), NAN);
            jobs.push_back({&choices[j], &w[j], got[j].data(), m * n[j]});
          }
          ASSERT_TRUE(dispatch_matmuls(jobs, x.data(), m, &pool, &scratch).ok());
          for (size_t j = 0; j < w.size(); ++j) {
            ASSERT_EQ(std::memcmp(want[j].data(), got[j].data(), want[j].size() * sizeof(float)),
                      0)
                << choices[j].ForBatch(m).name << ", job " << j << ", m " << m << ", threads "
                << threads;
          }
          // The activations were quantized once per distinct packer: only a group with more
          // than one packer uses a second buffer.
          std::set<const ActPacker*> packers;
          for (const KernelChoice& c : choices) {
            if (c.ForBatch(m).act != nullptr) packers.insert(c.ForBatch(m).act);
          }
          EXPECT_EQ(scratch.more_act.size(), packers.empty() ? 0 : packers.size() - 1)
              << traits(formats[0]).name;
        }
      }
    }
  }
}

// gate / up with an epilogue: each column range is finished for both before the epilogue
// sees it, every column exactly once.
struct GatedEpilogue {
  float* gate;
  const float* up;
  int64_t m, n;
  std::vector<int>* seen;
};

TEST(DispatchMatmulsTest, EpilogueSeesEachFinishedColumnRangeOnce) {
  const int64_t k = 256, n = 200;
  std::mt19937_64 rng(12);
  for (Format f : {Format::kQ4_0, Format::kQ4_K, Format::kQ6_K, Format::kF32}) {
    const std::vector<WeightFormat> w = group_weights({f, f}, {n, n});
    absl::StatusOr<KernelChoice> c = KernelChoice::Resolve(f);
    ASSERT_TRUE(c.ok()) << c.status();
    for (int64_t m : {1, 9}) {
      const std::vector<float> x = make_input(m, k, rng, false);
      std::vector<float> g(static_cast<size_t>(m * n)), u(g.size());
      ASSERT_TRUE(dispatch_matmul(*c, x.data(), w[0], m, g.data(), m * n).ok());
      ASSERT_TRUE(dispatch_matmul(*c, x.data(), w[1], m, u.data(), m * n).ok());
      std::vector<float> want(g.size());
      for (size_t i = 0; i < g.size(); ++i) want[i] = g[i] * 0.5f + u[i];
      for (int threads : {1, 2, 3}) {
        ThreadPool pool(threads);
        std::vector<float> gate(g.size(), NAN), up(g.size(), NAN);
        std::vector<int> seen(static_cast<size_t>(n), 0);
        GatedEpilogue ctx{gate.data(), up.data(), m, n, &seen};
        MatmulEpilogue epi;
        epi.ctx = &ctx;
        epi.fn = [](void* p, int64_t b, int64_t e) {
          GatedEpilogue& c = *static_cast<GatedEpilogue*>(p);
          for (int64_t col = b; col < e; ++col) ++(*c.seen)[col];
          for (int64_t i = 0; i < c.m; ++i) {
            for (int64_t col = b; col < e; ++col) {
              c.gate[i * c.n + col] = c.gate[i * c.n + col] * 0.5f + c.up[i * c.n + col];
            }
          }
        };
        const MatmulJob jobs[] = {{&*c, &w[0], gate.data(), m * n}, {&*c, &w[1], up.data(), m * n}};
        ASSERT_TRUE(dispatch_matmuls(jobs, x.data(), m, &pool, nullptr, &epi).ok());
        EXPECT_EQ(std::memcmp(want.data(), gate.data(), want.size() * sizeof(float)), 0)
            << traits(f).name << ", m " << m << ", threads " << threads;
        EXPECT_EQ(std::memcmp(u.data(), up.data(), u.size() * sizeof(float)), 0);
        for (int64_t col = 0; col < n; ++col) ASSERT_EQ(seen[col], 1) << "column " << col;
      }
    }
  }
}

TEST(DispatchMatmulsTest, Errors) {
  const std::vector<WeightFormat> w = group_weights({Format::kQ4_0, Format::kQ8_0}, {32, 48});
  const WeightFormat other_k = small_weights(Format::kQ4_0, 32, 512);
  absl::StatusOr<KernelChoice> c0 = KernelChoice::Resolve(Format::kQ4_0);
  absl::StatusOr<KernelChoice> c1 = KernelChoice::Resolve(Format::kQ8_0);
  ASSERT_TRUE(c0.ok() && c1.ok());
  std::vector<float> x(256, 0.5f), o0(32), o1(48);
  const MatmulJob good[] = {{&*c0, &w[0], o0.data(), 32}, {&*c1, &w[1], o1.data(), 48}};
  EXPECT_TRUE(dispatch_matmuls(good, x.data(), 1).ok());
  EXPECT_THAT(std::string(dispatch_matmuls({}, x.data(), 1).message()), HasSubstr("0 jobs"));
  const MatmulJob five[] = {good[0], good[0], good[0], good[0], good[0]};
  EXPECT_THAT(std::string(dispatch_matmuls(five, x.data(), 1).message()), HasSubstr("5 jobs"));
  const MatmulJob wrong_choice[] = {{&*c1, &w[0], o0.data(), 32}};
  EXPECT_THAT(std::string(dispatch_matmuls(wrong_choice, x.data(), 1).message()),
              HasSubstr("kernels resolved for Q8_0"));
  const MatmulJob small_out[] = {good[0], {&*c1, &w[1], o1.data(), 47}};
  EXPECT_THAT(std::string(dispatch_matmuls(small_out, x.data(), 1).message()),
              HasSubstr("job 1"));
  const MatmulJob mixed_k[] = {good[0], {&*c0, &other_k, o0.data(), 32}};
  EXPECT_THAT(std::string(dispatch_matmuls(mixed_k, x.data(), 1).message()),
              HasSubstr("does not match the weights' columns"));
  MatmulEpilogue epi;
  epi.fn = [](void*, int64_t, int64_t) {};
  EXPECT_THAT(std::string(dispatch_matmuls(good, x.data(), 1, nullptr, nullptr, &epi).message()),
              HasSubstr("same rows"));
}

}  // namespace
}  // namespace fk
