// Attention of one query row of one head over a run of cached positions:
//   out = softmax(scale * q . K^T) . V   over positions lo .. hi,
// the step of a transformer that is not a matmul against stored weights. Like the matmul
// kernels it comes in variants (the scalar reference and SIMD bodies), chosen once by CPU
// detection or by name; the runtime calls it per (query row, head) and knows no ISA.
//
// Every variant computes the reference's exact operations in the same order, so results
// are bit-identical across variants (and to the runtime's attention before it moved here):
//   s_j = dot(q, k_j) * scale, the dot as 8 partial sums (lane l sums the products of
//         elements 8i + l, i ascending), combined ((l0 + l4) + (l1 + l5)) + ((l2 + l6) +
//         (l3 + l7)), then the head_dim % 8 trailing products added one by one;
//   p_j = std::exp(s_j - max_j s_j), summed in double in position order; inv = 1 / sum
//         (rounded to float);
//   out[i] = sum over j ascending of (p_j * inv) * v_j[i], from 0.0f.
// Products and sums are separate float operations (-ffp-contract=off; no FMA).
#ifndef KERNELS_ATTENTION_H_
#define KERNELS_ATTENTION_H_

#include <cstdint>
#include <optional>

#include "absl/types/span.h"
#include "kernels/kernel_api.h"

namespace fk {

struct AttentionRow {
  const float* q = nullptr;  // head_dim values
  // Key / value of position j at k + j * stride / v + j * stride (head_dim values each).
  const float* k = nullptr;
  const float* v = nullptr;
  int64_t stride = 0;
  int64_t head_dim = 0;
  int64_t lo = 0, hi = 0;  // positions lo .. hi, inclusive (lo <= hi)
  float scale = 1.0f;
  float* scores = nullptr;  // scratch: scores[lo .. hi] are overwritten
  float* out = nullptr;     // head_dim values
};

using AttentionFn = void (*)(const AttentionRow& row);

struct AttentionKernel {
  Variant variant;
  uint32_t features;  // required CpuFeature bits
  AttentionFn fn;
  const char* name;  // "attention__<variant>"
};

// Every attention kernel, scalar (the reference) first.
absl::Span<const AttentionKernel> all_attention_kernels();

// The kernel for `variant` (its own, or the nearest lower variant that has one: the
// avx512_vnni variant adds only int8 matmuls), or with no variant the best this CPU runs.
// A named variant the CPU cannot run still falls back to the best lower one it can: the
// caller resolved its matmul kernels (which fail loudly) from the same name.
const AttentionKernel& select_attention(std::optional<Variant> variant = std::nullopt);

// The scalar reference (also reachable as all_attention_kernels()[0]).
void attention_row_ref(const AttentionRow& row);

}  // namespace fk

#endif  // KERNELS_ATTENTION_H_
