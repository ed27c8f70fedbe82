#include "kernels/registry.h"

#include <string>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "kernels/cpu_features.h"

namespace fk {

// Every kernel function of registry.inc, declared once here; each is defined in its
// variant's file (kernels/variant_<variant>.cc).
#define FK_KERNEL(FORMAT, VARIANT, PATH, FEATURES, M_TILE, N_TILE, FUNCTION) \
  void FUNCTION(const MatmulArgs& args, int64_t n_begin, int64_t n_end);
#include "kernels/registry.inc"
#undef FK_KERNEL

namespace {

// The registry's naming rule makes the entry name the function's symbol name.
#define FK_KERNEL(FORMAT, VARIANT, PATH, FEATURES, M_TILE, N_TILE, FUNCTION)               \
  KernelEntry{Format::FORMAT, Variant::VARIANT, Path::PATH, FEATURES, M_TILE, N_TILE, \
              &FUNCTION, #FUNCTION},
const KernelEntry kKernels[] = {
#include "kernels/registry.inc"
};
#undef FK_KERNEL

struct VariantName {
  Variant v;
  const char* name;
};
constexpr VariantName kVariants[] = {{Variant::kScalar, "scalar"},
                                     {Variant::kAvx2, "avx2"},
                                     {Variant::kAvx512, "avx512"},
                                     {Variant::kAvx512Vnni, "avx512_vnni"}};

}  // namespace

absl::Span<const KernelEntry> all_kernels() { return kKernels; }

Format act_format(Format weights) {
  switch (weights) {
    case Format::kQ4_K:
    case Format::kQ5_K:
    case Format::kQ6_K:
    case Format::kQ8_K:
      return Format::kQ8_K;
    default:
      return Format::kQ8_0;
  }
}

const char* variant_name(Variant v) {
  for (const VariantName& n : kVariants)
    if (n.v == v) return n.name;
  return "unknown";
}

const char* path_name(Path p) { return p == Path::kF32 ? "f32" : "int8"; }

const char* variant_names() { return "scalar, avx2, avx512, avx512_vnni"; }
const char* path_names() { return "f32, int8"; }

absl::StatusOr<Variant> parse_variant(absl::string_view name) {
  const std::string lower = absl::AsciiStrToLower(name);
  for (const VariantName& n : kVariants)
    if (lower == n.name) return n.v;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown variant '", name, "' (valid: ", variant_names(), ")"));
}

absl::StatusOr<Path> parse_path(absl::string_view name) {
  const std::string lower = absl::AsciiStrToLower(name);
  if (lower == "f32") return Path::kF32;
  if (lower == "int8") return Path::kInt8;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown path '", name, "' (valid: ", path_names(), ")"));
}

const KernelEntry* find_kernel(Format format, Variant variant, Path path) {
  for (const KernelEntry& e : kKernels)
    if (e.format == format && e.variant == variant && e.path == path) return &e;
  return nullptr;
}

bool kernel_runnable(const KernelEntry& e) { return cpu_has(e.features); }

}  // namespace fk
