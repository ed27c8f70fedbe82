// The llama model on tiny random models written by GgufWriter in every format:
//  - an independent, plain double-precision forward pass (no KV cache, no batching,
//    weights dequantized by the format's reference dequantizer) agrees with the runtime;
//  - the fused runtime agrees with the --weights=f32 runtime (tolerances derived below);
//  - thread count, prefill chunking and token-by-token decoding do not change the logits;
//  - bad models give errors naming what is wrong.
#include "runtime/model.h"

#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "kernels/matmul.h"
#include "kernels/registry.h"
#include "kernels/thread_pool.h"
#include "runtime/gguf.h"
#include "runtime/model_testing.h"

namespace fk {
namespace {

// A prompt of token ids for the tiny vocabularies.
const std::vector<int32_t> kTokens = {104, 101, 108, 108, 111, 32, 259, 44, 258, 10, 7, 200};

struct Loaded {
  std::string bytes;
  std::unique_ptr<GgufFile> file;
  std::unique_ptr<LlamaModel> model;
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
  absl::StatusOr<std::unique_ptr<LlamaModel>> m = LlamaModel::Load(*l.file, mode);
  EXPECT_TRUE(m.ok()) << m.status();
  if (m.ok()) l.model = *std::move(m);
  return l;
}

// Logits after each of the last `steps` tokens of `tokens` (the first ones as one prefill).
std::vector<std::vector<float>> RunModel(const LlamaModel& model, const std::vector<int32_t>& tokens,
                                    int steps, RunOptions options, int64_t max_batch = 64) {
  std::vector<std::vector<float>> out;
  absl::StatusOr<std::unique_ptr<LlamaSession>> s =
      LlamaSession::Create(model, 64, options, max_batch);
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

std::vector<double> Norm(const std::vector<double>& x, const std::vector<float>& w, double eps) {
  double ss = 0;
  for (double v : x) ss += v * v;
  const double scale = 1.0 / std::sqrt(ss / x.size() + eps);
  std::vector<double> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] * scale * w[i];
  return y;
}

// Logits of the last token, computed from scratch for the whole sequence.
std::vector<float> ReferenceLogits(const LlamaModel& m, const std::vector<int32_t>& tokens) {
  const LlamaConfig& c = m.config();
  const int64_t T = tokens.size(), E = c.n_embd, hd = c.head_dim;
  const std::vector<double> emb = Dequantized(m.token_embd());
  std::vector<std::vector<double>> x(T);
  for (int64_t t = 0; t < T; ++t) x[t].assign(&emb[tokens[t] * E], &emb[(tokens[t] + 1) * E]);
  const auto rope = [&](std::vector<double>& v, int64_t heads, int64_t pos) {
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < c.rope_dim / 2; ++i) {
        const double theta = pos * std::pow(c.rope_freq_base, -2.0 * i / c.rope_dim);
        double& a = v[h * hd + 2 * i];
        double& b = v[h * hd + 2 * i + 1];
        const double a0 = a, b0 = b;
        a = a0 * std::cos(theta) - b0 * std::sin(theta);
        b = a0 * std::sin(theta) + b0 * std::cos(theta);
      }
  };
  for (const LlamaLayer& layer : m.layers()) {
    const std::vector<double> wq = Dequantized(layer.attn.wq), wk = Dequantized(layer.attn.wk),
                              wv = Dequantized(layer.attn.wv), wo = Dequantized(layer.attn.wo),
                              wg = Dequantized(layer.ffn.w_gate), wu = Dequantized(layer.ffn.w_up),
                              wd = Dequantized(layer.ffn.w_down);
    std::vector<std::vector<double>> q(T), k(T), v(T);
    for (int64_t t = 0; t < T; ++t) {
      const std::vector<double> xn = Norm(x[t], layer.attn_norm, c.rms_eps);
      q[t] = MatVec(wq, xn, c.n_head * hd, E);
      k[t] = MatVec(wk, xn, c.n_head_kv * hd, E);
      v[t] = MatVec(wv, xn, c.n_head_kv * hd, E);
      rope(q[t], c.n_head, t);
      rope(k[t], c.n_head_kv, t);
    }
    for (int64_t t = 0; t < T; ++t) {
      std::vector<double> att(c.n_head * hd, 0.0);
      for (int64_t h = 0; h < c.n_head; ++h) {
        const int64_t g = h * c.n_head_kv / c.n_head;
        std::vector<double> s(t + 1);
        double mx = -INFINITY, sum = 0;
        for (int64_t j = 0; j <= t; ++j) {
          s[j] = 0;
          for (int64_t i = 0; i < hd; ++i) s[j] += q[t][h * hd + i] * k[j][g * hd + i];
          s[j] /= std::sqrt(double(hd));
          mx = std::max(mx, s[j]);
        }
        for (double& e : s) sum += (e = std::exp(e - mx));
        for (int64_t j = 0; j <= t; ++j)
          for (int64_t i = 0; i < hd; ++i) att[h * hd + i] += s[j] / sum * v[j][g * hd + i];
      }
      const std::vector<double> o = MatVec(wo, att, E, c.n_head * hd);
      for (int64_t i = 0; i < E; ++i) x[t][i] += o[i];
      const std::vector<double> xn = Norm(x[t], layer.ffn_norm, c.rms_eps);
      std::vector<double> gate = MatVec(wg, xn, c.n_ff, E);
      const std::vector<double> up = MatVec(wu, xn, c.n_ff, E);
      for (int64_t i = 0; i < c.n_ff; ++i) gate[i] = gate[i] / (1 + std::exp(-gate[i])) * up[i];
      const std::vector<double> d = MatVec(wd, gate, E, c.n_ff);
      for (int64_t i = 0; i < E; ++i) x[t][i] += d[i];
    }
  }
  const std::vector<double> xn = Norm(x[T - 1], m.output_norm(), c.rms_eps);
  const std::vector<double> logits = MatVec(Dequantized(m.lm_head()), xn, c.n_vocab, E);
  return std::vector<float>(logits.begin(), logits.end());
}

// ---- Per format ---------------------------------------------------------------------------

class TinyLlama : public ::testing::TestWithParam<Format> {};

std::string FormatName(const ::testing::TestParamInfo<Format>& info) {
  return traits(info.param).name;
}

const Format kAllFormats[] = {Format::kF32,  Format::kQ4_0, Format::kQ4_1,
                              Format::kQ5_0, Format::kQ8_0, Format::kQ4_K,
                              Format::kQ5_K, Format::kQ6_K, Format::kQ8_K};

INSTANTIATE_TEST_SUITE_P(Formats, TinyLlama, ::testing::ValuesIn(kAllFormats), FormatName);

// The runtime (f32 weights, f32 kernels, float accumulation) against the double-precision
// reference on the same dequantized weights. Float rounding in dots of length <= 512 and
// the softmax/norms: relative error ~1e-6 per operation; 1e-4 leaves room for the
// growth through two layers and cannot hide a wrong rotation, head mapping or mask
// (those change logits by O(1)).
TEST_P(TinyLlama, F32RuntimeMatchesIndependentReference) {
  TinyLlamaSpec spec;
  spec.format = GetParam();
  spec.tied = spec.format != Format::kQ4_0;  // one untied model among the formats
  Loaded f32 = LoadTiny(spec, WeightMode::kF32);
  ASSERT_NE(f32.model, nullptr);
  const std::vector<float> want = ReferenceLogits(*f32.model, kTokens);
  const std::vector<std::vector<float>> got =
      RunModel(*f32.model, kTokens, 1, RunOptions{std::nullopt, Path::kF32, nullptr});
  ASSERT_EQ(got.size(), 1u);
  EXPECT_LT(RelRms(got[0], want), 1e-4);
  // Every prefix too: decoding token by token reads the KV cache.
  for (size_t n : {size_t{1}, size_t{5}}) {
    const std::vector<int32_t> prefix(kTokens.begin(), kTokens.begin() + n);
    const auto run = RunModel(*f32.model, prefix, 1, RunOptions{std::nullopt, Path::kF32, nullptr});
    ASSERT_EQ(run.size(), 1u);
    EXPECT_LT(RelRms(run[0], ReferenceLogits(*f32.model, prefix)), 1e-4) << n << " tokens";
  }
}

// Fused kernels on the native weights against the f32-weights runtime.
//  f32 path: the kernels see the same weight values the dequantizer gives, so only the
//    order of float additions differs: relative differences ~1e-6; bound 1e-4.
//  int8 path: activations are rounded to 8-bit blocks (Q8_0, or Q8_K for K-quants) before
//    every matmul. One block's rounding error is at most d/2 with d = max|x|/127, i.e. a
//    relative RMS error of about (max|x|/rms(x)) / (127 * sqrt(12)) ~ 0.25/127 ~ 0.6 % for
//    Gaussian-like activations (max/rms ~ 2.5 in a 32-block). Nine quantized matmul inputs
//    per token (4 per layer, 2 layers, LM head), errors adding in quadrature and amplified
//    mildly by the nonlinearities: ~2 %; bound 5 %, plus the same argmax in most steps.
TEST_P(TinyLlama, FusedMatchesF32Weights) {
  TinyLlamaSpec spec;
  spec.format = GetParam();
  Loaded native = LoadTiny(spec, WeightMode::kNative);
  Loaded f32 = LoadTiny(spec, WeightMode::kF32);
  ASSERT_NE(native.model, nullptr);
  ASSERT_NE(f32.model, nullptr);
  const int steps = 4;
  const auto want = RunModel(*f32.model, kTokens, steps, RunOptions{std::nullopt, Path::kF32, nullptr});
  const auto fused_f32 =
      RunModel(*native.model, kTokens, steps, RunOptions{std::nullopt, Path::kF32, nullptr});
  ASSERT_EQ(want.size(), size_t{steps});
  ASSERT_EQ(fused_f32.size(), size_t{steps});
  for (int i = 0; i < steps; ++i) {
    EXPECT_LT(RelRms(fused_f32[i], want[i]), 1e-4) << "f32 path, step " << i;
  }
  if (spec.format == Format::kF32) return;  // no int8 path for F32 weights
  const auto fused_int8 =
      RunModel(*native.model, kTokens, steps, RunOptions{std::nullopt, Path::kInt8, nullptr});
  ASSERT_EQ(fused_int8.size(), size_t{steps});
  for (int i = 0; i < steps; ++i) {
    const double err = RelRms(fused_int8[i], want[i]);
    EXPECT_LT(err, 0.05) << "int8 path, step " << i;
    EXPECT_GT(err, 0.0) << "int8 path, step " << i << ": activations are quantized, so some "
                        << "difference is expected";
  }
}

// dispatch_matmul splits output columns at tile borders and never the sums, and attention
// heads are independent tasks: any thread count gives the same bits.
TEST_P(TinyLlama, ThreadCountDoesNotChangeLogits) {
  TinyLlamaSpec spec;
  spec.format = GetParam();
  Loaded native = LoadTiny(spec);
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

// ---- Batching, memory, formats ------------------------------------------------------------

// Prefill in chunks of 1, 5 and 64 rows gives the same logits up to float summation
// order in the batched kernels (f32 path: 1e-5 relative).
TEST(TinyLlamaModel, PrefillChunkingDoesNotMatter) {
  TinyLlamaSpec spec;
  spec.format = Format::kQ4_K;
  Loaded l = LoadTiny(spec);
  ASSERT_NE(l.model, nullptr);
  for (Path path : {Path::kF32, Path::kInt8}) {
    const auto whole = RunModel(*l.model, kTokens, 1, RunOptions{std::nullopt, path, nullptr}, 64);
    const auto chunked = RunModel(*l.model, kTokens, 1, RunOptions{std::nullopt, path, nullptr}, 5);
    const auto single = RunModel(*l.model, kTokens, 1, RunOptions{std::nullopt, path, nullptr}, 1);
    ASSERT_EQ(whole.size(), 1u);
    ASSERT_EQ(chunked.size(), 1u);
    ASSERT_EQ(single.size(), 1u);
    EXPECT_LT(RelRms(chunked[0], whole[0]), 1e-5) << path_name(path);
    EXPECT_LT(RelRms(single[0], whole[0]), 1e-5) << path_name(path);
  }
}

TEST(TinyLlamaModel, NativeWeightsStayInTheFileFormat) {
  TinyLlamaSpec spec;
  spec.format = Format::kQ4_K;
  spec.tied = false;
  Loaded native = LoadTiny(spec);
  Loaded f32 = LoadTiny(spec, WeightMode::kF32);
  ASSERT_NE(native.model, nullptr);
  ASSERT_NE(f32.model, nullptr);
  const LlamaConfig& c = native.model->config();
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
  const LlamaConfig& c = l.model->config();
  EXPECT_EQ(l.model->weight_memory_bytes(), bytes + c.n_embd * (2 * c.n_layer + 1) * 4);
  EXPECT_EQ(l.model->matmul_weights().size(), static_cast<size_t>(1 + 7 * c.n_layer));
}

TEST(TinyLlamaModel, SessionErrors) {
  Loaded l = LoadTiny(TinyLlamaSpec{});
  ASSERT_NE(l.model, nullptr);
  absl::StatusOr<std::unique_ptr<LlamaSession>> s = LlamaSession::Create(*l.model, 4, {});
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

  s = LlamaSession::Create(*l.model, 100000, {});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("llama.context_length"), std::string::npos) << s.status();
  s = LlamaSession::Create(*l.model, 0, {});
  EXPECT_FALSE(s.ok());
  // F32 weights have no int8 path; the model routes them to f32 whatever is asked.
  Loaded f32 = LoadTiny(TinyLlamaSpec{}, WeightMode::kF32);
  ASSERT_NE(f32.model, nullptr);
  EXPECT_TRUE(LlamaSession::Create(*f32.model, 8, RunOptions{std::nullopt, Path::kInt8, nullptr})
                  .ok());
}

// A variant the CPU cannot run, or that has no kernel for a format: Create says which.
TEST(TinyLlamaModel, UnrunnableVariantIsAnError) {
  Loaded l = LoadTiny(TinyLlamaSpec{});
  ASSERT_NE(l.model, nullptr);
  bool tested = false;
  for (Variant v : {Variant::kScalar, Variant::kAvx2, Variant::kAvx512, Variant::kAvx512Vnni}) {
    const KernelEntry* e = find_kernel(Format::kQ8_0, v, Path::kInt8);
    RunOptions o;
    o.variant = v;
    absl::StatusOr<std::unique_ptr<LlamaSession>> s = LlamaSession::Create(*l.model, 8, o);
    if (e != nullptr && kernel_runnable(*e)) {
      EXPECT_TRUE(s.ok()) << variant_name(v) << ": " << s.status();
      continue;
    }
    ASSERT_FALSE(s.ok()) << variant_name(v);
    EXPECT_NE(s.status().message().find(variant_name(v)), std::string::npos) << s.status();
    EXPECT_NE(s.status().message().find("token_embd.weight"), std::string::npos) << s.status();
    tested = true;
  }
  if (!tested) GTEST_SKIP() << "this CPU runs every variant the registry has for Q8_0";
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
  absl::StatusOr<std::unique_ptr<LlamaModel>> m = LlamaModel::Load(*f);
  return m.ok() ? "" : std::string(m.status().message());
}

#define EXPECT_MENTIONS(text, needle) \
  EXPECT_NE((text).find(needle), std::string::npos) << "message: " << (text)

TEST(BadModel, UnsupportedArchitecture) {
  TinyLlamaSpec spec;
  spec.architecture = "gpt2";
  const std::string e = LoadError(spec);
  EXPECT_MENTIONS(e, "unsupported architecture 'gpt2'");
  EXPECT_MENTIONS(e, "bad.gguf");
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
