#include "kernels/weight_format.h"

#include <cstdlib>
#include <cstring>
#include <limits>
#include <utility>

#include "absl/strings/str_format.h"
#include "kernels/pages.h"

namespace fk {
namespace {

std::shared_ptr<uint8_t> AllocateAligned(size_t size) {
  const size_t rounded = (size + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
  if (p == nullptr) return nullptr;
  return std::shared_ptr<uint8_t>(static_cast<uint8_t*>(p), [](uint8_t* q) { std::free(q); });
}

absl::Status CheckShape(int64_t n, int64_t k) {
  if (n < 0 || k < 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("weight shape %d x %d: dimensions must be non-negative", n, k));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<int64_t> WeightFormat::RowBytes(Format format, int64_t k) {
  const FormatTraits& t = traits(format);
  if (k < 0 || k % t.block_elems != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s needs a row length that is a multiple of %d, got k = %d", t.name, t.block_elems, k));
  }
  if (k / t.block_elems > std::numeric_limits<int64_t>::max() / t.block_bytes) {
    return absl::InvalidArgumentError(absl::StrFormat("row length k = %d is too large", k));
  }
  return k / t.block_elems * t.block_bytes;
}

absl::StatusOr<WeightFormat> WeightFormat::View(Format format, int64_t n, int64_t k,
                                                const void* bytes, size_t size,
                                                std::shared_ptr<const void> keepalive) {
  if (absl::Status s = CheckShape(n, k); !s.ok()) return s;
  absl::StatusOr<int64_t> row_bytes = RowBytes(format, k);
  if (!row_bytes.ok()) return row_bytes.status();
  if (n != 0 && *row_bytes > std::numeric_limits<int64_t>::max() / n) {
    return absl::InvalidArgumentError(absl::StrFormat("weight shape %d x %d is too large", n, k));
  }
  const uint64_t need = static_cast<uint64_t>(n) * static_cast<uint64_t>(*row_bytes);
  if (size != need) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s weight %d x %d needs %d bytes, got %d", traits(format).name, n, k, need, size));
  }
  if (bytes == nullptr && need != 0) {
    return absl::InvalidArgumentError("weight bytes are null");
  }
  WeightFormat w;
  w.format_ = format;
  w.n_ = n;
  w.k_ = k;
  w.row_bytes_ = *row_bytes;
  w.data_ = static_cast<const uint8_t*>(bytes);
  w.keepalive_ = std::move(keepalive);
  return w;
}

absl::StatusOr<WeightFormat> WeightFormat::FromBytes(Format format, int64_t n, int64_t k,
                                                     const void* bytes, size_t size) {
  absl::StatusOr<std::vector<WeightFormat>> one =
      Copies(format, n, k, bytes, size, 1, Memory::kAligned);
  if (!one.ok()) return one.status();
  return std::move(one->front());
}

absl::StatusOr<std::vector<WeightFormat>> WeightFormat::Copies(Format format, int64_t n,
                                                               int64_t k, const void* bytes,
                                                               size_t size, size_t count,
                                                               Memory memory) {
  absl::StatusOr<WeightFormat> view = View(format, n, k, bytes, size, nullptr);
  if (!view.ok()) return view.status();
  const size_t stride = (size + 63) / 64 * 64;
  if (count != 0 && stride > std::numeric_limits<size_t>::max() / count) {
    return absl::InvalidArgumentError(absl::StrFormat("%d copies of %d bytes overflow", count, size));
  }
  const size_t total = stride * count;
  std::shared_ptr<uint8_t> owned =
      memory == Memory::kHugePages ? AllocateHugePages(total) : AllocateAligned(total);
  if (owned == nullptr) {
    return absl::ResourceExhaustedError(
        absl::StrFormat("cannot allocate %d bytes (%d copies of %d)", total, count, size));
  }
  std::vector<WeightFormat> copies;
  copies.reserve(count);
  for (size_t c = 0; c < count; ++c) {
    uint8_t* dst = owned.get() + c * stride;
    if (size != 0) std::memcpy(dst, bytes, size);
    WeightFormat w = *view;
    w.data_ = dst;
    w.owned_ = owned;  // every copy shares the one allocation
    copies.push_back(std::move(w));
  }
  return copies;
}

absl::StatusOr<WeightFormat> WeightFormat::FromF32(const float* data, int64_t n, int64_t k) {
  if (absl::Status s = CheckShape(n, k); !s.ok()) return s;
  return FromBytes(Format::kF32, n, k, data, static_cast<size_t>(n * k) * sizeof(float));
}

absl::StatusOr<WeightFormat> WeightFormat::Quantize(const float* data, int64_t n, int64_t k,
                                                    Format format) {
  if (absl::Status s = CheckShape(n, k); !s.ok()) return s;
  absl::StatusOr<int64_t> row_bytes = RowBytes(format, k);
  if (!row_bytes.ok()) return row_bytes.status();
  if (data == nullptr && n * k != 0) return absl::InvalidArgumentError("input data is null");
  const size_t size = static_cast<size_t>(n * *row_bytes);
  std::shared_ptr<uint8_t> owned = AllocateAligned(size);
  if (owned == nullptr) {
    return absl::ResourceExhaustedError(absl::StrFormat("cannot allocate %d bytes", size));
  }
  const FormatTraits& t = traits(format);
  for (int64_t r = 0; r < n; ++r) {
    t.quantize_row(data + r * k, owned.get() + r * *row_bytes, k);
  }
  WeightFormat w;
  w.format_ = format;
  w.n_ = n;
  w.k_ = k;
  w.row_bytes_ = *row_bytes;
  w.owned_ = std::move(owned);
  w.data_ = w.owned_.get();
  return w;
}

double WeightFormat::compression_ratio() const {
  if (memory_bytes() == 0) return 1.0;
  return static_cast<double>(elements()) * sizeof(float) / static_cast<double>(memory_bytes());
}

absl::Status WeightFormat::DequantizeRow(int64_t r, float* out) const {
  if (r < 0 || r >= n_) {
    return absl::OutOfRangeError(
        absl::StrFormat("row %d out of range for a %d x %d %s weight", r, n_, k_, format_name()));
  }
  if (out == nullptr) return absl::InvalidArgumentError("output buffer is null");
  traits(format_).dequantize_row(row_data(r), out, k_);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<float>> WeightFormat::ToF32() const {
  std::vector<float> out(static_cast<size_t>(elements()));
  for (int64_t r = 0; r < n_; ++r) {
    traits(format_).dequantize_row(row_data(r), out.data() + r * k_, k_);
  }
  return out;
}

absl::StatusOr<WeightFormat> WeightFormat::ToF32Weights() const {
  absl::StatusOr<std::vector<float>> f = ToF32();
  if (!f.ok()) return f.status();
  return FromF32(f->data(), n_, k_);
}

}  // namespace fk
