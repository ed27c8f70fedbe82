// The teacher-forced comparison helper (runtime/forced_golden.h) on a tiny model: a
// golden file made from the runtime's own greedy run agrees with it; one changed token or
// logit is reported; inconsistent golden files are rejected with the case named.
#include "runtime/forced_golden.h"

#include <algorithm>
#include <fstream>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "runtime/gguf.h"
#include "runtime/model.h"
#include "runtime/model_testing.h"

namespace fk {
namespace {

using nlohmann::json;

TEST(PairDiff, IgnoresCommonShiftsAndMeasuresRelativeMoves) {
  EXPECT_EQ(PairDiff({1, 2, 3}, {1, 2, 3}), 0.0);
  EXPECT_FLOAT_EQ(PairDiff({11, 12, 13}, {1, 2, 3}), 0.0);   // all shifted by 10
  EXPECT_FLOAT_EQ(PairDiff({1.5f, 2, 2.75f}, {1, 2, 3}), 0.75);  // errors +0.5, 0, -0.25
}

// A tiny gemma3 model and a golden file of its own greedy run (our f32 path as the oracle).
class ForcedGoldenTest : public ::testing::Test {
 protected:
  void SetUp() override {
    TinyLlamaSpec spec;
    spec.architecture = "gemma3";
    spec.format = Format::kQ8_0;
    spec.sliding_window = 4;
    absl::StatusOr<GgufWriter> w = MakeTinyLlama(spec);
    ASSERT_TRUE(w.ok()) << w.status();
    absl::StatusOr<std::string> bytes = w->ToBytes();
    ASSERT_TRUE(bytes.ok());
    bytes_ = *std::move(bytes);
    absl::StatusOr<GgufFile> f = GgufFile::FromBuffer(bytes_.data(), bytes_.size(), "tiny");
    ASSERT_TRUE(f.ok());
    file_ = std::make_unique<GgufFile>(*std::move(f));
    absl::StatusOr<std::unique_ptr<Model>> m = Model::Load(*file_);
    ASSERT_TRUE(m.ok()) << m.status();
    model_ = *std::move(m);

    const std::vector<int32_t> prompt = {104, 101, 108, 108, 111};
    const int steps = 6, top_k = 4;
    absl::StatusOr<std::unique_ptr<Session>> s =
        Session::Create(*model_, 16, RunOptions{std::nullopt, Path::kF32, nullptr});
    ASSERT_TRUE(s.ok());
    ASSERT_TRUE((*s)->Eval(prompt).ok());
    json c = {{"name", "tiny"}, {"text", "hello"}, {"chat", false}, {"prompt_ids", prompt}};
    for (int i = 0; i < steps; ++i) {
      const absl::Span<const float> x = (*s)->logits();
      std::vector<int32_t> order(x.size());
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(),
                       [&](int32_t a, int32_t b) { return x[a] > x[b]; });
      std::vector<float> top;
      for (int k = 0; k < top_k; ++k) top.push_back(x[order[k]]);
      c["greedy_ids"].push_back(order[0]);
      c["margins"].push_back(x[order[0]] - x[order[1]]);
      c["probe_diff"].push_back(0.0);
      c["top_ids"].push_back(std::vector<int32_t>(order.begin(), order.begin() + top_k));
      c["top_logits"].push_back(top);
      if (i == 0) {
        c["sample_ids"] = std::vector<int32_t>{0, 10, 20, order[0]};
        c["sample_logits"] = std::vector<float>{x[0], x[10], x[20], x[order[0]]};
      }
      ASSERT_TRUE((*s)->Eval({&order[0], 1}).ok());
    }
    golden_ = {{"generator", "test"}, {"oracle", "ours"}, {"settings", ""},
               {"model_file", "tiny"}, {"model_sha256", ""}, {"model_size", bytes_.size()},
               {"n_vocab", model_->config().n_vocab}, {"steps", steps}, {"top_k", top_k},
               {"cases", json::array({c})}};
  }

  absl::StatusOr<ForcedGolden> Read(const json& j) {
    const std::string path = absl::StrCat(TestTempDir(), "/forced.json");
    std::ofstream(path) << j.dump();
    return ReadForcedGolden(path);
  }

  std::string bytes_;
  std::unique_ptr<GgufFile> file_;
  std::unique_ptr<Model> model_;
  json golden_;
};

TEST_F(ForcedGoldenTest, OwnRunAgreesOnBothPaths) {
  absl::StatusOr<ForcedGolden> g = Read(golden_);
  ASSERT_TRUE(g.ok()) << g.status();
  const ForcedCase& c = g->cases[0];
  absl::StatusOr<ForcedResult> f32 =
      RunForced(*model_, c, RunOptions{std::nullopt, Path::kF32, nullptr}, g->steps);
  ASSERT_TRUE(f32.ok()) << f32.status();
  EXPECT_EQ(f32->argmax, c.greedy_ids);
  EXPECT_LT(f32->MaxPairDiff(), 1e-5);
  EXPECT_GT(f32->sample_cosine, 0.999999);
  EXPECT_EQ(f32->Compared(c, 0.0), 6);
  EXPECT_EQ(f32->Agreed(c, 0.0), 6);
  // The int8 path is another correct implementation: close, not identical.
  absl::StatusOr<ForcedResult> int8 =
      RunForced(*model_, c, RunOptions{std::nullopt, Path::kInt8, nullptr}, g->steps);
  ASSERT_TRUE(int8.ok()) << int8.status();
  EXPECT_GT(int8->MaxPairDiff(), 0.0);
  EXPECT_GT(int8->sample_cosine, 0.99);
}

TEST_F(ForcedGoldenTest, ChangedTokenOrLogitIsReported) {
  json j = golden_;
  json& c = j["cases"][0];
  // The last step's choice (the last, so that the tokens fed stay the same) becomes its
  // second-best token, with a large margin.
  std::swap(c["top_ids"][5][0], c["top_ids"][5][1]);
  c["greedy_ids"][5] = c["top_ids"][5][0];
  c["margins"][5] = 5.0;
  c["top_logits"][3][1] = c["top_logits"][3][1].get<float>() + 3.0f;
  absl::StatusOr<ForcedGolden> g = Read(j);
  ASSERT_TRUE(g.ok()) << g.status();
  absl::StatusOr<ForcedResult> r =
      RunForced(*model_, g->cases[0], RunOptions{std::nullopt, Path::kF32, nullptr}, g->steps);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->Compared(g->cases[0], 1.0), r->Agreed(g->cases[0], 1.0) + 1);
  const std::vector<std::string> d = r->Disagreements(g->cases[0], 1.0);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_NE(d[0].find("step 5 (margin 5.000)"), std::string::npos) << d[0];
  EXPECT_NEAR(r->pair_diff[3], 3.0, 1e-3);
  EXPECT_GE(r->MaxPairDiff(), 3.0 - 1e-3);
}

TEST_F(ForcedGoldenTest, InconsistentFilesAreRejected) {
  json j = golden_;
  j["cases"][0]["margins"].erase(0);
  absl::StatusOr<ForcedGolden> g = Read(j);
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("case 'tiny' is inconsistent"), std::string::npos)
      << g.status();
  j = golden_;
  j["cases"][0].erase("top_ids");
  EXPECT_FALSE(Read(j).ok());
  j = golden_;
  j["cases"][0]["greedy_ids"][0] = 99999;
  EXPECT_FALSE(Read(j).ok());
  EXPECT_FALSE(ReadForcedGolden("/nonexistent/forced.json").ok());
  // Ids beyond the model's vocabulary (a golden file of another model).
  j = golden_;
  j["n_vocab"] = 100000;
  j["cases"][0]["sample_ids"][0] = 99999;
  g = Read(j);
  ASSERT_TRUE(g.ok()) << g.status();
  absl::StatusOr<ForcedResult> r =
      RunForced(*model_, g->cases[0], RunOptions{std::nullopt, Path::kF32, nullptr}, g->steps);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("outside the model's vocabulary"), std::string::npos);
}

}  // namespace
}  // namespace fk
