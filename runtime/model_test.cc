// The llama model on tiny random models written by GgufWriter in every format:
//  - an independent, plain double-precision forward pass (no KV cache, no batching,
//    weights dequantized by the format's reference dequantizer) agrees with the runtime;
//  - the fused runtime agrees with the --weights=f32 runtime (tolerances derived below);
//  - thread count, prefill chunking and token-by-token decoding do not change the logits;
//  - bad models give errors naming what is wrong.
#include "runtime/model.h"

#include <algorithm>
#include <cmath>
#include <tuple>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "kernels/cpu_features.h"
#include "kernels/matmul.h"
#include "kernels/registry.h"
#include "kernels/thread_pool.h"
#include "runtime/gguf.h"
#include "runtime/model_testing.h"
#include "runtime/profile.h"

namespace fk {
namespace {

// A prompt of token ids for the tiny vocabularies.
const std::vector<int32_t> kTokens = {104, 101, 108, 108, 111, 32, 259, 44, 258, 10, 7, 200};

struct Loaded {
  std::string bytes;
  std::unique_ptr<GgufFile> file;
  std::unique_ptr<Model> model;
};

Loaded LoadTiny(const TinyLlamaSpec& spec, WeightMode mode = WeightMode::kNative) {
  Loaded l;
  absl::StatusOr<GgufWriter> w = MakeTinyLlama(spec);
  EXPECT_TRUE(w.ok()) << w.status();
  if (!w.ok()) return l;
  absl::StatusOr<std::string> bytes = w->ToBytes();
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  if (!bytes.ok()) return l;
  l.bytes = *std::move(bytes);
  absl::StatusOr<GgufFile> f = GgufFile::FromBuffer(l.bytes.data(), l.bytes.size(), "tiny.gguf");
  EXPECT_TRUE(f.ok()) << f.status();
  if (!f.ok()) return l;
  l.file = std::make_unique<GgufFile>(*std::move(f));
  absl::StatusOr<std::unique_ptr<Model>> m = Model::Load(*l.file, mode);
  EXPECT_TRUE(m.ok()) << m.status();
  if (m.ok()) l.model = *std::move(m);
  return l;
}

// Logits after each of the last `steps` tokens of `tokens` (the first ones as one prefill).
std::vector<std::vector<float>> RunModel(const Model& model, const std::vector<int32_t>& tokens,
                                    int steps, RunOptions options, int64_t max_batch = 64) {
  std::vector<std::vector<float>> out;
  absl::StatusOr<std::unique_ptr<Session>> s =
      Session::Create(model, 64, options, max_batch);
  EXPECT_TRUE(s.ok()) << s.status();
  if (!s.ok()) return out;
  const size_t prefill = tokens.size() - steps + 1;
  absl::Status st = (*s)->Eval({tokens.data(), prefill});
  EXPECT_TRUE(st.ok()) << st;
  out.emplace_back((*s)->logits().begin(), (*s)->logits().end());
  for (size_t i = prefill; i < tokens.size(); ++i) {
    st = (*s)->Eval({&tokens[i], 1});
    EXPECT_TRUE(st.ok()) << st;
    out.emplace_back((*s)->logits().begin(), (*s)->logits().end());
  }
  return out;
}

// ||a - b|| / ||b||.
double RelRms(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    den += double(b[i]) * b[i];
  }
  return a.size() == b.size() && den > 0 ? std::sqrt(num / den) : INFINITY;
}

// ---- An independent reference forward pass -----------------------------------------------

// The tiny models of the tests. llama: 2 layers, 4 heads of 64, 2 KV heads. gemma3: 3
// layers, 4 query heads and 1 KV head of 128 (so n_head * head_dim = 512 != n_embd = 256,
// as in Gemma 3 270M), FFN 256, a sliding window of 4 positions on layers 0 and 1 (period
// 3) with the local RoPE base 10000 and the global base 1e6 on layer 2; the 12-token
// prompt crosses the window three times over.
TinyLlamaSpec Spec(const std::string& arch, Format format) {
  TinyLlamaSpec spec;
  spec.format = format;
  spec.architecture = arch;
  if (arch == "gemma3") {
    spec.n_layer = 3;
    spec.n_ff = 256;
    spec.n_head = 4;
    spec.n_head_kv = 1;
    spec.head_dim = 128;
    spec.rope_freq_base = 1e6;
    spec.rms_eps = 1e-6f;
    spec.sliding_window = 4;
    spec.sliding_window_pattern = 3;
  }
  return spec;
}

std::vector<double> Dequantized(const WeightFormat& w) {
  absl::StatusOr<std::vector<float>> f = w.ToF32();
  EXPECT_TRUE(f.ok()) << f.status();
  return std::vector<double>(f->begin(), f->end());
}

// y[n] = sum_k x[k] * W[n][k]
std::vector<double> MatVec(const std::vector<double>& w, const std::vector<double>& x,
                           int64_t n, int64_t k) {
  std::vector<double> y(n, 0.0);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t i = 0; i < k; ++i) y[r] += w[r * k + i] * x[i];
  return y;
}

// RMSNorm of x[at .. at + n) with weight w.
void NormInPlace(std::vector<double>& x, size_t at, size_t n, const std::vector<float>& w,
                 double eps) {
  double ss = 0;
  for (size_t i = 0; i < n; ++i) ss += x[at + i] * x[at + i];
  const double scale = 1.0 / std::sqrt(ss / n + eps);
  for (size_t i = 0; i < n; ++i) x[at + i] = x[at + i] * scale * w[i];
}

std::vector<double> Norm(std::vector<double> x, const std::vector<float>& w, double eps) {
  NormInPlace(x, 0, x.size(), w, eps);
  return x;
}

// Logits of the last token, computed from scratch for the whole sequence. What the
// architecture does comes from the spec the file was written from (the model's weights
// and norms are read through the runtime's Model, nothing of its config): llama as in
// runtime/model.h; gemma3 with embeddings scaled by sqrt(n_embd), per-head RMSNorm of Q and
// K, neox RoPE (pairs i, i + half), post-attention and post-FFN norms, GELU (tanh) gating,
// and on layer l with l % pattern < pattern - 1 a window of the last `sliding_window`
// positions and the local RoPE base.
std::vector<float> ReferenceLogits(const Model& m, const TinyLlamaSpec& spec,
                                   const std::vector<int32_t>& tokens) {
  const bool gemma3 = spec.architecture == "gemma3";
  const int64_t T = tokens.size(), E = spec.n_embd, F = spec.n_ff;
  const int64_t H = spec.n_head, HKV = spec.n_head_kv;
  const int64_t hd = spec.head_dim > 0 ? spec.head_dim : E / H;
  const int64_t V = m.token_embd().rows();
  const double eps = spec.rms_eps;
  const std::vector<double> emb = Dequantized(m.token_embd());
  std::vector<std::vector<double>> x(T);
  for (int64_t t = 0; t < T; ++t) {
    x[t].assign(&emb[tokens[t] * E], &emb[(tokens[t] + 1) * E]);
    if (gemma3) {
      for (double& v : x[t]) v *= std::sqrt(double(E));
    }
  }
  const auto rope = [&](std::vector<double>& v, int64_t heads, int64_t pos, double base) {
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < hd / 2; ++i) {
        const double theta = pos * std::pow(base, -2.0 * i / hd);
        double& a = v[h * hd + (gemma3 ? i : 2 * i)];
        double& b = v[h * hd + (gemma3 ? i + hd / 2 : 2 * i + 1)];
        const double a0 = a, b0 = b;
        a = a0 * std::cos(theta) - b0 * std::sin(theta);
        b = a0 * std::sin(theta) + b0 * std::cos(theta);
      }
  };
  for (int64_t l = 0; l < spec.n_layer; ++l) {
    const Layer& layer = m.layers()[l];
    const int64_t pattern = spec.sliding_window_pattern > 0 ? spec.sliding_window_pattern : 6;
    const bool swa = gemma3 && spec.sliding_window > 0 && l % pattern < pattern - 1;
    const int64_t window = swa ? spec.sliding_window : 0;
    const double base = !swa ? spec.rope_freq_base
                        : spec.rope_freq_base_swa > 0 ? spec.rope_freq_base_swa : 10000.0;
    const std::vector<double> wq = Dequantized(layer.attn.wq), wk = Dequantized(layer.attn.wk),
                              wv = Dequantized(layer.attn.wv), wo = Dequantized(layer.attn.wo),
                              wg = Dequantized(layer.ffn.w_gate), wu = Dequantized(layer.ffn.w_up),
                              wd = Dequantized(layer.ffn.w_down);
    std::vector<std::vector<double>> q(T), k(T), v(T);
    for (int64_t t = 0; t < T; ++t) {
      const std::vector<double> xn = Norm(x[t], layer.attn_norm, eps);
      q[t] = MatVec(wq, xn, H * hd, E);
      k[t] = MatVec(wk, xn, HKV * hd, E);
      v[t] = MatVec(wv, xn, HKV * hd, E);
      if (gemma3) {
        for (int64_t h = 0; h < H; ++h) NormInPlace(q[t], h * hd, hd, layer.attn_q_norm, eps);
        for (int64_t h = 0; h < HKV; ++h) NormInPlace(k[t], h * hd, hd, layer.attn_k_norm, eps);
      }
      rope(q[t], H, t, base);
      rope(k[t], HKV, t, base);
    }
    for (int64_t t = 0; t < T; ++t) {
      std::vector<double> att(H * hd, 0.0);
      const int64_t lo = window > 0 ? std::max<int64_t>(0, t - window + 1) : 0;
      for (int64_t h = 0; h < H; ++h) {
        const int64_t g = h * HKV / H;
        std::vector<double> s(t + 1);
        double mx = -INFINITY, sum = 0;
        for (int64_t j = lo; j <= t; ++j) {
          s[j] = 0;
          for (int64_t i = 0; i < hd; ++i) s[j] += q[t][h * hd + i] * k[j][g * hd + i];
          s[j] /= std::sqrt(double(hd));
          mx = std::max(mx, s[j]);
        }
        for (int64_t j = lo; j <= t; ++j) sum += (s[j] = std::exp(s[j] - mx));
        for (int64_t j = lo; j <= t; ++j)
          for (int64_t i = 0; i < hd; ++i) att[h * hd + i] += s[j] / sum * v[j][g * hd + i];
      }
      std::vector<double> o = MatVec(wo, att, E, H * hd);
      if (gemma3) o = Norm(o, layer.post_attention_norm, eps);
      for (int64_t i = 0; i < E; ++i) x[t][i] += o[i];
      const std::vector<double> xn = Norm(x[t], layer.ffn_norm, eps);
      std::vector<double> gate = MatVec(wg, xn, F, E);
      const std::vector<double> up = MatVec(wu, xn, F, E);
      for (int64_t i = 0; i < F; ++i) {
        const double g = gate[i];
        const double act =
            gemma3 ? 0.5 * g * (1 + std::tanh(std::sqrt(2 / M_PI) * (g + 0.044715 * g * g * g)))
                   : g / (1 + std::exp(-g));
        gate[i] = act * up[i];
      }
      std::vector<double> d = MatVec(wd, gate, E, F);
      if (gemma3) d = Norm(d, layer.post_ffw_norm, eps);
      for (int64_t i = 0; i < E; ++i) x[t][i] += d[i];
    }
  }
  const std::vector<double> xn = Norm(x[T - 1], m.output_norm(), eps);
  std::vector<double> logits = MatVec(Dequantized(m.lm_head()), xn, V, E);
  if (spec.final_logit_softcap > 0) {
    for (double& z : logits) z = spec.final_logit_softcap * std::tanh(z / spec.final_logit_softcap);
  }
  return std::vector<float>(logits.begin(), logits.end());
}

// ---- Per architecture and format ----------------------------------------------------------

class TinyModel : public ::testing::TestWithParam<std::tuple<std::string, Format>> {
 protected:
  TinyLlamaSpec spec() const {
    return Spec(std::get<0>(GetParam()), std::get<1>(GetParam()));
  }
};

std::string ParamName(const ::testing::TestParamInfo<std::tuple<std::string, Format>>& info) {
  return absl::StrCat(std::get<0>(info.param), "_", traits(std::get<1>(info.param)).name);
}

// Every format of the table (kernels/formats.inc).
std::vector<Format> AllFormats() {
  std::vector<Format> out;
  for (const FormatTraits& t : all_formats()) out.push_back(t.format);
  return out;
}

INSTANTIATE_TEST_SUITE_P(Formats, TinyModel,
                         ::testing::Combine(::testing::Values(std::string("llama"),
                                                              std::string("gemma3")),
                                            ::testing::ValuesIn(AllFormats())),
                         ParamName);

// The runtime (f32 weights, f32 kernels, float accumulation) against the double-precision
// reference on the same dequantized weights. Float rounding in dots of length <= 512 and
// the softmax/norms: relative error ~1e-6 per operation; 1e-4 leaves room for the
// growth through the layers and cannot hide a wrong rotation, head mapping, norm or mask
// (those change logits by O(1); SlidingWindowChangesTheLogits shows the window alone moves
// them by far more).
TEST_P(TinyModel, F32RuntimeMatchesIndependentReference) {
  TinyLlamaSpec spec = this->spec();
  spec.tied = spec.format != Format::kQ4_0;  // one untied model among the formats
  Loaded f32 = LoadTiny(spec, WeightMode::kF32);
  ASSERT_NE(f32.model, nullptr);
  const std::vector<float> want = ReferenceLogits(*f32.model, spec, kTokens);
  const std::vector<std::vector<float>> got =
      RunModel(*f32.model, kTokens, 1, RunOptions{std::nullopt, Path::kF32, nullptr});
  ASSERT_EQ(got.size(), 1u);
  EXPECT_LT(RelRms(got[0], want), 1e-4);
  // Every prefix too: decoding token by token reads the KV cache (and crosses the window).
  for (size_t n : {size_t{1}, size_t{5}}) {
    const std::vector<int32_t> prefix(kTokens.begin(), kTokens.begin() + n);
    const auto run = RunModel(*f32.model, prefix, 1, RunOptions{std::nullopt, Path::kF32, nullptr});
    ASSERT_EQ(run.size(), 1u);
    EXPECT_LT(RelRms(run[0], ReferenceLogits(*f32.model, spec, prefix)), 1e-4) << n << " tokens";
  }
  const auto steps =
      RunModel(*f32.model, kTokens, 6, RunOptions{std::nullopt, Path::kF32, nullptr});
  ASSERT_EQ(steps.size(), 6u);
  EXPECT_LT(RelRms(steps.back(), want), 1e-4) << "prefill of 7, then 5 single steps";
}

// Fused kernels on the native weights against the f32-weights runtime.
//  f32 path: the kernels see the same weight values the dequantizer gives, so only the
//    order of float additions differs: relative differences ~1e-6; bound 1e-4.
//  int8 path: activations are rounded to 8-bit blocks (Q8_0, or Q8_K for K-quants) before
//    every matmul. One block's rounding error is at most d/2 with d = max|x|/127, i.e. a
//    relative RMS error of about (max|x|/rms(x)) / (127 * sqrt(12)) ~ 0.25/127 ~ 0.6 % for
//    Gaussian-like activations (max/rms ~ 2.5 in a 32-block). Four quantized matmul inputs
//    per layer and the LM head (9 for llama's 2 layers, 13 for gemma3's 3), errors adding
//    in quadrature and amplified mildly by the nonlinearities: ~2 %; bound 5 %.
TEST_P(TinyModel, FusedMatchesF32Weights) {
  const TinyLlamaSpec spec = this->spec();
  Loaded native = LoadTiny(spec, WeightMode::kNative);
  Loaded f32 = LoadTiny(spec, WeightMode::kF32);
  ASSERT_NE(native.model, nullptr);
  ASSERT_NE(f32.model, nullptr);
  const int steps = 4;
  const auto want =
      RunModel(*f32.model, kTokens, steps, RunOptions{std::nullopt, Path::kF32, nullptr});
  const auto fused_f32 =
      RunModel(*native.model, kTokens, steps, RunOptions{std::nullopt, Path::kF32, nullptr});
  ASSERT_EQ(want.size(), size_t{steps});
  ASSERT_EQ(fused_f32.size(), size_t{steps});
  for (int i = 0; i < steps; ++i) {
    EXPECT_LT(RelRms(fused_f32[i], want[i]), 1e-4) << "f32 path, step " << i;
  }
  // bf16 path: BF16 weights' activations rounded to bf16 (relative error <= 2^-9 per
  // element, RMS about 2^-9 / sqrt(3) ~ 0.11 %; 9-13 rounded matmul inputs in quadrature,
  // mildly amplified: ~0.5 %; bound 2 %); every other format stays on the f32 path, bit for bit.
  const auto fused_bf16 =
      RunModel(*native.model, kTokens, steps, RunOptions{std::nullopt, Path::kBf16, nullptr});
  ASSERT_EQ(fused_bf16.size(), size_t{steps});
  for (int i = 0; i < steps; ++i) {
    if (spec.format != Format::kBF16) {
      EXPECT_EQ(fused_bf16[i], fused_f32[i]) << "bf16 path, step " << i;
      continue;
    }
    const double err = RelRms(fused_bf16[i], want[i]);
    EXPECT_LT(err, 0.02) << "bf16 path, step " << i;
    EXPECT_GT(err, 0.0) << "bf16 path, step " << i << ": activations are rounded";
  }
  // f16 path: F16 weights' activations rounded to fp16 (relative error <= 2^-11 per element)
  // and products summed in fp16 chains of 16 (each step rounding by <= 2^-11 of its partial
  // sum, RMS of a chain's error about 2^-11 * sqrt(16 / 3) ~ 0.11 % of its terms' spread):
  // about the bf16 path's error or less; bound 2 %. Other formats stay on the f32 path.
  const auto fused_f16 =
      RunModel(*native.model, kTokens, steps, RunOptions{std::nullopt, Path::kF16, nullptr});
  ASSERT_EQ(fused_f16.size(), size_t{steps});
  for (int i = 0; i < steps; ++i) {
    if (spec.format != Format::kF16) {
      EXPECT_EQ(fused_f16[i], fused_f32[i]) << "f16 path, step " << i;
      continue;
    }
    const double err = RelRms(fused_f16[i], want[i]);
    EXPECT_LT(err, 0.02) << "f16 path, step " << i;
    EXPECT_GT(err, 0.0) << "f16 path, step " << i << ": activations are rounded";
  }
  const auto fused_int8 =
      RunModel(*native.model, kTokens, steps, RunOptions{std::nullopt, Path::kInt8, nullptr});
  ASSERT_EQ(fused_int8.size(), size_t{steps});
  if (!has_int8_path(traits(spec.format))) {
    // F32 / F16 / BF16 weights have no int8 path: asking for it leaves them on the f32
    // path, bit for bit.
    for (int i = 0; i < steps; ++i) EXPECT_EQ(fused_int8[i], fused_f32[i]) << "step " << i;
    return;
  }
  for (int i = 0; i < steps; ++i) {
    const double err = RelRms(fused_int8[i], want[i]);
    EXPECT_LT(err, 0.05) << "int8 path, step " << i;
    EXPECT_GT(err, 0.0) << "int8 path, step " << i << ": activations are quantized, so some "
                        << "difference is expected";
  }
}

// dispatch_matmul splits output columns at tile borders and never the sums, and attention
// heads are independent tasks: any thread count gives the same bits.
TEST_P(TinyModel, ThreadCountDoesNotChangeLogits) {
  Loaded native = LoadTiny(spec());
  ASSERT_NE(native.model, nullptr);
  const auto one = RunModel(*native.model, kTokens, 3, RunOptions{});
  for (int threads : {2, 3}) {
    ThreadPool pool(threads);
    RunOptions o;
    o.pool = &pool;
    const auto many = RunModel(*native.model, kTokens, 3, o);
    ASSERT_EQ(many.size(), one.size());
    for (size_t i = 0; i < one.size(); ++i) {
      ASSERT_EQ(many[i].size(), one[i].size());
      EXPECT_EQ(std::memcmp(many[i].data(), one[i].data(), one[i].size() * sizeof(float)), 0)
          << threads << " threads, step " << i;
    }
  }
}

// A 57-token prompt is enough work for the runtime to split attention into (row chunk, head)
// tasks and the norms / RoPE / residual adds into row chunks: still the same bits as one
// thread, for 2 and 3 threads, with and without a sliding window.
TEST(TinyModelThreads, LongPromptSplitsRowsWithoutChangingBits) {
  std::vector<int32_t> tokens;
  for (int i = 0; i < 60; ++i) tokens.push_back((kTokens[i % kTokens.size()] + 13 * i) % 256);
  for (const char* arch : {"llama", "gemma3"}) {
    TinyLlamaSpec spec;
    spec.architecture = arch;
    if (spec.architecture == "gemma3") {
      spec.sliding_window = 16;
      spec.sliding_window_pattern = 2;
    }
    Loaded l = LoadTiny(spec);
    ASSERT_NE(l.model, nullptr) << arch;
    for (Path path : {Path::kF32, Path::kInt8}) {
      RunOptions o;
      o.path = path;
      const auto one = RunModel(*l.model, tokens, 3, o);
      for (int threads : {2, 3}) {
        ThreadPool pool(threads);
        o.pool = &pool;
        const auto many = RunModel(*l.model, tokens, 3, o);
        ASSERT_EQ(many.size(), one.size());
        for (size_t i = 0; i < one.size(); ++i) {
          EXPECT_EQ(std::memcmp(many[i].data(), one[i].data(), one[i].size() * sizeof(float)), 0)
              << arch << ", " << path_name(path) << ", " << threads << " threads, step " << i;
        }
      }
    }
  }
}

// Prefill in chunks of 1, 5 and 64 rows gives the same logits up to float summation
// order in the batched kernels (f32 path: 1e-5 relative). gemma3's window of 4 is shorter
// than a chunk of 5, so chunks see positions of the previous chunk through the cache.
TEST(TinyModelBatching, PrefillChunkingDoesNotMatter) {
  for (const char* arch : {"llama", "gemma3"}) {
    Loaded l = LoadTiny(Spec(arch, Format::kQ4_K));
    ASSERT_NE(l.model, nullptr);
    for (Path path : {Path::kF32, Path::kInt8}) {
      const RunOptions o{std::nullopt, path, nullptr};
      const auto whole = RunModel(*l.model, kTokens, 1, o, 64);
      const auto chunked = RunModel(*l.model, kTokens, 1, o, 5);
      const auto single = RunModel(*l.model, kTokens, 1, o, 1);
      ASSERT_EQ(whole.size(), 1u);
      ASSERT_EQ(chunked.size(), 1u);
      ASSERT_EQ(single.size(), 1u);
      EXPECT_LT(RelRms(chunked[0], whole[0]), 1e-5) << arch << " " << path_name(path);
      EXPECT_LT(RelRms(single[0], whole[0]), 1e-5) << arch << " " << path_name(path);
    }
  }
}

// EvalAll's row i is the logits after tokens[0..i]: as decoding token by token gives them,
// up to the batched kernels' summation order (1e-5 relative, as above), with chunks of 5
// rows so that rows of later chunks read earlier chunks' cache. Rows come in order, once
// each, and logits() is left holding the last one.
TEST(TinyModelBatching, EvalAllGivesEveryTokensLogits) {
  for (const char* arch : {"llama", "gemma3"}) {
    Loaded l = LoadTiny(Spec(arch, Format::kQ4_K));
    ASSERT_NE(l.model, nullptr);
    for (Path path : {Path::kF32, Path::kInt8}) {
      const RunOptions o{std::nullopt, path, nullptr};
      const auto steps = RunModel(*l.model, kTokens, static_cast<int>(kTokens.size()), o);
      ASSERT_EQ(steps.size(), kTokens.size());
      absl::StatusOr<std::unique_ptr<Session>> s = Session::Create(*l.model, 64, o, 5);
      ASSERT_TRUE(s.ok()) << s.status();
      std::vector<std::vector<float>> rows;
      absl::Status st = (*s)->EvalAll(kTokens, [&](int64_t i, absl::Span<const float> x) {
        EXPECT_EQ(i, static_cast<int64_t>(rows.size()));
        rows.emplace_back(x.begin(), x.end());
      });
      ASSERT_TRUE(st.ok()) << st;
      ASSERT_EQ(rows.size(), kTokens.size());
      EXPECT_EQ((*s)->n_past(), static_cast<int64_t>(kTokens.size()));
      for (size_t i = 0; i < rows.size(); ++i) {
        EXPECT_LT(RelRms(rows[i], steps[i]), 1e-5) << arch << " " << path_name(path) << " row " << i;
      }
      EXPECT_EQ(std::vector<float>((*s)->logits().begin(), (*s)->logits().end()), rows.back());
    }
  }
}

// ---- gemma3 specifics ---------------------------------------------------------------------

// The reference (and with it F32RuntimeMatchesIndependentReference) can tell a window
// from none: a window as long as the prompt (same layers, same RoPE bases) moves the
// 12-token logits by far more than the 1e-4 the runtime is held to, and the runtime
// follows the file's window. Without any window (no sliding_window key) every layer is
// global and takes the global RoPE base, which the runtime follows too.
TEST(TinyGemma3, SlidingWindowChangesTheLogits) {
  const TinyLlamaSpec spec = Spec("gemma3", Format::kF32);
  Loaded l = LoadTiny(spec, WeightMode::kF32);
  ASSERT_NE(l.model, nullptr);
  const std::vector<float> windowed = ReferenceLogits(*l.model, spec, kTokens);
  for (int64_t window : {int64_t{12}, int64_t{0}}) {
    TinyLlamaSpec other = spec;
    other.sliding_window = window;
    Loaded o = LoadTiny(other, WeightMode::kF32);  // the same weights, other metadata
    ASSERT_NE(o.model, nullptr);
    const std::vector<float> want = ReferenceLogits(*o.model, other, kTokens);
    EXPECT_GT(RelRms(want, windowed), 1e-2) << "window " << window;
    const auto got = RunModel(*o.model, kTokens, 1, RunOptions{std::nullopt, Path::kF32, nullptr});
    ASSERT_EQ(got.size(), 1u);
    EXPECT_LT(RelRms(got[0], want), 1e-4) << "window " << window;
  }
}

TEST(TinyGemma3, ConfigFollowsTheMetadata) {
  TinyLlamaSpec spec = Spec("gemma3", Format::kF32);
  spec.n_layer = 7;
  spec.sliding_window_pattern = 0;  // llama.cpp's default period for gemma3: 6
  Loaded l = LoadTiny(spec);
  ASSERT_NE(l.model, nullptr);
  const ModelConfig& c = l.model->config();
  EXPECT_EQ(c.architecture, "gemma3");
  EXPECT_EQ(c.rope_style, RopeStyle::kNeox);
  EXPECT_EQ(c.activation, Activation::kGeluTanh);
  EXPECT_TRUE(c.qk_norm);
  EXPECT_TRUE(c.post_norms);
  EXPECT_FLOAT_EQ(c.embedding_scale, 16.0f);   // sqrt(256)
  EXPECT_FLOAT_EQ(c.attention_scale, 1.0f / std::sqrt(128.0f));
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_FLOAT_EQ(c.rms_eps, 1e-6f);
  ASSERT_EQ(c.layers.size(), 7u);
  EXPECT_EQ(c.sliding_window_layers(), 6);
  for (int l = 0; l < 7; ++l) {
    const bool swa = l != 5;
    EXPECT_EQ(c.layers[l].sliding_window, swa ? 4 : 0) << "layer " << l;
    EXPECT_EQ(c.layers[l].rope_freq_base, swa ? 10000.0 : 1e6) << "layer " << l;
  }
  // A period of 2, a local base from the file, a per-layer array, no window at all.
  spec.sliding_window_pattern = 2;
  spec.rope_freq_base_swa = 5000;
  Loaded p2 = LoadTiny(spec);
  ASSERT_NE(p2.model, nullptr);
  for (int l = 0; l < 7; ++l) {
    EXPECT_EQ(p2.model->config().layers[l].sliding_window, l % 2 == 0 ? 4 : 0) << l;
    EXPECT_EQ(p2.model->config().layers[l].rope_freq_base, l % 2 == 0 ? 5000.0 : 1e6) << l;
  }
  absl::StatusOr<GgufWriter> w = MakeTinyLlama(spec);
  ASSERT_TRUE(w.ok());
  w->Add("gemma3.attention.sliding_window_pattern",
         GgufValue::UintArray(GgufValueType::kBool, {0, 0, 1, 0, 1, 1, 0}));
  absl::StatusOr<std::string> bytes = w->ToBytes();
  ASSERT_TRUE(bytes.ok());
  absl::StatusOr<GgufFile> f = GgufFile::FromBuffer(bytes->data(), bytes->size(), "a.gguf");
  ASSERT_TRUE(f.ok());
  absl::StatusOr<ModelConfig> arr = ModelConfig::FromGguf(*f);
  ASSERT_TRUE(arr.ok()) << arr.status();
  for (int l = 0; l < 7; ++l) {
    EXPECT_EQ(arr->layers[l].sliding_window > 0, l == 2 || l == 4 || l == 5) << l;
  }
  spec.sliding_window = 0;
  Loaded none = LoadTiny(spec);
  ASSERT_NE(none.model, nullptr);
  EXPECT_EQ(none.model->config().sliding_window_layers(), 0);
  EXPECT_EQ(none.model->config().layers[0].rope_freq_base, 1e6);
  // llama keeps its own choices.
  Loaded llama = LoadTiny(Spec("llama", Format::kF32));
  ASSERT_NE(llama.model, nullptr);
  EXPECT_EQ(llama.model->config().rope_style, RopeStyle::kNormal);
  EXPECT_EQ(llama.model->config().activation, Activation::kSilu);
  EXPECT_FALSE(llama.model->config().qk_norm);
  EXPECT_EQ(llama.model->config().embedding_scale, 1.0f);
  EXPECT_EQ(llama.model->config().sliding_window_layers(), 0);
}

// gemma3.final_logit_softcapping: logits = c * tanh(logits / c), checked by the reference.
TEST(TinyGemma3, FinalLogitSoftcap) {
  TinyLlamaSpec spec = Spec("gemma3", Format::kF32);
  spec.final_logit_softcap = 0.5f;  // small enough to bend the tiny model's logits
  Loaded l = LoadTiny(spec, WeightMode::kF32);
  ASSERT_NE(l.model, nullptr);
  const auto got = RunModel(*l.model, kTokens, 1, RunOptions{std::nullopt, Path::kF32, nullptr});
  ASSERT_EQ(got.size(), 1u);
  EXPECT_LT(RelRms(got[0], ReferenceLogits(*l.model, spec, kTokens)), 1e-4);
  TinyLlamaSpec uncapped = spec;
  uncapped.final_logit_softcap = 0;
  EXPECT_GT(RelRms(got[0], ReferenceLogits(*l.model, uncapped, kTokens)), 1e-2);
  for (float v : got[0]) EXPECT_LE(std::fabs(v), 0.5f);
}

// ---- Batching, memory, formats ------------------------------------------------------------

TEST(TinyLlamaModel, NativeWeightsStayInTheFileFormat) {
  TinyLlamaSpec spec;
  spec.format = Format::kQ4_K;
  spec.tied = false;
  Loaded native = LoadTiny(spec);
  Loaded f32 = LoadTiny(spec, WeightMode::kF32);
  ASSERT_NE(native.model, nullptr);
  ASSERT_NE(f32.model, nullptr);
  const ModelConfig& c = native.model->config();
  int64_t params = 0, norms = 0;
  for (const auto& [name, w] : native.model->matmul_weights()) {
    EXPECT_EQ(w->format(), Format::kQ4_K) << name;
    EXPECT_FALSE(w->owns_bytes()) << name << " should view the file's bytes";
    params += w->elements();
  }
  norms = c.n_embd * (2 * c.n_layer + 1);
  EXPECT_EQ(native.model->weight_memory_bytes(),
            static_cast<size_t>(params / 256 * sizeof(BlockQ4_K) + norms * 4));
  EXPECT_EQ(f32.model->weight_memory_bytes(), static_cast<size_t>((params + norms) * 4));
  for (const auto& [name, w] : f32.model->matmul_weights()) {
    EXPECT_EQ(w->format(), Format::kF32) << name;
  }
  EXPECT_EQ(native.model->lm_head().rows(), c.n_vocab);
  EXPECT_FALSE(native.model->tied_lm_head());
}

TEST(TinyLlamaModel, TiedHeadIsTheEmbeddingCountedOnce) {
  TinyLlamaSpec spec;
  spec.format = Format::kQ8_0;
  Loaded l = LoadTiny(spec);
  ASSERT_NE(l.model, nullptr);
  EXPECT_TRUE(l.model->tied_lm_head());
  EXPECT_EQ(l.model->lm_head().data(), l.model->token_embd().data());
  EXPECT_EQ(l.model->lm_head().format(), Format::kQ8_0);
  size_t bytes = 0;
  for (const auto& [name, w] : l.model->matmul_weights()) bytes += w->memory_bytes();
  const ModelConfig& c = l.model->config();
  EXPECT_EQ(l.model->weight_memory_bytes(), bytes + c.n_embd * (2 * c.n_layer + 1) * 4);
  EXPECT_EQ(l.model->matmul_weights().size(), static_cast<size_t>(1 + 7 * c.n_layer));
}

// A profiled session computes the same bits, and its profile counts what was evaluated: each
// layer matmul once per layer per evaluation, the LM head once, attention once per layer;
// the weight bytes per evaluation are those of every matmul weight (the untied embedding,
// read one row at a time, is not a matmul). Times are only required to be non-negative and
// to add up to the wall time (the machine's speed is not tested).
TEST(TinyLlamaModel, ProfileCountsPartsAndKeepsTheBits) {
  for (bool tied : {true, false}) {
    TinyLlamaSpec spec;
    spec.format = Format::kQ4_K;
    spec.tied = tied;
    Loaded l = LoadTiny(spec);
    ASSERT_NE(l.model, nullptr);
    ThreadPool pool(2);
    RunOptions plain;
    plain.pool = &pool;
    EvalProfile profile;
    RunOptions profiled = plain;
    profiled.profile = &profile;
    const int steps = 4;
    const auto want = RunModel(*l.model, kTokens, steps, plain);
    const auto got = RunModel(*l.model, kTokens, steps, profiled);
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i) {
      EXPECT_EQ(std::memcmp(got[i].data(), want[i].data(), want[i].size() * sizeof(float)), 0)
          << "step " << i;
    }
    const ModelConfig& c = l.model->config();
    const int64_t evals = steps;  // one prefill, then steps - 1 single tokens
    EXPECT_EQ(profile.evals(), evals);
    EXPECT_EQ(profile.tokens(), static_cast<int64_t>(kTokens.size()));
    // The tensors each layer part reads.
    const std::map<std::string, std::vector<std::string>> part_tensors = {
        {"attn_qkv", {"attn_q", "attn_k", "attn_v"}},
        {"attn_output", {"attn_output"}},
        {"ffn_gate_up", {"ffn_gate", "ffn_up"}},
        {"ffn_down", {"ffn_down"}}};
    uint64_t layer_bytes[EvalProfile::kNumParts] = {};
    for (const auto& [name, w] : l.model->matmul_weights()) {
      for (int p = 0; p < EvalProfile::kLmHead; ++p) {
        const std::string part = EvalProfile::part_name(static_cast<EvalProfile::Part>(p));
        ASSERT_EQ(part_tensors.count(part), 1u) << part;
        for (const std::string& t : part_tensors.at(part)) {
          if (name.find("." + t + ".weight") != std::string::npos) {
            layer_bytes[p] += w->memory_bytes();
          }
        }
      }
    }
    double parts = 0;
    for (int p = 0; p < EvalProfile::kNumParts; ++p) {
      const auto part = static_cast<EvalProfile::Part>(p);
      SCOPED_TRACE(EvalProfile::part_name(part));
      const EvalProfile::Entry e = part == EvalProfile::kOther ? profile.other() : profile.part(part);
      EXPECT_GE(e.seconds, 0.0);
      parts += e.seconds;
      if (part == EvalProfile::kLmHead) {
        EXPECT_EQ(e.calls, evals);
        EXPECT_EQ(e.weight_bytes, evals * l.model->lm_head().memory_bytes());
      } else if (EvalProfile::is_matmul(part)) {
        EXPECT_EQ(e.calls, evals * c.n_layer);
        EXPECT_GT(layer_bytes[p], 0u);
        EXPECT_EQ(e.weight_bytes, evals * layer_bytes[p]);
      } else if (part == EvalProfile::kAttention) {
        EXPECT_EQ(e.calls, evals * c.n_layer);
        EXPECT_EQ(e.weight_bytes, 0u);
      }
    }
    EXPECT_NEAR(parts, profile.total_seconds(), 1e-9 + 1e-9 * profile.total_seconds());
    size_t all = 0;
    for (const auto& [name, w] : l.model->matmul_weights()) all += w->memory_bytes();
    const size_t embd = tied ? 0 : l.model->token_embd().memory_bytes();
    EXPECT_EQ(profile.matmul_weight_bytes(), evals * (all - embd));
    const std::string table = profile.Table("t");
    for (int p = 0; p < EvalProfile::kNumParts; ++p) {
      EXPECT_NE(table.find(EvalProfile::part_name(static_cast<EvalProfile::Part>(p))),
                std::string::npos) << table;
    }
    EXPECT_NE(profile.Json().find("\"lm_head\": {"), std::string::npos) << profile.Json();
  }
}

TEST(TinyLlamaModel, SessionErrors) {
  Loaded l = LoadTiny(TinyLlamaSpec{});
  ASSERT_NE(l.model, nullptr);
  absl::StatusOr<std::unique_ptr<Session>> s = Session::Create(*l.model, 4, {});
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_FALSE((*s)->Eval({}).ok());
  const int32_t bad[] = {5, 300};
  absl::Status st = (*s)->Eval(bad);
  EXPECT_NE(st.message().find("token id 300"), std::string::npos) << st;
  EXPECT_EQ((*s)->n_past(), 0);
  const int32_t five[] = {1, 2, 3, 4, 5};
  st = (*s)->Eval(five);
  EXPECT_NE(st.message().find("context full"), std::string::npos) << st;
  EXPECT_TRUE((*s)->Eval({five, 4}).ok());
  EXPECT_EQ((*s)->n_past(), 4);
  EXPECT_NE((*s)->Eval({five, 1}).message().find("context full"), std::string::npos);
  (*s)->Reset();
  EXPECT_TRUE((*s)->Eval({five, 1}).ok());

  s = Session::Create(*l.model, 100000, {});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("llama.context_length"), std::string::npos) << s.status();
  s = Session::Create(*l.model, 0, {});
  EXPECT_FALSE(s.ok());
  // F32 weights have no int8 path; the model routes them to f32 whatever is asked.
  Loaded f32 = LoadTiny(TinyLlamaSpec{}, WeightMode::kF32);
  ASSERT_NE(f32.model, nullptr);
  EXPECT_TRUE(Session::Create(*f32.model, 8, RunOptions{std::nullopt, Path::kInt8, nullptr})
                  .ok());
}

// A variant the CPU cannot run: Create says which (on a CPU that runs every variant, AVX2
// and with it AVX-512 are switched off through the kernels' test hook).
TEST(TinyLlamaModel, UnrunnableVariantIsAnError) {
  Loaded l = LoadTiny(TinyLlamaSpec{});
  ASSERT_NE(l.model, nullptr);
  const uint32_t disabled = disabled_cpu_features();
  for (int pass = 0; pass < 2; ++pass) {
    if (pass == 1) set_disabled_cpu_features_for_testing(disabled | kCpuAvx2);
    for (Variant v : {Variant::kScalar, Variant::kAvx2, Variant::kAvx512, Variant::kAvx512Vnni}) {
      const KernelEntry* e = find_kernel(Format::kQ8_0, v, Path::kInt8);
      if (e == nullptr) continue;
      RunOptions o;
      o.variant = v;
      absl::StatusOr<std::unique_ptr<Session>> s = Session::Create(*l.model, 8, o);
      if (kernel_runnable(*e)) {
        EXPECT_TRUE(s.ok()) << variant_name(v) << ": " << s.status();
        continue;
      }
      ASSERT_FALSE(s.ok()) << variant_name(v);
      EXPECT_NE(s.status().message().find(variant_name(v)), std::string::npos) << s.status();
      EXPECT_NE(s.status().message().find("lacks"), std::string::npos) << s.status();
      EXPECT_NE(s.status().message().find("token_embd.weight"), std::string::npos) << s.status();
    }
  }
  set_disabled_cpu_features_for_testing(disabled);
}

// ---- Bad models ---------------------------------------------------------------------------

std::string LoadError(const TinyLlamaSpec& spec,
                      void (*edit)(GgufWriter*) = nullptr) {
  absl::StatusOr<GgufWriter> w = MakeTinyLlama(spec);
  if (!w.ok()) return "writer: " + std::string(w.status().message());
  if (edit != nullptr) edit(&*w);
  absl::StatusOr<std::string> bytes = w->ToBytes();
  if (!bytes.ok()) return "writer: " + std::string(bytes.status().message());
  absl::StatusOr<GgufFile> f = GgufFile::FromBuffer(bytes->data(), bytes->size(), "bad.gguf");
  if (!f.ok()) return std::string(f.status().message());
  absl::StatusOr<std::unique_ptr<Model>> m = Model::Load(*f);
  return m.ok() ? "" : std::string(m.status().message());
}

#define EXPECT_MENTIONS(text, needle) \
  EXPECT_NE((text).find(needle), std::string::npos) << "message: " << (text)

TEST(BadModel, UnsupportedArchitecture) {
  TinyLlamaSpec spec;
  spec.architecture = "gpt2";
  const std::string e = LoadError(spec);
  EXPECT_MENTIONS(e, "unsupported architecture 'gpt2'");
  EXPECT_MENTIONS(e, "supported: llama, gemma3");
  EXPECT_MENTIONS(e, "bad.gguf");
}

TEST(BadModel, Gemma3NeedsItsNormsAndKeys) {
  TinyLlamaSpec spec = Spec("gemma3", Format::kF32);
  for (const char* t : {"blk.1.attn_q_norm.weight", "blk.0.attn_k_norm.weight",
                        "blk.2.post_attention_norm.weight", "blk.0.post_ffw_norm.weight"}) {
    spec.omit_tensor = t;
    EXPECT_MENTIONS(LoadError(spec), t);
  }
  spec.omit_tensor.clear();
  spec.rms_eps = -1;  // llama.cpp requires the epsilon for gemma3
  EXPECT_MENTIONS(LoadError(spec), "gemma3.attention.layer_norm_rms_epsilon");
  spec.rms_eps = 1e-6f;
  EXPECT_MENTIONS(LoadError(spec, [](GgufWriter* w) {
                    w->Add("gemma3.attention.sliding_window_pattern",
                           GgufValue::UintArray(GgufValueType::kBool, {1, 0}));
                  }),
                  "gemma3.attention.sliding_window_pattern must be a period or an array of 3");
  EXPECT_MENTIONS(LoadError(spec, [](GgufWriter* w) {
                    w->Add("gemma3.attention.sliding_window_pattern", GgufValue::Uint32(0));
                  }),
                  "gemma3.attention.sliding_window_pattern = 0");
  EXPECT_MENTIONS(LoadError(spec, [](GgufWriter* w) {
                    w->Add("gemma3.rope.freq_base_swa", GgufValue::Float32(-1));
                  }),
                  "gemma3.rope.freq_base_swa = -1");
  // A llama file keeps llama.* keys: gemma3.* keys mean nothing to it, and vice versa.
  EXPECT_MENTIONS(LoadError(spec, [](GgufWriter* w) {
                    w->Add("general.architecture", GgufValue::String("llama"));
                  }),
                  "llama.embedding_length");
}

TEST(BadModel, MissingTensorOfALayer) {
  TinyLlamaSpec spec;
  spec.omit_tensor = "blk.1.ffn_up.weight";
  EXPECT_MENTIONS(LoadError(spec), "blk.1.ffn_up.weight");
  spec.omit_tensor = "blk.0.attn_norm.weight";
  EXPECT_MENTIONS(LoadError(spec), "blk.0.attn_norm.weight");
  spec.omit_tensor = "output_norm.weight";
  EXPECT_MENTIONS(LoadError(spec), "output_norm.weight");
}

TEST(BadModel, TensorShapeDisagreesWithMetadata) {
  TinyLlamaSpec spec;
  spec.misshape_tensor = "blk.1.attn_k.weight";
  EXPECT_MENTIONS(LoadError(spec), "blk.1.attn_k.weight");
  // The metadata says more KV heads than the tensors have rows for (8 heads of 32: Q
  // keeps its 256 rows, K should have 256 instead of 2 x 64).
  const std::string e = LoadError(TinyLlamaSpec{}, [](GgufWriter* w) {
    w->Add("llama.attention.head_count", GgufValue::Uint32(8));
    w->Add("llama.attention.head_count_kv", GgufValue::Uint32(8));
  });
  EXPECT_MENTIONS(e, "blk.0.attn_k.weight");
  EXPECT_MENTIONS(e, "expected 256 x 256");
  EXPECT_MENTIONS(LoadError(TinyLlamaSpec{}, [](GgufWriter* w) {
                    w->Add("llama.vocab_size", GgufValue::Uint32(1000));
                  }),
                  "llama.vocab_size = 1000");
  EXPECT_MENTIONS(LoadError(TinyLlamaSpec{}, [](GgufWriter* w) {
                    w->Add("llama.attention.head_count_kv", GgufValue::Uint32(3));
                  }),
                  "head_count_kv = 3");
}

TEST(BadModel, MissingOrBadHyperparameters) {
  EXPECT_MENTIONS(LoadError(TinyLlamaSpec{}, [](GgufWriter* w) {
                    w->Add("llama.block_count", GgufValue::Uint32(0));
                  }),
                  "llama.block_count = 0");
  EXPECT_MENTIONS(LoadError(TinyLlamaSpec{}, [](GgufWriter* w) {
                    w->Add("llama.embedding_length", GgufValue::String("576"));
                  }),
                  "llama.embedding_length");
  EXPECT_MENTIONS(LoadError(TinyLlamaSpec{}, [](GgufWriter* w) {
                    w->Add("llama.rope.scaling.type", GgufValue::String("yarn"));
                  }),
                  "unsupported RoPE scaling 'yarn'");
  EXPECT_MENTIONS(LoadError(TinyLlamaSpec{}, [](GgufWriter* w) {
                    w->Add("llama.rope.dimension_count", GgufValue::Uint32(65));
                  }),
                  "llama.rope.dimension_count = 65");
  // More blocks in the metadata than in the file.
  EXPECT_MENTIONS(LoadError(TinyLlamaSpec{}, [](GgufWriter* w) {
                    w->Add("llama.block_count", GgufValue::Uint32(3));
                  }),
                  "blk.2.");
}

}  // namespace
}  // namespace fk
