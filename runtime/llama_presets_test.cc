// llama.cpp's own preset files of SmolLM2-135M (issues A and B): the files
// tools/make_llama_presets makes with llama-cpp-python's quantizer into
// $FK_CACHE/models/llama-presets (tools/bazel makes them before Bazel runs), listed with their
// tensor types (read by gguf-py) in manifest.json there.
//
// For every preset whose tensor types are all rows of kernels/formats.inc:
//  - our reader sees the tensor types gguf-py saw, and `gguf_info FILE` exits 0 with a summary
//    line per type;
//  - the runtime loads it natively: every matmul weight keeps its file type, and the weight
//    bytes equal the file's tensor bytes; for F16 / BF16 every matmul weight holds exactly
//    half the bytes it holds with --weights=f32;
//  - `generate --model=FILE --prompt=... --max_tokens=8` exits 0 and prints the stats line,
//    with the same weight bytes.
// The other presets are listed in kNotYetSupported (empty now: every preset is supported), and
// the test asserts exactly that list. That gguf_info refuses an unknown tensor type naming the
// tensor is runtime/gguf_info_test.sh's job (a file with the removed type Q4_2). A missing file or manifest fails (tools/bazel makes them), never skips.
// The teacher-forced comparison with llama.cpp reads the same manifest.
#include <sys/wait.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "kernels/formats.h"
#include "nlohmann/json.hpp"
#include "runtime/gguf.h"
#include "runtime/model.h"
#include "runtime/model_testing.h"

namespace fk {
namespace {

using nlohmann::json;

// tools/make_llama_presets.py PRESETS, in its order.
const std::vector<std::string> kAllPresets = {
    "F16",    "BF16",   "Q8_0",   "Q6_K",   "Q5_K_M", "Q5_K_S", "Q4_K_M",
    "Q4_K_S", "Q3_K_L", "Q3_K_M", "Q3_K_S", "Q2_K",   "IQ4_NL", "IQ4_XS"};

// Presets with a tensor type that is not a row of kernels/formats.inc yet: none since Q2_K,
// Q3_K, IQ4_NL and IQ4_XS arrived (llama.cpp 0.3.36's Q3_K_S / Q2_K of SmolLM2 hold Q3_K beside
// Q4_0, its IQ4_NL / IQ4_XS hold those). Asserted exactly: a preset whose types
// are not all rows of kernels/formats.inc goes here (and that test says which types).
const std::set<std::string> kNotYetSupported = {};

const char kMakeThem[] =
    "tools/bazel makes them (tools/make_llama_presets; needs tools/setup_ggml's oracle venv)";

std::string PresetDir() { return SmolLm2PresetDir(); }
std::string PresetPath(const std::string& preset) { return SmolLm2PresetPath(preset); }

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The manifest's entries by preset; an empty map (and a test failure) when it is missing.
const std::map<std::string, json>& Manifest() {
  static const std::map<std::string, json>* manifest = [] {
    auto* m = new std::map<std::string, json>();
    const std::string path = PresetDir() + "/manifest.json";
    std::ifstream in(path);
    if (!in.good()) return m;
    const json doc = json::parse(ReadFile(path), nullptr, /*allow_exceptions=*/false);
    if (doc.is_discarded() || !doc.contains("presets")) return m;
    for (const json& e : doc["presets"]) (*m)[e.value("preset", "")] = e;
    return m;
  }();
  return *manifest;
}

// The manifest's entry of `preset`, with a failure naming what is missing.
const json* Entry(const std::string& preset) {
  const auto& m = Manifest();
  auto it = m.find(preset);
  if (it == m.end()) {
    ADD_FAILURE() << PresetDir() << "/manifest.json has no entry for " << preset
                  << " (or is missing): " << kMakeThem;
    return nullptr;
  }
  return &it->second;
}

// Tensor type names of `preset` that are not rows of kernels/formats.inc (from the manifest).
std::vector<std::string> UnsupportedTypes(const json& entry) {
  std::vector<std::string> out;
  for (const auto& [type, count] : entry["tensor_types"].items()) {
    if (find_format(type) == nullptr) out.push_back(type);
  }
  return out;
}

struct Outcome {
  int exit_code = -1;
  std::string out, err;
};

std::string Quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

std::string Binary(const std::string& name) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* ws = std::getenv("TEST_WORKSPACE");
  return absl::StrCat(srcdir ? srcdir : ".", "/", ws ? ws : "fused_kernels", "/runtime/", name);
}

Outcome RunBinary(const std::string& name, const std::vector<std::string>& args,
              const std::string& tag) {
  const std::string base = absl::StrCat(TestTempDir(), "/", name, ".", tag);
  std::string cmd = Quote(Binary(name));
  for (const std::string& a : args) cmd += " " + Quote(a);
  cmd += " >" + Quote(base + ".out") + " 2>" + Quote(base + ".err") + " </dev/null";
  const int status = std::system(cmd.c_str());
  Outcome r;
  r.exit_code = (status != -1 && WIFEXITED(status)) ? WEXITSTATUS(status) : -1;
  r.out = ReadFile(base + ".out");
  r.err = ReadFile(base + ".err");
  return r;
}

// ---- every preset ---------------------------------------------------------------------------

TEST(LlamaPresets, ManifestListsEveryPresetAndItsFile) {
  ASSERT_FALSE(Manifest().empty())
      << "no readable " << PresetDir() << "/manifest.json: " << kMakeThem;
  for (const std::string& preset : kAllPresets) {
    SCOPED_TRACE(preset);
    const json* e = Entry(preset);
    if (e == nullptr) continue;
    EXPECT_EQ((*e)["file"].get<std::string>(), "SmolLM2-135M-Instruct." + preset + ".gguf");
    std::ifstream f(PresetPath(preset), std::ios::binary | std::ios::ate);
    ASSERT_TRUE(f.good()) << PresetPath(preset) << " is missing: " << kMakeThem;
    EXPECT_EQ(static_cast<int64_t>(f.tellg()), (*e)["bytes"].get<int64_t>())
        << PresetPath(preset) << " changed since tools/make_llama_presets made it";
    // llama.cpp's quantizer is deterministic: the tool records each SHA-256 it expects.
    if (!(*e)["sha256_expected"].is_null()) {
      EXPECT_EQ((*e)["sha256"], (*e)["sha256_expected"])
          << "llama.cpp's " << preset << " file differs from the one recorded in "
          << "tools/make_llama_presets.py";
    }
    int tensors = 0;
    for (const auto& [type, count] : (*e)["tensor_types"].items()) tensors += count.get<int>();
    EXPECT_EQ(tensors, 272) << "SmolLM2-135M has 272 tensors";
  }
  EXPECT_EQ(Manifest().size(), kAllPresets.size());
}

TEST(LlamaPresets, NotYetSupportedListIsExact) {
  std::set<std::string> unsupported;
  std::vector<std::string> why;
  for (const std::string& preset : kAllPresets) {
    const json* e = Entry(preset);
    if (e == nullptr) continue;
    const std::vector<std::string> types = UnsupportedTypes(*e);
    if (!types.empty()) {
      unsupported.insert(preset);
      why.push_back(absl::StrCat(preset, " (", absl::StrJoin(types, ", "), ")"));
    }
  }
  EXPECT_EQ(unsupported, kNotYetSupported)
      << "presets with tensor types kernels/formats.inc lacks: " << absl::StrJoin(why, "; ")
      << ". When a format arrives, remove its presets from kNotYetSupported (they are then "
         "tested like the others).";
}

// ---- the supported presets, one by one ----------------------------------------------------------

class SupportedPreset : public ::testing::TestWithParam<std::string> {};

std::vector<std::string> SupportedPresets() {
  std::vector<std::string> out;
  for (const std::string& p : kAllPresets) {
    if (kNotYetSupported.count(p) == 0) out.push_back(p);
  }
  return out;
}

TEST_P(SupportedPreset, LoadsNativelyAndGenerates) {
  const std::string preset = GetParam();
  const std::string path = PresetPath(preset);
  const json* e = Entry(preset);
  ASSERT_NE(e, nullptr);
  ASSERT_TRUE(UnsupportedTypes(*e).empty()) << "kNotYetSupported is checked by another test";

  // Our reader sees what gguf-py saw.
  absl::StatusOr<GgufFile> file = GgufFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status() << " (" << kMakeThem << ")";
  std::map<std::string, int> counts;
  std::map<std::string, std::string> type_of;
  uint64_t tensor_bytes = 0;
  for (const GgufTensorInfo& t : file->tensors()) {
    const FormatTraits* f = find_format_by_gguf_type(t.type);
    ASSERT_NE(f, nullptr) << t.name;
    ++counts[f->name];
    type_of[t.name] = f->name;
    tensor_bytes += t.size_bytes;
  }
  std::map<std::string, int> want;
  for (const auto& [type, n] : (*e)["tensor_types"].items()) want[type] = n.get<int>();
  EXPECT_EQ(counts, want) << "tensor types: our reader vs gguf-py (manifest)";

  // gguf_info lists it: exit 0, a summary line per type with gguf-py's count.
  const Outcome info = RunBinary("gguf_info", {path}, preset);
  EXPECT_EQ(info.exit_code, 0) << info.err;
  for (const auto& [type, n] : want) {
    bool found = false;
    for (absl::string_view line : absl::StrSplit(info.out, '\n')) {
      std::vector<std::string> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
      if (f.size() >= 2 && f[0] == type && f[1] == std::to_string(n)) found = true;
    }
    EXPECT_TRUE(found) << "gguf_info has no summary line '" << type << " " << n << "':\n"
                       << info.out;
  }

  // Native load: every weight in its file type, the weight bytes the file's tensor bytes.
  absl::StatusOr<std::unique_ptr<Model>> native = Model::Load(*file);
  ASSERT_TRUE(native.ok()) << native.status();
  for (const auto& [name, w] : (*native)->matmul_weights()) {
    EXPECT_EQ(w->format_name(), type_of[name]) << name << " is not held in its file type";
  }
  const size_t weight_bytes = (*native)->weight_memory_bytes();
  EXPECT_EQ(weight_bytes, tensor_bytes) << "weights held natively vs the file's tensor bytes";

  if (preset == "F16" || preset == "BF16") {
    absl::StatusOr<std::unique_ptr<Model>> f32 = Model::Load(*file, WeightMode::kF32);
    ASSERT_TRUE(f32.ok()) << f32.status();
    const auto nw = (*native)->matmul_weights();
    const auto fw = (*f32)->matmul_weights();
    ASSERT_EQ(nw.size(), fw.size());
    size_t native_matrices = 0, f32_matrices = 0;
    for (size_t i = 0; i < nw.size(); ++i) {
      EXPECT_EQ(nw[i].second->format_name(), preset) << nw[i].first;
      EXPECT_EQ(2 * nw[i].second->memory_bytes(), fw[i].second->memory_bytes()) << nw[i].first;
      native_matrices += nw[i].second->memory_bytes();
      f32_matrices += fw[i].second->memory_bytes();
    }
    EXPECT_EQ(2 * native_matrices, f32_matrices);
    // The norms are F32 in the file and in both loads: the rest is the same.
    EXPECT_EQ(weight_bytes - native_matrices, (*f32)->weight_memory_bytes() - f32_matrices);
  }

  // generate runs it: exit 0 and the stats line, with the weight bytes of the native load.
  const Outcome gen = RunBinary(
      "generate", {"--model=" + path, "--prompt=The capital of France is", "--max_tokens=8"},
      preset);
  EXPECT_EQ(gen.exit_code, 0) << gen.err;
  EXPECT_NE(gen.err.find("stats: prompt "), std::string::npos) << gen.err;
  EXPECT_NE(gen.err.find(absl::StrCat("weights ", weight_bytes, " bytes (")), std::string::npos)
      << "generate's stats line does not report " << weight_bytes << " weight bytes:\n"
      << gen.err;
  EXPECT_NE(gen.err.find("native)"), std::string::npos) << gen.err;
}

INSTANTIATE_TEST_SUITE_P(LlamaCpp, SupportedPreset, ::testing::ValuesIn(SupportedPresets()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

}  // namespace
}  // namespace fk
