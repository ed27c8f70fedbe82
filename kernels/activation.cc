#include "kernels/activation.h"

#include "kernels/cpu_features.h"

namespace fk {

// The SIMD bodies (kernels/simd/gated-inl.h), one per ISA library.
void gated__avx2(GateKind kind, float* gate, const float* up, int64_t n);
void gated__avx512(GateKind kind, float* gate, const float* up, int64_t n);

void gated_ref(GateKind kind, float* gate, const float* up, int64_t n) {
  for (int64_t i = 0; i < n; ++i) gate[i] = gated_value(kind, gate[i], up[i]);
}

absl::Span<const GatedKernel> all_gated_kernels() {
  static const GatedKernel kKernels[] = {
      {Variant::kScalar, kCpuNone, &gated_ref, "gated__scalar"},
      {Variant::kAvx2, kFeaturesAvx2, &gated__avx2, "gated__avx2"},
      {Variant::kAvx512, kFeaturesAvx512, &gated__avx512, "gated__avx512"},
  };
  return kKernels;
}

const GatedKernel& select_gated(std::optional<Variant> variant) {
  return best_runnable_kernel(all_gated_kernels(), variant);
}

}  // namespace fk
