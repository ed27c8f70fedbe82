// Writes the seed corpus of gguf_fuzzer (runtime/fuzz/corpus/) with our own writer:
//   bazel run //runtime/fuzz:make_corpus -- $PWD/runtime/fuzz/corpus
#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "runtime/gguf.h"
#include "runtime/gguf_test_util.h"

namespace {

void Write(const std::string& dir, const std::string& name, const fk::GgufWriter& w,
           int version = 3) {
  absl::StatusOr<std::string> b = w.ToBytes();
  if (!b.ok()) {
    std::fprintf(stderr, "make_corpus: %s\n", std::string(b.status().message()).c_str());
    std::exit(2);
  }
  (*b)[4] = static_cast<char>(version);
  const std::string path = absl::StrCat(dir, "/", name);
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr || std::fwrite(b->data(), 1, b->size(), f) != b->size() || std::fclose(f) != 0) {
    std::fprintf(stderr, "make_corpus: cannot write '%s'\n", path.c_str());
    std::exit(2);
  }
  std::printf("%s (%zu bytes)\n", path.c_str(), b->size());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_corpus DIR\n");
    return 2;
  }
  const std::string dir = argv[1];
  using fk::GgufValue;
  using fk::GgufWriter;
  // Every metadata value type and every tensor format.
  Write(dir, "sample_v3.gguf", fk::testing_util::SampleWriter(1, 1));
  {
    GgufWriter w = fk::testing_util::SampleWriter(1, 1);
    w.Add("general.alignment", GgufValue::Uint32(1));
    Write(dir, "sample_align1_v2.gguf", w, 2);
  }
  {
    GgufWriter w = fk::testing_util::SampleWriter(2, 1);
    w.Add("general.alignment", GgufValue::Uint32(8));
    Write(dir, "sample_2rows_align8.gguf", w);
  }
  {
    GgufWriter w;
    for (fk::GgufKv& kv : fk::testing_util::SampleMetadata()) w.Add(kv.key, kv.value);
    Write(dir, "metadata_only.gguf", w);
  }
  {
    GgufWriter w;
    for (fk::testing_util::SampleTensor& t : fk::testing_util::SampleTensors(1, 1)) {
      if (!w.AddTensor(t.name, t.dims, t.type, t.bytes).ok()) return 2;
    }
    Write(dir, "tensors_only.gguf", w);
  }
  return 0;
}
