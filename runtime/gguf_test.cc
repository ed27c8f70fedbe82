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
#include "absl/strings/str_format.h"
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

// GgufLoad::kHugePages reads the file into its own memory, starting on a 2 MB boundary, and
// parses to the same metadata, tensors and bytes as the mapped file.
TEST(GgufOpen, HugePagesLoadReadsTheSameBytesAsTheMapping) {
  const std::string path = TempPath("huge_pages_test.gguf");
  ASSERT_TRUE(testing_util::SampleWriter().Write(path).ok());
  absl::StatusOr<GgufFile> mapped = GgufFile::Open(path, GgufLoad::kMap);
  absl::StatusOr<GgufFile> read = GgufFile::Open(path, GgufLoad::kHugePages);
  ASSERT_TRUE(mapped.ok()) << mapped.status();
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->name(), path);
  EXPECT_EQ(read->file_size(), mapped->file_size());
  ASSERT_EQ(read->metadata().size(), mapped->metadata().size());
  for (size_t i = 0; i < read->metadata().size(); ++i) {
    EXPECT_EQ(read->metadata()[i].key, mapped->metadata()[i].key);
  }
  ASSERT_EQ(read->tensors().size(), mapped->tensors().size());
  ASSERT_FALSE(read->tensors().empty());
  for (size_t i = 0; i < read->tensors().size(); ++i) {
    const GgufTensorInfo& t = read->tensors()[i];
    EXPECT_EQ(t.name, mapped->tensors()[i].name);
    absl::Span<const uint8_t> a = read->TensorData(t), b = mapped->TensorData(mapped->tensors()[i]);
    ASSERT_EQ(a.size(), b.size()) << t.name;
    EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size()), 0) << t.name;
    EXPECT_NE(a.data(), b.data());
  }
  const GgufTensorInfo& first = read->tensors()[0];
  const uintptr_t file_start = reinterpret_cast<uintptr_t>(read->TensorData(first).data()) -
                               read->data_offset() - first.offset;
  EXPECT_EQ(file_start % (uintptr_t{2} << 20), 0u);
  ASSERT_NE(read->keepalive(), nullptr);
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
      {15, 256, 292}, {10, 256, 84},  {11, 256, 110},
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
  EXPECT_EQ(gguf_type_name(10), "Q2_K");
  EXPECT_EQ(gguf_type_name(11), "Q3_K");
  EXPECT_EQ(gguf_type_name(4), "type 4");  // Q4_2, which ggml removed
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

// ---- invalid input: every case gives an error naming the file and what was wrong -----------

// Parses `bytes` as "bad.gguf" and expects an error whose message starts with the file name
// and contains every one of `parts`.
void ExpectError(const std::string& bytes, std::vector<std::string> parts) {
  absl::StatusOr<GgufFile> f = Parse(bytes, "bad.gguf");
  ASSERT_FALSE(f.ok()) << "accepted an invalid file; expected: " << parts[0];
  const std::string msg(f.status().message());
  EXPECT_EQ(f.status().code(), absl::StatusCode::kInvalidArgument) << msg;
  EXPECT_TRUE(absl::StartsWith(msg, "bad.gguf: ")) << msg;
  for (const std::string& p : parts) EXPECT_THAT(msg, HasSubstr(p));
}

// One F32 tensor of `n` floats, aligned data section, given metadata before it.
std::string OneF32Tensor(uint64_t n, uint64_t offset = 0, size_t data_bytes = 0) {
  Bytes b;
  b.header(1, 0).tensor("w", {n}, gguf_type::kF32, offset).pad_to(32);
  b.zeros(data_bytes ? data_bytes : n * 4);
  return b.str();
}

TEST(GgufInvalid, HeaderProblems) {
  ExpectError("", {"empty file (0 bytes), not a GGUF file"});
  ExpectError("GG", {"not a GGUF file: starts with \"GG\""});
  ExpectError(std::string("GGML\x03\0\0\0", 8), {"not a GGUF file", "\"GGML\"", "expected \"GGUF\""});
  ExpectError(std::string("\x7f" "ELF\x02\x01\x01\0", 8), {"not a GGUF file", "hex 7f454c46"});
  ExpectError(Bytes().header(0, 0, 1).str(), {"unsupported GGUF version 1 (supported: 2, 3)"});
  ExpectError(Bytes().header(0, 0, 4).str(), {"unsupported GGUF version 4"});
  ExpectError(Bytes().header(0, 0, 0x03000000).str(), {"big-endian GGUF", "only little-endian"});
  ExpectError(Bytes().header(0, 0).str().substr(0, 6), {"truncated: version of header needs 4 bytes at offset 4, but the file ends at 6"});
  ExpectError(Bytes().header(0, 0).str().substr(0, 12), {"truncated: tensor count of header needs 8 bytes at offset 8"});
  ExpectError(Bytes().header(0, 0).str().substr(0, 20), {"truncated: metadata count"});
  ExpectError(Bytes().header(1ull << 40, 0).zeros(100).str(),
              {"tensor count 1099511627776 is impossible for a file of 124 bytes"});
  ExpectError(Bytes().header(0, 1000).zeros(100).str(),
              {"metadata count 1000 is impossible for a file of 124 bytes"});
  ExpectError(Bytes().header(3, 5).zeros(100).str(),
              {"tensor count 3 and metadata count 5 are impossible"});
  ExpectError(Bytes().header(~0ull, ~0ull).str(), {"tensor count 18446744073709551615 is impossible"});
}

TEST(GgufInvalid, MetadataProblems) {
  ExpectError(Bytes().header(0, 1).u64(1000000).raw("abcdefghijklm", 13).str(),
              {"key of metadata key #0 has length 1000000 at offset 24, past the end of the file (45 bytes)"});
  ExpectError(Bytes().header(0, 1).str("k").u32(4).u16(1).zeros(2).str().substr(0, 39),
              {"truncated: uint32 value of metadata key #0 'k' needs 4 bytes at offset 37"});
  ExpectError(Bytes().header(0, 1).str("name").u32(8).u64(99).raw("ab", 2).str(),
              {"string value of metadata key #0 'name' has length 99", "past the end"});
  ExpectError(Bytes().header(0, 1).str("arr").u32(9).u32(5).u64(1000).zeros(8).str(),
              {"metadata key #0 'arr': array of 1000 int32 elements", "past the end"});
  ExpectError(Bytes().header(0, 1).str("arr").u32(9).u32(9).u64(~0ull).zeros(8).str(),
              {"array of 18446744073709551615 array elements"});
  ExpectError(Bytes().header(0, 1).str("toks").u32(9).u32(8).u64(2).str("a").u64(1 << 20).zeros(8).str(),
              {"string element of metadata key #0 'toks' [element 1] has length 1048576"});
  ExpectError(Bytes().header(0, 1).str("k").u32(13).zeros(4).str(),
              {"metadata key #0 'k' has unknown value type id 13 at offset 33"});
  ExpectError(Bytes().header(0, 1).str("k").u32(9).u32(99).u64(0).str(),
              {"metadata key #0 'k': array has unknown element type id 99"});
  ExpectError(Bytes().header(0, 1).str("flag").u32(7).u8(2).str(),
              {"metadata key #0 'flag': bool value 2 at offset 40 is neither 0 nor 1"});
  ExpectError(Bytes().header(0, 1).str("flags").u32(9).u32(7).u64(3).u8(1).u8(0).u8(5).str(),
              {"'flags' [element 2]: bool value 5"});
  ExpectError(Bytes().header(0, 2).str("k").u32(4).u32(1).str("k").u32(8).str("x").str(),
              {"duplicate metadata key 'k' (entries #0 and #1)"});
  ExpectError(Bytes().header(0, 1).str("k\x01\xff").u32(4).u32(1).str().substr(0, 38),
              {"'k\\x01\\xff'"});  // binary junk in keys is escaped in messages
  {
    Bytes b;
    b.header(0, 1).str("deep").u32(9);  // value type: array
    for (int d = 0; d < kGgufMaxArrayDepth; ++d) b.u32(9).u64(1);  // of 1 array, ...
    b.zeros(64);
    ExpectError(b.str(), {"arrays nested deeper than 8 levels", "'deep'"});
  }
  {
    // Nesting exactly at the limit is fine.
    Bytes b;
    b.header(0, 1).str("deep").u32(9);
    for (int d = 1; d < kGgufMaxArrayDepth; ++d) b.u32(9).u64(1);
    b.u32(5).u64(1).i32(42);
    absl::StatusOr<GgufFile> f = Parse(b.str());
    ASSERT_TRUE(f.ok()) << f.status();
  }
}

TEST(GgufInvalid, AlignmentProblems) {
  ExpectError(Bytes().header(0, 1).str("general.alignment").u32(10).u64(32).str(),
              {"metadata key 'general.alignment' has type uint64, expected uint32"});
  ExpectError(Bytes().header(0, 1).str("general.alignment").u32(4).u32(48).str(),
              {"metadata key 'general.alignment' is 48, which is not a power of two"});
  ExpectError(Bytes().header(0, 1).str("general.alignment").u32(4).u32(0).str(),
              {"'general.alignment' is 0, which is not a power of two"});
}

TEST(GgufInvalid, TensorInfoProblems) {
  ExpectError(Bytes().header(1, 0).str("t").u32(3).u64(32).u64(1).str() + std::string(5, '\0'),
              {"truncated: dimension of tensor #0 't' needs 8 bytes"});
  ExpectError(Bytes().header(1, 0).u64(1 << 20).zeros(40).str(),
              {"name of tensor #0 has length 1048576", "past the end"});
  ExpectError(Bytes().header(1, 0).tensor("big", {32, 1, 1, 1, 1}, 0, 0).zeros(64).str(),
              {"tensor #0 'big' has 5 dimensions; at most 4 are supported"});
  ExpectError(Bytes().header(1, 0).str("t").u32(0).u32(0).u64(0).zeros(64).str(),
              {"tensor #0 't' has 0 dimensions"});
  ExpectError(Bytes().header(1, 0).tensor("z", {32, 0}, 0, 0).zeros(64).str(),
              {"tensor #0 'z' (F32, dims [32, 0]): dimension 1 of [32, 0] is 0"});
  ExpectError(Bytes().header(1, 0).tensor("o", {1ull << 32, 1ull << 32}, 0, 0).zeros(64).str(),
              {"tensor #0 'o'", "dims [4294967296, 4294967296] overflow"});
  ExpectError(Bytes().header(1, 0).tensor("o", {1ull << 62, 4}, 8, 0).zeros(64).str(),
              {"overflow"});
  // Type 4 (Q4_2) was removed from ggml: never one of ours.
  ExpectError(Bytes().header(1, 0).tensor("q42", {256}, 4, 0).zeros(128).str(),
              {"tensor #0 'q42' (type 4, dims [256]): unknown or unsupported tensor type id 4"});
  ExpectError(Bytes().header(1, 0).tensor("t", {256}, 0xFFFFFFFFu, 0).zeros(128).str(),
              {"unknown or unsupported tensor type id 4294967295"});
  ExpectError(Bytes().header(1, 0).tensor("r", {33, 2}, gguf_type::kQ4_0, 0).zeros(128).str(),
              {"tensor #0 'r' (Q4_0, dims [33, 2]): row length dims[0] = 33 is not a multiple of the Q4_0 block size 32"});
  ExpectError(Bytes().header(1, 0).tensor("r", {128}, gguf_type::kQ6_K, 0).zeros(256).str(),
              {"dims[0] = 128 is not a multiple of the Q6_K block size 256"});
}

TEST(GgufInvalid, TensorDataProblems) {
  ExpectError(OneF32Tensor(8, 0, 16),
              {"tensor #0 'w' (F32, dims [8]): data at offset 0 of the data section, 32 bytes long, runs past the end of the file (the data section holds 16 bytes"});
  ExpectError(OneF32Tensor(8, ~0ull - 31, 32), {"tensor #0 'w'", "runs past the end of the file"});
  ExpectError(OneF32Tensor(8, 16, 64), {"tensor #0 'w': data offset 16 is not a multiple of the alignment 32"});
  {
    // The data section itself would start past the end of the file.
    const std::string b = Bytes().header(1, 0).tensor("w", {8}, 0, 0).str();
    ASSERT_NE(b.size() % 32, 0u);
    ExpectError(b, {"truncated: the tensor data section starts at offset 64, past the end of the file (57 bytes)"});
  }
  {
    Bytes b;
    b.header(2, 0).tensor("a", {16}, 0, 0).tensor("b", {16}, 0, 32).pad_to(32).zeros(128);
    ExpectError(b.str(), {"tensors 'a' (data [0, 64)) and 'b' (data [32, 96)) overlap"});
  }
  {
    Bytes b;
    b.header(2, 0).tensor("b", {8}, 0, 32).tensor("a", {8}, 0, 32).pad_to(32).zeros(128);
    ExpectError(b.str(), {"tensors 'b' (data [32, 64)) and 'a' (data [32, 64)) overlap"});
  }
  {
    Bytes b;
    b.header(2, 0).tensor("w", {8}, 0, 0).tensor("w", {8}, 0, 32).pad_to(32).zeros(64);
    ExpectError(b.str(), {"duplicate tensor name 'w' (tensors #0 and #1)"});
  }
  // Adjacent tensors that touch but do not overlap are fine, in any order of offsets.
  Bytes ok;
  ok.header(2, 0).tensor("hi", {8}, 0, 32).tensor("lo", {8}, 0, 0).pad_to(32).zeros(64);
  absl::StatusOr<GgufFile> f = Parse(ok.str());
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->FindTensor("lo")->offset, 0u);
}

// Cutting a valid file anywhere before the end of its last tensor's data gives an error
// (never a crash or a partial file); cutting only trailing padding is harmless.
TEST(GgufInvalid, EveryTruncationIsAnError) {
  absl::StatusOr<std::string> full = testing_util::SampleWriter(1, 1).ToBytes();
  ASSERT_TRUE(full.ok());
  absl::StatusOr<GgufFile> whole = Parse(*full);
  ASSERT_TRUE(whole.ok()) << whole.status();
  uint64_t end_of_data = 0;
  for (const GgufTensorInfo& t : whole->tensors()) {
    end_of_data = std::max(end_of_data, whole->data_offset() + t.offset + t.size_bytes);
  }
  int errors = 0;
  for (size_t len = 0; len < full->size(); ++len) {
    absl::StatusOr<GgufFile> f = Parse(full->substr(0, len), "cut.gguf");
    if (len >= end_of_data) {
      EXPECT_TRUE(f.ok()) << len << ": " << f.status();
      continue;
    }
    ASSERT_FALSE(f.ok()) << "prefix of " << len << " bytes accepted";
    const std::string msg(f.status().message());
    EXPECT_TRUE(absl::StartsWith(msg, "cut.gguf: ")) << msg;
    EXPECT_TRUE(absl::StrContains(msg, "truncated") || absl::StrContains(msg, "past the end") ||
                absl::StrContains(msg, "impossible") || absl::StrContains(msg, "empty") ||
                absl::StrContains(msg, "not a GGUF"))
        << len << ": " << msg;
    ++errors;
  }
  EXPECT_GT(errors, 1000);
}

TEST(GgufOpen, FileSystemProblemsNameThePath) {
  const std::string dir = TempPath("");
  absl::StatusOr<GgufFile> f = GgufFile::Open(TempPath("does-not-exist.gguf"));
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(f.status().message()),
              HasSubstr("cannot open '" + TempPath("does-not-exist.gguf") + "': No such file"));

  f = GgufFile::Open(dir);
  ASSERT_FALSE(f.ok());
  EXPECT_THAT(std::string(f.status().message()), HasSubstr("is a directory, not a GGUF file"));

  const std::string empty = TempPath("empty.gguf");
  { std::ofstream(empty, std::ios::binary); }
  f = GgufFile::Open(empty);
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(std::string(f.status().message()), empty + ": empty file (0 bytes), not a GGUF file");

  const std::string text = TempPath("notes.txt");
  { std::ofstream(text, std::ios::binary) << "hello, this is not a model\n"; }
  for (GgufLoad load : {GgufLoad::kMap, GgufLoad::kHugePages}) {
    f = GgufFile::Open(text, load);
    ASSERT_FALSE(f.ok());
    EXPECT_EQ(std::string(f.status().message()),
              text + ": not a GGUF file: starts with \"hell\" (hex 68656c6c), expected \"GGUF\"");
  }
}

// ---- regression inputs in runtime/testdata ----------------------------------------------

TEST(GgufTestdata, EachFileGivesItsError) {
  const std::string dir = "runtime/testdata/";
  const std::map<std::string, std::string> want = {
      {"not_gguf.txt", "not a GGUF file: starts with \"this\" (hex 74686973), expected \"GGUF\""},
      {"truncated_header.gguf",
       "truncated: tensor count of header needs 8 bytes at offset 8, but the file ends at 10"},
      {"big_endian.gguf",
       "big-endian GGUF (version field reads 50331648, i.e. 3 byte-swapped): only "
       "little-endian files are supported"},
      {"q4_2_tensor.gguf",
       "tensor #0 'blk.0.ffn_down.weight' (type 4, dims [256]): unknown or unsupported tensor "
       "type id 4 (known: " + std::string(format_names()) + ")"},
      {"overlapping_tensors.gguf", "tensors 'a' (data [0, 64)) and 'b' (data [32, 96)) overlap"},
      {"nested_too_deep.gguf",
       "metadata key #0 'deep' [element 0] [element 0] [element 0] [element 0] [element 0] "
       "[element 0] [element 0]: arrays nested deeper than 8 levels are not supported"},
      {"mem_kv_count_nested.gguf",
       "truncated: key of metadata key #4 needs 8 bytes at offset 5246, but the file ends at "
       "5248"},
      {"tensor_data_past_eof.gguf",
       "tensor #0 'token_embd.weight' (Q8_0, dims [576, 49152]): data at offset 0 of the data "
       "section, 30081024 bytes long, runs past the end of the file (the data section holds "
       "1000 bytes, the file 1096)"},
  };
  for (const auto& [file, msg] : want) {
    SCOPED_TRACE(file);
    absl::StatusOr<GgufFile> f = GgufFile::Open(dir + file);
    ASSERT_FALSE(f.ok());
    EXPECT_EQ(std::string(f.status().message()), dir + file + ": " + msg);
  }
}

// ---- the real model -------------------------------------------------------------------------

TEST(GgufRealModel, SmolLM2Opens) {
  const std::string path = testing_util::ModelPath();
  absl::StatusOr<GgufFile> f = GgufFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status() << "\n" << testing_util::kMissingModelHelp;
  // Expected values as gguf-py's GGUFReader reports them for this file.
  EXPECT_EQ(f->version(), 3u);
  EXPECT_EQ(f->alignment(), 32u);
  EXPECT_EQ(f->metadata().size(), 33u);
  EXPECT_EQ(f->tensors().size(), 272u);
  EXPECT_EQ(*f->GetString("general.architecture"), "llama");
  EXPECT_EQ(*f->GetUint("llama.block_count"), 30u);
  EXPECT_EQ(*f->GetUint("llama.embedding_length"), 576u);
  EXPECT_EQ(*f->GetUint("llama.attention.head_count_kv"), 3u);
  EXPECT_EQ(*f->GetFloat("llama.rope.freq_base"), 100000.0);
  EXPECT_FALSE(*f->GetBool("tokenizer.ggml.add_bos_token"));
  absl::StatusOr<const std::vector<std::string>*> tokens = f->GetStringArray("tokenizer.ggml.tokens");
  ASSERT_TRUE(tokens.ok());
  ASSERT_EQ((*tokens)->size(), 49152u);
  EXPECT_EQ((**tokens)[0], "<|endoftext|>");
  EXPECT_EQ((*f->GetStringArray("tokenizer.ggml.merges"))->size(), 48900u);
  EXPECT_EQ(f->GetIntArray("tokenizer.ggml.token_type")->size(), 49152u);
  std::map<std::string, int> types;
  for (const GgufTensorInfo& t : f->tensors()) types[gguf_type_name(t.type)]++;
  EXPECT_EQ(types, (std::map<std::string, int>{{"F32", 61}, {"Q4_1", 210}, {"Q8_0", 1}}));
  const GgufTensorInfo* emb = f->FindTensor("token_embd.weight");
  ASSERT_NE(emb, nullptr);
  EXPECT_EQ(emb->dims, (std::vector<uint64_t>{576, 49152}));
  EXPECT_EQ(emb->size_bytes, 30081024u);
}

}  // namespace
}  // namespace fk
