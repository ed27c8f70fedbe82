// Byte-level mutations of GGUF files for the deterministic mutation tests (issue 7):
// runtime/gguf_mutation_test.cc (reader + TensorLoader) and runtime/tokenizer_mutation_test.cc
// (tokenizer metadata + model loader).
//
// A Seed is a valid file written by our writer plus the layout the test's own walker found
// in it (where every count, length, type id, dim and offset is, and the section and item
// boundaries). MutateOnce applies one random mutation: bit flips, byte insertions and
// deletions, truncation at (or near) a section boundary, a huge / extreme value in a field,
// a wrong type id, overlapping tensor offsets, a duplicated tensor name, a splice of
// another seed.
#ifndef RUNTIME_FUZZ_GGUF_MUTATOR_H_
#define RUNTIME_FUZZ_GGUF_MUTATOR_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace fk {
namespace mutation {

// splitmix64: deterministic in its state on every platform.
struct Rng {
  uint64_t s;
  uint64_t Next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  uint64_t Below(uint64_t n) { return n == 0 ? 0 : Next() % n; }
  bool OneIn(uint64_t n) { return Below(n) == 0; }
};

enum class FieldKind { kCount, kStrLen, kValueType, kElemType, kArrayLen, kNDims, kDim,
                       kTensorType, kTensorOffset, kBool, kVersion };

struct Field {
  size_t pos;
  int width;
  FieldKind kind;
};

struct Seed {
  std::string bytes;
  std::vector<Field> fields;
  std::vector<size_t> boundaries;  // section and item starts/ends, sorted, unique
  std::vector<std::pair<size_t, size_t>> tensor_names;  // (pos of bytes, length)
  std::vector<size_t> tensor_offsets;  // positions of the offset fields
  uint64_t alignment = 32;
};

// Walks a *valid* GGUF file (the caller's seed) and records its layout.
Seed MakeSeed(std::string bytes);

// Counts, lengths, dims and offsets worth trying: 0, small, powers of two and their
// neighbours, the signed / unsigned limits of every width.
extern const uint64_t kInteresting[];
extern const size_t kNumInteresting;

void PutField(std::string* b, const Field& f, uint64_t v);  // no-op past the end
uint64_t GetField(const std::string& b, const Field& f);    // 0 past the end

// One random mutation of `b`, which started as `seed` (`all`: seeds to splice from).
void MutateOnce(const Seed& seed, const std::vector<Seed>& all, Rng& rng, std::string* b);

// Integer environment variable, or `def` when unset or empty.
int64_t EnvInt(const char* name, int64_t def);

// The input being handled (-1: none). A fatal signal (SIGSEGV, SIGBUS, SIGABRT, SIGFPE) after
// InstallCrashReporter() prints its index and how to replay it alone (FK_MUTATION_ONLY),
// then re-raises the signal.
void SetCurrentInput(int64_t index);
void InstallCrashReporter();

}  // namespace mutation
}  // namespace fk

#endif  // RUNTIME_FUZZ_GGUF_MUTATOR_H_
