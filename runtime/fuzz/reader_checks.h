// What a GGUF file that the reader accepted goes through in the libFuzzer target
// (gguf_fuzzer.cc) and the deterministic runtime:gguf_mutation_test, so both hold every
// input to the same rules (issue 7):
//
//  * TensorLoader::Load of every tensor is OK or an error whose message starts with the
//    file name; a loaded tensor (with at most 2^20 columns) dequantizes its first and last
//    row.
//  * TensorLoader::LoadVector of every tensor is OK or an error starting with the file name.
//  * Every metadata key is found by Find() and survives every typed getter.
#ifndef RUNTIME_FUZZ_READER_CHECKS_H_
#define RUNTIME_FUZZ_READER_CHECKS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/gguf.h"

namespace fk {
namespace fuzz {

struct ReaderCheckStats {
  int64_t tensors_loaded = 0;
  int64_t load_errors = 0;
};

// Runs the checks above on `f`; returns the rules it broke (empty: none).
std::vector<std::string> CheckTensorsAndMetadata(const GgufFile& f, ReaderCheckStats* stats);

}  // namespace fuzz
}  // namespace fk

#endif  // RUNTIME_FUZZ_READER_CHECKS_H_
