// libFuzzer target over the GGUF reader and TensorLoader (issue 7).
//
// Every input must end in a valid load or an error Status that names the file; anything
// else (a crash, a sanitizer report, an error without the file name, heap in use above
// 24x the input size + 4 KiB while handling it, an allocation over -malloc_limit_mb) is a
// finding. The heap check uses the sanitizer's malloc/free hooks, so it runs in ASan builds
// (--config=fuzz, --config=asan). With --config=fuzz this is a libFuzzer binary; in normal
// builds replay_main.cc turns it into a corpus replayer (//runtime/fuzz:gguf_fuzzer_corpus_test).
//
// The tokenizer's metadata parsing is not wired in yet (//runtime:tokenizer has no BUILD
// target on this branch); add it here once it has one.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "kernels/weight_format.h"
#include "runtime/gguf.h"
#include "runtime/tensor_loader.h"

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
  ~HeapTracker() {
    g_tracking = false;
    const int64_t limit = 24 * static_cast<int64_t>(size_) + 4096;
    if (g_peak > limit) {
      std::fprintf(stderr, "gguf_fuzzer: heap peak %lld bytes for a %zu-byte input (limit %lld)\n",
                   static_cast<long long>(g_peak), size_, static_cast<long long>(limit));
      std::abort();
    }
  }
  size_t size_;
};
#else
struct HeapTracker {
  explicit HeapTracker(size_t) {}
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
  fk::TensorLoader loader(*f);
  std::vector<float> row;
  for (const fk::GgufTensorInfo& t : f->tensors()) {
    absl::StatusOr<fk::WeightFormat> w = loader.Load(t.name);
    if (w.ok()) {
      if (w->rows() > 0 && w->cols() <= (1 << 20)) {
        row.resize(static_cast<size_t>(w->cols()));
        Check(w->DequantizeRow(0, row.data()).ok(), "row 0 of a loaded tensor", absl::OkStatus());
        Check(w->DequantizeRow(w->rows() - 1, row.data()).ok(), "last row of a loaded tensor",
              absl::OkStatus());
      }
    } else {
      Check(NamesFile(w.status()), "loader error without the file name", w.status());
    }
    absl::StatusOr<std::vector<float>> v = loader.LoadVector(t.name);
    if (!v.ok()) Check(NamesFile(v.status()), "vector error without the file name", v.status());
  }
  for (const fk::GgufKv& kv : f->metadata()) {
    Check(f->Find(kv.key) != nullptr, "Find() misses a key", absl::OkStatus());
    (void)f->GetString(kv.key);
    (void)f->GetUint(kv.key);
    (void)f->GetInt(kv.key);
    (void)f->GetFloat(kv.key);
    (void)f->GetBool(kv.key);
    (void)f->GetStringArray(kv.key);
    (void)f->GetFloatArray(kv.key);
    (void)f->GetIntArray(kv.key);
  }
  return 0;
}
