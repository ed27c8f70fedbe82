// The real SmolLM2 model against llama.cpp (golden/llama_smollm2.json, written by
// tools/make_llama_golden through llama-cpp-python): the same prompt tokens, first-token
// logits with cosine similarity >= 0.999, and the same 16 greedy tokens.
// The model comes from $FK_CACHE (tools/bazel fetches it); a missing model fails the test.
//
// Which steps can be compared. Two correct implementations of this Q4_1 model differ in
// rounding (llama.cpp quantizes activations to Q8_1 with an f16 block sum, we to Q8_0;
// summation orders differ), and in a model whose activations are re-quantized to 8 bits
// at every matmul those differences do not stay small: measured against llama.cpp, the
// first-token logits differ by 0.11-0.22 RMS and any two of the top 20 candidates by up
// to 0.77 in their difference (both paths, all prompts of the golden file). llama.cpp
// against itself with an F16 instead of an F32 KV cache parts from its own greedy tokens
// after 7 steps on the Paris chat prompt. So:
//  - tokens are compared at the steps where llama.cpp's choice wins by at least
//    kTieMargin = 1.0 logit (above the 0.77 seen) and that llama.cpp reproduces with
//    the F16 cache (stable_tokens); the golden prompts include three whose 16 steps all
//    qualify, and the test insists on that;
//  - the cosine threshold 0.999 applies where llama.cpp's own F16-vs-F32 cosine is at
//    least 0.9995 (self_cosine), i.e. where llama.cpp is itself clearly above it.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "kernels/formats.h"
#include "kernels/matmul.h"
#include "kernels/registry.h"
#include "kernels/thread_pool.h"
#include "nlohmann/json.hpp"
#include "runtime/gguf.h"
#include "runtime/model.h"
#include "runtime/model_testing.h"
#include "runtime/sampler.h"
#include "runtime/tokenizer.h"

namespace fk {
namespace {

using nlohmann::json;

constexpr double kMinCosine = 0.999;
constexpr double kTieMargin = 1.0;
constexpr double kMinSelfCosine = 0.9995;
constexpr int kMinFullyComparedCases = 3;

struct Case {
  std::string name, prompt, text;
  bool chat = false;
  std::vector<int32_t> prompt_ids, greedy_ids;
  std::vector<double> margins;
  double self_cosine = 0;
  size_t stable_tokens = 0;
  std::vector<float> logits;

  // Steps whose tokens are compared: the prefix that is stable and far from ties.
  size_t compared_steps() const {
    size_t n = 0;
    while (n < greedy_ids.size() && n < stable_tokens && margins[n] >= kTieMargin) ++n;
    return n;
  }
  bool cosine_checked() const { return self_cosine >= kMinSelfCosine; }
};

std::vector<Case> ReadGolden(int64_t* model_size) {
  const std::string path = GoldenPath("llama_smollm2.json");
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot open " << path;
  std::stringstream ss;
  ss << in.rdbuf();
  const json g = json::parse(ss.str());
  *model_size = g["model_size"].get<int64_t>();
  std::vector<Case> out;
  for (const json& c : g["cases"]) {
    Case k;
    k.name = c["name"];
    k.prompt = c["prompt"];
    k.text = c["text"];
    k.chat = c["chat"];
    k.prompt_ids = c["prompt_ids"].get<std::vector<int32_t>>();
    k.greedy_ids = c["greedy_ids"].get<std::vector<int32_t>>();
    k.margins = c["margins"].get<std::vector<double>>();
    k.self_cosine = c["self_cosine"].get<double>();
    k.stable_tokens = c["stable_tokens"].get<size_t>();
    EXPECT_EQ(k.margins.size(), k.greedy_ids.size());
    std::string half;
    EXPECT_TRUE(absl::Base64Unescape(c["logits_f16"].get<std::string>(), &half));
    for (size_t i = 0; i + 1 < half.size(); i += 2) {
      const fp16_t h = static_cast<fp16_t>(static_cast<uint8_t>(half[i]) |
                                           static_cast<uint8_t>(half[i + 1]) << 8);
      k.logits.push_back(fp16_to_fp32(h));
    }
    out.push_back(std::move(k));
  }
  return out;
}

double Cosine(absl::Span<const float> a, const std::vector<float>& b) {
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    ab += double(a[i]) * b[i];
    aa += double(a[i]) * a[i];
    bb += double(b[i]) * b[i];
  }
  return ab / std::sqrt(aa * bb);
}

class SmolLm2VsLlamaCpp : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    cases_ = new std::vector<Case>(ReadGolden(&model_size_));
    absl::StatusOr<GgufFile> file = GgufFile::Open(SmolLm2Path());
    ASSERT_TRUE(file.ok()) << file.status() << " (tools/bazel fetches it: tools/fetch_model)";
    ASSERT_EQ(static_cast<int64_t>(file->file_size()), model_size_)
        << SmolLm2Path() << " is not the file the golden data was made from";
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
    delete cases_;
    pool_ = nullptr;
    model_ = nullptr;
    tokenizer_ = nullptr;
    cases_ = nullptr;
  }
  void SetUp() override {
    ASSERT_NE(model_, nullptr) << "the model did not load";
    ASSERT_GE(cases_->size(), 3u);
  }

  // Prefill + greedy decoding of one case; checks logits (cosine >= min_cosine where the
  // case is well-conditioned) and tokens (over compared_steps()).
  static void Check(const Case& c, std::optional<Path> path, double min_cosine,
                    size_t max_steps = SIZE_MAX) {
    RunOptions options;
    options.path = path;
    options.pool = pool_;
    absl::StatusOr<std::unique_ptr<Session>> session = Session::Create(
        *model_, static_cast<int64_t>(c.prompt_ids.size() + c.greedy_ids.size()), options);
    ASSERT_TRUE(session.ok()) << session.status();
    Session& s = **session;
    ASSERT_TRUE(s.Eval(c.prompt_ids).ok());
    const double cosine = Cosine(s.logits(), c.logits);
    if (c.cosine_checked()) {
      EXPECT_GE(cosine, min_cosine) << c.name;
    }
    // Decode only as far as tokens are compared (keeps the test fast under ASan).
    const size_t compared = std::min(c.compared_steps(), max_steps);
    std::vector<int32_t> greedy;
    for (size_t i = 0; i < compared; ++i) {
      const int32_t t = Argmax(s.logits());
      greedy.push_back(t);
      if (i + 1 < compared) {
        ASSERT_TRUE(s.Eval({&t, 1}).ok());
      }
    }
    size_t agree = 0;
    while (agree < greedy.size() && greedy[agree] == c.greedy_ids[agree]) ++agree;
    std::cout << "  " << c.name << " [" << s.kernel_summary() << "]: cosine " << cosine
              << (c.cosine_checked() ? "" : " (not checked)") << "; greedy tokens equal to "
              << "llama.cpp's: " << agree << " of the " << compared << " compared"
              << "\n    ours: " << absl::CEscape(tokenizer_->Decode(greedy)) << "\n";
    EXPECT_EQ(agree, compared) << c.name << ": greedy tokens differ from llama.cpp's at step "
                               << agree << ", where llama.cpp's choice is clear (margin "
                               << (agree < c.margins.size() ? c.margins[agree] : 0) << ")";
  }

  static int64_t model_size_;
  static std::vector<Case>* cases_;
  static Tokenizer* tokenizer_;
  static Model* model_;
  static ThreadPool* pool_;
};
int64_t SmolLm2VsLlamaCpp::model_size_ = 0;
std::vector<Case>* SmolLm2VsLlamaCpp::cases_ = nullptr;
Tokenizer* SmolLm2VsLlamaCpp::tokenizer_ = nullptr;
Model* SmolLm2VsLlamaCpp::model_ = nullptr;
ThreadPool* SmolLm2VsLlamaCpp::pool_ = nullptr;

TEST_F(SmolLm2VsLlamaCpp, GoldenHasEnoughComparableCases) {
  int full = 0, cosine = 0;
  for (const Case& c : *cases_) {
    full += c.compared_steps() == c.greedy_ids.size() && c.greedy_ids.size() == 16;
    cosine += c.cosine_checked();
  }
  EXPECT_GE(full, kMinFullyComparedCases) << "too few prompts with all 16 tokens compared";
  EXPECT_GE(cosine, 3) << "too few prompts with a cosine check";
}

TEST_F(SmolLm2VsLlamaCpp, PromptTokensMatch) {
  for (const Case& c : *cases_) {
    std::string text = c.prompt;
    if (c.chat) text = tokenizer_->ApplyChatTemplate({{"user", c.prompt}}, true);
    EXPECT_EQ(text, c.text) << c.name;
    EXPECT_EQ(tokenizer_->Encode(text, true, true), c.prompt_ids) << c.name;
  }
}

// The default kernels (best variant, int8 path: activations quantized as llama.cpp does).
TEST_F(SmolLm2VsLlamaCpp, DefaultPathMatchesLlamaCpp) {
  for (const Case& c : *cases_) Check(c, std::nullopt, kMinCosine);
}

// The f32 path keeps activations in f32, so it does not share llama.cpp's activation
// rounding and lies a little further from it (cosine 0.9977-0.9999 measured, e.g.
// 0.9982 on the Paris chat prompt, where our int8 path gives 0.9992): its cosines are
// printed and held to 0.995, which still catches any real error (a wrong rotation, head
// or norm costs far more); its clear tokens must match. Tokens are decoded for the first
// case only: the f32-path kernels are slow under AddressSanitizer.
TEST_F(SmolLm2VsLlamaCpp, F32PathMatchesLlamaCpp) {
  for (size_t i = 0; i < cases_->size(); ++i) {
    Check((*cases_)[i], Path::kF32, 0.995, i == 0 ? SIZE_MAX : 0);
  }
}

}  // namespace
}  // namespace fk
