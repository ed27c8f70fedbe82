#include "kernels/weight_format.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/pages.h"

namespace fk {
namespace {

std::vector<float> RandomMatrix(int64_t n, int64_t k, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 0.05f);
  std::vector<float> v(static_cast<size_t>(n * k));
  for (float& x : v) x = dist(rng);
  return v;
}

class WeightFormatTest : public ::testing::TestWithParam<Format> {};

TEST_P(WeightFormatTest, SizesFollowTheTraitsTable) {
  const FormatTraits& t = traits(GetParam());
  const int64_t n = 3, k = 2 * 256;  // a multiple of every block size
  std::vector<float> x = RandomMatrix(n, k, 1);
  absl::StatusOr<WeightFormat> w = WeightFormat::Quantize(x.data(), n, k, GetParam());
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->rows(), n);
  EXPECT_EQ(w->cols(), k);
  EXPECT_EQ(w->elements(), n * k);
  EXPECT_STREQ(w->format_name(), t.name);
  // Exact bytes: blocks per row times block bytes, nothing else.
  EXPECT_EQ(w->memory_bytes(), static_cast<size_t>(n * (k / t.block_elems) * t.block_bytes));
  EXPECT_EQ(w->row_bytes(), (k / t.block_elems) * t.block_bytes);
  EXPECT_DOUBLE_EQ(w->compression_ratio(), 32.0 / t.bits_per_weight);
  EXPECT_TRUE(w->owns_bytes());
}

TEST_P(WeightFormatTest, RowDequantizationMatchesWholeMatrixAndReference) {
  const FormatTraits& t = traits(GetParam());
  const int64_t n = 4, k = 256;
  std::vector<float> x = RandomMatrix(n, k, 2);
  absl::StatusOr<WeightFormat> w = WeightFormat::Quantize(x.data(), n, k, GetParam());
  ASSERT_TRUE(w.ok()) << w.status();
  absl::StatusOr<std::vector<float>> all = w->ToF32();
  ASSERT_TRUE(all.ok());
  std::vector<float> row(k), ref(k);
  std::vector<uint8_t> blocks(static_cast<size_t>(w->row_bytes()));
  for (int64_t r = 0; r < n; ++r) {
    ASSERT_TRUE(w->DequantizeRow(r, row.data()).ok());
    EXPECT_EQ(0, std::memcmp(row.data(), all->data() + r * k, k * sizeof(float))) << "row " << r;
    // Independently: the reference quantizer + dequantizer on that row alone.
    t.quantize_row(x.data() + r * k, blocks.data(), k);
    EXPECT_EQ(0, std::memcmp(blocks.data(), w->row_data(r), blocks.size())) << "row " << r;
    t.dequantize_row(blocks.data(), ref.data(), k);
    EXPECT_EQ(0, std::memcmp(row.data(), ref.data(), k * sizeof(float))) << "row " << r;
  }
  // The quantized values approximate the input (loose: 8 bits of 5 sigma range at worst;
  // Q2_K, 4 levels per sub-block of 16: at most one step of a 4-level grid over the
  // matrix's range).
  double max_err = 0, lo = 0, hi = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    max_err = std::max(max_err, std::fabs(double((*all)[i] - x[i])));
    lo = std::min(lo, double{x[i]});
    hi = std::max(hi, double{x[i]});
  }
  EXPECT_LT(max_err, GetParam() == Format::kQ2_K ? (hi - lo) / 3 : 0.05);
  absl::StatusOr<WeightFormat> f32 = w->ToF32Weights();
  ASSERT_TRUE(f32.ok());
  EXPECT_EQ(f32->format(), Format::kF32);
  EXPECT_EQ(0, std::memcmp(f32->data(), all->data(), all->size() * sizeof(float)));
}

TEST_P(WeightFormatTest, RejectsRowLengthNotAMultipleOfTheBlock) {
  const FormatTraits& t = traits(GetParam());
  std::vector<float> x(static_cast<size_t>(t.block_elems + 1), 1.0f);
  absl::StatusOr<WeightFormat> w =
      WeightFormat::Quantize(x.data(), 1, t.block_elems + 1, GetParam());
  if (t.block_elems == 1) {  // F32, F16, BF16 have no block: every k is valid, an odd one too
    ASSERT_TRUE(w.ok()) << w.status();
    EXPECT_EQ(w->cols(), 2);
    EXPECT_EQ(w->memory_bytes(), 2 * static_cast<size_t>(t.block_bytes));
    return;
  }
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.status().code(), absl::StatusCode::kInvalidArgument);
  // The message names the format, the block size and the offending k.
  EXPECT_NE(w.status().message().find(t.name), absl::string_view::npos) << w.status();
  EXPECT_NE(w.status().message().find(std::to_string(t.block_elems + 1)), absl::string_view::npos)
      << w.status();
}

TEST_P(WeightFormatTest, ViewSharesBytesAndKeepsOwnerAlive) {
  const FormatTraits& t = traits(GetParam());
  const int64_t n = 2, k = 256;
  std::vector<float> x = RandomMatrix(n, k, 3);
  absl::StatusOr<WeightFormat> owned = WeightFormat::Quantize(x.data(), n, k, GetParam());
  ASSERT_TRUE(owned.ok());
  auto holder = std::make_shared<std::vector<uint8_t>>(owned->data(),
                                                        owned->data() + owned->memory_bytes());
  std::weak_ptr<std::vector<uint8_t>> weak = holder;
  absl::StatusOr<WeightFormat> view =
      WeightFormat::View(GetParam(), n, k, holder->data(), holder->size(), holder);
  ASSERT_TRUE(view.ok()) << view.status();
  const uint8_t* bytes = holder->data();
  holder.reset();
  EXPECT_FALSE(weak.expired()) << "the view must keep its owner alive";
  EXPECT_FALSE(view->owns_bytes());
  EXPECT_EQ(view->data(), bytes);
  EXPECT_EQ(view->memory_bytes(), owned->memory_bytes());
  {
    WeightFormat copy = *view;  // copies share the view
    EXPECT_EQ(copy.data(), bytes);
  }
  view = WeightFormat();
  EXPECT_TRUE(weak.expired()) << "the owner is released with the last view";
  // A view of the wrong size is an error naming both sizes.
  std::vector<uint8_t> short_bytes(static_cast<size_t>(t.block_bytes));
  absl::StatusOr<WeightFormat> bad =
      WeightFormat::View(GetParam(), n, k, short_bytes.data(), short_bytes.size(), nullptr);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find(std::to_string(short_bytes.size())),
            absl::string_view::npos)
      << bad.status();
}

// Copies: `count` copies of the bytes in one allocation of its own, each 64-byte aligned and
// exact; in 2 MB-page memory the first starts on a 2 MB boundary and the copies are packed
// (a small matrix does not take a page each). Each copy dequantizes as the source does and
// keeps the allocation alive alone.
TEST_P(WeightFormatTest, CopiesShareOneAlignedAllocation) {
  const int64_t n = 3, k = 256;
  std::vector<float> x = RandomMatrix(n, k, 5);
  absl::StatusOr<WeightFormat> src = WeightFormat::Quantize(x.data(), n, k, GetParam());
  ASSERT_TRUE(src.ok()) << src.status();
  absl::StatusOr<std::vector<float>> want = src->ToF32();
  ASSERT_TRUE(want.ok()) << want.status();
  const size_t size = src->memory_bytes(), stride = (size + 63) / 64 * 64;
  for (WeightFormat::Memory memory : {WeightFormat::Memory::kAligned, WeightFormat::Memory::kHugePages}) {
    absl::StatusOr<std::vector<WeightFormat>> copies =
        WeightFormat::Copies(GetParam(), n, k, src->data(), size, 5, memory);
    ASSERT_TRUE(copies.ok()) << copies.status();
    ASSERT_EQ(copies->size(), 5u);
    const uint8_t* first = (*copies)[0].data();
    if (memory == WeightFormat::Memory::kHugePages) {
      EXPECT_EQ(reinterpret_cast<uintptr_t>(first) % kHugePageBytes, 0u);
    }
    for (size_t c = 0; c < copies->size(); ++c) {
      const WeightFormat& w = (*copies)[c];
      EXPECT_TRUE(w.owns_bytes());
      EXPECT_EQ(w.data(), first + c * stride) << c;
      EXPECT_EQ(reinterpret_cast<uintptr_t>(w.data()) % 64, 0u) << c;
      ASSERT_EQ(std::memcmp(w.data(), src->data(), size), 0) << c;
    }
    WeightFormat last = (*copies)[4];
    copies->clear();  // `last` alone keeps the allocation alive
    absl::StatusOr<std::vector<float>> got = last.ToF32();
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(*got, *want);
  }
  // A copy of the wrong size is an error, as for View.
  EXPECT_FALSE(WeightFormat::Copies(GetParam(), n, k, src->data(), size - 1, 2,
                                    WeightFormat::Memory::kAligned)
                   .ok());
}

TEST_P(WeightFormatTest, RowAccessOutOfRangeIsAnError) {
  std::vector<float> x = RandomMatrix(2, 256, 4);
  absl::StatusOr<WeightFormat> w = WeightFormat::Quantize(x.data(), 2, 256, GetParam());
  ASSERT_TRUE(w.ok());
  std::vector<float> row(256);
  EXPECT_EQ(w->DequantizeRow(2, row.data()).code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(w->DequantizeRow(-1, row.data()).code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(w->DequantizeRow(0, nullptr).code(), absl::StatusCode::kInvalidArgument);
}

std::vector<Format> AllFormats() {
  std::vector<Format> v;
  for (const FormatTraits& t : all_formats()) v.push_back(t.format);
  return v;
}

INSTANTIATE_TEST_SUITE_P(AllFormats, WeightFormatTest, ::testing::ValuesIn(AllFormats()),
                         [](const ::testing::TestParamInfo<Format>& info) {
                           return std::string(traits(info.param).name);
                         });

TEST(WeightFormat, CompressionRatiosOfTheKnownFormats) {
  // Bits per weight straight from the GGUF block sizes.
  EXPECT_NEAR(traits(Format::kQ4_K).bits_per_weight, 4.5, 1e-12);
  EXPECT_NEAR(traits(Format::kQ6_K).bits_per_weight, 6.5625, 1e-12);
  EXPECT_NEAR(traits(Format::kQ4_0).bits_per_weight, 4.5, 1e-12);
  EXPECT_NEAR(traits(Format::kQ8_0).bits_per_weight, 8.5, 1e-12);
  std::vector<float> x(4096 * 2, 0.5f);
  absl::StatusOr<WeightFormat> w = WeightFormat::Quantize(x.data(), 2, 4096, Format::kQ4_K);
  ASSERT_TRUE(w.ok());
  EXPECT_NEAR(w->compression_ratio(), 32.0 / 4.5, 1e-9);
}

TEST(WeightFormat, NegativeShapeIsAnError) {
  float x = 0;
  EXPECT_FALSE(WeightFormat::FromF32(&x, -1, 1).ok());
  EXPECT_FALSE(WeightFormat::Quantize(&x, 1, -32, Format::kQ4_0).ok());
}

}  // namespace
}  // namespace fk
