// Gemma 3 270M Q4_K_M (the real file, tools/fetch_model gemma3) against llama.cpp:
// golden/forced_gemma3_270m_q4_k_m.json from tools/make_forced_golden (7 prompts, 32
// teacher-forced steps each; one prompt of 762 tokens, longer than the 512-position
// sliding window of five of every six layers).
//
// Compared, on both activation paths (int8: activations quantized to 8 bits as llama.cpp
// does; f32: none), with runtime/forced_golden.h:
//  - prompt ids: our tokenizer on the prompt text gives llama.cpp's ids;
//  - logits: at every step, the errors of our logits at llama.cpp's 8 best tokens span at
//    most kThreshold (the "pair difference": no two of them move relative to each other
//    by more); at step 0 the cosine over a 288-id sample of the vocabulary is >= 0.99
//    (measured >= 0.9970 on the int8 path, which an exact rewrite of GELU moved from
//    0.9983, and >= 0.9992 on the f32 path; three times the int8 path's largest shortfall
//    from 1 gives 0.991. Without the sliding window the long prompt gives 0.906);
//  - tokens: our argmax is llama.cpp's wherever llama.cpp's own top-1 / top-2 margin
//    exceeds kThreshold, and at least a quarter of all steps are compared (64 of 224).
//
// The threshold. Pair differences measured between four pairs of correct implementations
// over all 224 steps (max over the top 8): ours int8 vs llama.cpp 1.552, ours f32 vs
// llama.cpp 1.120, ours int8 vs ours f32 1.274, llama.cpp with an F16 KV cache vs with an
// F32 one 1.245 (an exact rewrite of our GELU later moved the int8 figures to 1.386 and
// 0.940: the int8 path's rounding makes the maxima themselves noisy). Gemma's logits are
// large (tied embedding, sqrt(640)-scaled activations) and every implementation choice
// (8-bit activations, f16 KV, f16 GELU table, summation order) moves them by up to ~1.5.
// Threshold = 1.5 (safety) x 1.552 = 2.33. Bugs are far beyond it: attending past the
// window gives pair differences of 9.7 on the long prompt (argmax agreeing at 2 of 32
// steps), the global RoPE base on the local layers 3.2-10.8.
#include <cmath>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "kernels/matmul.h"
#include "kernels/thread_pool.h"
#include "runtime/forced_golden.h"
#include "runtime/gguf.h"
#include "runtime/model.h"
#include "runtime/model_testing.h"
#include "runtime/tokenizer.h"

namespace fk {
namespace {

constexpr char kGolden[] = "forced_gemma3_270m_q4_k_m.json";
// Largest pair difference measured between two correct implementations (above).
constexpr double kMeasuredPairDiff = 1.552;
constexpr double kSafetyFactor = 1.5;
constexpr double kThreshold = kSafetyFactor * kMeasuredPairDiff;  // 2.33
constexpr double kPairDiffBound = kThreshold;  // the premise the threshold rests on
constexpr double kMinComparedShare = 0.25;
constexpr double kMinSampleCosine = 0.99;

// Under AddressSanitizer (kernels at -O1 and instrumented, ~13x slower) the test keeps
// every check but runs 8 steps per prompt instead of 32 and leaves the 762-token prompt
// to the int8 path; the share of compared steps is then not required.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kReduced = true;
#else
constexpr bool kReduced = false;
#endif
constexpr int kReducedSteps = 8;
constexpr size_t kReducedLongPrompt = 64;

class Gemma3VsLlamaCpp : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<ForcedGolden> g = ReadForcedGolden(GoldenPath(kGolden));
    ASSERT_TRUE(g.ok()) << g.status();
    golden_ = new ForcedGolden(*std::move(g));
    absl::StatusOr<GgufFile> file = GgufFile::Open(Gemma3Path());
    if (!file.ok()) return;  // SetUp skips, naming the reason
    ASSERT_EQ(static_cast<int64_t>(file->file_size()), golden_->model_size)
        << Gemma3Path() << " is not the file the golden data was made from";
    absl::StatusOr<Tokenizer> tok = Tokenizer::FromGguf(*file);
    ASSERT_TRUE(tok.ok()) << tok.status();
    tokenizer_ = new Tokenizer(*std::move(tok));
    absl::StatusOr<std::unique_ptr<Model>> model = Model::Load(*file);
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = model->release();
    pool_ = new ThreadPool(2);
  }
  static void TearDownTestSuite() {
    delete pool_;
    delete model_;
    delete tokenizer_;
    delete golden_;
    pool_ = nullptr;
    model_ = nullptr;
    tokenizer_ = nullptr;
    golden_ = nullptr;
  }
  void SetUp() override {
    ASSERT_NE(golden_, nullptr);
    if (model_ == nullptr) {
      GTEST_SKIP() << "the Gemma 3 model is not in the cache (" << Gemma3Path()
                   << "); tools/bazel fetches it (tools/fetch_model gemma3)";
    }
  }

  // Teacher-forced runs of every case on one path.
  static std::vector<ForcedResult> Run(Path path) {
    RunOptions options;
    options.path = path;
    options.pool = pool_;
    std::vector<ForcedResult> out;
    for (const ForcedCase& c : golden_->cases) {
      if (kReduced && path == Path::kF32 && c.prompt_ids.size() > kReducedLongPrompt) {
        std::cout << "  " << c.name << ": not run on the f32 path under AddressSanitizer\n";
        out.emplace_back();
        continue;
      }
      const auto t0 = absl::Now();
      absl::StatusOr<ForcedResult> r =
          RunForced(*model_, c, options, kReduced ? kReducedSteps : golden_->steps);
      EXPECT_TRUE(r.ok()) << c.name << ": " << r.status();
      std::cout << "  " << c.name << " (" << path_name(path) << "): "
                << absl::ToDoubleSeconds(absl::Now() - t0) << " s\n";
      out.push_back(r.ok() ? *std::move(r) : ForcedResult{});
    }
    return out;
  }

  // Checks one path's results against llama.cpp and prints them.
  static void Check(Path path, const std::vector<ForcedResult>& results) {
    int compared = 0, agreed = 0, steps = 0;
    for (size_t i = 0; i < results.size(); ++i) {
      const ForcedCase& c = golden_->cases[i];
      const ForcedResult& r = results[i];
      if (r.argmax.empty()) continue;
      const int n = r.Compared(c, kThreshold), a = r.Agreed(c, kThreshold);
      compared += n;
      agreed += a;
      steps += static_cast<int>(r.argmax.size());
      int same = 0;
      for (size_t s = 0; s < r.argmax.size(); ++s) same += r.argmax[s] == c.greedy_ids[s];
      std::cout << absl::StrFormat(
          "  %-9s %-4s %3d ids: argmax = llama.cpp's at %2d of %d steps, at %2d of the %2d "
          "with margin > %.2f; top-%d: pair diff max %.3f, abs diff max %.3f; step 0 sample "
          "max diff %.3f, cosine %.5f\n",
          c.name, path_name(path), c.prompt_ids.size(), same, r.argmax.size(), a, n,
          kThreshold, golden_->top_k, r.MaxPairDiff(), r.MaxTopDiff(), r.sample_max_diff,
          r.sample_cosine);
      EXPECT_LE(r.MaxPairDiff(), kPairDiffBound)
          << c.name << ": our logits of llama.cpp's best tokens moved relative to each other "
          << "by more than the threshold assumes";
      EXPECT_GE(r.sample_cosine, kMinSampleCosine) << c.name;
      EXPECT_EQ(a, n) << c.name << ": " << absl::StrJoin(r.Disagreements(c, kThreshold), "; ");
    }
    std::cout << "  " << path_name(path) << " path: " << agreed << " of " << compared
              << " compared steps agree (" << steps << " steps in all)\n";
    if (!kReduced) {
      EXPECT_GE(compared, kMinComparedShare * steps) << "too few steps above the threshold";
    }
  }

  static ForcedGolden* golden_;
  static Tokenizer* tokenizer_;
  static Model* model_;
  static ThreadPool* pool_;
};
ForcedGolden* Gemma3VsLlamaCpp::golden_ = nullptr;
Tokenizer* Gemma3VsLlamaCpp::tokenizer_ = nullptr;
Model* Gemma3VsLlamaCpp::model_ = nullptr;
ThreadPool* Gemma3VsLlamaCpp::pool_ = nullptr;

TEST_F(Gemma3VsLlamaCpp, GoldenCoversTheSlidingWindow) {
  const ModelConfig& c = model_->config();
  EXPECT_EQ(c.architecture, "gemma3");
  EXPECT_EQ(c.sliding_window_layers(), 15);
  int64_t longest = 0;
  for (const ForcedCase& k : golden_->cases) {
    longest = std::max<int64_t>(longest, static_cast<int64_t>(k.prompt_ids.size()));
  }
  EXPECT_GT(longest, c.layers[0].sliding_window) << "no prompt is longer than the window";
  EXPECT_EQ(golden_->n_vocab, c.n_vocab);
}

TEST_F(Gemma3VsLlamaCpp, PromptTokensMatch) {
  for (const ForcedCase& c : golden_->cases) {
    EXPECT_EQ(tokenizer_->Encode(c.text, true, true), c.prompt_ids) << c.name;
  }
}

TEST_F(Gemma3VsLlamaCpp, BothPathsMatchLlamaCpp) {
  const std::vector<ForcedResult> int8 = Run(Path::kInt8);
  const std::vector<ForcedResult> f32 = Run(Path::kF32);
  Check(Path::kInt8, int8);
  Check(Path::kF32, f32);
  // The other pairs of implementations, for the threshold derivation: our two paths
  // against each other, and llama.cpp against itself with an F16 KV cache.
  double ours_max = 0, probe_max = 0;
  for (size_t i = 0; i < int8.size() && i < f32.size(); ++i) {
    const ForcedCase& c = golden_->cases[i];
    double d = 0, p = 0;
    for (size_t s = 0; s < int8[i].top_logits.size() && s < f32[i].top_logits.size(); ++s) {
      d = std::max(d, PairDiff(int8[i].top_logits[s], f32[i].top_logits[s]));
    }
    for (double x : c.probe_diff) p = std::max(p, x);
    std::cout << absl::StrFormat("  %-9s pair diff max: int8 vs f32 path %.3f; llama.cpp F16 "
                                 "vs F32 KV cache %.3f\n", c.name, d, p);
    ours_max = std::max(ours_max, d);
    probe_max = std::max(probe_max, p);
  }
  EXPECT_LE(ours_max, kPairDiffBound);
  std::cout << "  largest pair differences: int8 vs f32 " << ours_max << ", llama.cpp F16 vs "
            << "F32 KV " << probe_max << " (bound " << kPairDiffBound << ")\n";
}

}  // namespace
}  // namespace fk
