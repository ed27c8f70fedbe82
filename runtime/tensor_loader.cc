#include "runtime/tensor_loader.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "kernels/formats.h"

namespace fk {
namespace {

std::string Printable(absl::string_view s) {
  constexpr size_t kMax = 80;
  std::string out = absl::CHexEscape(s.substr(0, kMax));
  if (s.size() > kMax) absl::StrAppend(&out, "...(", s.size(), " bytes)");
  return out;
}

std::string Describe(const GgufTensorInfo& t) {
  return absl::StrFormat("tensor '%s' (%s, dims [%s])", Printable(t.name), gguf_type_name(t.type),
                         absl::StrJoin(t.dims, ", "));
}

// Block structs hold f16 (2-byte) or f32 (4-byte) fields; a view must be at least that
// aligned. GGUF data is aligned to general.alignment (32 by default), so this only fails
// for files that set a tiny alignment; those tensors are copied instead of viewed.
bool AlignedForView(const void* p) { return reinterpret_cast<uintptr_t>(p) % 4 == 0; }

}  // namespace

absl::StatusOr<WeightFormat> TensorLoader::Load(absl::string_view name, int64_t rows,
                                                int64_t cols) const {
  const GgufTensorInfo* t = file_.FindTensor(name);
  if (t == nullptr) {
    return absl::NotFoundError(
        absl::StrFormat("%s: tensor '%s' not found", file_.name(), Printable(name)));
  }
  const int64_t n = t->rows();
  const int64_t k = t->cols();
  if ((rows >= 0 && rows != n) || (cols >= 0 && cols != k)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: %s is %d x %d (rows x cols), expected %s x %s", file_.name(), Describe(*t), n, k,
        rows >= 0 ? absl::StrCat(rows) : "any", cols >= 0 ? absl::StrCat(cols) : "any"));
  }
  const absl::Span<const uint8_t> bytes = file_.TensorData(*t);
  if (const FormatTraits* f = find_format_by_gguf_type(t->type)) {
    absl::StatusOr<WeightFormat> w =
        AlignedForView(bytes.data())
            ? WeightFormat::View(f->format, n, k, bytes.data(), bytes.size(), file_.keepalive())
            : WeightFormat::FromBytes(f->format, n, k, bytes.data(), bytes.size());
    if (!w.ok()) {
      return absl::InvalidArgumentError(absl::StrFormat("%s: %s: %s", file_.name(), Describe(*t),
                                                        w.status().message()));
    }
    return w;
  }
  return absl::InvalidArgumentError(absl::StrFormat(
      "%s: %s has type %s, which cannot be loaded as a weight (supported: %s)",
      file_.name(), Describe(*t), gguf_type_name(t->type), format_names()));
}

absl::StatusOr<std::vector<float>> TensorLoader::LoadVector(absl::string_view name,
                                                            int64_t len) const {
  const GgufTensorInfo* t = file_.FindTensor(name);
  if (t == nullptr) {
    return absl::NotFoundError(
        absl::StrFormat("%s: tensor '%s' not found", file_.name(), Printable(name)));
  }
  if (t->rows() != 1) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: %s is not a vector (it has %d rows of %d)", file_.name(), Describe(*t), t->rows(),
        t->cols()));
  }
  const int64_t k = t->cols();
  if (len >= 0 && k != len) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: %s has %d elements, expected %d", file_.name(), Describe(*t), k, len));
  }
  const absl::Span<const uint8_t> bytes = file_.TensorData(*t);
  std::vector<float> out(static_cast<size_t>(k));
  const FormatTraits* f = find_format_by_gguf_type(t->type);
  if (f == nullptr) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: %s has type %s, which cannot be loaded as a vector (supported: %s)",
        file_.name(), Describe(*t), gguf_type_name(t->type), format_names()));
  }
  if (f->format == Format::kF32) {
    std::memcpy(out.data(), bytes.data(), bytes.size());
    return out;
  }
  // A quantized or 16-bit vector: dequantize through the reference row converter, from an aligned
  // copy when the mapping is not aligned enough for the block struct.
  if (AlignedForView(bytes.data())) {
    f->dequantize_row(bytes.data(), out.data(), k);
  } else {
    std::vector<uint32_t> copy((bytes.size() + 3) / 4);
    std::memcpy(copy.data(), bytes.data(), bytes.size());
    f->dequantize_row(copy.data(), out.data(), k);
  }
  return out;
}

}  // namespace fk
