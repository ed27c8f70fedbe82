// The generate CLI, run in-process (RunGenerate) on tiny random models written by
// GgufWriter: every bad input of the README's table gives exit code 2 and one line
// naming what was wrong; good input generates and prints the stats line.
#include "runtime/generate_cli.h"

#include <fstream>
#include <sstream>
#include <string>
#include <sys/stat.h>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "kernels/cpu_features.h"
#include "kernels/registry.h"
#include "runtime/gguf.h"
#include "runtime/model_testing.h"

namespace fk {
namespace {

struct Result {
  int code;
  std::string out, err;
};

Result Cli(std::vector<std::string> args) {
  std::ostringstream out, err;
  const int code = RunGenerate(args, out, err);
  return {code, out.str(), err.str()};
}

// Exit code 2 and exactly one line on stderr that contains every needle.
void ExpectBadInput(const std::vector<std::string>& args,
                    const std::vector<std::string>& needles) {
  const Result r = Cli(args);
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
  ASSERT_FALSE(r.err.empty());
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "one line expected: " << r.err;
  EXPECT_TRUE(absl::StartsWith(r.err, "generate: ")) << r.err;
  for (const std::string& n : needles) {
    EXPECT_NE(r.err.find(n), std::string::npos) << "'" << n << "' not in: " << r.err;
  }
}

std::string TinyModel(const std::string& name, TinyLlamaSpec spec = {}) {
  absl::StatusOr<std::string> path = WriteTinyLlama(spec, name);
  EXPECT_TRUE(path.ok()) << path.status();
  return path.ok() ? *path : "";
}

std::string WriteFile(const std::string& name, const std::string& bytes) {
  const std::string path = absl::StrCat(TestTempDir(), "/", name);
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

// ---- Good input ---------------------------------------------------------------------------

TEST(Generate, HelpExitsZero) {
  const Result r = Cli({"--help"});
  EXPECT_EQ(r.code, 0);
  for (const char* flag : {"--model", "--prompt", "--max_tokens", "--chat", "--threads",
                           "--variant", "--path", "--weights", "--temperature", "--top_k", "--ignore_eog",
                           "--top_p", "--seed", "--mmap"}) {
    EXPECT_NE(r.out.find(flag), std::string::npos) << flag;
  }
}

TEST(Generate, GeneratesAndPrintsStats) {
  const std::string model = TinyModel("good.gguf");
  const Result r = Cli({"--model=" + model, "--prompt=hello", "--max_tokens=5", "--threads=2"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_FALSE(r.out.empty());
  const std::vector<std::string> lines = absl::StrSplit(r.err, '\n', absl::SkipEmpty());
  ASSERT_FALSE(lines.empty());
  const std::string& stats = lines.back();
  EXPECT_TRUE(absl::StartsWith(stats, "stats: prompt 2 tokens")) << stats;  // "hell" "o"
  for (const char* part : {"prefill", "tok/s", "decode", "weights", "bytes", "peak RSS"}) {
    EXPECT_NE(stats.find(part), std::string::npos) << part << " not in " << stats;
  }
  // Greedy is deterministic: the same text twice, and on one thread.
  EXPECT_EQ(Cli({"--model=" + model, "--prompt=hello", "--max_tokens=5", "--threads=2"}).out,
            r.out);
  EXPECT_EQ(Cli({"--model", model, "--prompt", "hello", "--max_tokens", "5", "--threads", "1"}).out,
            r.out);
  // The file mapped instead of read into huge pages: the same tokens.
  EXPECT_EQ(Cli({"--model=" + model, "--prompt=hello", "--max_tokens=5", "--threads=2",
                 "--mmap"})
                .out,
            r.out);
}

TEST(Generate, ChatSamplingF32WeightsAndPrefillOnly) {
  const std::string model = TinyModel("good2.gguf");
  Result r = Cli({"--model=" + model, "--prompt=hi", "--chat", "--max_tokens=3"});
  EXPECT_EQ(r.code, 0) << r.err;
  // <|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n with the tiny vocabulary.
  EXPECT_NE(r.err.find("stats: prompt 21 tokens"), std::string::npos) << r.err;
  r = Cli({"--model=" + model, "--prompt=hi", "--temperature=0.8", "--top_k=5", "--top_p=0.9",
           "--seed=7", "--max_tokens=4"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(Cli({"--model=" + model, "--prompt=hi", "--temperature=0.8", "--top_k=5",
                 "--top_p=0.9", "--seed=7", "--max_tokens=4"})
                .out,
            r.out);
  r = Cli({"--model=" + model, "--prompt=hi", "--weights=f32", "--max_tokens=2"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("f32"), std::string::npos);
  r = Cli({"--model=" + model, "--prompt=hi", "--max_tokens=6", "--ignore_eog"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("decode 5 tokens"), std::string::npos) << r.err;
  r = Cli({"--model=" + model, "--prompt=hi", "--max_tokens=0"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("decode 0 tokens"), std::string::npos) << r.err;
  r = Cli({"--model=" + model, "--prompt=hi", "--path=f32", "--variant=scalar",
           "--max_tokens=1"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("q8_0_f32__scalar"), std::string::npos) << r.err;
}

TEST(Generate, RelativePathsFromBuildWorkingDirectory) {
  TinyModel("relative.gguf");
  setenv("BUILD_WORKING_DIRECTORY", TestTempDir().c_str(), 1);
  const Result r = Cli({"--model=relative.gguf", "--prompt=hi", "--max_tokens=1"});
  unsetenv("BUILD_WORKING_DIRECTORY");
  EXPECT_EQ(r.code, 0) << r.err;
}

// ---- The bad-input table --------------------------------------------------------------------

TEST(GenerateBadInput, MissingFile) {
  const std::string path = TestTempDir() + "/no-such-model.gguf";
  ExpectBadInput({"--model=" + path, "--prompt=hi"}, {path});
}

TEST(GenerateBadInput, Directory) {
  ExpectBadInput({"--model=" + TestTempDir(), "--prompt=hi"}, {TestTempDir(), "directory"});
}

TEST(GenerateBadInput, EmptyFile) {
  const std::string path = WriteFile("empty.gguf", "");
  ExpectBadInput({"--model=" + path, "--prompt=hi"}, {path, "empty"});
}

TEST(GenerateBadInput, NotGguf) {
  const std::string path = WriteFile("text.gguf", "this is a text file, not a model\n");
  ExpectBadInput({"--model=" + path, "--prompt=hi"}, {path, "GGUF"});
}

TEST(GenerateBadInput, UnsupportedArchitecture) {
  TinyLlamaSpec spec;
  spec.architecture = "gpt2";
  const std::string path = TinyModel("gpt2.gguf", spec);
  ExpectBadInput({"--model=" + path, "--prompt=hi"},
                 {path, "unsupported architecture 'gpt2'", "general.architecture"});
}

TEST(GenerateBadInput, UnsupportedTensorType) {
  // A valid file whose blk.0.attn_q.weight claims type 4 (Q4_2, removed from ggml, not one
  // of ours): the
  // type id follows the name, the dimension count and two dims in the tensor info.
  const std::string good = TinyModel("typed.gguf");
  std::ifstream in(good, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string name = "blk.0.attn_q.weight";
  const size_t at = bytes.find(name);
  ASSERT_NE(at, std::string::npos);
  const size_t type_at = at + name.size() + 4 + 2 * 8;
  ASSERT_EQ(static_cast<uint8_t>(bytes[type_at]), traits(Format::kQ8_0).gguf_type);
  bytes[type_at] = 4;
  const std::string path = WriteFile("q42.gguf", bytes);
  ExpectBadInput({"--model=" + path, "--prompt=hi"}, {path, name, "type 4"});
}

TEST(GenerateBadInput, TensorMissingForALayer) {
  TinyLlamaSpec spec;
  spec.omit_tensor = "blk.1.ffn_down.weight";
  const std::string path = TinyModel("missing.gguf", spec);
  ExpectBadInput({"--model=" + path, "--prompt=hi"}, {path, "blk.1.ffn_down.weight", "not found"});
}

TEST(GenerateBadInput, ShapeMismatchBetweenTensorsAndMetadata) {
  TinyLlamaSpec spec;
  spec.misshape_tensor = "blk.0.ffn_gate.weight";
  const std::string path = TinyModel("misshaped.gguf", spec);
  ExpectBadInput({"--model=" + path, "--prompt=hi"},
                 {path, "blk.0.ffn_gate.weight", "expected 512 x 256"});
}

TEST(GenerateBadInput, FlagsOutOfRange) {
  const std::string m = "--model=" + TinyModel("flags.gguf");
  ExpectBadInput({m, "--prompt=hi", "--threads=0"}, {"--threads=0", "1 .. 256"});
  ExpectBadInput({m, "--prompt=hi", "--threads=many"}, {"--threads=many", "not an integer"});
  ExpectBadInput({m, "--prompt=hi", "--max_tokens=-1"}, {"--max_tokens=-1"});
  ExpectBadInput({m, "--prompt=hi", "--variant=avx1024"},
                 {"--variant=avx1024", "unknown variant", "scalar"});
  ExpectBadInput({m, "--prompt=hi", "--path=int4"}, {"--path=int4", "unknown path"});
  ExpectBadInput({m, "--prompt=hi", "--weights=q3_k"}, {"--weights=q3_k", "native, f32"});
  ExpectBadInput({m, "--prompt=hi", "--temperature=-0.5"}, {"--temperature=-0.5"});
  ExpectBadInput({m, "--prompt=hi", "--top_p=1.5"}, {"--top_p=1.5"});
  ExpectBadInput({m, "--prompt=hi", "--top_k=-2"}, {"--top_k=-2"});
  ExpectBadInput({m, "--prompt=hi", "--seed=-1"}, {"--seed=-1"});
  ExpectBadInput({m, "--prompt=hi", "--chat=maybe"}, {"--chat=maybe"});
  ExpectBadInput({m, "--prompt=hi", "--weights=f32", "--path=int8"}, {"--path=int8"});
  ExpectBadInput({m, "--prompt=hi", "--frobnicate=1"}, {"unknown flag --frobnicate"});
  ExpectBadInput({m, "--prompt=hi", "extra"}, {"unexpected argument 'extra'"});
  ExpectBadInput({m}, {"--prompt is required"});
  ExpectBadInput({"--prompt=hi"}, {"--model is required"});
  ExpectBadInput({m, "--prompt"}, {"--prompt needs a value"});
}

// A variant this CPU cannot run; on a CPU that runs them all, AVX2 (and with it every
// AVX-512 feature) is switched off through the kernels' test hook, as a smaller CPU would
// report.
TEST(GenerateBadInput, VariantTheCpuLacks) {
  const std::string m = "--model=" + TinyModel("variant.gguf");
  const uint32_t disabled = disabled_cpu_features();
  const auto lacking = []() -> const KernelEntry* {
    for (Variant v : {Variant::kAvx512Vnni, Variant::kAvx512, Variant::kAvx2}) {
      const KernelEntry* e = find_kernel(Format::kQ8_0, v, Path::kInt8);
      if (e != nullptr && !kernel_runnable(*e)) return e;
    }
    return nullptr;
  };
  if (lacking() == nullptr) set_disabled_cpu_features_for_testing(disabled | kCpuAvx2);
  const KernelEntry* e = lacking();
  ASSERT_NE(e, nullptr) << "no registered variant to refuse";
  ExpectBadInput({m, "--prompt=hi", absl::StrCat("--variant=", variant_name(e->variant))},
                 {absl::StrCat("variant ", variant_name(e->variant)), "lacks"});
  set_disabled_cpu_features_for_testing(disabled);
}

// Gemma 3 270M, a base model, has no chat template: --chat is refused, not rendered as
// some other model's format.
TEST(GenerateBadInput, ChatWithoutTemplate) {
  TinyLlamaSpec spec;
  spec.chat_template = false;
  const std::string m = "--model=" + TinyModel("no-template.gguf", spec);
  ExpectBadInput({m, "--prompt=hi", "--chat"}, {"no-template.gguf", "has no chat template"});
  const Result r = Cli({m, "--prompt=hi", "--max_tokens=2"});
  EXPECT_EQ(r.code, 0) << r.err;
}

TEST(GenerateBadInput, EmptyPrompt) {
  const std::string m = "--model=" + TinyModel("empty-prompt.gguf");
  ExpectBadInput({m, "--prompt="}, {"prompt is empty"});
}

}  // namespace
}  // namespace fk
