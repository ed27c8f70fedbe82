// The kernel registry: every (format, variant, path) kernel, read from registry.inc.
// Dispatch, tests, benchmarks and the sweep iterate all_kernels(); nothing else lists
// kernels.
#ifndef KERNELS_REGISTRY_H_
#define KERNELS_REGISTRY_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "kernels/formats.h"
#include "kernels/kernel_api.h"

namespace fk {

struct KernelEntry {
  Format format;
  Variant variant;
  Path path;
  uint32_t features;  // required CpuFeature bits
  int64_t min_m;      // the smallest batch the row is for (1: the general kernel)
  int m_tile;
  int n_tile;
  MatmulKernelFn fn;
  const char* name;   // "<format>_<path>__<variant>", e.g. "q4_k_int8__avx2"
  // int8 path: how dispatch quantizes the activations for this kernel (kernel_api.h);
  // nullptr on the f32 path.
  const ActPacker* act;
};

// The reference activation packers: the reference quantizers' Q8_0 / Q8_K blocks.
extern const ActPacker act_q8_0_ref;
extern const ActPacker act_q8_k_ref;
// The bf16 path's reference packer: the activations rounded to bf16 (nearest-even).
extern const ActPacker act_bf16_ref;
// The f16 path's reference packer (kernel_api.h): rows scaled by a power of two, rounded to
// fp16; the float 2^-e at byte 0, the fp16 values from byte kF16ActValuesOffset.
extern const ActPacker act_f16_ref;

// Every registered kernel, in registry.inc order (scalar first).
absl::Span<const KernelEntry> all_kernels();

// The activation format of an entry's int8 path: Q8_K for K-quants, Q8_0 otherwise.
// (F32 weights have no int8 path.)
Format act_format(Format weights);

const char* variant_name(Variant v);  // "scalar", "avx2", "avx512", "avx512_vnni", "amx"
const char* path_name(Path p);        // "f32", "int8", "bf16", "f16"
// Parse names (case-insensitive); errors list the valid names.
absl::StatusOr<Variant> parse_variant(absl::string_view name);
absl::StatusOr<Path> parse_path(absl::string_view name);
// "scalar, avx2, avx512, avx512_vnni, amx" / "f32, int8, bf16, f16" for --help and error messages.
const char* variant_names();
const char* path_names();

// The entry for (format, variant, path) that dispatch runs for a batch of m rows: the one with
// the largest min_m <= m (m = 1: the general kernel every such triple has), or nullptr.
const KernelEntry* find_kernel(Format format, Variant variant, Path path, int64_t m = 1);

// True when the registry has kernels of `path` for `format` weights (every format has f32;
// quantized formats int8; BF16 bf16; F16 f16).
bool has_path(Format format, Path path);

// True when this CPU can run the entry.
bool kernel_runnable(const KernelEntry& e);

// The variant a variant extends, whose kernels it uses where it has none of its own for a
// (format, path) or batch: avx512_vnni adds only int8 kernels to avx512; amx adds only batch
// rows (MIN_M > 1) of the int8 path to avx512_vnni. nullopt for the others.
std::optional<Variant> base_variant(Variant v);
// True when v is base or extends it (through base_variant, any number of steps).
bool extends_variant(Variant v, Variant base);
// The general row (MIN_M 1) that serves (format, variant, path): the variant's own, else its
// base variant's (amx -> avx512_vnni; avx512_vnni's f32 path -> avx512), or nullptr.
const KernelEntry* find_general_kernel(Format format, Variant variant, Path path);

}  // namespace fk

#endif  // KERNELS_REGISTRY_H_
