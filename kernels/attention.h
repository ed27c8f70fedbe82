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
//   p_j = attention_exp(s_j - max_j s_j) (below), summed in double in position order;
//         inv = 1 / sum (rounded to float);
//   out[i] = sum over j ascending of (p_j * inv) * v_j[i], from 0.0f.
// Products and sums are separate float operations (-ffp-contract=off; no FMA).
#ifndef KERNELS_ATTENTION_H_
#define KERNELS_ATTENTION_H_

#include <cstdint>
#include <cstring>
#include <optional>

#include "absl/types/span.h"
#include "kernels/kernel_api.h"

namespace fk {

// exp(x) rounded to float, our own definition so that SIMD kernels can compute it lane by
// lane with the same double operations (std::exp's bits depend on the C library): in double,
// t = x * log2(e), n = t rounded to the nearest integer (even on ties), f = (t - n) * ln 2 in
// [-0.35, 0.35], e^f by its Taylor polynomial of degree 12 (Horner: one product and one sum
// per step), times 2^n, rounded to float. x is first clamped to [-200, 100] (float's exp is 0
// or inf beyond); NaN stays NaN. The double result is within about 1e-14 (relative) of e^x,
// so the float is the correctly rounded one but for x within that of a rounding boundary.
inline constexpr double kAttentionExpCoef[13] = {
    0x1.0000000000000p+0,  0x1.0000000000000p+0,  0x1.0000000000000p-1,  0x1.5555555555555p-3,
    0x1.5555555555555p-5,  0x1.1111111111111p-7,  0x1.6c16c16c16c17p-10, 0x1.a01a01a01a01ap-13,
    0x1.a01a01a01a01ap-16, 0x1.71de3a556c734p-19, 0x1.27e4fb7789f5cp-22, 0x1.ae64567f544e4p-26,
    0x1.1eed8eff8d898p-29};  // 1 / k!
inline constexpr double kAttentionLog2e = 0x1.71547652b82fep+0;
inline constexpr double kAttentionLn2 = 0x1.62e42fefa39efp-1;

inline float attention_exp(float x) {
  if (x != x) return x;
  double xd = static_cast<double>(x);
  xd = xd < -200.0 ? -200.0 : (xd > 100.0 ? 100.0 : xd);
  const double t = xd * kAttentionLog2e;
  const double n = __builtin_nearbyint(t);
  const double f = (t - n) * kAttentionLn2;
  double p = kAttentionExpCoef[12];
  for (int i = 11; i >= 0; --i) p = p * f + kAttentionExpCoef[i];
  const uint64_t bits = static_cast<uint64_t>(static_cast<int64_t>(n) + 1023) << 52;
  double scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return static_cast<float>(p * scale);
}

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

// Query rows against one head's keys and values: row r (0 <= r < rows) is at position
// hi(r) = hi0 + r * pos_step and attends positions lo(r) .. hi(r), lo(r) = max(0, hi(r) -
// window + 1) with a sliding window (window > 0), else 0. pos_step 1: consecutive rows of a
// prompt (one query head); pos_step 0: the query heads of one token that share this key /
// value head (grouped-query attention), all at hi0. Each row's output is attention_row's,
// bit for bit: a kernel may only share loads between rows, never change a row's operations.
inline constexpr int kAttentionScratchRows = 4;
struct AttentionRows {
  const float* q = nullptr;  // row r's query at q + r * q_stride
  int64_t q_stride = 0;
  float* out = nullptr;  // row r's output at out + r * out_stride
  int64_t out_stride = 0;
  const float* k = nullptr;  // as AttentionRow
  const float* v = nullptr;
  int64_t stride = 0;
  int64_t head_dim = 0;
  int64_t rows = 0;
  int64_t hi0 = 0;
  int64_t pos_step = 1;  // 1 or 0 (above)
  int64_t window = 0;
  float scale = 1.0f;
  // Scratch: kAttentionScratchRows rows of scores_stride (> hi0 + rows - 1) floats.
  float* scores = nullptr;
  int64_t scores_stride = 0;
};

using AttentionRowsFn = void (*)(const AttentionRows& rows);

struct AttentionKernel {
  Variant variant;
  uint32_t features;  // required CpuFeature bits
  AttentionFn fn;
  AttentionRowsFn rows_fn;
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

// Row r of a block as a single row, its scores in scratch row `slot`.
inline AttentionRow attention_row_of(const AttentionRows& a, int64_t r, int slot = 0) {
  AttentionRow row;
  row.q = a.q + r * a.q_stride;
  row.out = a.out + r * a.out_stride;
  row.k = a.k;
  row.v = a.v;
  row.stride = a.stride;
  row.head_dim = a.head_dim;
  row.hi = a.hi0 + r * a.pos_step;
  row.lo = a.window > 0 ? (row.hi - a.window + 1 > 0 ? row.hi - a.window + 1 : 0) : 0;
  row.scale = a.scale;
  row.scores = a.scores + slot * a.scores_stride;
  return row;
}

// A block as rows one at a time through `fn` (the reference's and AVX2's block kernel).
inline void attention_rows_one_by_one(const AttentionRows& a, AttentionFn fn) {
  for (int64_t r = 0; r < a.rows; ++r) fn(attention_row_of(a, r));
}

}  // namespace fk

#endif  // KERNELS_ATTENTION_H_
