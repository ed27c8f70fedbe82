// WeightFormat: a weight matrix of n rows x k columns, held as F32 or as blocks of one of
// the quantized formats (kernels/formats.h). Row r holds the k weights that produce
// output column r (the GGUF layout: output = input x W^T).
//
// The bytes are immutable. A WeightFormat either owns them (64-byte aligned) or views
// bytes owned by someone else (a memory-mapped GGUF file), kept alive by a shared
// `keepalive` handle. Copies share the bytes; nothing is ever inflated behind your back.
#ifndef KERNELS_WEIGHT_FORMAT_H_
#define KERNELS_WEIGHT_FORMAT_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kernels/formats.h"

namespace fk {

class WeightFormat {
 public:
  WeightFormat() = default;  // empty: 0 x 0 F32

  // Copies F32 data (n*k floats, row-major) into an owned F32 matrix.
  static absl::StatusOr<WeightFormat> FromF32(const float* data, int64_t n, int64_t k);
  // Quantizes F32 data with the format's reference quantizer (F32: a copy).
  static absl::StatusOr<WeightFormat> Quantize(const float* data, int64_t n, int64_t k,
                                               Format format);
  // Copies raw block bytes (exactly n * row_bytes) into 64-byte aligned memory of its own.
  static absl::StatusOr<WeightFormat> FromBytes(Format format, int64_t n, int64_t k,
                                                const void* bytes, size_t size);
  // `count` copies of raw block bytes (exactly n * row_bytes each) in one allocation, each
  // copy starting on a 64-byte boundary: cold weights for benchmarks, cycled call by call.
  // kHugePages: the allocation starts on a 2 MB boundary and is advised for 2 MB pages
  // (kernels/pages.h), as the runtime holds a model's weights; one allocation, so small
  // matrices do not each take a 2 MB page.
  enum class Memory { kAligned, kHugePages };
  static absl::StatusOr<std::vector<WeightFormat>> Copies(Format format, int64_t n, int64_t k,
                                                          const void* bytes, size_t size,
                                                          size_t count, Memory memory);
  // Views bytes owned elsewhere; `keepalive` (may be null) is held as long as any copy lives.
  static absl::StatusOr<WeightFormat> View(Format format, int64_t n, int64_t k,
                                           const void* bytes, size_t size,
                                           std::shared_ptr<const void> keepalive);

  // Bytes of one row of k elements, or an error naming k and the block size.
  static absl::StatusOr<int64_t> RowBytes(Format format, int64_t k);

  Format format() const { return format_; }
  const FormatTraits& format_traits() const { return traits(format_); }
  const char* format_name() const { return traits(format_).name; }
  int64_t rows() const { return n_; }
  int64_t cols() const { return k_; }
  int64_t elements() const { return n_ * k_; }
  int64_t row_bytes() const { return row_bytes_; }
  // Exact bytes held for the weights.
  size_t memory_bytes() const { return static_cast<size_t>(n_ * row_bytes_); }
  // F32 bytes / memory_bytes() (1.0 for F32; e.g. 7.11 for Q4_K).
  double compression_ratio() const;
  bool owns_bytes() const { return owned_ != nullptr; }

  const uint8_t* data() const { return data_; }
  const uint8_t* row_data(int64_t r) const { return data_ + r * row_bytes_; }

  // Dequantizes row r into out[0..k) (the embedding lookup uses this).
  absl::Status DequantizeRow(int64_t r, float* out) const;
  // Dequantizes the whole matrix (n*k floats, row-major).
  absl::StatusOr<std::vector<float>> ToF32() const;
  // The same matrix converted to an owned F32 WeightFormat (the seed's "before").
  absl::StatusOr<WeightFormat> ToF32Weights() const;

 private:
  Format format_ = Format::kF32;
  int64_t n_ = 0;
  int64_t k_ = 0;
  int64_t row_bytes_ = 0;
  const uint8_t* data_ = nullptr;
  std::shared_ptr<uint8_t> owned_;          // owned bytes (aligned), or null for a view
  std::shared_ptr<const void> keepalive_;   // owner of viewed bytes
};

}  // namespace fk

#endif  // KERNELS_WEIGHT_FORMAT_H_
