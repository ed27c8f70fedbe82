// Readers for the golden files in golden/ (made by tools/make_golden from independent
// oracles: ggml's reference quantizers, gguf-py's dequantizers, numpy float64 matmul).
// File layouts are documented in golden/README.md. All integers little-endian.
//
// golden/quant_<format>.bin   "FKQUANT1" u32 gguf_type, u32 rows; per row:
//                             u32 k, u32 distribution id, f32 x[k], blocks (row bytes),
//                             f32 dequant[k]
// golden/matmul_<format>.bin  "FKMATMUL" u32 gguf_type, u32 cases; per case:
//                             u32 m, u32 n, u32 k, u32 reserved (0), weights (n rows of
//                             row bytes), f32 input[m*k], f64 expected[m*n],
//                             f64 abs_sum[m*n] (sum_k |input*w|, for tolerances)
#ifndef KERNELS_GOLDEN_READER_H_
#define KERNELS_GOLDEN_READER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/formats.h"

namespace fk {

struct GoldenQuantRow {
  int64_t k = 0;
  uint32_t distribution = 0;  // id of the input distribution (golden/README.md)
  std::vector<float> x;
  std::vector<uint8_t> blocks;
  std::vector<float> dequant;
};

struct GoldenMatmulCase {
  int64_t m = 0, n = 0, k = 0;
  std::vector<uint8_t> weights;  // n * row_bytes
  std::vector<float> input;      // m * k
  std::vector<double> expected;  // m * n
  std::vector<double> abs_sum;   // m * n
};

// Directory of the golden files: $FK_GOLDEN_DIR, else the Bazel runfiles
// ($TEST_SRCDIR/$TEST_WORKSPACE/golden), else "golden".
std::string golden_dir();

// Errors name the file and the offset or field that is wrong (truncated, bad magic, type
// not matching `format`).
absl::StatusOr<std::vector<GoldenQuantRow>> read_golden_quant(Format format);
absl::StatusOr<std::vector<GoldenMatmulCase>> read_golden_matmul(Format format);

}  // namespace fk

#endif  // KERNELS_GOLDEN_READER_H_
