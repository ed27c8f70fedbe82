#include "runtime/gguf.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/formats.h"
#include "runtime/gguf_test_util.h"

namespace fk {
namespace {

using testing_util::Bytes;
using testing_util::SampleMetadata;
using testing_util::SampleTensors;
using testing_util::SameValue;
using ::testing::HasSubstr;

std::string TempPath(const std::string& leaf) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return absl::StrCat(dir != nullptr ? dir : "/tmp", "/", leaf);
}

absl::StatusOr<GgufFile> Parse(const std::string& bytes, const std::string& name = "t.gguf") {
  return GgufFile::FromBuffer(bytes.data(), bytes.size(), name);
}

// ---- round trip -----------------------------------------------------------------------------

TEST(GgufRoundTrip, EveryMetadataValueType) {
  GgufWriter w;
  const std::vector<GgufKv> kvs = SampleMetadata();
  for (const GgufKv& kv : kvs) w.Add(kv.key, kv.value);
  absl::StatusOr<std::string> bytes = w.ToBytes();
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  absl::StatusOr<GgufFile> f = Parse(*bytes);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->version(), 3u);
  EXPECT_EQ(f->alignment(), 32u);
  ASSERT_EQ(f->metadata().size(), kvs.size());
  for (size_t i = 0; i < kvs.size(); ++i) {
    SCOPED_TRACE(kvs[i].key);
    EXPECT_EQ(f->metadata()[i].key, kvs[i].key);  // order kept
    EXPECT_TRUE(SameValue(f->metadata()[i].value, kvs[i].value));
    const GgufValue* found = f->Find(kvs[i].key);
    ASSERT_NE(found, nullptr);
    EXPECT_TRUE(SameValue(*found, kvs[i].value));
  }
  EXPECT_EQ(f->Find("no.such.key"), nullptr);
  EXPECT_TRUE(f->tensors().empty());
  // Every one of the 13 value types occurs, as a value or as an array element type.
  std::map<GgufValueType, int> seen;
  for (const GgufKv& kv : f->metadata()) {
    seen[kv.value.type]++;
    if (kv.value.type == GgufValueType::kArray) seen[kv.value.elem_type]++;
  }
  EXPECT_EQ(seen.size(), 13u);
}

TEST(GgufRoundTrip, NestedArraysKeepTheirShape) {
  GgufWriter w;
  for (const GgufKv& kv : SampleMetadata()) w.Add(kv.key, kv.value);
  absl::StatusOr<std::string> bytes = w.ToBytes();
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  absl::StatusOr<GgufFile> f = Parse(*bytes);
  ASSERT_TRUE(f.ok()) << f.status();
  const GgufValue* n = f->Find("n.int32");
  ASSERT_NE(n, nullptr);
  EXPECT_EQ(n->type, GgufValueType::kArray);
  EXPECT_EQ(n->elem_type, GgufValueType::kArray);
  ASSERT_EQ(n->array_size(), 3u);
  EXPECT_EQ(n->arr_v[0].elem_type, GgufValueType::kInt32);
  EXPECT_EQ(n->arr_v[0].arr_i, (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(n->arr_v[1].array_size(), 0u);
  EXPECT_EQ(n->arr_v[2].arr_i, (std::vector<int64_t>{-4}));
  const GgufValue* d = f->Find("n.depth3");
  ASSERT_NE(d, nullptr);
  ASSERT_EQ(d->arr_v.size(), 1u);
  ASSERT_EQ(d->arr_v[0].arr_v.size(), 2u);
  EXPECT_EQ(d->arr_v[0].arr_v[0].arr_f, (std::vector<double>{0.25}));
  EXPECT_EQ(d->arr_v[0].arr_v[1].elem_type, GgufValueType::kUint8);
  EXPECT_EQ(d->arr_v[0].arr_v[1].arr_u, (std::vector<uint64_t>{9, 8}));
}

TEST(GgufRoundTrip, EveryTensorFormat) {
  GgufWriter w;
  w.Add("general.architecture", GgufValue::String("test"));
  const std::vector<testing_util::SampleTensor> ts = SampleTensors(3, 2);
  for (const auto& t : ts) ASSERT_TRUE(w.AddTensor(t.name, t.dims, t.type, t.bytes).ok());
  absl::StatusOr<std::string> bytes = w.ToBytes();
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  absl::StatusOr<GgufFile> f = Parse(*bytes);
  ASSERT_TRUE(f.ok()) << f.status();
  ASSERT_EQ(f->tensors().size(), ts.size());
  EXPECT_EQ(f->data_offset() % 32, 0u);
  for (size_t i = 0; i < ts.size(); ++i) {
    SCOPED_TRACE(ts[i].name);
    const GgufTensorInfo& t = f->tensors()[i];
    EXPECT_EQ(t.name, ts[i].name);
    EXPECT_EQ(t.dims, ts[i].dims);
    EXPECT_EQ(t.type, ts[i].type);
    EXPECT_EQ(t.offset % 32, 0u);
    EXPECT_EQ(t.size_bytes, ts[i].bytes.size());
    const absl::Span<const uint8_t> data = f->TensorData(t);
    ASSERT_EQ(data.size(), ts[i].bytes.size());
    EXPECT_EQ(std::memcmp(data.data(), ts[i].bytes.data(), data.size()), 0);
    EXPECT_EQ(f->FindTensor(ts[i].name), &t);
  }
  EXPECT_EQ(f->FindTensor("missing"), nullptr);
}

TEST(GgufRoundTrip, CustomAlignmentsPlaceDataOnTheirBoundary) {
  for (uint32_t align : {1u, 2u, 8u, 64u, 4096u}) {
    SCOPED_TRACE(align);
    GgufWriter w = testing_util::SampleWriter();
    w.Add("general.alignment", GgufValue::Uint32(align));
    absl::StatusOr<std::string> bytes = w.ToBytes();
    ASSERT_TRUE(bytes.ok()) << bytes.status();
    absl::StatusOr<GgufFile> f = Parse(*bytes);
    ASSERT_TRUE(f.ok()) << f.status();
    EXPECT_EQ(f->alignment(), align);
    EXPECT_EQ(f->data_offset() % align, 0u);
    const std::vector<testing_util::SampleTensor> ts = SampleTensors();
    ASSERT_EQ(f->tensors().size(), ts.size());
    for (size_t i = 0; i < ts.size(); ++i) {
      EXPECT_EQ(f->tensors()[i].offset % align, 0u);
      const absl::Span<const uint8_t> data = f->TensorData(f->tensors()[i]);
      EXPECT_EQ(std::string(reinterpret_cast<const char*>(data.data()), data.size()),
                ts[i].bytes);
    }
  }
}

// The writer's layout, checked field by field against the GGUF spec with the test's own
// encoder: the same file built by hand must be byte-identical.
TEST(GgufWriter, LayoutMatchesTheSpecByteForByte) {
  GgufWriter w;
  w.Add("k", GgufValue::Uint32(7));
  w.Add("s", GgufValue::String("ab"));
  const std::string q8(34, '\x01');
  ASSERT_TRUE(w.AddTensor("t", {32, 1}, gguf_type::kQ8_0, q8).ok());
  ASSERT_TRUE(w.AddTensor("u", {4}, gguf_type::kF32, std::string(16, '\x02')).ok());
  absl::StatusOr<std::string> bytes = w.ToBytes();
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  Bytes want;
  want.header(2, 2).str("k").u32(4).u32(7).str("s").u32(8).str("ab");
  want.tensor("t", {32, 1}, 8, 0).tensor("u", {4}, 0, 64).pad_to(32);
  want.raw(q8.data(), q8.size()).pad_to(32).raw(std::string(16, '\x02').data(), 16).pad_to(32);
  EXPECT_EQ(*bytes, want.str());
}

TEST(GgufWriter, AddReplacesAnExistingKey) {
  GgufWriter w;
  w.Add("a", GgufValue::Uint32(1));
  w.Add("b", GgufValue::Uint32(2));
  w.Add("a", GgufValue::String("x"));
  absl::StatusOr<std::string> bytes = w.ToBytes();
  ASSERT_TRUE(bytes.ok());
  absl::StatusOr<GgufFile> f = Parse(*bytes);
  ASSERT_TRUE(f.ok()) << f.status();
  ASSERT_EQ(f->metadata().size(), 2u);
  EXPECT_EQ(f->metadata()[0].key, "a");
  EXPECT_EQ(*f->GetString("a"), "x");
}

TEST(GgufWriter, WriteGoesThroughATemporaryFileAndOpenReadsItBack) {
  const std::string path = TempPath("write_test.gguf");
  GgufWriter w = testing_util::SampleWriter();
  ASSERT_TRUE(w.Write(path).ok());
  struct stat st;
  EXPECT_NE(::stat((path + ".tmp").c_str(), &st), 0) << "temporary file left behind";
  absl::StatusOr<GgufFile> f = GgufFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->name(), path);
  EXPECT_EQ(f->tensors().size(), SampleTensors().size());
  ASSERT_NE(f->keepalive(), nullptr);
  std::remove(path.c_str());
}

TEST(GgufWriter, WriteFailureLeavesNothingBehind) {
  const std::string path = TempPath("no/such/dir/out.gguf");
  absl::Status s = testing_util::SampleWriter().Write(path);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), HasSubstr("no/such/dir/out.gguf.tmp"));
  struct stat st;
  EXPECT_NE(::stat(path.c_str(), &st), 0);
}

TEST(GgufWriter, RejectsBadInput) {
  {
    GgufWriter w;
    w.Add("small", GgufValue::Scalar(GgufValueType::kUint8, 256, 0, 0));
    absl::StatusOr<std::string> b = w.ToBytes();
    ASSERT_FALSE(b.ok());
    EXPECT_THAT(std::string(b.status().message()), HasSubstr("'small': value 256 does not fit uint8"));
  }
  {
    GgufWriter w;
    w.Add("neg", GgufValue::IntArray(GgufValueType::kInt8, {1, -129}));
    absl::StatusOr<std::string> b = w.ToBytes();
    ASSERT_FALSE(b.ok());
    EXPECT_THAT(std::string(b.status().message()), HasSubstr("value -129 does not fit int8"));
  }
  {
    GgufWriter w;
    w.Add("general.alignment", GgufValue::Uint32(48));
    absl::StatusOr<std::string> b = w.ToBytes();
    ASSERT_FALSE(b.ok());
    EXPECT_THAT(std::string(b.status().message()), HasSubstr("power of two"));
  }
  {
    GgufWriter w;
    GgufValue bad = GgufValue::ArrayOfArrays({GgufValue::Uint32(1)});
    w.Add("nested", bad);
    absl::StatusOr<std::string> b = w.ToBytes();
    ASSERT_FALSE(b.ok());
    EXPECT_THAT(std::string(b.status().message()), HasSubstr("element 0 of an array of arrays"));
  }
  GgufWriter w;
  absl::Status s = w.AddTensor("t", {32, 2}, gguf_type::kQ4_0, std::string(35, '\0'));
  EXPECT_THAT(std::string(s.message()), HasSubstr("tensor 't' (Q4_0, dims [32, 2]) needs 36 bytes, got 35"));
  s = w.AddTensor("t", {33}, gguf_type::kQ4_0, std::string(18, '\0'));
  EXPECT_THAT(std::string(s.message()), HasSubstr("not a multiple of the Q4_0 block size 32"));
  s = w.AddTensor("t", {32}, 99, "");
  EXPECT_THAT(std::string(s.message()), HasSubstr("unknown or unsupported tensor type id 99"));
  ASSERT_TRUE(w.AddTensor("t", {32}, gguf_type::kQ8_0, std::string(34, '\0')).ok());
  s = w.AddTensor("t", {32}, gguf_type::kQ8_0, std::string(34, '\0'));
  EXPECT_THAT(std::string(s.message()), HasSubstr("duplicate tensor name 't'"));
}

// Sizes from the GGUF block layouts as issue 2 lists them (not from the traits table).
TEST(GgufTensorBytes, MatchesTheGgufBlockSizes) {
  struct Case {
    uint32_t type;
    uint64_t k;
    uint64_t want_per_row;
  } cases[] = {
      {0, 32, 128},  {1, 32, 64},   {30, 32, 64},   {2, 32, 18},   {3, 32, 20},
      {6, 32, 22},   {8, 32, 34},   {12, 256, 144}, {13, 256, 176}, {14, 256, 210},
      {15, 256, 292},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(gguf_type_name(c.type));
    absl::StatusOr<uint64_t> b = gguf_tensor_bytes(c.type, {c.k * 2, 3});
    ASSERT_TRUE(b.ok()) << b.status();
    EXPECT_EQ(*b, c.want_per_row * 2 * 3);
  }
  EXPECT_EQ(gguf_type_name(12), "Q4_K");
  EXPECT_EQ(gguf_type_name(1), "F16");
  EXPECT_EQ(gguf_type_name(30), "BF16");
  EXPECT_EQ(gguf_type_name(10), "type 10");
  EXPECT_FALSE(gguf_tensor_bytes(2, {}).ok());
}

TEST(GgufRoundTrip, Version2FilesRead) {
  absl::StatusOr<std::string> bytes = testing_util::SampleWriter().ToBytes();
  ASSERT_TRUE(bytes.ok());
  std::string v2 = *bytes;
  v2[4] = 2;  // v2 and v3 share the little-endian layout
  absl::StatusOr<GgufFile> f = Parse(v2);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->version(), 2u);
  EXPECT_EQ(f->tensors().size(), SampleTensors().size());
}

// ---- typed getters --------------------------------------------------------------------------

TEST(GgufGetters, ConvertWhereLosslessAndNameTheKeyOtherwise) {
  GgufWriter w;
  for (const GgufKv& kv : SampleMetadata()) w.Add(kv.key, kv.value);
  absl::StatusOr<std::string> bytes = w.ToBytes();
  ASSERT_TRUE(bytes.ok());
  absl::StatusOr<GgufFile> f = Parse(*bytes, "meta.gguf");
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(*f->GetString("general.architecture"), "llama");
  EXPECT_EQ(*f->GetUint("t.uint16"), 65535u);
  EXPECT_EQ(*f->GetUint("t.uint64"), 18446744073709551615ull);
  EXPECT_EQ(*f->GetInt("t.int8"), -128);
  EXPECT_EQ(*f->GetInt("t.uint32"), 4294967295);
  EXPECT_EQ(*f->GetFloat("t.float64"), 3.141592653589793);
  EXPECT_EQ(*f->GetFloat("t.int16"), -32768.0);
  EXPECT_FLOAT_EQ(static_cast<float>(*f->GetFloat("t.float32")), -1.5e-7f);
  EXPECT_TRUE(*f->GetBool("t.bool.true"));
  EXPECT_FALSE(*f->GetBool("t.bool.false"));
  EXPECT_EQ(**f->GetStringArray("a.string"),
            (std::vector<std::string>{"<s>", "", "\xc4\xa0the", "a b"}));
  EXPECT_EQ(*f->GetFloatArray("a.float32"), (std::vector<float>{0.5f, -0.0f, 1e-38f, 3.4e38f}));
  EXPECT_EQ(*f->GetFloatArray("a.int16"), (std::vector<float>{-32768, 32767}));
  EXPECT_EQ(*f->GetIntArray("a.int32"), (std::vector<int64_t>{-5, 0, 2147483647}));
  EXPECT_EQ(*f->GetIntArray("a.uint16"), (std::vector<int64_t>{0, 65535}));

  auto msg = [](const absl::Status& s) { return std::string(s.message()); };
  EXPECT_EQ(msg(f->GetString("nope").status()), "meta.gguf: metadata key 'nope' not found");
  EXPECT_EQ(f->GetString("nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(msg(f->GetString("t.uint8").status()),
            "meta.gguf: metadata key 't.uint8' has type uint8, expected string");
  EXPECT_THAT(msg(f->GetUint("t.int8").status()), HasSubstr("'t.int8' is -128, expected a non-negative"));
  EXPECT_THAT(msg(f->GetInt("t.uint64").status()), HasSubstr("too large for a signed 64-bit"));
  EXPECT_THAT(msg(f->GetUint("t.bool.true").status()), HasSubstr("has type bool"));
  EXPECT_THAT(msg(f->GetBool("t.uint8").status()), HasSubstr("expected bool"));
  EXPECT_THAT(msg(f->GetStringArray("a.int32").status()),
              HasSubstr("has type array of int32, expected array of string"));
  EXPECT_THAT(msg(f->GetFloatArray("a.string").status()), HasSubstr("expected an array of numbers"));
  EXPECT_THAT(msg(f->GetIntArray("a.uint64").status()), HasSubstr("element 1 is 18446744073709551615"));
  EXPECT_THAT(msg(f->GetIntArray("a.float32").status()), HasSubstr("expected an array of integers"));
}

}  // namespace
}  // namespace fk
