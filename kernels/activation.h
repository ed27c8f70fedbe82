// The gating of a gated FFN, gate[i] = act(gate[i]) * up[i] in place, for the two gate
// functions of the runtime's architectures:
//   kSilu:     out = g / (1 + gate_exp(-g)) * up
//   kGeluTanh: two_u = kGeluTwoSqrt2OverPi * g * (1 + kGeluCoef * g * g)   (left to right),
//              out = g / (1 + gate_exp(-two_u)) * up
//              (0.5 g (1 + tanh(u)) = g / (1 + exp(-2u)): one exp instead of tanh).
// Like attention (kernels/attention.h) it comes in variants, chosen once by CPU detection or
// by name. Every variant performs these float operations in this order, one lane per
// element, so results are bit-identical across variants (but for the payload of a NaN out
// of a gate and an up that are both NaN: which of the two the product passes on depends on
// the operand order the compiler picks). Products and sums are separate float operations
// (-ffp-contract=off; no FMA); the division is IEEE division.
#ifndef KERNELS_ACTIVATION_H_
#define KERNELS_ACTIVATION_H_

#include <cstdint>
#include <cstring>
#include <optional>

#include "absl/types/span.h"
#include "kernels/kernel_api.h"

namespace fk {

enum class GateKind { kSilu, kGeluTanh };

// exp(x) in float, our own definition so that SIMD lanes compute it with the same float
// operations (std::exp's bits depend on the C library):
//   x clamped to [kGateExpMin, kGateExpMax] (NaN stays NaN);
//   n = x * log2(e) rounded to the nearest integer (even on ties), as
//       k = x * log2(e) + 1.5 * 2^23, n = k - 1.5 * 2^23 (n also in k's low mantissa bits);
//   r = (x - n * ln2_hi) - n * ln2_lo (ln2_hi has 15 significant bits: n * ln2_hi is exact);
//   p = the Taylor polynomial of degree 7 of e^r (Horner, one product and one sum per step);
//   result = p * 2^n, 2^n from (n + 127) << 23 as float bits.
// The clamp keeps n in [-126, 127], so 2^n and the result are normal floats: exp of anything
// below kGateExpMin is exp(kGateExpMin) (~1.2e-38, not 0) and of anything above kGateExpMax
// is exp(kGateExpMax) (~2.2e38, not inf). In the gate that only matters where 1 + e^x is
// 1 or e^x alone. Measured (kernels/activation_test.cc): within 1 ulp of e^x on [-87, 88].
inline constexpr float kGateExpMin = -87.3f;
inline constexpr float kGateExpMax = 88.3f;
inline constexpr float kGateExpLog2e = 0x1.715476p+0f;
inline constexpr float kGateExpRound = 0x1.8p+23f;  // 1.5 * 2^23
inline constexpr float kGateExpLn2Hi = 0x1.62e4p-1f;
inline constexpr float kGateExpLn2Lo = 0x1.7f7d1cp-20f;  // ln 2 - kGateExpLn2Hi
inline constexpr float kGateExpCoef[8] = {0x1.0p+0f,       0x1.0p+0f,      0x1.0p-1f,
                                          0x1.555556p-3f,  0x1.555556p-5f, 0x1.111112p-7f,
                                          0x1.6c16c2p-10f, 0x1.a01a02p-13f};  // 1 / k!
inline constexpr uint32_t kGateExpRoundBits = 0x4B400000u;  // bits of kGateExpRound

inline float gate_exp(float x) {
  x = x < kGateExpMin ? kGateExpMin : x;
  x = x > kGateExpMax ? kGateExpMax : x;
  const float k = x * kGateExpLog2e + kGateExpRound;  // n in the low mantissa bits
  const float n = k - kGateExpRound;
  const float r = (x - n * kGateExpLn2Hi) - n * kGateExpLn2Lo;
  float p = kGateExpCoef[7];
  for (int i = 6; i >= 0; --i) p = p * r + kGateExpCoef[i];
  uint32_t kbits;
  std::memcpy(&kbits, &k, sizeof kbits);
  const uint32_t sbits = (kbits - kGateExpRoundBits + 127u) << 23;  // unsigned: NaN is harmless
  float scale;
  std::memcpy(&scale, &sbits, sizeof scale);
  return p * scale;
}

inline constexpr float kGeluTwoSqrt2OverPi = 2 * 0.7978845608028654f;
inline constexpr float kGeluCoef = 0.044715f;

// One element of the gate (the reference's operations).
inline float gated_value(GateKind kind, float g, float up) {
  const float arg =
      kind == GateKind::kSilu ? g : kGeluTwoSqrt2OverPi * g * (1.0f + kGeluCoef * g * g);
  return g / (1.0f + gate_exp(-arg)) * up;
}

// gate[i] = gated_value(kind, gate[i], up[i]) for i in [0, n).
using GatedFn = void (*)(GateKind kind, float* gate, const float* up, int64_t n);

struct GatedKernel {
  Variant variant;
  uint32_t features;  // required CpuFeature bits
  GatedFn fn;
  const char* name;  // "gated__<variant>"
};

// Every gated kernel, scalar (the reference) first.
absl::Span<const GatedKernel> all_gated_kernels();

// The kernel for `variant` (its own, or the nearest lower variant that has one), or with no
// variant the best this CPU runs; the same fallbacks as select_attention.
const GatedKernel& select_gated(std::optional<Variant> variant = std::nullopt);

// The scalar reference (also reachable as all_gated_kernels()[0]).
void gated_ref(GateKind kind, float* gate, const float* up, int64_t n);

}  // namespace fk

#endif  // KERNELS_ACTIVATION_H_
