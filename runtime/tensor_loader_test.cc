#include "runtime/tensor_loader.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/formats.h"
#include "kernels/weight_format.h"
#include "runtime/gguf.h"
#include "runtime/gguf_test_util.h"

namespace fk {
namespace {

using testing_util::SampleTensors;
using ::testing::HasSubstr;

struct Parsed {
  std::string bytes;
  absl::StatusOr<GgufFile> file = absl::UnknownError("unset");
};

// Parses writer output kept alive by `p`.
void ParseInto(const GgufWriter& w, Parsed* p) {
  absl::StatusOr<std::string> b = w.ToBytes();
  ASSERT_TRUE(b.ok()) << b.status();
  p->bytes = std::move(*b);
  p->file = GgufFile::FromBuffer(p->bytes.data(), p->bytes.size(), "sample.gguf");
  ASSERT_TRUE(p->file.ok()) << p->file.status();
}

TEST(TensorLoader, BlockFormatsAndF32AreViewsOnTheFileBytes) {
  Parsed p;
  ASSERT_NO_FATAL_FAILURE(ParseInto(testing_util::SampleWriter(3, 2), &p));
  TensorLoader loader(*p.file);
  int checked = 0;
  for (const testing_util::SampleTensor& st : SampleTensors(3, 2)) {
    const FormatTraits* f = find_format_by_gguf_type(st.type);
    if (f == nullptr || st.dims.size() != 2) continue;
    SCOPED_TRACE(st.name);
    const int64_t k = static_cast<int64_t>(st.dims[0]);
    absl::StatusOr<WeightFormat> w = loader.Load(st.name, 3, k);
    ASSERT_TRUE(w.ok()) << w.status();
    EXPECT_EQ(w->format(), f->format);
    EXPECT_EQ(w->rows(), 3);
    EXPECT_EQ(w->cols(), k);
    EXPECT_FALSE(w->owns_bytes()) << "quantized weights must not be copied";
    EXPECT_EQ(w->data(), p.file->TensorData(*p.file->FindTensor(st.name)).data());
    EXPECT_EQ(w->memory_bytes(), st.bytes.size());
    // Row r dequantizes to what the reference dequantizer makes of the bytes we wrote.
    const size_t row_bytes = st.bytes.size() / 3;
    for (int64_t r = 0; r < 3; ++r) {
      std::vector<float> got(static_cast<size_t>(k)), want(static_cast<size_t>(k));
      ASSERT_TRUE(w->DequantizeRow(r, got.data()).ok());
      f->dequantize_row(st.bytes.data() + r * row_bytes, want.data(), k);
      EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * 4), 0) << "row " << r;
    }
    ++checked;
  }
  EXPECT_EQ(checked, kNumFormats);
}

// F16 and BF16 stay 16-bit: views on the mapping, half the bytes of F32, converted exactly.
TEST(TensorLoader, F16AndBF16StayNative) {
  Parsed p;
  ASSERT_NO_FATAL_FAILURE(ParseInto(testing_util::SampleWriter(2, 2), &p));
  TensorLoader loader(*p.file);
  for (Format f : {Format::kF16, Format::kBF16}) {
    const std::string name = absl::StrCat("w.", traits(f).name);
    SCOPED_TRACE(name);
    const GgufTensorInfo* t = p.file->FindTensor(name);
    ASSERT_NE(t, nullptr);
    absl::StatusOr<WeightFormat> w = loader.Load(name);
    ASSERT_TRUE(w.ok()) << w.status();
    EXPECT_EQ(w->format(), f);
    EXPECT_FALSE(w->owns_bytes());  // a view: no copy, no inflation
    const int64_t n = w->rows(), k = w->cols();
    EXPECT_EQ(w->memory_bytes(), static_cast<size_t>(n * k) * 2);
    absl::StatusOr<WeightFormat> f32 = w->ToF32Weights();
    ASSERT_TRUE(f32.ok());
    EXPECT_EQ(f32->memory_bytes(), 2 * w->memory_bytes());
    const uint8_t* src = p.file->TensorData(*t).data();
    absl::StatusOr<std::vector<float>> all = w->ToF32();
    ASSERT_TRUE(all.ok());
    for (int64_t i = 0; i < n * k; ++i) {
      uint16_t h;
      std::memcpy(&h, src + 2 * i, 2);
      const float want = f == Format::kF16 ? fp16_to_fp32(h) : bf16_to_fp32(h);
      ASSERT_EQ((*all)[i], want) << i;
    }
  }
}

TEST(TensorLoader, ShapeMismatchAndMissingTensorNameWhatWasWrong) {
  Parsed p;
  ASSERT_NO_FATAL_FAILURE(ParseInto(testing_util::SampleWriter(2, 2), &p));
  TensorLoader loader(*p.file);
  absl::StatusOr<WeightFormat> w = loader.Load("w.Q4_K", 3, 512);
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(std::string(w.status().message()),
            "sample.gguf: tensor 'w.Q4_K' (Q4_K, dims [512, 2]) is 2 x 512 (rows x cols), "
            "expected 3 x 512");
  w = loader.Load("w.Q8_0", -1, 32);
  ASSERT_FALSE(w.ok());
  EXPECT_THAT(std::string(w.status().message()), HasSubstr("expected any x 32"));
  w = loader.Load("blk.0.attn_q.weight");
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(std::string(w.status().message()),
            "sample.gguf: tensor 'blk.0.attn_q.weight' not found");
  EXPECT_FALSE(loader.Has("blk.0.attn_q.weight"));
  EXPECT_TRUE(loader.Has("w.Q6_K"));
}

TEST(TensorLoader, LoadVector) {
  Parsed p;
  ASSERT_NO_FATAL_FAILURE(ParseInto(testing_util::SampleWriter(1, 2), &p));
  TensorLoader loader(*p.file);
  absl::StatusOr<std::vector<float>> v = loader.LoadVector("v.norm", 64);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(*v, testing_util::TestFloats(64, kNumFormats + 1));
  // 1-row tensors of other types are vectors too.
  v = loader.LoadVector("w.F16");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->size(), 2u);  // the sample's F16 row: 2 "blocks" of one element
  v = loader.LoadVector("w.Q4_0", 64);
  ASSERT_TRUE(v.ok()) << v.status();
  std::vector<float> want(64);
  dequantize_row_q4_0_ref(p.file->TensorData(*p.file->FindTensor("w.Q4_0")).data(), want.data(),
                          64);
  EXPECT_EQ(*v, want);

  v = loader.LoadVector("v.norm", 576);
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(std::string(v.status().message()),
            "sample.gguf: tensor 'v.norm' (F32, dims [64]) has 64 elements, expected 576");
  Parsed p2;
  ASSERT_NO_FATAL_FAILURE(ParseInto(testing_util::SampleWriter(2, 1), &p2));
  TensorLoader loader2(*p2.file);
  v = loader2.LoadVector("w.F32");
  ASSERT_FALSE(v.ok());
  EXPECT_THAT(std::string(v.status().message()), HasSubstr("is not a vector (it has 2 rows of 1)"));
  v = loader2.LoadVector("nope");
  EXPECT_EQ(v.status().code(), absl::StatusCode::kNotFound);
}

// With general.alignment 1 or 2 the data may sit at odd addresses; the loader then copies
// instead of viewing, and the values are the same.
TEST(TensorLoader, TinyAlignmentCopiesMisalignedTensors) {
  for (uint32_t align : {1u, 2u}) {
    SCOPED_TRACE(align);
    // The header's length decides where the data starts: a padding key of 0..3 bytes puts
    // the first tensor 2 bytes off a multiple of 4 (misaligned for the 4-byte views).
    Parsed p;
    for (int pad = 0; pad < 4; ++pad) {
      GgufWriter w = testing_util::SampleWriter(2, 1);
      w.Add("general.alignment", GgufValue::Uint32(align));
      w.Add("test.pad", GgufValue::String(std::string(static_cast<size_t>(pad), 'x')));
      p = Parsed();
      ASSERT_NO_FATAL_FAILURE(ParseInto(w, &p));
      const uintptr_t first =
          reinterpret_cast<uintptr_t>(p.file->TensorData(p.file->tensors()[0]).data());
      if (first % 4 == 2) break;
    }
    TensorLoader loader(*p.file);
    int copies = 0;
    for (const GgufTensorInfo& t : p.file->tensors()) {
      SCOPED_TRACE(t.name);
      if (t.dims.size() != 2) continue;
      absl::StatusOr<WeightFormat> wf = loader.Load(t.name);
      ASSERT_TRUE(wf.ok()) << wf.status();
      EXPECT_EQ(reinterpret_cast<uintptr_t>(wf->data()) % 2, 0u);
      if (find_format_by_gguf_type(t.type) != nullptr && wf->owns_bytes()) ++copies;
      const absl::Span<const uint8_t> src = p.file->TensorData(t);
      if (find_format_by_gguf_type(t.type) != nullptr) {
        EXPECT_EQ(std::memcmp(wf->data(), src.data(), src.size()), 0);
      }
      EXPECT_TRUE(wf->ToF32().ok());
    }
    absl::StatusOr<std::vector<float>> v = loader.LoadVector("v.norm", 64);
    ASSERT_TRUE(v.ok());
    EXPECT_EQ(*v, testing_util::TestFloats(64, kNumFormats + 1));
    if (align == 1) {
      EXPECT_GT(copies, 0) << "expected some tensors at odd offsets";
    }
  }
}

TEST(TensorLoader, ViewsKeepTheMappingAliveAfterTheFileIsGone) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string path = absl::StrCat(tmp ? tmp : "/tmp", "/keepalive.gguf");
  ASSERT_TRUE(testing_util::SampleWriter(2, 2).Write(path).ok());
  WeightFormat w;
  std::vector<float> want(512);
  {
    absl::StatusOr<GgufFile> f = GgufFile::Open(path);
    ASSERT_TRUE(f.ok()) << f.status();
    absl::StatusOr<WeightFormat> l = TensorLoader(*f).Load("w.Q4_K");
    ASSERT_TRUE(l.ok()) << l.status();
    w = *l;
    dequantize_row_q4_K_ref(f->TensorData(*f->FindTensor("w.Q4_K")).data() + 288, want.data(),
                            512);
  }
  std::remove(path.c_str());
  std::vector<float> got(512);
  ASSERT_TRUE(w.DequantizeRow(1, got.data()).ok());
  EXPECT_EQ(got, want);
}

// ---- the real model -------------------------------------------------------------------------

TEST(TensorLoaderRealModel, EveryTensorOfSmolLM2Loads) {
  const std::string path = testing_util::ModelPath();
  absl::StatusOr<GgufFile> f = GgufFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status() << "\n" << testing_util::kMissingModelHelp;
  TensorLoader loader(*f);
  std::map<std::string, int> views;
  int vectors = 0;
  for (const GgufTensorInfo& t : f->tensors()) {
    SCOPED_TRACE(t.name);
    if (t.dims.size() == 1) {
      absl::StatusOr<std::vector<float>> v = loader.LoadVector(t.name, 576);
      ASSERT_TRUE(v.ok()) << v.status();
      for (float x : *v) ASSERT_TRUE(std::isfinite(x));
      ++vectors;
      continue;
    }
    absl::StatusOr<WeightFormat> w = loader.Load(t.name);
    ASSERT_TRUE(w.ok()) << w.status();
    EXPECT_FALSE(w->owns_bytes());
    EXPECT_EQ(w->memory_bytes(), t.size_bytes);
    views[w->format_name()]++;
    std::vector<float> row(static_cast<size_t>(w->cols()));
    ASSERT_TRUE(w->DequantizeRow(w->rows() - 1, row.data()).ok());
    for (float x : row) ASSERT_TRUE(std::isfinite(x));
  }
  // Counts as gguf-py's GGUFReader reports them for this file.
  EXPECT_EQ(views["Q4_1"], 210);
  EXPECT_EQ(views["Q8_0"], 1);
  EXPECT_EQ(vectors, 61);
  absl::StatusOr<WeightFormat> emb = loader.Load("token_embd.weight", 49152, 576);
  ASSERT_TRUE(emb.ok()) << emb.status();
  EXPECT_EQ(emb->format(), Format::kQ8_0);
  absl::StatusOr<WeightFormat> q = loader.Load("blk.0.attn_q.weight", 576, 576);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->format(), Format::kQ4_1);
  absl::StatusOr<WeightFormat> down = loader.Load("blk.0.ffn_down.weight", 576, 1536);
  ASSERT_TRUE(down.ok()) << down.status();
}

}  // namespace
}  // namespace fk
