#include "kernels/registry.h"

#include <string>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "kernels/cpu_features.h"

namespace fk {

// Every kernel function of registry.inc, declared once here; each is defined in its
// variant's file (kernels/variant_<variant>.cc).
// ---- Reference activation packers --------------------------------------------------------

namespace {

template <Format F>
int64_t ref_row_bytes(int64_t k) {
  return k / traits(F).block_elems * traits(F).block_bytes;
}

// `act_none` marks f32-path rows (no packer); its functions are never called.
int64_t no_row_bytes(int64_t) { return 0; }
void no_pack(const float*, int64_t, uint8_t*) {}
void no_unpack(const uint8_t*, int64_t, float*) {}

}  // namespace

const ActPacker act_q8_0_ref = {"q8_0_ref", Format::kQ8_0, &ref_row_bytes<Format::kQ8_0>,
                                [](const float* x, int64_t k, uint8_t* out) {
                                  quantize_row_q8_0_ref(x, out, k);
                                },
                                [](const uint8_t* p, int64_t k, float* out) {
                                  dequantize_row_q8_0_ref(p, out, k);
                                }};
const ActPacker act_q8_k_ref = {"q8_k_ref", Format::kQ8_K, &ref_row_bytes<Format::kQ8_K>,
                                [](const float* x, int64_t k, uint8_t* out) {
                                  quantize_row_q8_K_ref(x, out, k);
                                },
                                [](const uint8_t* p, int64_t k, float* out) {
                                  dequantize_row_q8_K_ref(p, out, k);
                                }};
// The bf16 path's activations: each float rounded to bf16 (fp32_to_bf16, nearest-even).
const ActPacker act_bf16_ref = {"bf16_ref", Format::kBF16, &ref_row_bytes<Format::kBF16>,
                                [](const float* x, int64_t k, uint8_t* out) {
                                  quantize_row_bf16_ref(x, out, k);
                                },
                                [](const uint8_t* p, int64_t k, float* out) {
                                  dequantize_row_bf16_ref(p, out, k);
                                }};
// The f16 path's activations: rows scaled by a power of two and rounded to fp16
// (f16_act_pack_row_ref, kernels/formats.h).
const ActPacker act_f16_ref = {"f16_ref", Format::kF16, &f16_act_row_bytes,
                               &f16_act_pack_row_ref, &f16_act_unpack_row};
extern const ActPacker act_none;
const ActPacker act_none = {"none", Format::kF32, &no_row_bytes, &no_pack, &no_unpack};

// Every kernel function and activation packer of registry.inc, declared once here; each is
// defined in its variant's file (kernels/variant_<variant>.cc) or above.
#define FK_KERNEL(FORMAT, VARIANT, PATH, FEATURES, MIN_M, M_TILE, N_TILE, FUNCTION, ACT) \
  void FUNCTION(const MatmulArgs& args, int64_t n_begin, int64_t n_end);          \
  extern const ActPacker ACT;
#include "kernels/registry.inc"
#undef FK_KERNEL

namespace {

// The registry's naming rule makes the entry name the function's symbol name. Constant-
// initialized (constexpr), so other files' static initializers may read it.
#define FK_KERNEL(FORMAT, VARIANT, PATH, FEATURES, MIN_M, M_TILE, N_TILE, FUNCTION, ACT)     \
  KernelEntry{Format::FORMAT, Variant::VARIANT, Path::PATH, FEATURES, MIN_M, M_TILE, N_TILE, \
              &FUNCTION, #FUNCTION, &ACT == &act_none ? nullptr : &ACT},
constexpr KernelEntry kKernels[] = {
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
                                     {Variant::kAvx512Vnni, "avx512_vnni"},
                                     {Variant::kAmx, "amx"}};

}  // namespace

absl::Span<const KernelEntry> all_kernels() { return kKernels; }

Format act_format(Format weights) { return traits(weights).act_format; }

const char* variant_name(Variant v) {
  for (const VariantName& n : kVariants)
    if (n.v == v) return n.name;
  return "unknown";
}

const char* path_name(Path p) {
  switch (p) {
    case Path::kF32:
      return "f32";
    case Path::kInt8:
      return "int8";
    case Path::kBf16:
      return "bf16";
    case Path::kF16:
      return "f16";
  }
  return "unknown";
}

const char* variant_names() { return "scalar, avx2, avx512, avx512_vnni, amx"; }
const char* path_names() { return "f32, int8, bf16, f16"; }

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
  if (lower == "bf16") return Path::kBf16;
  if (lower == "f16") return Path::kF16;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown path '", name, "' (valid: ", path_names(), ")"));
}

const KernelEntry* find_kernel(Format format, Variant variant, Path path, int64_t m) {
  const KernelEntry* best = nullptr;
  for (const KernelEntry& e : kKernels) {
    if (e.format != format || e.variant != variant || e.path != path || e.min_m > m) continue;
    if (best == nullptr || e.min_m > best->min_m) best = &e;
  }
  return best;
}

bool has_path(Format format, Path path) {
  for (const KernelEntry& e : kKernels)
    if (e.format == format && e.path == path) return true;
  return false;
}

bool kernel_runnable(const KernelEntry& e) { return cpu_has(e.features); }

std::optional<Variant> base_variant(Variant v) {
  if (v == Variant::kAmx) return Variant::kAvx512Vnni;
  if (v == Variant::kAvx512Vnni) return Variant::kAvx512;
  return std::nullopt;
}

bool extends_variant(Variant v, Variant base) {
  for (std::optional<Variant> b = v; b; b = base_variant(*b))
    if (*b == base) return true;
  return false;
}

const KernelEntry* find_general_kernel(Format format, Variant variant, Path path) {
  for (std::optional<Variant> v = variant; v; v = base_variant(*v))
    if (const KernelEntry* g = find_kernel(format, *v, path)) return g;
  return nullptr;
}

}  // namespace fk
