// CPU feature detection: probed once (cpuid + xgetbv for OS register-state support) into
// the CpuFeature bitmask of kernel_api.h. Implications are spelled out: a feature whose
// registers the OS does not save is reported absent.
#ifndef KERNELS_CPU_FEATURES_H_
#define KERNELS_CPU_FEATURES_H_

#include <cstdint>
#include <string>

namespace fk {

// The features of this CPU (cached after the first call; thread-safe).
uint32_t cpu_features();

// True when every bit of `required` is present.
bool cpu_has(uint32_t required);

// Names of the bits of `required` this CPU lacks, e.g. "avx512f, avx512bw"; "" if none.
std::string missing_cpu_features(uint32_t required);

// Names of all bits in `mask`, comma-separated, e.g. "avx2, fma, f16c".
std::string cpu_feature_names(uint32_t mask);

}  // namespace fk

#endif  // KERNELS_CPU_FEATURES_H_
