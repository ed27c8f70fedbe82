// The SIMD body of the gated activation (kernels/activation.h), shared by the avx2 and avx512
// libraries and compiled by each with its own flags, over the lane operations L of its .cc
// file. Each lane performs the reference's float operations in the reference's order
// (gate_exp, gated_value), so every element is the reference's, bit for bit; the last
// n % L::kLanes elements run as masked lanes.
//
// L is the ISA's vector traits (VecAvx2 / VecAvx512: F, Mask, kLanes, set1, loadu, storeu,
// first_lanes, maskload, mask_storeu) plus: I (the same lanes as int32); add, sub, mul, div,
// neg; max / min with the operand order of maxps / minps (the second operand when either is
// NaN); as_int / as_float (bit casts), add_i, sub_i, set1_i, shl23_i.
#ifndef KERNELS_SIMD_GATED_INL_H_
#define KERNELS_SIMD_GATED_INL_H_

#include <immintrin.h>

#include <cstdint>

#include "kernels/activation.h"
#include "kernels/simd/common-inl.h"

namespace fk {
namespace {

// gate_exp, lane by lane.
template <class L>
FK_INLINE typename L::F gate_exp_lanes(typename L::F x) {
  using F = typename L::F;
  // x < min ? min : x, then x > max ? max : x: maxps(min, x) / minps(max, x) keep a NaN x.
  x = L::max(L::set1(kGateExpMin), x);
  x = L::min(L::set1(kGateExpMax), x);
  const F round = L::set1(kGateExpRound);
  const F k = L::add(L::mul(x, L::set1(kGateExpLog2e)), round);
  const F n = L::sub(k, round);
  const F r =
      L::sub(L::sub(x, L::mul(n, L::set1(kGateExpLn2Hi))), L::mul(n, L::set1(kGateExpLn2Lo)));
  F p = L::set1(kGateExpCoef[7]);
  for (int i = 6; i >= 0; --i) p = L::add(L::mul(p, r), L::set1(kGateExpCoef[i]));
  const typename L::I e = L::add_i(
      L::sub_i(L::as_int(k), L::set1_i(static_cast<int32_t>(kGateExpRoundBits))), L::set1_i(127));
  return L::mul(p, L::as_float(L::shl23_i(e)));
}

// gated_value, lane by lane.
template <class L, GateKind kKind>
FK_INLINE typename L::F gated_lanes(typename L::F g, typename L::F up) {
  using F = typename L::F;
  const F one = L::set1(1.0f);
  F arg = g;
  if constexpr (kKind == GateKind::kGeluTanh) {
    arg = L::mul(L::mul(L::set1(kGeluTwoSqrt2OverPi), g),
                 L::add(one, L::mul(L::mul(L::set1(kGeluCoef), g), g)));
  }
  return L::mul(L::div(g, L::add(one, gate_exp_lanes<L>(L::neg(arg)))), up);
}

template <class L, GateKind kKind>
FK_INLINE void gated_run(float* gate, const float* up, int64_t n) {
  constexpr int kLanes = L::kLanes;
  int64_t i = 0;
  for (; i + 2 * kLanes <= n; i += 2 * kLanes) {  // two independent chains in flight
    const auto a = gated_lanes<L, kKind>(L::loadu(gate + i), L::loadu(up + i));
    const auto b = gated_lanes<L, kKind>(L::loadu(gate + i + kLanes), L::loadu(up + i + kLanes));
    L::storeu(gate + i, a);
    L::storeu(gate + i + kLanes, b);
  }
  for (; i + kLanes <= n; i += kLanes) {
    L::storeu(gate + i, gated_lanes<L, kKind>(L::loadu(gate + i), L::loadu(up + i)));
  }
  if (i < n) {
    const typename L::Mask m = L::first_lanes(n - i);
    L::mask_storeu(gate + i, m,
                 gated_lanes<L, kKind>(L::maskload(gate + i, m), L::maskload(up + i, m)));
  }
}

template <class L>
void gated_simd(GateKind kind, float* gate, const float* up, int64_t n) {
  if (kind == GateKind::kSilu) {
    gated_run<L, GateKind::kSilu>(gate, up, n);
  } else {
    gated_run<L, GateKind::kGeluTanh>(gate, up, n);
  }
}

}  // namespace
}  // namespace fk

#endif  // KERNELS_SIMD_GATED_INL_H_
