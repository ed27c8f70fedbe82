// Deterministic, seeded mutation test of the GGUF reader and TensorLoader (issue 7).
//
// Starts from small valid files written by our writer (every tensor format, every metadata
// value type, nested arrays, several alignments, v2 and v3) and feeds mutated copies through
// GgufFile::FromBuffer, then TensorLoader::Load / LoadVector of every tensor (dequantizing a
// row of each weight) and every typed getter of every key. Each input must end in OK or an
// error Status whose message starts with the file name; nothing may crash or trip a
// sanitizer, and the heap memory in use while handling an input may not exceed a small
// multiple of the input size (measured by replacing the global operator new/delete).
//
// Mutations: every truncation of every seed; every field of the layout (counts, lengths,
// dims, offsets, type ids) set to each of a list of extreme values; then random stacks of
// bit flips, byte insertions/deletions, truncations at section boundaries, huge values,
// wrong type ids, overlapping tensor offsets, duplicated names and splices between seeds.
//
// Environment:
//   FK_MUTATIONS=N      total inputs (default 200000)
//   FK_MUTATION_SEED=S  seed of the random mutations (default 1)
//   FK_MUTATION_ONLY=I  run only input number I (to reproduce a report)
//   FK_MUTATION_DUMP=P  with FK_MUTATION_ONLY: also write that input to file P
#include <dirent.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "kernels/formats.h"
#include "kernels/weight_format.h"
#include "runtime/fuzz/gguf_mutator.h"
#include "runtime/fuzz/reader_checks.h"
#include "runtime/fuzz/heap_counter.h"
#include "runtime/gguf.h"
#include "runtime/gguf_test_util.h"
#include "runtime/tensor_loader.h"

namespace fk {
namespace {

using mutation::EnvInt;
using mutation::InstallCrashReporter;
using mutation::SetCurrentInput;
using mutation::kInteresting;
using mutation::kNumInteresting;
using mutation::MutateOnce;
using mutation::PutField;
using mutation::Rng;
using mutation::Seed;

// Heap in use while handling one input may not exceed kMemFactor * input size + kMemSlack.
// The reader's own bound is ~17x (see gguf.cc); F16/BF16 loading adds 2x for the F32 copy.
constexpr int64_t kMemFactor = 24;
constexpr int64_t kMemSlack = 4 * 1024;

std::string MustBytes(const GgufWriter& w) {
  absl::StatusOr<std::string> b = w.ToBytes();
  if (!b.ok()) {
    std::fprintf(stderr, "seed writer failed: %s\n", std::string(b.status().message()).c_str());
    std::abort();
  }
  return *b;
}

void AddTensorOrDie(GgufWriter* w, const std::string& name, std::vector<uint64_t> dims,
                    uint32_t type, uint64_t seed) {
  absl::StatusOr<uint64_t> n = gguf_tensor_bytes(type, dims);
  if (!n.ok()) std::abort();
  // Bytes from the reference quantizer where it applies, so blocks are realistic.
  std::string bytes(static_cast<size_t>(*n), '\0');
  const FormatTraits* f = find_format_by_gguf_type(type);
  const int64_t k = static_cast<int64_t>(dims[0]);
  const int64_t rows = static_cast<int64_t>(*n) / (f ? (k / f->block_elems * f->block_bytes) : k * 2);
  const std::vector<float> x = testing_util::TestFloats(static_cast<size_t>(rows * k), seed);
  for (int64_t r = 0; r < rows; ++r) {
    if (f != nullptr) {
      f->quantize_row(x.data() + r * k, &bytes[static_cast<size_t>(r * (k / f->block_elems) * f->block_bytes)], k);
    } else {
      for (int64_t j = 0; j < k; ++j) {
        const uint16_t h = type == gguf_type::kF16 ? fp32_to_fp16(x[r * k + j]) : fp32_to_bf16(x[r * k + j]);
        std::memcpy(&bytes[static_cast<size_t>((r * k + j) * 2)], &h, 2);
      }
    }
  }
  if (!w->AddTensor(name, std::move(dims), type, std::move(bytes)).ok()) std::abort();
}

std::vector<Seed> MakeSeeds() {
  using T = GgufValueType;
  std::vector<std::string> files;
  // 0: every metadata type and every format, v3, alignment 32.
  files.push_back(MustBytes(testing_util::SampleWriter(1, 1)));
  // 1: the same with alignment 1 (odd tensor offsets), as v2.
  {
    GgufWriter w = testing_util::SampleWriter(1, 1);
    w.Add("general.alignment", GgufValue::Uint32(1));
    std::string b = MustBytes(w);
    b[4] = 2;
    files.push_back(b);
  }
  // 2: a small model-like file, alignment 8.
  {
    GgufWriter w;
    w.Add("general.architecture", GgufValue::String("llama"));
    w.Add("general.alignment", GgufValue::Uint32(8));
    std::vector<std::string> toks;
    for (int i = 0; i < 20; ++i) toks.push_back(absl::StrCat("tok", i));
    w.Add("tokenizer.ggml.tokens", GgufValue::StringArray(toks));
    w.Add("tokenizer.ggml.token_type", GgufValue::Int32Array(std::vector<int32_t>(20, 1)));
    w.Add("tokenizer.ggml.merges", GgufValue::StringArray({"t o", "to k"}));
    w.Add("llama.block_count", GgufValue::Uint32(1));
    w.Add("n.nested", GgufValue::ArrayOfArrays({GgufValue::UintArray(T::kBool, {1, 0}),
                                                GgufValue::StringArray({"a"})}));
    AddTensorOrDie(&w, "token_embd.weight", {32, 4}, gguf_type::kQ8_0, 1);
    AddTensorOrDie(&w, "blk.0.attn_norm.weight", {32}, gguf_type::kF32, 2);
    AddTensorOrDie(&w, "blk.0.attn_q.weight", {32, 2}, gguf_type::kQ4_0, 3);
    AddTensorOrDie(&w, "blk.0.ffn_up.weight", {256, 1}, gguf_type::kQ6_K, 4);
    AddTensorOrDie(&w, "output.weight", {8, 2}, gguf_type::kF16, 5);
    AddTensorOrDie(&w, "output_norm.weight", {8}, gguf_type::kBF16, 6);
    files.push_back(MustBytes(w));
  }
  // 3: many tiny tensors (1-4 dims), alignment 4, no metadata.
  {
    GgufWriter w;
    w.Add("general.alignment", GgufValue::Uint32(4));
    AddTensorOrDie(&w, "a", {1}, gguf_type::kF32, 7);
    AddTensorOrDie(&w, "b", {2, 1}, gguf_type::kF32, 8);
    AddTensorOrDie(&w, "c", {1, 1, 2}, gguf_type::kF32, 9);
    AddTensorOrDie(&w, "d", {1, 2, 1, 1}, gguf_type::kF16, 10);
    AddTensorOrDie(&w, "e", {32, 1, 1, 1}, gguf_type::kQ4_1, 11);
    AddTensorOrDie(&w, "f", {32}, gguf_type::kQ5_0, 12);
    files.push_back(MustBytes(w));
  }
  // 4: metadata only, arrays nested to the deepest level accepted.
  {
    GgufWriter w;
    GgufValue v = GgufValue::IntArray(T::kInt64, {1, -1});
    for (int d = 1; d < kGgufMaxArrayDepth; ++d) v = GgufValue::ArrayOfArrays({v, v});
    w.Add("deep", v);
    w.Add("f64", GgufValue::FloatArray(T::kFloat64, {1.0, 2.0}));
    w.Add("u16", GgufValue::UintArray(T::kUint16, {1, 2, 3}));
    w.Add("s", GgufValue::String("x"));
    files.push_back(MustBytes(w));
  }
  // 5: one tensor each of the K formats (2 rows), no metadata.
  {
    GgufWriter w;
    AddTensorOrDie(&w, "q4k", {256, 2}, gguf_type::kQ4_K, 13);
    AddTensorOrDie(&w, "q5k", {256, 2}, gguf_type::kQ5_K, 14);
    AddTensorOrDie(&w, "q8k", {256, 1}, gguf_type::kQ8_K, 15);
    files.push_back(MustBytes(w));
  }
  std::vector<Seed> seeds;
  for (std::string& b : files) seeds.push_back(mutation::MakeSeed(std::move(b)));
  return seeds;
}

// ---- one input through the reader and loader ---------------------------------------------------

struct Stats {
  int64_t inputs = 0;
  int64_t parsed_ok = 0;
  int64_t tensors_loaded = 0;
  int64_t load_errors = 0;
  double max_ratio = 0;           // (peak heap - slack) / size, over inputs
  int64_t max_ratio_input = -1;
  int64_t max_peak = 0;
  std::map<std::string, int64_t> error_kinds;
  std::vector<std::string> failures;
};

std::string ErrorKind(absl::string_view msg) {
  // "mut.gguf: tensor #3 'x' (...): row length ..." -> a coarse bucket for the summary.
  static const char* kKinds[] = {
      "truncated", "past the end", "impossible", "not a GGUF", "unsupported GGUF version",
      "big-endian", "unknown value type", "unknown element type", "neither 0 nor 1",
      "nested deeper", "duplicate metadata key", "general.alignment", "0 dimensions",
      "dimensions; at most", "is 0", "overflow", "unknown or unsupported tensor type",
      "not a multiple of the alignment", "is not a multiple of the", "overlap",
      "duplicate tensor name", "empty file", "2^63-1 bytes"};
  for (const char* k : kKinds) {
    if (absl::StrContains(msg, k)) return k;
  }
  return std::string(msg.substr(0, 60));
}

void Exercise(const std::string& input, int64_t index, Stats* st) {
  const size_t n = input.size();
  // An exact-size heap copy, so AddressSanitizer sees any read past the end.
  std::unique_ptr<uint8_t[]> buf(new uint8_t[n == 0 ? 1 : n]);
  if (n != 0) std::memcpy(buf.get(), input.data(), n);
  SetCurrentInput(index);
  const int64_t base = heap::Live();
  heap::ResetPeak();
  {
    absl::StatusOr<GgufFile> f = GgufFile::FromBuffer(buf.get(), n, "mut.gguf");
    if (!f.ok()) {
      const std::string msg(f.status().message());
      if (!absl::StartsWith(msg, "mut.gguf: ") || f.status().code() == absl::StatusCode::kOk) {
        st->failures.push_back(absl::StrCat("input #", index, ": error does not name the file: ", msg));
      }
      st->error_kinds[ErrorKind(msg)]++;
    } else {
      st->parsed_ok++;
      fuzz::ReaderCheckStats rs;
      for (const std::string& failure : fuzz::CheckTensorsAndMetadata(*f, &rs)) {
        st->failures.push_back(absl::StrCat("input #", index, ": ", failure));
      }
      st->tensors_loaded += rs.tensors_loaded;
      st->load_errors += rs.load_errors;
    }
  }
  const int64_t peak = heap::Peak() - base;
  st->max_peak = std::max(st->max_peak, peak);
  if (n > 0) {
    const double ratio = static_cast<double>(std::max<int64_t>(peak - kMemSlack, 0)) / n;
    if (ratio > st->max_ratio) {
      st->max_ratio = ratio;
      st->max_ratio_input = index;
    }
  }
  if (peak > kMemFactor * static_cast<int64_t>(n) + kMemSlack) {
    st->failures.push_back(absl::StrCat("input #", index, " (", n, " bytes): heap peak ", peak,
                                        " bytes exceeds ", kMemFactor, " x size + ", kMemSlack));
  }
  SetCurrentInput(-1);
  st->inputs++;
}

// Produces input number `index` (deterministic in index and seed): first the systematic
// passes, then random stacks of mutations.
class InputSource {
 public:
  InputSource(const std::vector<Seed>& seeds, uint64_t seed) : seeds_(seeds), seed_(seed) {
    for (size_t s = 0; s < seeds_.size(); ++s) {
      systematic_truncations_ += static_cast<int64_t>(seeds_[s].bytes.size());
      systematic_fields_ += static_cast<int64_t>(seeds_[s].fields.size() * kNumInteresting);
    }
  }
  int64_t systematic() const { return systematic_truncations_ + systematic_fields_; }

  std::string Make(int64_t index) const {
    int64_t i = index;
    if (i < systematic_truncations_) {  // every prefix of every seed
      for (const Seed& s : seeds_) {
        if (i < static_cast<int64_t>(s.bytes.size())) return s.bytes.substr(0, static_cast<size_t>(i));
        i -= static_cast<int64_t>(s.bytes.size());
      }
    }
    i -= systematic_truncations_;
    if (i < systematic_fields_) {  // every field set to every extreme value
      for (const Seed& s : seeds_) {
        const int64_t m = static_cast<int64_t>(s.fields.size() * kNumInteresting);
        if (i < m) {
          std::string b = s.bytes;
          PutField(&b, s.fields[static_cast<size_t>(i / kNumInteresting)],
                   kInteresting[i % kNumInteresting]);
          return b;
        }
        i -= m;
      }
    }
    Rng rng{seed_ * 0x2545F4914F6CDD1Dull + static_cast<uint64_t>(index)};
    const Seed& s = seeds_[rng.Below(seeds_.size())];
    std::string b = s.bytes;
    const int stack = 1 + static_cast<int>(rng.Below(rng.OneIn(4) ? 6 : 2));
    for (int k = 0; k < stack; ++k) MutateOnce(s, seeds_, rng, &b);
    return b;
  }

 private:
  const std::vector<Seed>& seeds_;
  uint64_t seed_;
  int64_t systematic_truncations_ = 0;
  int64_t systematic_fields_ = 0;
};

TEST(GgufMutation, SeedsAreValidAndLoad) {
  const std::vector<Seed> seeds = MakeSeeds();
  ASSERT_EQ(seeds.size(), 6u);
  std::map<uint32_t, int> types;
  std::map<GgufValueType, int> value_types;
  for (const Seed& s : seeds) {
    absl::StatusOr<GgufFile> f = GgufFile::FromBuffer(s.bytes.data(), s.bytes.size(), "seed");
    ASSERT_TRUE(f.ok()) << f.status();
    TensorLoader loader(*f);
    for (const GgufTensorInfo& t : f->tensors()) {
      types[t.type]++;
      EXPECT_TRUE(loader.Load(t.name).ok()) << t.name;
    }
    for (const GgufKv& kv : f->metadata()) {
      value_types[kv.value.type]++;
      if (kv.value.type == GgufValueType::kArray) value_types[kv.value.elem_type]++;
    }
    EXPECT_GT(s.fields.size(), 5u);
    EXPECT_EQ(s.boundaries.back(), s.bytes.size());
  }
  EXPECT_EQ(types.size(), static_cast<size_t>(kNumFormats)) << "every format of the table";
  EXPECT_EQ(value_types.size(), 13u) << "every metadata value type";
}

// The shapes that make the most objects per byte (see the bound in gguf.cc): many tiny
// metadata entries, arrays of empty arrays, many one-element tensors.
TEST(GgufMutation, WorstCaseShapesStayUnderTheMemoryBound) {
  using testing_util::Bytes;
  std::vector<std::pair<std::string, std::string>> cases;
  {
    Bytes b;
    b.header(0, 20000);
    for (int i = 0; i < 20000; ++i) {
      const char key[2] = {static_cast<char>(i % 256), static_cast<char>(i / 256)};
      b.str(std::string(key, 2)).u32(0).u8(1);
    }
    cases.push_back({"20000 tiny entries", b.str()});
  }
  {
    Bytes b;
    b.header(0, 1).str("e").u32(9).u32(9).u64(20000);
    for (int i = 0; i < 20000; ++i) b.u32(4).u64(0);
    cases.push_back({"an array of 20000 empty arrays", b.str()});
  }
  {
    Bytes b;
    b.header(0, 1).str("s").u32(9).u32(8).u64(20000);
    for (int i = 0; i < 20000; ++i) b.u64(0);
    cases.push_back({"an array of 20000 empty strings", b.str()});
  }
  {
    Bytes b;
    b.header(0, 1).str("u").u32(9).u32(0).u64(100000).zeros(100000);
    cases.push_back({"an array of 100000 uint8", b.str()});
  }
  {
    Bytes b;
    b.header(5000, 0);
    for (int i = 0; i < 5000; ++i) b.tensor(absl::StrCat(i), {1}, gguf_type::kF32, 32 * i);
    b.pad_to(32).zeros(32 * 5000);
    cases.push_back({"5000 one-float tensors", b.str()});
  }
  for (const auto& [what, bytes] : cases) {
    const int64_t base = heap::Live();
    heap::ResetPeak();
    double ratio;
    {
      absl::StatusOr<GgufFile> f = GgufFile::FromBuffer(bytes.data(), bytes.size(), what);
      ASSERT_TRUE(f.ok()) << f.status();
      ratio = static_cast<double>(heap::Peak() - base) / bytes.size();
    }
    std::printf("%-32s %8zu bytes: parser heap peak %.2f x the file size\n", what.c_str(),
                bytes.size(), ratio);
    EXPECT_LE(ratio, kMemFactor) << what;
    EXPECT_GT(ratio, 1.0) << what << ": the accounting must see the parser's allocations";
  }
}

// Every regression input in runtime/testdata goes through the same checks.
TEST(GgufMutation, RegressionInputsStayWithinTheBounds) {
  const std::string dir = "runtime/testdata";
  DIR* d = opendir(dir.c_str());
  ASSERT_NE(d, nullptr) << dir;
  std::vector<std::string> files;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] != '.') files.push_back(e->d_name);
  }
  closedir(d);
  std::sort(files.begin(), files.end());
  ASSERT_GE(files.size(), 8u);
  Stats st;
  for (size_t i = 0; i < files.size(); ++i) {
    std::ifstream in(dir + "/" + files[i], std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    Exercise(bytes, static_cast<int64_t>(i), &st);
    for (const std::string& f : st.failures) ADD_FAILURE() << files[i] << ": " << f;
    st.failures.clear();
  }
  EXPECT_EQ(st.inputs, static_cast<int64_t>(files.size()));
}

TEST(GgufMutation, MutatedInputsEndInOkOrAnErrorWithBoundedMemory) {
  InstallCrashReporter();
  const std::vector<Seed> seeds = MakeSeeds();
  const InputSource source(seeds, static_cast<uint64_t>(EnvInt("FK_MUTATION_SEED", 1)));
  const int64_t total = EnvInt("FK_MUTATIONS", 200000);
  const int64_t only = EnvInt("FK_MUTATION_ONLY", -1);
  Stats st;
  if (only >= 0) {
    const std::string input = source.Make(only);
    if (const char* dump = std::getenv("FK_MUTATION_DUMP")) {
      std::ofstream(dump, std::ios::binary) << input;
    }
    Exercise(input, only, &st);
  } else {
    const int64_t progress_every = std::max<int64_t>(total / 10, 1);
    for (int64_t i = 0; i < total; ++i) {
      Exercise(source.Make(i), i, &st);
      if (total >= 1000000 && (i + 1) % progress_every == 0) {
        std::fprintf(stderr, "  %lld / %lld inputs\n", static_cast<long long>(i + 1),
                     static_cast<long long>(total));
      }
      if (st.failures.size() > 20) break;
    }
  }
  std::printf("GGUF mutation test: %lld inputs tried (%lld systematic), %lld parsed OK, "
              "%lld tensors loaded, %lld load errors; peak heap %lld bytes, max (peak - %lld) / "
              "size = %.2f at input #%lld (limit %lld)\n",
              static_cast<long long>(st.inputs), static_cast<long long>(source.systematic()),
              static_cast<long long>(st.parsed_ok), static_cast<long long>(st.tensors_loaded),
              static_cast<long long>(st.load_errors), static_cast<long long>(st.max_peak),
              static_cast<long long>(kMemSlack), st.max_ratio,
              static_cast<long long>(st.max_ratio_input),
              static_cast<long long>(kMemFactor));
  std::vector<std::pair<int64_t, std::string>> kinds;
  for (const auto& [k, c] : st.error_kinds) kinds.push_back({c, k});
  std::sort(kinds.rbegin(), kinds.rend());
  for (const auto& [c, k] : kinds) std::printf("  %9lld  %s\n", static_cast<long long>(c), k.c_str());
  for (const std::string& f : st.failures) ADD_FAILURE() << f;
  if (only < 0) {
    EXPECT_GE(st.inputs, std::min<int64_t>(total, 100000));
    // The mutations reach deep: some inputs still parse and load, many error kinds occur.
    EXPECT_GT(st.parsed_ok, st.inputs / 100);
    EXPECT_GT(st.tensors_loaded, 0);
    EXPECT_GE(st.error_kinds.size(), 15u);
  }
}

}  // namespace
}  // namespace fk
