// Heap accounting for the mutation tests: linking //runtime/fuzz:heap_counter replaces the
// global operator new/delete of the binary (each block carries its size in a 16-byte
// header), so every C++ allocation — ours, Abseil's, RE2's, the standard library's — is
// counted. malloc() calls from C code are not.
#ifndef RUNTIME_FUZZ_HEAP_COUNTER_H_
#define RUNTIME_FUZZ_HEAP_COUNTER_H_

#include <cstdint>

namespace fk {
namespace heap {

int64_t Live();        // bytes in use now
int64_t Peak();        // highest Live() since the last ResetPeak()
void ResetPeak();      // Peak() = Live()

}  // namespace heap
}  // namespace fk

#endif  // RUNTIME_FUZZ_HEAP_COUNTER_H_
