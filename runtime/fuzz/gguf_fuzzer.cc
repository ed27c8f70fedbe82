// libFuzzer target over the GGUF reader, TensorLoader, the tokenizer metadata parsing and
// the llama model loader (issue 7).
//
// Every input must end in a valid load or an error Status that names the file; anything
// else is a finding: a crash, a sanitizer report, an error without the file name, a broken
// rule of runtime/fuzz/reader_checks.h (TensorLoader and metadata getters), a broken
// invariant of runtime/fuzz/tokenizer_model_checks.h (tokenizer errors name the key;
// encode/decode/TokenToPiece/chat template on a loaded tokenizer; model load, scalar
// forward steps), or too much heap: while the reader and loader run, 24x the input size +
// 4 KiB; through the tokenizer and model, 32x + the regex slack + 2x the longest result
// (tokenizer_model_checks.h). The heap checks use the sanitizer's malloc/free hooks, so they
// run in ASan builds (--config=fuzz, --config=asan); -malloc_limit_mb catches any single
// huge allocation. With --config=fuzz this is a libFuzzer binary; in normal builds
// replay_main.cc turns it into a corpus replayer (//runtime/fuzz:gguf_fuzzer_corpus_test).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "runtime/fuzz/reader_checks.h"
#include "runtime/fuzz/tokenizer_model_checks.h"
#include "runtime/gguf.h"

#if defined(__SANITIZE_ADDRESS__)
#define FK_HEAP_HOOKS 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FK_HEAP_HOOKS 1
#endif
#endif

#ifdef FK_HEAP_HOOKS
// From the sanitizer runtime's allocator interface (declared here: gcc does not ship the
// header).
extern "C" int __sanitizer_install_malloc_and_free_hooks(
    void (*malloc_hook)(const volatile void*, size_t), void (*free_hook)(const volatile void*));
extern "C" size_t __sanitizer_get_allocated_size(const volatile void* p);
#endif

namespace {

#ifdef FK_HEAP_HOOKS
bool g_tracking = false;
int64_t g_live = 0;
int64_t g_peak = 0;

void MallocHook(const volatile void*, size_t n) {
  if (!g_tracking) return;
  g_live += static_cast<int64_t>(n);
  if (g_live > g_peak) g_peak = g_live;
}

void FreeHook(const volatile void* p) {
  if (!g_tracking || p == nullptr) return;
  g_live -= static_cast<int64_t>(__sanitizer_get_allocated_size(p));
}

struct HeapTracker {
  explicit HeapTracker(size_t size) : size_(size) {
    static const bool installed = __sanitizer_install_malloc_and_free_hooks(MallocHook, FreeHook);
    (void)installed;
    g_live = g_peak = 0;
    g_tracking = true;
  }
  ~HeapTracker() { g_tracking = false; }
  // The peak so far (since the input started) may not exceed `limit`.
  void Check(int64_t limit, const char* phase) const {
    if (g_peak > limit) {
      g_tracking = false;
      std::fprintf(stderr, "gguf_fuzzer: heap peak %lld bytes for a %zu-byte input in %s (limit %lld)\n",
                   static_cast<long long>(g_peak), size_, phase, static_cast<long long>(limit));
      std::abort();
    }
  }
  size_t size_;
};
#else
struct HeapTracker {
  explicit HeapTracker(size_t) {}
  void Check(int64_t, const char*) const {}
};
#endif

void Check(bool ok, const char* what, const absl::Status& s) {
  if (ok) return;
  std::fprintf(stderr, "gguf_fuzzer: %s: %s\n", what, std::string(s.message()).c_str());
  std::abort();
}

bool NamesFile(const absl::Status& s) { return absl::StartsWith(s.message(), "fuzz.gguf: "); }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  HeapTracker heap(size);
  absl::StatusOr<fk::GgufFile> f = fk::GgufFile::FromBuffer(data, size, "fuzz.gguf");
  if (!f.ok()) {
    Check(NamesFile(f.status()), "reader error without the file name", f.status());
    return 0;
  }
  fk::fuzz::ReaderCheckStats reader_stats;
  const std::vector<std::string> reader_failures =
      fk::fuzz::CheckTensorsAndMetadata(*f, &reader_stats);
  for (const std::string& failure : reader_failures) {
    std::fprintf(stderr, "gguf_fuzzer: %s\n", failure.c_str());
  }
  if (!reader_failures.empty()) std::abort();
  const int64_t n = static_cast<int64_t>(size);
  heap.Check(24 * n + 4096, "the reader and loader");

  // Tokenizer and model. The options vary with the input size, so a corpus covers them all.
  fk::fuzz::CheckOptions options;
  options.f32_weights = size % 4 == 0;
  options.int8_path = size % 2 == 1;
  options.encode_modes = 1 + static_cast<int>((size / 2) % 2);
  options.seed = size;
  fk::fuzz::CheckStats stats;
  size_t max_output = 0;
  const std::vector<std::string> failures =
      fk::fuzz::CheckTokenizerAndModel(*f, options, &stats, &max_output);
  for (const std::string& failure : failures) {
    std::fprintf(stderr, "gguf_fuzzer: %s\n", failure.c_str());
  }
  if (!failures.empty()) std::abort();
  const int64_t slack = fk::fuzz::HasBpeTokenizer(*f) ? fk::fuzz::kMemSlackBpe : fk::fuzz::kMemSlack;
  heap.Check(fk::fuzz::kMemFactor * n + slack + 2 * static_cast<int64_t>(max_output),
             "the tokenizer and model checks");
  return 0;
}
