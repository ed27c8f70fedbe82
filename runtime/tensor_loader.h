// TensorLoader: GGUF tensors -> WeightFormat, keeping quantized tensors as blocks.
//
// A tensor of any format of the table (kernels/formats.inc: the block formats, F32, F16 and
// BF16) becomes a WeightFormat *view* on the file mapping (no copy, no inflation: F16 and
// BF16 stay 16-bit). Any other type is an error naming the tensor and its type. 2-D tensors map to
// rows = dims[1], cols = dims[0] (GGUF/ggml order: output = input x W^T).
#ifndef RUNTIME_TENSOR_LOADER_H_
#define RUNTIME_TENSOR_LOADER_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "kernels/weight_format.h"
#include "runtime/gguf.h"

namespace fk {

class TensorLoader {
 public:
  explicit TensorLoader(const GgufFile& file) : file_(file) {}

  // A 2-D weight. When rows/cols >= 0 they must match, else an error naming the tensor,
  // its dims and the expected shape. Missing tensor: an error naming it and the file.
  absl::StatusOr<WeightFormat> Load(absl::string_view name, int64_t rows = -1,
                                    int64_t cols = -1) const;
  // A 1-D tensor (norm weights) as f32 of exactly `len` elements (len < 0: any).
  absl::StatusOr<std::vector<float>> LoadVector(absl::string_view name,
                                                int64_t len = -1) const;
  bool Has(absl::string_view name) const { return file_.FindTensor(name) != nullptr; }
  const GgufFile& file() const { return file_; }

 private:
  const GgufFile& file_;
};

}  // namespace fk

#endif  // RUNTIME_TENSOR_LOADER_H_
