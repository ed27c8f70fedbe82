// CPU feature detection: probed once (cpuid + xgetbv for OS register-state support) into
// the CpuFeature bitmask of kernel_api.h. Implications are spelled out: a feature whose
// registers the OS does not save is reported absent.
#ifndef KERNELS_CPU_FEATURES_H_
#define KERNELS_CPU_FEATURES_H_

#include <cstdint>
#include <optional>
#include <string>

#include "kernels/kernel_api.h"

namespace fk {

// The features of this CPU (cached after the first call; thread-safe), minus the disabled
// ones (below).
uint32_t cpu_features();
// What cpuid + xgetbv report, before any disabling (for reports and tests).
uint32_t detected_cpu_features();

// Pretending the CPU lacks features, to exercise the paths a smaller CPU takes (skipped
// kernels, dispatch fallbacks) on a bigger one:
//   * the environment variable FK_DISABLE_CPU_FEATURES, read once at the first call of
//     cpu_features(): comma-separated feature names ("avx512f,avx512vnni"), or "all";
//     unknown names are reported on stderr and ignored;
//   * set_disabled_cpu_features_for_testing(mask), which replaces that set (tests).
// Disabling a feature also disables the features that imply it (avx2 -> all of AVX-512),
// so the reported set stays one a real CPU could have.
void set_disabled_cpu_features_for_testing(uint32_t mask);
uint32_t disabled_cpu_features();

// The cpuid vendor string ("AuthenticAMD", "GenuineIntel"; "" when cpuid has none), cached.
const std::string& cpu_vendor();

// The feature bit named `name` ("avx512vnni"), or kCpuNone when unknown.
uint32_t cpu_feature_by_name(const std::string& name);

// True when every bit of `required` is present.
bool cpu_has(uint32_t required);

// Names of the bits of `required` this CPU lacks, e.g. "avx512f, avx512bw"; "" if none.
std::string missing_cpu_features(uint32_t required);

// Names of all bits in `mask`, comma-separated, e.g. "avx2, fma, f16c".
std::string cpu_feature_names(uint32_t mask);

// Of a list of kernels with `variant` and `features` fields (attention, gated activation),
// scalar first: the highest variant this CPU runs, at most `variant` when one is given (a
// named variant without its own kernel gets the nearest lower one).
template <class Kernels>
const auto& best_runnable_kernel(const Kernels& kernels, std::optional<Variant> variant) {
  const auto* best = &kernels[0];
  for (const auto& k : kernels) {
    if (variant.has_value() && k.variant > *variant) continue;
    if (cpu_has(k.features) && k.variant > best->variant) best = &k;
  }
  return *best;
}

}  // namespace fk

#endif  // KERNELS_CPU_FEATURES_H_
