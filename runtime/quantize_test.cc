// Tests of the quantize tool's library (QuantizeGguf), its streaming GGUF writer and the
// synthetic-model generator. Every written file is read back with the project's GGUF
// reader (runtime/gguf.h), an implementation independent of the writer here.
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "kernels/formats.h"
#include "runtime/gguf.h"
#include "runtime/quantize.h"
#include "runtime/quantize_synthetic.h"

namespace fk {
namespace {

std::string TempPath(const std::string& name) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  return absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/", name);
}

bool Exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

// The expectations, written out by hand (not taken from the code under test).
// llama.cpp's LLAMA_FTYPE values (llama.h), -1: key removed.
const std::map<Format, int> kExpectedFileType = {
    {Format::kF32, 0},   {Format::kQ4_0, 2},  {Format::kQ4_1, 3},
    {Format::kQ8_0, 7},  {Format::kQ5_0, 8},  {Format::kQ4_K, 14},
    {Format::kQ5_K, 16}, {Format::kQ6_K, 18}, {Format::kQ8_K, -1},
    {Format::kF16, 1},   {Format::kBF16, 32}, {Format::kQ5_1, 9},
    {Format::kQ2_K, 10}, {Format::kQ3_K, 11},
    {Format::kIQ4_NL, 25}, {Format::kIQ4_XS, 30},
};
// Format written for rows whose length is not a multiple of 256 (K-quant fallback).
Format Fallback256(Format f) {
  switch (f) {
    case Format::kQ4_K: return Format::kQ5_0;
    case Format::kQ5_K: return Format::kQ5_1;
    case Format::kQ6_K: return Format::kQ8_0;
    case Format::kQ8_K: return Format::kQ8_0;
    case Format::kQ2_K: return Format::kQ4_0;  // llama.cpp's rule (formats.inc)
    case Format::kQ3_K: return Format::kQ4_0;  // llama.cpp's rule (formats.inc)
    case Format::kIQ4_XS: return Format::kIQ4_NL;  // as llama.cpp
    default: return f;
  }
}

// A small llama-shaped source model in F32: hidden 288 (not a multiple of 256, so the
// K-quants fall back on the attention and FFN-input rows) and FFN 512 (a multiple of 256,
// so ffn_down keeps the K-quant).
SyntheticLlamaConfig SmallConfig() {
  SyntheticLlamaConfig c;
  c.name = "quantize-test";
  c.hidden = 288;
  c.layers = 2;
  c.heads = 3;
  c.kv_heads = 1;
  c.ffn = 512;
  c.vocab = 400;
  c.context = 128;
  c.seed = 7;
  return c;
}

const std::string& SourcePath() {
  static const std::string* path = [] {
    auto* p = new std::string(TempPath("quantize_test_source_f32.gguf"));
    absl::StatusOr<uint64_t> size = WriteSyntheticLlama(SmallConfig(), Format::kF32, *p, 2);
    EXPECT_TRUE(size.ok()) << size.status();
    return p;
  }();
  return *path;
}

// Levels of the grid of each format, and whether it is symmetric around 0.
int Levels(Format f) {
  switch (f) {
    case Format::kQ4_0: case Format::kQ4_1: case Format::kQ4_K: return 16;
    // 16 uneven levels over [-127, 113] * scale (gaps 10 .. 24, half a gap at most 12 *
    // scale, where 127 * scale is about amax): within the one-step bound of 16 levels over
    // 2 amax (2 amax / 15 = 16.9 * scale).
    case Format::kIQ4_NL: case Format::kIQ4_XS: return 16;
    case Format::kQ5_0: case Format::kQ5_1: case Format::kQ5_K: return 32;
    case Format::kQ6_K: return 64;
    case Format::kQ8_0: case Format::kQ8_K: return 255;
    case Format::kQ2_K: return 4;
    case Format::kQ3_K: return 8;
    case Format::kF32: case Format::kF16: case Format::kBF16: return 0;  // not a grid
  }
  return 0;
}

// Error bound of one element: a block's grid spans at most the block's range (symmetric
// formats: [-amax, amax]; Q4_1/Q5_1/Q2_K/Q4_K/Q5_K: [min(min,0), max(max,0)]), so the nearest grid
// point is at most one step = range / (levels - 1) away, plus the fp16 rounding of scales.
double BlockBound(Format f, const float* x, int n) {
  if (f == Format::kF32) return 0;
  if (f == Format::kF16 || f == Format::kBF16) {  // round to nearest: half an ulp, relative
    double b = 0;
    for (int i = 0; i < n; ++i) b = std::max(b, std::fabs(double{x[i]}));
    return b * std::ldexp(1.0, f == Format::kF16 ? -11 : -8) + std::ldexp(1.0, -25);
  }
  double lo = 0, hi = 0, amax = 0;
  for (int i = 0; i < n; ++i) {
    lo = std::min(lo, double{x[i]});
    hi = std::max(hi, double{x[i]});
    amax = std::max(amax, std::fabs(double{x[i]}));
  }
  const bool asym = f == Format::kQ4_1 || f == Format::kQ5_1 || f == Format::kQ4_K ||
                    f == Format::kQ5_K || f == Format::kQ2_K;
  const double range = asym ? hi - lo : 2 * amax;
  return range / (Levels(f) - 1) + amax * 2e-3 + 1e-12;
}

std::vector<float> SourceRow(const GgufFile& f, const GgufTensorInfo& t, int64_t r) {
  std::vector<float> row(static_cast<size_t>(t.cols()));
  EXPECT_EQ(t.type, gguf_type::kF32);
  std::memcpy(row.data(), f.TensorData(t).data() + r * t.cols() * 4, row.size() * 4);
  return row;
}

class QuantizeTest : public ::testing::TestWithParam<Format> {};

TEST_P(QuantizeTest, TypesMetadataAndValues) {
  const Format target = GetParam();
  const FormatTraits& want = traits(target);
  absl::StatusOr<GgufFile> src = GgufFile::Open(SourcePath());
  ASSERT_TRUE(src.ok()) << src.status();
  const std::string out_path = TempPath(absl::StrCat("quantize_test_", want.name, ".gguf"));
  QuantizeOptions options;
  options.target = target;
  options.threads = 2;
  uint64_t last_done = 0, last_total = 1;
  options.progress = [&](uint64_t done, uint64_t total, const std::string&) {
    EXPECT_GE(done, last_done);
    last_done = done;
    last_total = total;
  };
  absl::StatusOr<QuantizeReport> report = QuantizeGguf(*src, out_path, options);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(last_done, last_total);
  EXPECT_FALSE(Exists(out_path + ".tmp"));

  absl::StatusOr<GgufFile> out = GgufFile::Open(out_path);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(report->output_bytes, out->file_size());

  // Metadata: every source key with the same value, except general.file_type.
  const int ftype = kExpectedFileType.at(target);
  for (const GgufKv& kv : src->metadata()) {
    const GgufValue* v = out->Find(kv.key);
    if (kv.key == "general.file_type") {
      if (ftype < 0) {
        EXPECT_EQ(v, nullptr) << "general.file_type should be removed for " << want.name;
      } else {
        ASSERT_NE(v, nullptr);
        EXPECT_EQ(v->type, GgufValueType::kUint32);
        EXPECT_EQ(v->u, static_cast<uint64_t>(ftype));
      }
      continue;
    }
    ASSERT_NE(v, nullptr) << kv.key;
    EXPECT_EQ(v->type, kv.value.type) << kv.key;
    EXPECT_EQ(v->s, kv.value.s) << kv.key;
    EXPECT_EQ(v->u, kv.value.u) << kv.key;
    EXPECT_EQ(v->f, kv.value.f) << kv.key;
    EXPECT_EQ(v->arr_s, kv.value.arr_s) << kv.key;
    EXPECT_EQ(v->arr_f, kv.value.arr_f) << kv.key;
    EXPECT_EQ(v->arr_i, kv.value.arr_i) << kv.key;
  }
  EXPECT_EQ(out->metadata().size(), src->metadata().size() - (ftype < 0 ? 1 : 0));

  // Tensors: same names, dims and order; the type expected for the row length; values
  // within the format's error bound of the source, and exactly the reference quantizer's
  // bytes of the source row.
  ASSERT_EQ(out->tensors().size(), src->tensors().size());
  std::map<std::string, int> count_by_type;
  int fallbacks = 0;
  for (size_t i = 0; i < src->tensors().size(); ++i) {
    const GgufTensorInfo& s = src->tensors()[i];
    const GgufTensorInfo& o = out->tensors()[i];
    ASSERT_EQ(o.name, s.name);
    ASSERT_EQ(o.dims, s.dims) << s.name;
    Format expect = Format::kF32;
    if (s.dims.size() == 2) {
      expect = s.cols() % 256 == 0 ? target : Fallback256(target);
      if (expect != target) ++fallbacks;
    }
    const FormatTraits& et = traits(expect);
    ASSERT_EQ(o.type, et.gguf_type) << s.name << " cols " << s.cols() << ": got "
                                    << gguf_type_name(o.type) << ", want " << et.name;
    ++count_by_type[et.name];
    const int64_t k = s.cols();
    const size_t row_bytes = static_cast<size_t>(k / et.block_elems * et.block_bytes);
    std::vector<float> deq(static_cast<size_t>(k));
    std::vector<uint8_t> requant(row_bytes);
    double sum_sq = 0, sum_sq_bound = 0;
    for (int64_t r = 0; r < s.rows(); ++r) {
      const std::vector<float> x = SourceRow(*src, s, r);
      const uint8_t* got = out->TensorData(o).data() + r * row_bytes;
      et.quantize_row(x.data(), requant.data(), k);
      ASSERT_EQ(std::memcmp(got, requant.data(), row_bytes), 0)
          << s.name << " row " << r << ": bytes differ from the reference quantizer's";
      et.dequantize_row(got, deq.data(), k);
      for (int64_t b = 0; b < k; b += et.block_elems) {
        const double bound = BlockBound(expect, x.data() + b, et.block_elems);
        for (int64_t j = b; j < b + et.block_elems; ++j) {
          const double err = std::fabs(double{deq[j]} - x[j]);
          ASSERT_LE(err, bound) << s.name << " row " << r << " col " << j << " as " << et.name
                                << ": source " << x[j] << ", dequantized " << deq[j];
          sum_sq += err * err;
          sum_sq_bound += bound * bound;
        }
      }
    }
    // On average the error is well inside the one-step bound (uniform rounding: step/sqrt(12)
    // RMS); 0.5 step RMS still catches a grid that is much coarser than the format's.
    if (expect != Format::kF32) {
      EXPECT_LE(std::sqrt(sum_sq), 0.5 * std::sqrt(sum_sq_bound)) << s.name;
    }
  }
  // The summary counts what was written.
  for (const auto& [name, n] : count_by_type) {
    ASSERT_TRUE(report->written.count(name)) << name;
    EXPECT_EQ(report->written.at(name).tensors, n) << name;
  }
  EXPECT_EQ(report->written.size(), count_by_type.size());
  EXPECT_EQ(static_cast<int>(report->fallbacks.size()), fallbacks);
  if (target == Format::kQ4_K) {
    // hidden 288: q, k, v, o, gate, up of each layer, the embedding and the output fall back.
    EXPECT_EQ(fallbacks, 2 * 6 + 2);
    EXPECT_EQ(count_by_type["Q4_K"], 2);  // ffn_down of each layer
  }
}

INSTANTIATE_TEST_SUITE_P(AllFormats, QuantizeTest,
                         ::testing::ValuesIn([] {
                           std::vector<Format> all;
                           for (const FormatTraits& t : all_formats()) all.push_back(t.format);
                           return all;
                         }()),
                         [](const ::testing::TestParamInfo<Format>& p) {
                           return std::string(traits(p.param).name);
                         });

// Requantizing a quantized file: the source rows are dequantized first. Q8_0 -> Q8_0 of an
// already-Q8_0 grid gives back the same bytes (the grid's max maps to 127 again).
TEST(QuantizeTest, QuantizedSourceIsDequantizedFirst) {
  absl::StatusOr<GgufFile> src = GgufFile::Open(SourcePath());
  ASSERT_TRUE(src.ok()) << src.status();
  const std::string q8 = TempPath("quantize_test_src_q8.gguf");
  const std::string q8_again = TempPath("quantize_test_q8_again.gguf");
  QuantizeOptions options;
  options.target = Format::kQ8_0;
  ASSERT_TRUE(QuantizeGguf(*src, q8, options).ok());
  absl::StatusOr<GgufFile> a = GgufFile::Open(q8);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(QuantizeGguf(*a, q8_again, options).ok());
  absl::StatusOr<GgufFile> b = GgufFile::Open(q8_again);
  ASSERT_TRUE(b.ok()) << b.status();
  ASSERT_EQ(a->tensors().size(), b->tensors().size());
  for (size_t i = 0; i < a->tensors().size(); ++i) {
    absl::Span<const uint8_t> x = a->TensorData(a->tensors()[i]);
    absl::Span<const uint8_t> y = b->TensorData(b->tensors()[i]);
    ASSERT_EQ(x.size(), y.size());
    EXPECT_EQ(std::memcmp(x.data(), y.data(), x.size()), 0) << a->tensors()[i].name;
  }
}

TEST(QuantizeTest, FallbackTable) {
  EXPECT_EQ(format_for_row_length(Format::kQ4_K, 576), Format::kQ5_0);
  EXPECT_EQ(format_for_row_length(Format::kQ4_K, 1536), Format::kQ4_K);
  EXPECT_EQ(format_for_row_length(Format::kQ5_K, 576), Format::kQ5_1);  // as llama.cpp
  EXPECT_EQ(format_for_row_length(Format::kQ6_K, 576), Format::kQ8_0);
  EXPECT_EQ(format_for_row_length(Format::kQ8_K, 576), Format::kQ8_0);
  EXPECT_EQ(format_for_row_length(Format::kQ2_K, 576), Format::kQ4_0);  // as llama.cpp
  EXPECT_EQ(format_for_row_length(Format::kQ3_K, 576), Format::kQ4_0);  // as llama.cpp
  EXPECT_EQ(format_for_row_length(Format::kQ4_0, 40), Format::kF32);
  EXPECT_EQ(format_for_row_length(Format::kQ4_K, 200), Format::kF32);
  EXPECT_EQ(format_for_row_length(Format::kF32, 7), Format::kF32);
  // Fallbacks never lose precision.
  for (const FormatTraits& t : all_formats()) {
    const Format f = format_for_row_length(t.format, 32 * 9);
    EXPECT_GE(traits(f).bits_per_weight + 0.65, t.bits_per_weight) << t.name;
  }
}

TEST(QuantizeTest, MissingOutputDirectoryIsAnErrorAndLeavesNothing) {
  absl::StatusOr<GgufFile> src = GgufFile::Open(SourcePath());
  ASSERT_TRUE(src.ok()) << src.status();
  const std::string bad = TempPath("no/such/dir/out.gguf");
  absl::StatusOr<QuantizeReport> r = QuantizeGguf(*src, bad, QuantizeOptions{});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(std::string(r.status().message()).find("no/such/dir/out.gguf.tmp"),
            std::string::npos)
      << r.status();
  EXPECT_FALSE(Exists(bad));
}

// ---- Streaming writer ----------------------------------------------------------------------

TEST(GgufStreamWriterTest, EveryValueTypeRoundTripsThroughTheReader) {
  std::vector<GgufKv> kv;
  kv.push_back({"u8", GgufValue::Scalar(GgufValueType::kUint8, 200, 0, 0)});
  kv.push_back({"i8", GgufValue::Scalar(GgufValueType::kInt8, 0, -100, 0)});
  kv.push_back({"u16", GgufValue::Scalar(GgufValueType::kUint16, 60000, 0, 0)});
  kv.push_back({"i16", GgufValue::Scalar(GgufValueType::kInt16, 0, -30000, 0)});
  kv.push_back({"u32", GgufValue::Uint32(4000000000u)});
  kv.push_back({"i32", GgufValue::Int32(-2000000000)});
  kv.push_back({"f32", GgufValue::Float32(0.25f)});
  kv.push_back({"bool", GgufValue::Bool(true)});
  kv.push_back({"str", GgufValue::String("h\xC3\xA9llo")});
  kv.push_back({"u64", GgufValue::Uint64(1ull << 40)});
  kv.push_back({"i64", GgufValue::Scalar(GgufValueType::kInt64, 0, -(1ll << 40), 0)});
  kv.push_back({"f64", GgufValue::Scalar(GgufValueType::kFloat64, 0, 0, 1.0 / 3)});
  kv.push_back({"strs", GgufValue::StringArray({"a", "", "bc"})});
  kv.push_back({"f32s", GgufValue::Float32Array({1.5f, -2.0f})});
  kv.push_back({"i32s", GgufValue::Int32Array({-1, 7})});
  const std::string path = TempPath("stream_writer_test.gguf");
  std::vector<GgufStreamWriter::TensorSpec> specs = {
      {"a", {32, 3}, gguf_type::kQ8_0}, {"b", {5}, gguf_type::kF32}};
  absl::StatusOr<GgufStreamWriter> w = GgufStreamWriter::Create(path, kv, specs);
  ASSERT_TRUE(w.ok()) << w.status();
  std::vector<uint8_t> a(3 * 34), b(5 * 4);
  for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<uint8_t>(i * 7);
  for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<uint8_t>(255 - i);
  // Wrong size is refused.
  EXPECT_FALSE(w->WriteTensor(absl::MakeConstSpan(b)).ok());
  ASSERT_TRUE(w->WriteTensor(a).ok());
  EXPECT_FALSE(w->Finish().ok());  // one tensor missing
  ASSERT_TRUE(w->WriteTensor(b).ok());
  EXPECT_FALSE(Exists(path));
  absl::StatusOr<uint64_t> size = w->Finish();
  ASSERT_TRUE(size.ok()) << size.status();

  absl::StatusOr<GgufFile> f = GgufFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->file_size(), *size);
  EXPECT_EQ(f->version(), 3u);
  ASSERT_EQ(f->metadata().size(), kv.size());
  for (size_t i = 0; i < kv.size(); ++i) {
    const GgufValue& got = f->metadata()[i].value;
    const GgufValue& want = kv[i].value;
    EXPECT_EQ(f->metadata()[i].key, kv[i].key);
    EXPECT_EQ(got.type, want.type) << kv[i].key;
    EXPECT_EQ(got.u, want.u) << kv[i].key;
    EXPECT_EQ(got.i, want.i) << kv[i].key;
    EXPECT_EQ(got.f, want.f) << kv[i].key;
    EXPECT_EQ(got.s, want.s) << kv[i].key;
    EXPECT_EQ(got.arr_s, want.arr_s) << kv[i].key;
    EXPECT_EQ(got.arr_f, want.arr_f) << kv[i].key;
    EXPECT_EQ(got.arr_i, want.arr_i) << kv[i].key;
  }
  ASSERT_EQ(f->tensors().size(), 2u);
  absl::Span<const uint8_t> ra = f->TensorData(f->tensors()[0]);
  absl::Span<const uint8_t> rb = f->TensorData(f->tensors()[1]);
  EXPECT_EQ(std::vector<uint8_t>(ra.begin(), ra.end()), a);
  EXPECT_EQ(std::vector<uint8_t>(rb.begin(), rb.end()), b);
  EXPECT_EQ(f->tensors()[1].offset % 32, 0u);
}

TEST(GgufStreamWriterTest, AbandonedWriterLeavesNoFile) {
  const std::string path = TempPath("abandoned.gguf");
  {
    absl::StatusOr<GgufStreamWriter> w = GgufStreamWriter::Create(
        path, {}, {{"a", {32, 1}, gguf_type::kQ8_0}});
    ASSERT_TRUE(w.ok()) << w.status();
    EXPECT_TRUE(Exists(path + ".tmp"));
  }
  EXPECT_FALSE(Exists(path + ".tmp"));
  EXPECT_FALSE(Exists(path));
}

TEST(GgufStreamWriterTest, BadTensorShapeNamesTheTensor) {
  absl::StatusOr<GgufStreamWriter> w = GgufStreamWriter::Create(
      TempPath("bad.gguf"), {}, {{"blk.0.attn_q.weight", {100, 2}, gguf_type::kQ4_K}});
  ASSERT_FALSE(w.ok());
  EXPECT_NE(std::string(w.status().message()).find("blk.0.attn_q.weight"), std::string::npos)
      << w.status();
}

// ---- Synthetic model -----------------------------------------------------------------------

TEST(SyntheticModelTest, FileHasTheLlamaLayoutAndTheGeneratedWeights) {
  const SyntheticLlamaConfig c = SmallConfig();
  absl::StatusOr<GgufFile> f = GgufFile::Open(SourcePath());
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(*f->GetString("general.architecture"), "llama");
  EXPECT_EQ(*f->GetUint("llama.embedding_length"), 288u);
  EXPECT_EQ(*f->GetUint("llama.block_count"), 2u);
  EXPECT_EQ(*f->GetUint("llama.attention.head_count"), 3u);
  EXPECT_EQ(*f->GetUint("llama.attention.head_count_kv"), 1u);
  EXPECT_EQ(*f->GetUint("llama.feed_forward_length"), 512u);
  EXPECT_EQ(*f->GetUint("llama.rope.dimension_count"), 96u);
  EXPECT_EQ(*f->GetString("tokenizer.ggml.model"), "llama");
  absl::StatusOr<const std::vector<std::string>*> tokens =
      f->GetStringArray("tokenizer.ggml.tokens");
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  ASSERT_EQ((*tokens)->size(), 400u);
  EXPECT_EQ((**tokens)[0], "<unk>");
  EXPECT_EQ((**tokens)[1], "<s>");
  EXPECT_EQ((**tokens)[2], "</s>");
  EXPECT_EQ((**tokens)[3 + 0x0A], "<0x0A>");
  // Unique pieces.
  std::vector<std::string> sorted = **tokens;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(std::unique(sorted.begin(), sorted.end()), sorted.end());
  EXPECT_EQ(f->GetFloatArray("tokenizer.ggml.scores")->size(), 400u);
  EXPECT_EQ(f->GetIntArray("tokenizer.ggml.token_type")->size(), 400u);

  // 2 + 9 per layer tensors, shapes in ggml order.
  ASSERT_EQ(f->tensors().size(), 2u + 9u * 2 + 1u);
  const GgufTensorInfo* k = f->FindTensor("blk.1.attn_k.weight");
  ASSERT_NE(k, nullptr);
  EXPECT_EQ(k->dims, (std::vector<uint64_t>{288, 96}));
  const GgufTensorInfo* down = f->FindTensor("blk.0.ffn_down.weight");
  ASSERT_NE(down, nullptr);
  EXPECT_EQ(down->dims, (std::vector<uint64_t>{512, 288}));
  const GgufTensorInfo* out = f->FindTensor("output.weight");
  ASSERT_NE(out, nullptr);
  EXPECT_EQ(out->dims, (std::vector<uint64_t>{288, 400}));

  // Values: the generator's rows, of the stated scale.
  std::vector<float> row(288);
  SyntheticRow(c, "blk.1.attn_k.weight", 5, 288, false, row.data());
  EXPECT_EQ(SourceRow(*f, *k, 5), row);
  double sum = 0, sum_sq = 0;
  int64_t n = 0;
  for (int64_t r = 0; r < k->rows(); ++r) {
    for (float v : SourceRow(*f, *k, r)) {
      sum += v;
      sum_sq += double{v} * v;
      ++n;
    }
  }
  const double mean = sum / n, sd = std::sqrt(sum_sq / n - mean * mean);
  EXPECT_NEAR(mean, 0.0, 0.002);
  EXPECT_GT(sd, 0.015);
  EXPECT_LT(sd, 0.03);
  const GgufTensorInfo* norm = f->FindTensor("blk.0.attn_norm.weight");
  ASSERT_NE(norm, nullptr);
  EXPECT_EQ(norm->dims, (std::vector<uint64_t>{288}));
  for (float v : SourceRow(*f, *norm, 0)) EXPECT_NEAR(v, 1.0, 0.2);
}

// Every format is a quantization of the same F32 model, whatever the thread count.
TEST(SyntheticModelTest, FormatsQuantizeTheSameWeights) {
  const SyntheticLlamaConfig c = SmallConfig();
  const std::string path = TempPath("synthetic_q4k.gguf");
  ASSERT_TRUE(WriteSyntheticLlama(c, Format::kQ4_K, path, 1).ok());
  absl::StatusOr<GgufFile> q = GgufFile::Open(path);
  absl::StatusOr<GgufFile> f = GgufFile::Open(SourcePath());
  ASSERT_TRUE(q.ok() && f.ok());
  EXPECT_EQ(*q->GetUint("general.file_type"), 14u);
  for (const GgufTensorInfo& t : q->tensors()) {
    const GgufTensorInfo* s = f->FindTensor(t.name);
    ASSERT_NE(s, nullptr);
    const Format expect = t.dims.size() == 1 ? Format::kF32
                          : t.cols() % 256 == 0 ? Format::kQ4_K
                                                : Format::kQ5_0;
    ASSERT_EQ(t.type, traits(expect).gguf_type) << t.name;
    const FormatTraits& et = traits(expect);
    const size_t row_bytes = static_cast<size_t>(t.cols() / et.block_elems * et.block_bytes);
    std::vector<uint8_t> want(row_bytes);
    for (int64_t r = 0; r < t.rows(); r += 37) {
      et.quantize_row(SourceRow(*f, *s, r).data(), want.data(), t.cols());
      ASSERT_EQ(std::memcmp(q->TensorData(t).data() + r * row_bytes, want.data(), row_bytes), 0)
          << t.name << " row " << r;
    }
  }
}

TEST(SyntheticModelTest, TinyLlamaShape) {
  SyntheticLlamaConfig c;  // defaults: TinyLlama-1.1B
  EXPECT_EQ(SyntheticParameterCount(c), 1100048384);
  EXPECT_EQ(SyntheticModelPath("/x", c, Format::kQ4_K),
            absl::StrCat("/x/synthetic-tinyllama-1.1b-", kSyntheticVersion, "/Q4_K.gguf"));
  const std::vector<std::string> v = SyntheticVocabulary(32000);
  EXPECT_EQ(v.size(), 32000u);
}

TEST(SyntheticModelTest, InvalidShapeIsAnError) {
  SyntheticLlamaConfig c = SmallConfig();
  c.heads = 5;  // 288 is not a multiple of 5
  absl::StatusOr<uint64_t> r = WriteSyntheticLlama(c, Format::kQ8_0, TempPath("bad_shape.gguf"), 1);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(std::string(r.status().message()).find("heads 5"), std::string::npos) << r.status();
}

}  // namespace
}  // namespace fk
