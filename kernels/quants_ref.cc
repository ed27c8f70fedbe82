// Reference quantizers and dequantizers of the block formats (declared in formats.h).
//
// Quantizers reproduce ggml's quantize_row_*_ref byte for byte. That needs ggml's exact
// float32 arithmetic: the same operations in the same order (C's left-to-right evaluation of
// `a*b*c`, int operands promoted to float), no contraction into FMA (.bazelrc sets
// -ffp-contract=off; ggml's reference code is built without FMA too), and the same
// rounding: the legacy formats truncate `v + 0.5` (or `+ 8.5`, `+ 16.5`) toward zero,
// Q8_0 uses roundf (half away from zero), the K-quants use nearest_int (below).
//
// Dequantizers reproduce gguf-py's gguf.quants.dequantize bit for bit: numpy evaluates in
// float32, one array operation at a time, so the order of operations below is numpy's
// (e.g. Q4_K computes `d*sc` and `dmin*m` first, then `(d*sc)*q - dmin*m`).
#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels/formats.h"

namespace fk {
namespace {

// ggml's GROUP_MAX_EPS: a group whose largest magnitude is below this counts as all zero.
constexpr float kGroupMaxEps = 1e-15f;

// Round to nearest, ties to even, by adding 1.5 * 2^23 and reading the low mantissa bits.
// Exact for |v| < 2^22; outside that range (and for inf/NaN) the result is whatever the
// bits give, which is what ggml does as well (its assert is compiled out), so we match it.
inline int nearest_int(float v) {
  const float biased = v + 12582912.f;
  int32_t bits;
  std::memcpy(&bits, &biased, sizeof bits);
  return (bits & 0x007fffff) - 0x00400000;
}

// The C conversion `(int8_t)f` as ggml's x86-64 build performs it: truncate toward zero
// to int32 (cvttss2si; NaN and out-of-range give INT32_MIN) and keep the low byte. Written
// out here because the plain cast is undefined behaviour for out-of-range values, which
// ggml does hit, e.g. when a block of denormals makes 1/d infinite.
inline int8_t float_to_int8_like_ggml(float v) {
  int32_t i = INT32_MIN;
  if (v > -2147483904.0f && v < 2147483648.0f) i = static_cast<int32_t>(v);
  return static_cast<int8_t>(static_cast<uint8_t>(static_cast<uint32_t>(i) & 0xFFu));
}

// The 32 bits of a 5-bit block's qh (a little-endian u32 in the file) from / to bytes.
inline uint32_t load_qh(const uint8_t* qh) {
  return static_cast<uint32_t>(qh[0]) | (static_cast<uint32_t>(qh[1]) << 8) |
         (static_cast<uint32_t>(qh[2]) << 16) | (static_cast<uint32_t>(qh[3]) << 24);
}
inline void store_qh(uint32_t v, uint8_t* qh) {
  for (int b = 0; b < 4; ++b) qh[b] = static_cast<uint8_t>(v >> (8 * b));
}

inline int min_int(int a, int b) { return a < b ? a : b; }
inline int max_int(int a, int b) { return a > b ? a : b; }

// The element of largest magnitude (first one on ties), with its sign.
inline float signed_absmax(const float* x, int n) {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < n; ++j) {
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  return max;
}

// Scale + min fit for one sub-block of the Q2_K/Q4_K/Q5_K formats: x ~= scale * L - the_min
// with L in [0, nmax]. Starts from the min/max fit, then tries nstep+1 slightly different
// scales, each followed by a weighted least-squares refit of scale and min, and keeps the
// one with the smallest weighted error: squared (Q4_K, Q5_K) or absolute (`mad`, Q2_K).
// (ggml's make_qkx2_quants.)
float fit_scale_min(int n, int nmax, const float* x, const float* weights, uint8_t* L,
                    float* the_min, uint8_t* Laux, float rmin, float rdelta, int nstep,
                    bool mad = false) {
  float min = x[0];
  float max = x[0];
  float sum_w = weights[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    const float w = weights[i];
    sum_w += w;
    sum_x += w * x[i];
  }
  if (min > 0) min = 0;
  if (max == min) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    *the_min = -min;
    return 0.f;
  }
  float iscale = nmax / (max - min);
  float scale = 1 / iscale;
  float best_error = 0;
  for (int i = 0; i < n; ++i) {
    const int l = nearest_int(iscale * (x[i] - min));
    L[i] = static_cast<uint8_t>(max_int(0, min_int(nmax, l)));
    float diff = scale * L[i] + min - x[i];
    diff = mad ? std::fabs(diff) : diff * diff;
    best_error += weights[i] * diff;
  }
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * is + nmax) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      int l = nearest_int(iscale * (x[i] - min));
      l = max_int(0, min_int(nmax, l));
      Laux[i] = static_cast<uint8_t>(l);
      const float w = weights[i];
      sum_l += w * l;
      sum_l2 += w * l * l;
      sum_xl += w * l * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0) {
        this_min = 0;
        this_scale = sum_xl / sum_l2;
      }
      float cur_error = 0;
      for (int i = 0; i < n; ++i) {
        float diff = this_scale * Laux[i] + this_min - x[i];
        diff = mad ? std::fabs(diff) : diff * diff;
        cur_error += weights[i] * diff;
      }
      if (cur_error < best_error) {
        for (int i = 0; i < n; ++i) L[i] = Laux[i];
        best_error = cur_error;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  *the_min = -min;
  return scale;
}

// Symmetric scale fit for one Q6_K sub-block: x ~= scale * (L - nmax), L in [0, 2*nmax),
// weighted by x^2; tries 18 scales around nmax/max and keeps the best least-squares one.
// (ggml's make_qx_quants with rmse_type=1 and no importance weights.)
float fit_scale_symmetric(int n, int nmax, const float* x, int8_t* L) {
  const float max = signed_absmax(x, n);
  const float amax = std::fabs(max);
  if (amax < kGroupMaxEps) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.f;
  }
  float iscale = -nmax / max;
  float sumlx = 0;
  float suml2 = 0;
  for (int i = 0; i < n; ++i) {
    int l = nearest_int(iscale * x[i]);
    l = max_int(-nmax, min_int(nmax - 1, l));
    L[i] = static_cast<int8_t>(l + nmax);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * l;
    suml2 += w * l * l;
  }
  float scale = suml2 ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(nmax + 0.1f * is) / max;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; ++i) {
      int l = nearest_int(iscale * x[i]);
      l = max_int(-nmax, min_int(nmax - 1, l));
      const float w = x[i] * x[i];
      sumlx += w * x[i] * l;
      suml2 += w * l * l;
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i) {
        const int l = nearest_int(iscale * x[i]);
        L[i] = static_cast<int8_t>(nmax + max_int(-nmax, min_int(nmax - 1, l)));
      }
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

// Symmetric fit for one Q3_K sub-block: x ~= scale * (L - nmax), L in [0, 2 nmax). Starts
// from L = round(-nmax x / max) (max: the element of largest magnitude), then up to 5 passes
// that move single elements to the level the others' least-squares scale suggests whenever
// that raises sumlx^2 / suml2 (weights x^2). (ggml's make_q3_quants with do_rmse.)
float fit_scale_q3(int n, int nmax, const float* x, int8_t* L) {
  const float max = signed_absmax(x, n);
  const float amax = std::fabs(max);
  if (amax < kGroupMaxEps) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.f;
  }
  const float iscale = -nmax / max;
  float sumlx = 0;
  float suml2 = 0;
  for (int i = 0; i < n; ++i) {
    int l = nearest_int(iscale * x[i]);
    l = max_int(-nmax, min_int(nmax - 1, l));
    L[i] = static_cast<int8_t>(l);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * l;
    suml2 += w * l * l;
  }
  for (int pass = 0; pass < 5; ++pass) {
    int changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = x[i] * x[i];
      float slx = sumlx - w * x[i] * L[i];
      if (slx > 0) {
        float sl2 = suml2 - w * L[i] * L[i];
        int nl = nearest_int(x[i] * sl2 / slx);
        nl = max_int(-nmax, min_int(nmax - 1, nl));
        if (nl != L[i]) {
          slx += w * x[i] * nl;
          sl2 += w * nl * nl;
          if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
            L[i] = static_cast<int8_t>(nl);
            sumlx = slx;
            suml2 = sl2;
            ++changed;
          }
        }
      }
    }
    if (!changed) break;
  }
  for (int i = 0; i < n; ++i) L[i] = static_cast<int8_t>(L[i] + nmax);
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

// Q2_K / Q3_K: 2-bit fields of L (values 0..3) into qs: element 128 h + 32 r + l goes to
// bits 2r, 2r+1 of qs[32 h + l].
template <class T>
void pack_2bit(const T* L, uint8_t* qs) {
  for (int h = 0; h < 2; ++h) {
    for (int l = 0; l < 32; ++l) {
      const T* e = L + 128 * h + l;
      qs[32 * h + l] = static_cast<uint8_t>(e[0] | (e[32] << 2) | (e[64] << 4) | (e[96] << 6));
    }
  }
}

// Shared by Q4_K (nmax 15) and Q5_K (nmax 31): fits the 8 sub-blocks of 32, quantizes
// their scales and mins to 6 bits against the super-block's d and dmin (stored in
// `scales`, `*d`, `*dmin`), then requantizes the elements with the final scales into L.
void quantize_k_superblock(const float* x, int nmax, float rmin, int nstep, fp16_t* d,
                           fp16_t* dmin, uint8_t* scales_out, uint8_t* L) {
  constexpr int kSub = kQK_K / 32;
  float scales[kSub];
  float mins[kSub];
  float weights[32];
  uint8_t Laux[32];
  float max_scale = 0;  // scales are positive since the min is subtracted
  float max_min = 0;
  for (int j = 0; j < kSub; ++j) {
    float sum_x2 = 0;
    for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
    const float av_x = std::sqrt(sum_x2 / 32);
    for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(x[32 * j + l]);
    scales[j] = fit_scale_min(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux,
                              rmin, 0.1f, nstep);
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }

  const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
  const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
  std::memset(scales_out, 0, kKScaleBytes);
  for (int j = 0; j < kSub; ++j) {
    uint8_t ls = static_cast<uint8_t>(nearest_int(inv_scale * scales[j]));
    uint8_t lm = static_cast<uint8_t>(nearest_int(inv_min * mins[j]));
    if (ls > 63) ls = 63;
    if (lm > 63) lm = 63;
    // Packing: sub-blocks 0-3 keep 6 bits in bytes 0-3 (scale) and 4-7 (min); sub-blocks
    // 4-7 keep their low 4 bits in bytes 8-11 and their top 2 bits in the spare top bits of
    // bytes 0-7. unpack_k4_scale_min() in formats.h is the inverse.
    if (j < 4) {
      scales_out[j] = ls;
      scales_out[j + 4] = lm;
    } else {
      scales_out[j + 4] = static_cast<uint8_t>((ls & 0xF) | ((lm & 0xF) << 4));
      scales_out[j - 4] |= static_cast<uint8_t>((ls >> 4) << 6);
      scales_out[j] |= static_cast<uint8_t>((lm >> 4) << 6);
    }
  }
  *d = fp32_to_fp16(max_scale / 63.f);
  *dmin = fp32_to_fp16(max_min / 63.f);

  for (int j = 0; j < kSub; ++j) {
    uint8_t sc, m;
    unpack_k4_scale_min(j, scales_out, &sc, &m);
    const float dj = fp16_to_fp32(*d) * sc;
    if (!dj) continue;  // keep the fit's L (ggml does the same)
    const float dm = fp16_to_fp32(*dmin) * m;
    for (int ii = 0; ii < 32; ++ii) {
      const int l = nearest_int((x[32 * j + ii] + dm) / dj);
      L[32 * j + ii] = static_cast<uint8_t>(max_int(0, min_int(nmax, l)));
    }
  }
}

// Index of the codebook value nearest to x among the n ascending values `val` (the upper one
// wins unless the lower is strictly nearer; outside the range, the end value; a NaN x lands
// on the last index). ggml's best_index_int8, as a bisection in the same comparisons.
inline int nearest_level(int n, const int8_t* val, float x) {
  if (x <= val[0]) return 0;
  if (x >= val[n - 1]) return n - 1;
  int lo = 0, hi = n - 1;
  while (hi - lo > 1) {
    const int mid = (lo + hi) / 2;
    if (x < val[mid]) {
      hi = mid;
    } else {
      lo = mid;
    }
  }
  return x - val[hi - 1] < val[hi] - x ? hi - 1 : hi;
}

// IQ4_NL / IQ4_XS: fits the sub-blocks of 32 of `n` elements (one sub-block for IQ4_NL, 8 for
// IQ4_XS) to scale * kIq4Values[L] with weights x^2 (no importance matrix), as ggml's
// quantize_row_iq4_nl_impl with ntry = 7: a first scale from the element of largest
// magnitude mapped onto the codebook's -127, its least-squares refit, then 15 more start
// scales (-127 + t) / max, t = -7..7, each refitted, the best weighted fit kept. IQ4_XS
// then quantizes the 8 scales to 6 bits (ls - 32 in [-32, 31]) against d = -max_scale / 32
// and requantizes every element against its sub-block's d * (ls - 32); IQ4_NL stores the
// fit's scale as d and requantizes against the float scale. Writes d, the quants (nibble
// order as Q4_0 per 32) and, for IQ4_XS, the packed scales.
void quantize_iq4_blocks(int n, const float* x, fp16_t* d_out, uint8_t* qs, uint16_t* scales_h,
                         uint8_t* scales_l) {
  constexpr int kSub = 32;
  constexpr int kTries = 7;
  const int8_t* values = kIq4Values;
  const int nsub = n / kSub;
  float scales[kQK_K / kSub];
  float weight[kSub];
  uint8_t L[kQK_K];
  std::memset(qs, 0, static_cast<size_t>(n / 2));
  *d_out = fp32_to_fp16(0.f);
  float max_scale = 0, amax_scale = 0;
  for (int ib = 0; ib < nsub; ++ib) {
    const float* xb = x + ib * kSub;
    uint8_t* Lb = L + ib * kSub;
    for (int j = 0; j < kSub; ++j) weight[j] = xb[j] * xb[j];
    const float max = signed_absmax(xb, kSub);
    const float amax = std::fabs(max);
    if (amax < kGroupMaxEps) {
      scales[ib] = 0;
      continue;
    }
    float d = -max / values[0];
    float id = 1 / d;
    float sumqx = 0, sumq2 = 0;
    for (int j = 0; j < kSub; ++j) {
      const float al = id * xb[j];
      const int l = nearest_level(16, values, al);
      Lb[j] = static_cast<uint8_t>(l);
      const float q = values[l];
      const float w = weight[j];
      sumqx += w * q * xb[j];
      sumq2 += w * q * q;
    }
    d = sumq2 > 0 ? sumqx / sumq2 : 0.f;
    float best = d * sumqx;
    for (int t = -kTries; t <= kTries; ++t) {
      id = (t + values[0]) / max;
      sumqx = sumq2 = 0;
      for (int j = 0; j < kSub; ++j) {
        const float al = id * xb[j];
        const int l = nearest_level(16, values, al);
        const float q = values[l];
        const float w = weight[j];
        sumqx += w * q * xb[j];
        sumq2 += w * q * q;
      }
      if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
        d = sumqx / sumq2;
        best = d * sumqx;
      }
    }
    scales[ib] = d;
    const float abs_d = std::fabs(d);
    if (abs_d > amax_scale) {
      amax_scale = abs_d;
      max_scale = d;
    }
  }

  if (nsub > 1) {
    *scales_h = 0;
    const float d = -max_scale / 32;
    *d_out = fp32_to_fp16(d);
    const float id = d ? 1 / d : 0.f;
    for (int ib = 0; ib < nsub; ++ib) {
      int l = nearest_int(id * scales[ib]);
      l = max_int(-32, min_int(31, l));
      const float dl = d * l;
      const float idl = dl ? 1 / dl : 0.f;
      uint8_t* Lb = L + ib * kSub;
      const float* xb = x + ib * kSub;
      for (int j = 0; j < kSub; ++j) Lb[j] = static_cast<uint8_t>(nearest_level(16, values, idl * xb[j]));
      l += 32;
      const uint8_t l_lo = static_cast<uint8_t>(l & 0xF);
      const uint8_t l_hi = static_cast<uint8_t>(l >> 4);
      if (ib % 2 == 0) {
        scales_l[ib / 2] = l_lo;
      } else {
        scales_l[ib / 2] |= static_cast<uint8_t>(l_lo << 4);
      }
      *scales_h = static_cast<uint16_t>(*scales_h | (l_hi << (2 * ib)));
    }
  } else {
    *d_out = fp32_to_fp16(scales[0]);
    const float id = scales[0] ? 1 / scales[0] : 0;
    for (int j = 0; j < n; ++j) L[j] = static_cast<uint8_t>(nearest_level(16, values, id * x[j]));
  }

  for (int i = 0; i < n / 32; ++i) {
    for (int j = 0; j < 16; ++j) {
      qs[16 * i + j] = static_cast<uint8_t>(L[32 * i + j] | (L[32 * i + 16 + j] << 4));
    }
  }
}

}  // namespace

// ---- Quantizers ------------------------------------------------------------------------

void quantize_row_q4_0_ref(const float* x, void* vy, int64_t k) {
  BlockQ4_0* y = static_cast<BlockQ4_0*>(vy);
  const int64_t nb = k / kQK;
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    const float d = signed_absmax(x, kQK) / -8;
    const float id = d ? 1.0f / d : 0.0f;
    y[i].d = fp32_to_fp16(d);
    for (int j = 0; j < kQK / 2; ++j) {
      const float x0 = x[j] * id;
      const float x1 = x[kQK / 2 + j] * id;
      const uint8_t q0 = static_cast<uint8_t>(min_int(15, float_to_int8_like_ggml(x0 + 8.5f)));
      const uint8_t q1 = static_cast<uint8_t>(min_int(15, float_to_int8_like_ggml(x1 + 8.5f)));
      y[i].qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
  }
}

void quantize_row_q4_1_ref(const float* x, void* vy, int64_t k) {
  BlockQ4_1* y = static_cast<BlockQ4_1*>(vy);
  const int64_t nb = k / kQK;
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    float min = 3.402823466e+38f;  // FLT_MAX
    float max = -3.402823466e+38f;
    for (int j = 0; j < kQK; ++j) {
      if (x[j] < min) min = x[j];
      if (x[j] > max) max = x[j];
    }
    const float d = (max - min) / 15;
    const float id = d ? 1.0f / d : 0.0f;
    y[i].d = fp32_to_fp16(d);
    y[i].m = fp32_to_fp16(min);
    for (int j = 0; j < kQK / 2; ++j) {
      const float x0 = (x[j] - min) * id;
      const float x1 = (x[kQK / 2 + j] - min) * id;
      const uint8_t q0 = static_cast<uint8_t>(min_int(15, float_to_int8_like_ggml(x0 + 0.5f)));
      const uint8_t q1 = static_cast<uint8_t>(min_int(15, float_to_int8_like_ggml(x1 + 0.5f)));
      y[i].qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
  }
}

void quantize_row_q5_0_ref(const float* x, void* vy, int64_t k) {
  BlockQ5_0* y = static_cast<BlockQ5_0*>(vy);
  const int64_t nb = k / kQK;
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    const float d = signed_absmax(x, kQK) / -16;
    const float id = d ? 1.0f / d : 0.0f;
    y[i].d = fp32_to_fp16(d);
    uint32_t qh = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      const float x0 = x[j] * id;
      const float x1 = x[kQK / 2 + j] * id;
      const uint8_t q0 = static_cast<uint8_t>(min_int(31, float_to_int8_like_ggml(x0 + 16.5f)));
      const uint8_t q1 = static_cast<uint8_t>(min_int(31, float_to_int8_like_ggml(x1 + 16.5f)));
      y[i].qs[j] = static_cast<uint8_t>((q0 & 0x0F) | ((q1 & 0x0F) << 4));
      qh |= static_cast<uint32_t>((q0 & 0x10u) >> 4) << j;
      qh |= static_cast<uint32_t>((q1 & 0x10u) >> 4) << (j + kQK / 2);
    }
    store_qh(qh, y[i].qh);
  }
}

// Q5_1: d = (max - min) / 31, m = min; q = (uint8)((x - min) / d + 0.5) without a clamp, as
// ggml (the float-to-uint8 cast goes through int32 on x86, so the byte is the int32's low
// byte; float_to_int8_like_ggml gives that byte).
void quantize_row_q5_1_ref(const float* x, void* vy, int64_t k) {
  BlockQ5_1* y = static_cast<BlockQ5_1*>(vy);
  const int64_t nb = k / kQK;
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    float min = 3.402823466e+38f;  // FLT_MAX
    float max = -3.402823466e+38f;
    for (int j = 0; j < kQK; ++j) {
      if (x[j] < min) min = x[j];
      if (x[j] > max) max = x[j];
    }
    const float d = (max - min) / 31;
    const float id = d ? 1.0f / d : 0.0f;
    y[i].d = fp32_to_fp16(d);
    y[i].m = fp32_to_fp16(min);
    uint32_t qh = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      const float x0 = (x[j] - min) * id;
      const float x1 = (x[kQK / 2 + j] - min) * id;
      const uint8_t q0 = static_cast<uint8_t>(float_to_int8_like_ggml(x0 + 0.5f));
      const uint8_t q1 = static_cast<uint8_t>(float_to_int8_like_ggml(x1 + 0.5f));
      y[i].qs[j] = static_cast<uint8_t>((q0 & 0x0F) | ((q1 & 0x0F) << 4));
      qh |= static_cast<uint32_t>((q0 & 0x10u) >> 4) << j;
      qh |= static_cast<uint32_t>((q1 & 0x10u) >> 4) << (j + kQK / 2);
    }
    store_qh(qh, y[i].qh);
  }
}

void quantize_row_q8_0_ref(const float* x, void* vy, int64_t k) {
  BlockQ8_0* y = static_cast<BlockQ8_0*>(vy);
  const int64_t nb = k / kQK;
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    float amax = 0.0f;
    for (int j = 0; j < kQK; ++j) {
      const float a = std::fabs(x[j]);
      amax = amax > a ? amax : a;  // ggml's MAX(amax, a)
    }
    const float d = amax / 127;
    const float id = d ? 1.0f / d : 0.0f;
    y[i].d = fp32_to_fp16(d);
    for (int j = 0; j < kQK; ++j) {
      y[i].qs[j] = float_to_int8_like_ggml(std::round(x[j] * id));
    }
  }
}

void quantize_row_q4_K_ref(const float* x, void* vy, int64_t k) {
  BlockQ4_K* y = static_cast<BlockQ4_K*>(vy);
  const int64_t nb = k / kQK_K;
  uint8_t L[kQK_K];
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    quantize_k_superblock(x, 15, -1.f, 20, &y[i].d, &y[i].dmin, y[i].scales, L);
    // 4 groups of 64: byte l of group g holds element 64g+l (low) and 64g+32+l (high).
    uint8_t* q = y[i].qs;
    for (int j = 0; j < kQK_K; j += 64, q += 32) {
      for (int l = 0; l < 32; ++l) q[l] = static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 4));
    }
  }
}

void quantize_row_q5_K_ref(const float* x, void* vy, int64_t k) {
  BlockQ5_K* y = static_cast<BlockQ5_K*>(vy);
  const int64_t nb = k / kQK_K;
  uint8_t L[kQK_K];
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    quantize_k_superblock(x, 31, -0.5f, 15, &y[i].d, &y[i].dmin, y[i].scales, L);
    // Low 4 bits as Q4_K; bit 4 of element 64g+l is bit 2g of qh[l], of 64g+32+l bit 2g+1.
    uint8_t* qh = y[i].qh;
    uint8_t* ql = y[i].qs;
    std::memset(qh, 0, kQK_K / 8);
    uint8_t m1 = 1, m2 = 2;
    for (int n = 0; n < kQK_K; n += 64, ql += 32) {
      for (int j = 0; j < 32; ++j) {
        int l1 = L[n + j];
        if (l1 > 15) {
          l1 -= 16;
          qh[j] |= m1;
        }
        int l2 = L[n + j + 32];
        if (l2 > 15) {
          l2 -= 16;
          qh[j] |= m2;
        }
        ql[j] = static_cast<uint8_t>(l1 | (l2 << 4));
      }
      m1 = static_cast<uint8_t>(m1 << 2);
      m2 = static_cast<uint8_t>(m2 << 2);
    }
  }
}

void quantize_row_q6_K_ref(const float* x, void* vy, int64_t k) {
  BlockQ6_K* y = static_cast<BlockQ6_K*>(vy);
  const int64_t nb = k / kQK_K;
  constexpr int kSub = kQK_K / 16;
  int8_t L[kQK_K];
  float scales[kSub];
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    float max_scale = 0;
    float max_abs_scale = 0;
    for (int ib = 0; ib < kSub; ++ib) {
      const float scale = fit_scale_symmetric(16, 32, x + 16 * ib, L + 16 * ib);
      scales[ib] = scale;
      if (std::fabs(scale) > max_abs_scale) {
        max_abs_scale = std::fabs(scale);
        max_scale = scale;
      }
    }
    if (max_abs_scale < kGroupMaxEps) {
      std::memset(&y[i], 0, sizeof(BlockQ6_K));
      continue;
    }
    const float iscale = -128.f / max_scale;
    y[i].d = fp32_to_fp16(1 / iscale);
    for (int ib = 0; ib < kSub; ++ib) {
      // Stored as int8 (wraps like ggml's implicit conversion; values are within [-128, 127]
      // unless the data is degenerate).
      y[i].scales[ib] = static_cast<int8_t>(
          static_cast<uint8_t>(min_int(127, nearest_int(iscale * scales[ib]))));
    }
    for (int j = 0; j < kSub; ++j) {
      const float d = fp16_to_fp32(y[i].d) * y[i].scales[j];
      if (!d) continue;  // keep the fit's L (ggml does the same)
      for (int ii = 0; ii < 16; ++ii) {
        const int l = nearest_int(x[16 * j + ii] / d);
        L[16 * j + ii] = static_cast<int8_t>(max_int(-32, min_int(31, l)) + 32);
      }
    }
    // Two halves of 128: ql byte l (l<32) holds elements l (low) and 64+l (high), byte 32+l
    // holds 32+l and 96+l; qh byte l holds the top 2 bits of l, 32+l, 64+l, 96+l.
    uint8_t* ql = y[i].ql;
    uint8_t* qh = y[i].qh;
    for (int j = 0; j < kQK_K; j += 128, ql += 64, qh += 32) {
      for (int l = 0; l < 32; ++l) {
        const int q1 = L[j + l + 0], q2 = L[j + l + 32], q3 = L[j + l + 64],
                  q4 = L[j + l + 96];
        ql[l + 0] = static_cast<uint8_t>((q1 & 0xF) | ((q3 & 0xF) << 4));
        ql[l + 32] = static_cast<uint8_t>((q2 & 0xF) | ((q4 & 0xF) << 4));
        qh[l] = static_cast<uint8_t>((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) |
                                     ((q4 >> 4) << 6));
      }
    }
  }
}

void quantize_row_q8_K_ref(const float* x, void* vy, int64_t k) {
  BlockQ8_K* y = static_cast<BlockQ8_K*>(vy);
  const int64_t nb = k / kQK_K;
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    float max = 0;
    float amax = 0;
    for (int j = 0; j < kQK_K; ++j) {
      const float ax = std::fabs(x[j]);
      if (ax > amax) {
        amax = ax;
        max = x[j];
      }
    }
    if (!amax) {
      // ggml leaves bsums unwritten here; we zero the whole block so output is defined
      // (the golden generator hands ggml a zeroed buffer, so the bytes agree).
      std::memset(&y[i], 0, sizeof(BlockQ8_K));
      continue;
    }
    const float iscale = -127.f / max;
    for (int j = 0; j < kQK_K; ++j) {
      y[i].qs[j] = static_cast<int8_t>(
          static_cast<uint8_t>(min_int(127, nearest_int(iscale * x[j]))));
    }
    for (int j = 0; j < kQK_K / 16; ++j) {
      int sum = 0;
      for (int ii = 0; ii < 16; ++ii) sum += y[i].qs[j * 16 + ii];
      y[i].bsums[j] = static_cast<int16_t>(sum);
    }
    y[i].d = 1 / iscale;
  }
}

void quantize_row_q2_K_ref(const float* x, void* vy, int64_t k) {
  BlockQ2_K* y = static_cast<BlockQ2_K*>(vy);
  const int64_t nb = k / kQK_K;
  constexpr int kSub = kQK_K / 16;
  uint8_t L[kQK_K];
  uint8_t Laux[16];
  float weights[16];
  float scales[kSub];
  float mins[kSub];
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    float max_scale = 0;  // scales are positive since the min is subtracted
    float max_min = 0;
    for (int j = 0; j < kSub; ++j) {
      for (int l = 0; l < 16; ++l) weights[l] = std::fabs(x[16 * j + l]);
      scales[j] = fit_scale_min(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux, -0.5f,
                                0.1f, 15, /*mad=*/true);
      if (scales[j] > max_scale) max_scale = scales[j];
      if (mins[j] > max_min) max_min = mins[j];
    }
    // Scales and mins to 4 bits against the super-block's d = max / 15, dmin = max_min / 15
    // (stored as the int's low byte, as ggml's implicit conversion).
    if (max_scale > 0) {
      const float iscale = 15.f / max_scale;
      for (int j = 0; j < kSub; ++j)
        y[i].scales[j] = static_cast<uint8_t>(nearest_int(iscale * scales[j]));
      y[i].d = fp32_to_fp16(max_scale / 15.f);
    } else {
      for (int j = 0; j < kSub; ++j) y[i].scales[j] = 0;
      y[i].d = fp32_to_fp16(0.f);
    }
    if (max_min > 0) {
      const float iscale = 15.f / max_min;
      for (int j = 0; j < kSub; ++j)
        // Shifted as unsigned (a negative int may not be shifted); the low byte is ggml's.
        y[i].scales[j] = static_cast<uint8_t>(
            y[i].scales[j] | (static_cast<unsigned>(nearest_int(iscale * mins[j])) << 4));
      y[i].dmin = fp32_to_fp16(max_min / 15.f);
    } else {
      y[i].dmin = fp32_to_fp16(0.f);
    }
    // Requantize with the stored scales and mins.
    for (int j = 0; j < kSub; ++j) {
      const float d = fp16_to_fp32(y[i].d) * (y[i].scales[j] & 0xF);
      if (!d) continue;  // keep the fit's L (ggml does the same)
      const float dm = fp16_to_fp32(y[i].dmin) * (y[i].scales[j] >> 4);
      for (int ii = 0; ii < 16; ++ii) {
        const int l = nearest_int((x[16 * j + ii] + dm) / d);
        L[16 * j + ii] = static_cast<uint8_t>(max_int(0, min_int(3, l)));
      }
    }
    pack_2bit(L, y[i].qs);
  }
}

void quantize_row_q3_K_ref(const float* x, void* vy, int64_t k) {
  BlockQ3_K* y = static_cast<BlockQ3_K*>(vy);
  const int64_t nb = k / kQK_K;
  constexpr int kSub = kQK_K / 16;
  int8_t L[kQK_K];
  float scales[kSub];
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    float max_scale = 0;
    float amax = 0;
    for (int j = 0; j < kSub; ++j) {
      scales[j] = fit_scale_q3(16, 4, x + 16 * j, L + 16 * j);
      const float a = std::fabs(scales[j]);
      if (a > amax) {
        amax = a;
        max_scale = scales[j];
      }
    }
    std::memset(y[i].scales, 0, kKScaleBytes);
    if (max_scale) {
      // 6-bit scales, stored + 32, against d = -max_scale / 32; packing as unpack_k3_scales.
      const float iscale = -32.f / max_scale;
      for (int j = 0; j < kSub; ++j) {
        // ggml keeps nearest_int's result in an int8_t before clamping.
        int l = static_cast<int8_t>(static_cast<uint8_t>(nearest_int(iscale * scales[j])));
        l = max_int(-32, min_int(31, l)) + 32;
        if (j < 8) {
          y[i].scales[j] = static_cast<uint8_t>(l & 0xF);
        } else {
          y[i].scales[j - 8] = static_cast<uint8_t>(y[i].scales[j - 8] | ((l & 0xF) << 4));
        }
        y[i].scales[8 + j % 4] =
            static_cast<uint8_t>(y[i].scales[8 + j % 4] | ((l >> 4) << (2 * (j / 4))));
      }
      y[i].d = fp32_to_fp16(1 / iscale);
    } else {
      y[i].d = fp32_to_fp16(0.f);
    }
    uint8_t stored[kSub];
    unpack_k3_scales(y[i].scales, stored);
    for (int j = 0; j < kSub; ++j) {
      const float d = fp16_to_fp32(y[i].d) * (stored[j] - 32);
      if (!d) continue;  // keep the fit's L (ggml does the same)
      for (int ii = 0; ii < 16; ++ii) {
        const int l = nearest_int(x[16 * j + ii] / d);
        L[16 * j + ii] = static_cast<int8_t>(max_int(-4, min_int(3, l)) + 4);
      }
    }
    // The third bit of element e to bit e / 32 of hmask[e % 32]; the low 2 bits to qs.
    std::memset(y[i].hmask, 0, kQK_K / 8);
    for (int e = 0; e < kQK_K; ++e) {
      if (L[e] > 3) {
        y[i].hmask[e % 32] = static_cast<uint8_t>(y[i].hmask[e % 32] | (1 << (e / 32)));
        L[e] = static_cast<int8_t>(L[e] - 4);
      }
    }
    pack_2bit(L, y[i].qs);
  }
}

void quantize_row_iq4_nl_ref(const float* x, void* vy, int64_t k) {
  BlockIQ4_NL* y = static_cast<BlockIQ4_NL*>(vy);
  const int64_t nb = k / kQK;
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    quantize_iq4_blocks(kQK, x, &y[i].d, y[i].qs, nullptr, nullptr);
  }
}

void quantize_row_iq4_xs_ref(const float* x, void* vy, int64_t k) {
  BlockIQ4_XS* y = static_cast<BlockIQ4_XS*>(vy);
  const int64_t nb = k / kQK_K;
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    quantize_iq4_blocks(kQK_K, x, &y[i].d, y[i].qs, &y[i].scales_h, y[i].scales_l);
  }
}

// ---- Dequantizers (gguf-py's float32 operation order) ---------------------------------------

void dequantize_row_q4_0_ref(const void* vx, float* y, int64_t k) {
  const BlockQ4_0* x = static_cast<const BlockQ4_0*>(vx);
  const int64_t nb = k / kQK;
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = fp16_to_fp32(x[i].d);
    for (int j = 0; j < kQK / 2; ++j) {
      y[j] = d * static_cast<float>((x[i].qs[j] & 0x0F) - 8);
      y[j + kQK / 2] = d * static_cast<float>((x[i].qs[j] >> 4) - 8);
    }
  }
}

void dequantize_row_q4_1_ref(const void* vx, float* y, int64_t k) {
  const BlockQ4_1* x = static_cast<const BlockQ4_1*>(vx);
  const int64_t nb = k / kQK;
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = fp16_to_fp32(x[i].d);
    const float m = fp16_to_fp32(x[i].m);
    for (int j = 0; j < kQK / 2; ++j) {
      y[j] = d * static_cast<float>(x[i].qs[j] & 0x0F) + m;
      y[j + kQK / 2] = d * static_cast<float>(x[i].qs[j] >> 4) + m;
    }
  }
}

void dequantize_row_q5_0_ref(const void* vx, float* y, int64_t k) {
  const BlockQ5_0* x = static_cast<const BlockQ5_0*>(vx);
  const int64_t nb = k / kQK;
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = fp16_to_fp32(x[i].d);
    const uint32_t qh = load_qh(x[i].qh);
    for (int j = 0; j < kQK / 2; ++j) {
      const int h0 = static_cast<int>((qh >> j) & 1u) << 4;
      const int h1 = static_cast<int>((qh >> (j + kQK / 2)) & 1u) << 4;
      y[j] = d * static_cast<float>(((x[i].qs[j] & 0x0F) | h0) - 16);
      y[j + kQK / 2] = d * static_cast<float>(((x[i].qs[j] >> 4) | h1) - 16);
    }
  }
}

void dequantize_row_q5_1_ref(const void* vx, float* y, int64_t k) {
  const BlockQ5_1* x = static_cast<const BlockQ5_1*>(vx);
  const int64_t nb = k / kQK;
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = fp16_to_fp32(x[i].d);
    const float m = fp16_to_fp32(x[i].m);
    const uint32_t qh = load_qh(x[i].qh);
    for (int j = 0; j < kQK / 2; ++j) {
      const int h0 = static_cast<int>((qh >> j) & 1u) << 4;
      const int h1 = static_cast<int>((qh >> (j + kQK / 2)) & 1u) << 4;
      y[j] = d * static_cast<float>((x[i].qs[j] & 0x0F) | h0) + m;
      y[j + kQK / 2] = d * static_cast<float>((x[i].qs[j] >> 4) | h1) + m;
    }
  }
}

void dequantize_row_q8_0_ref(const void* vx, float* y, int64_t k) {
  const BlockQ8_0* x = static_cast<const BlockQ8_0*>(vx);
  const int64_t nb = k / kQK;
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = fp16_to_fp32(x[i].d);
    for (int j = 0; j < kQK; ++j) y[j] = static_cast<float>(x[i].qs[j]) * d;
  }
}

void dequantize_row_q4_K_ref(const void* vx, float* y, int64_t k) {
  const BlockQ4_K* x = static_cast<const BlockQ4_K*>(vx);
  const int64_t nb = k / kQK_K;
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    const float dmin = fp16_to_fp32(x[i].dmin);
    const uint8_t* q = x[i].qs;
    for (int g = 0; g < 4; ++g, q += 32) {  // 4 groups of 64 = 2 sub-blocks of 32
      for (int half = 0; half < 2; ++half) {
        uint8_t sc, m;
        unpack_k4_scale_min(2 * g + half, x[i].scales, &sc, &m);
        const float dl = d * static_cast<float>(sc);
        const float ml = dmin * static_cast<float>(m);
        for (int l = 0; l < 32; ++l) {
          const int v = half ? (q[l] >> 4) : (q[l] & 0xF);
          *y++ = dl * static_cast<float>(v) - ml;
        }
      }
    }
  }
}

void dequantize_row_q5_K_ref(const void* vx, float* y, int64_t k) {
  const BlockQ5_K* x = static_cast<const BlockQ5_K*>(vx);
  const int64_t nb = k / kQK_K;
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    const float dmin = fp16_to_fp32(x[i].dmin);
    const uint8_t* ql = x[i].qs;
    const uint8_t* qh = x[i].qh;
    for (int g = 0; g < 4; ++g, ql += 32) {
      for (int half = 0; half < 2; ++half) {
        const int sub = 2 * g + half;
        uint8_t sc, m;
        unpack_k4_scale_min(sub, x[i].scales, &sc, &m);
        const float dl = d * static_cast<float>(sc);
        const float ml = dmin * static_cast<float>(m);
        for (int l = 0; l < 32; ++l) {
          const int lo = half ? (ql[l] >> 4) : (ql[l] & 0xF);
          const int hi = (qh[l] >> sub) & 1;
          *y++ = dl * static_cast<float>(lo | (hi << 4)) - ml;
        }
      }
    }
  }
}

void dequantize_row_q6_K_ref(const void* vx, float* y, int64_t k) {
  const BlockQ6_K* x = static_cast<const BlockQ6_K*>(vx);
  const int64_t nb = k / kQK_K;
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    const uint8_t* ql = x[i].ql;
    const uint8_t* qh = x[i].qh;
    const int8_t* sc = x[i].scales;
    for (int n = 0; n < kQK_K; n += 128, ql += 64, qh += 32, sc += 8, y += 128) {
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l + 0] = (d * static_cast<float>(sc[is + 0])) * static_cast<float>(q1);
        y[l + 32] = (d * static_cast<float>(sc[is + 2])) * static_cast<float>(q2);
        y[l + 64] = (d * static_cast<float>(sc[is + 4])) * static_cast<float>(q3);
        y[l + 96] = (d * static_cast<float>(sc[is + 6])) * static_cast<float>(q4);
      }
    }
  }
}

void dequantize_row_q8_K_ref(const void* vx, float* y, int64_t k) {
  const BlockQ8_K* x = static_cast<const BlockQ8_K*>(vx);
  const int64_t nb = k / kQK_K;
  for (int64_t i = 0; i < nb; ++i, y += kQK_K) {
    for (int j = 0; j < kQK_K; ++j) y[j] = x[i].d * static_cast<float>(x[i].qs[j]);
  }
}

// Q2_K: (d * sc) * q - dmin * m per sub-block of 16.
void dequantize_row_q2_K_ref(const void* vx, float* y, int64_t k) {
  const BlockQ2_K* x = static_cast<const BlockQ2_K*>(vx);
  const int64_t nb = k / kQK_K;
  for (int64_t i = 0; i < nb; ++i, y += kQK_K) {
    const float d = fp16_to_fp32(x[i].d);
    const float dmin = fp16_to_fp32(x[i].dmin);
    for (int e = 0; e < kQK_K; ++e) {
      const int s = e / 16;
      const float dl = d * static_cast<float>(x[i].scales[s] & 0xF);
      const float ml = dmin * static_cast<float>(x[i].scales[s] >> 4);
      const int q = (x[i].qs[32 * (e / 128) + e % 32] >> (2 * ((e / 32) % 4))) & 3;
      y[e] = dl * static_cast<float>(q) - ml;
    }
  }
}

// Q3_K: (d * (sc - 32)) * q per sub-block of 16.
void dequantize_row_q3_K_ref(const void* vx, float* y, int64_t k) {
  const BlockQ3_K* x = static_cast<const BlockQ3_K*>(vx);
  const int64_t nb = k / kQK_K;
  for (int64_t i = 0; i < nb; ++i, y += kQK_K) {
    const float d = fp16_to_fp32(x[i].d);
    uint8_t sc[16];
    unpack_k3_scales(x[i].scales, sc);
    for (int e = 0; e < kQK_K; ++e) {
      const float dl = d * static_cast<float>(sc[e / 16] - 32);
      const int low = (x[i].qs[32 * (e / 128) + e % 32] >> (2 * ((e / 32) % 4))) & 3;
      const int high = (x[i].hmask[e % 32] >> (e / 32)) & 1;
      y[e] = dl * static_cast<float>(low - (high ? 0 : 4));
    }
  }
}

// IQ4_NL: d * V[q]; IQ4_XS: (d * (ls - 32)) * V[q] (gguf-py forms the sub-block scale first).
void dequantize_row_iq4_nl_ref(const void* vx, float* y, int64_t k) {
  const BlockIQ4_NL* x = static_cast<const BlockIQ4_NL*>(vx);
  const int64_t nb = k / kQK;
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = fp16_to_fp32(x[i].d);
    for (int j = 0; j < kQK / 2; ++j) {
      y[j] = d * static_cast<float>(kIq4Values[x[i].qs[j] & 0xF]);
      y[j + kQK / 2] = d * static_cast<float>(kIq4Values[x[i].qs[j] >> 4]);
    }
  }
}

void dequantize_row_iq4_xs_ref(const void* vx, float* y, int64_t k) {
  const BlockIQ4_XS* x = static_cast<const BlockIQ4_XS*>(vx);
  const int64_t nb = k / kQK_K;
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    for (int ib = 0; ib < kQK_K / 32; ++ib, y += 32) {
      const float dl = d * static_cast<float>(iq4_xs_scale(ib, x[i].scales_l, x[i].scales_h) - 32);
      const uint8_t* qs = x[i].qs + 16 * ib;
      for (int j = 0; j < 16; ++j) {
        y[j] = dl * static_cast<float>(kIq4Values[qs[j] & 0xF]);
        y[j + 16] = dl * static_cast<float>(kIq4Values[qs[j] >> 4]);
      }
    }
  }
}

}  // namespace fk
