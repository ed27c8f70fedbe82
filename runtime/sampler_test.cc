#include "runtime/sampler.h"

#include <cmath>
#include <vector>

#include "gtest/gtest.h"

namespace fk {
namespace {

TEST(Sampler, GreedyIsArgmaxFirstOnTies) {
  absl::StatusOr<Sampler> s = Sampler::Create({0.0f, 40, 0.95f, 7}, 5);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE(s->greedy());
  const std::vector<float> logits = {0.5f, 3.0f, -1.0f, 3.0f, 2.9f};
  for (int i = 0; i < 3; ++i) EXPECT_EQ(s->Sample(logits), 1);
  EXPECT_EQ(Argmax(std::vector<float>{-5.0f, -4.0f, -4.5f}), 1);
  EXPECT_EQ(Argmax({}), -1);
}

TEST(Sampler, DrawsFollowTheSoftmax) {
  // p = (0.5, 0.3, 0.2, 0): frequencies over 20000 seeded draws within 0.015 (> 4 sigma).
  const std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.2f), -1e30f};
  absl::StatusOr<Sampler> s = Sampler::Create({1.0f, 0, 1.0f, 123}, 4);
  ASSERT_TRUE(s.ok()) << s.status();
  std::vector<int> counts(4, 0);
  const int n = 20000;
  for (int i = 0; i < n; ++i) ++counts[s->Sample(logits)];
  EXPECT_NEAR(counts[0] / double(n), 0.5, 0.015);
  EXPECT_NEAR(counts[1] / double(n), 0.3, 0.015);
  EXPECT_NEAR(counts[2] / double(n), 0.2, 0.015);
  EXPECT_EQ(counts[3], 0);
}

TEST(Sampler, TemperatureSharpens) {
  // T = 0.5 squares the probabilities: (0.25, 0.09, 0.04) / 0.38.
  const std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.2f)};
  absl::StatusOr<Sampler> s = Sampler::Create({0.5f, 0, 1.0f, 5}, 3);
  ASSERT_TRUE(s.ok());
  int first = 0;
  const int n = 20000;
  for (int i = 0; i < n; ++i) first += s->Sample(logits) == 0;
  EXPECT_NEAR(first / double(n), 0.25 / 0.38, 0.015);
}

TEST(Sampler, TopKAndTopPCut) {
  const std::vector<float> logits = {std::log(0.1f), std::log(0.5f), std::log(0.25f),
                                     std::log(0.15f)};
  // top_k = 2 keeps ids 1 and 2 only.
  absl::StatusOr<Sampler> k2 = Sampler::Create({1.0f, 2, 1.0f, 9}, 4);
  ASSERT_TRUE(k2.ok());
  std::vector<int> counts(4, 0);
  for (int i = 0; i < 5000; ++i) ++counts[k2->Sample(logits)];
  EXPECT_EQ(counts[0] + counts[3], 0);
  EXPECT_GT(counts[1], counts[2]);
  EXPECT_GT(counts[2], 0);
  // top_p = 0.7: 0.5 < 0.7 <= 0.75 keeps ids 1 and 2.
  absl::StatusOr<Sampler> p = Sampler::Create({1.0f, 0, 0.7f, 9}, 4);
  ASSERT_TRUE(p.ok());
  counts.assign(4, 0);
  for (int i = 0; i < 5000; ++i) ++counts[p->Sample(logits)];
  EXPECT_EQ(counts[0] + counts[3], 0);
  EXPECT_GT(counts[2], 0);
  // top_p = 0.4: the most likely token alone.
  absl::StatusOr<Sampler> p1 = Sampler::Create({1.0f, 0, 0.4f, 9}, 4);
  ASSERT_TRUE(p1.ok());
  for (int i = 0; i < 100; ++i) EXPECT_EQ(p1->Sample(logits), 1);
}

TEST(Sampler, SameSeedSameDraws) {
  std::vector<float> logits(100);
  for (int i = 0; i < 100; ++i) logits[i] = std::sin(i * 0.7f);
  absl::StatusOr<Sampler> a = Sampler::Create({0.8f, 20, 0.9f, 42}, 100);
  absl::StatusOr<Sampler> b = Sampler::Create({0.8f, 20, 0.9f, 42}, 100);
  absl::StatusOr<Sampler> c = Sampler::Create({0.8f, 20, 0.9f, 43}, 100);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  int differ = 0;
  for (int i = 0; i < 50; ++i) {
    const int32_t x = a->Sample(logits);
    EXPECT_EQ(x, b->Sample(logits));
    differ += x != c->Sample(logits);
  }
  EXPECT_GT(differ, 0);
}

TEST(Sampler, BadOptionsNameTheValue) {
  const auto message = [](SamplerOptions o) {
    absl::StatusOr<Sampler> s = Sampler::Create(o, 10);
    return s.ok() ? std::string() : std::string(s.status().message());
  };
  EXPECT_NE(message({-1.0f, 40, 0.9f, 0}).find("temperature -1"), std::string::npos);
  EXPECT_NE(message({NAN, 40, 0.9f, 0}).find("temperature"), std::string::npos);
  EXPECT_NE(message({1.0f, -3, 0.9f, 0}).find("top_k -3"), std::string::npos);
  EXPECT_NE(message({1.0f, 40, 0.0f, 0}).find("top_p 0"), std::string::npos);
  EXPECT_NE(message({1.0f, 40, 1.5f, 0}).find("top_p 1.5"), std::string::npos);
  EXPECT_EQ(message({1.0f, 40, 1.0f, 0}), "");
}

}  // namespace
}  // namespace fk
