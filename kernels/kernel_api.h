// The contract between dispatch and the kernel variants.
//
// A kernel computes output[i][j] = sum_k input[i][k] * W[j][k] for all i in [0, m) and
// j in [n_begin, n_end), reading W's rows straight from their blocks (fused dequantize).
// Variant files (kernels/variant_<name>.cc) define kernels with this signature; the
// registry (kernels/registry.inc) lists them. Nothing here knows about files or models.
#ifndef KERNELS_KERNEL_API_H_
#define KERNELS_KERNEL_API_H_

#include <cstdint>

#include "kernels/formats.h"

namespace fk {

struct MatmulArgs {
  int64_t m = 0;  // activation rows (batch)
  int64_t k = 0;  // reduction length, a multiple of the weight format's block_elems
  int64_t n = 0;  // weight rows = output columns

  const float* input = nullptr;  // m x k, row i at input + i * k (any alignment)

  const uint8_t* weights = nullptr;  // n rows of row_bytes each (GGUF layout)
  int64_t row_bytes = 0;

  // int8 path only: the m activation rows quantized once per call by the entry's ActPacker
  // (below), act_row_bytes each (Q8_K values for K-quants, Q8_0 for the legacy formats).
  // nullptr on the f32 path.
  const uint8_t* act = nullptr;
  int64_t act_row_bytes = 0;

  float* output = nullptr;  // m x n, row i at output + i * n
};

// How an int8-path kernel wants its activations. Dispatch packs each of the m activation
// rows once per call with pack_row into row_bytes(k) bytes (rows 64-byte aligned, MatmulArgs
// act / act_row_bytes point at them). Every packer holds exactly the values of its `format`'s
// reference quantizer (Q8_0 or Q8_K, formats.h): the same scales and quants, possibly
// reordered and with precomputed sums, so results do not depend on which packer ran.
// The reference packers (kernels/registry.cc) are the reference Q8_0 / Q8_K blocks.
struct ActPacker {
  const char* name;  // e.g. "q8_0_ref", "q8_k_nibble__avx512"
  Format format;     // the quantization whose values the layout holds: kQ8_0 or kQ8_K
  // Bytes of one packed row of k elements (k a multiple of the format's block).
  int64_t (*row_bytes)(int64_t k);
  // Quantizes x[0..k) into out[0..row_bytes(k)); out is 64-byte aligned.
  void (*pack_row)(const float* x, int64_t k, uint8_t* out);
  // The packed row's values d * q in element order (tests check them against the reference
  // quantizer's, bit for bit).
  void (*unpack_row)(const uint8_t* packed, int64_t k, float* out);
};

// Computes output columns [n_begin, n_end) for every one of the m rows.
// Dispatch guarantees n_begin is a multiple of the entry's n_tile, so a kernel may
// process rows in tiles of n_tile and a tail at the end; the bits of each output must not
// depend on how [0, n) was split among calls (thread-count determinism).
using MatmulKernelFn = void (*)(const MatmulArgs& args, int64_t n_begin, int64_t n_end);

enum class Variant : uint8_t { kScalar, kAvx2, kAvx512, kAvx512Vnni };
enum class Path : uint8_t { kF32, kInt8 };

// CPU features a kernel needs (bitmask), detected once at run time (kernels/cpu_features.h).
enum CpuFeature : uint32_t {
  kCpuNone = 0,
  kCpuAvx2 = 1u << 0,
  kCpuFma = 1u << 1,
  kCpuF16c = 1u << 2,
  kCpuAvx512F = 1u << 3,
  kCpuAvx512BW = 1u << 4,
  kCpuAvx512DQ = 1u << 5,
  kCpuAvx512VL = 1u << 6,
  kCpuAvx512Vnni = 1u << 7,
};
constexpr uint32_t kFeaturesAvx2 = kCpuAvx2 | kCpuFma | kCpuF16c;
constexpr uint32_t kFeaturesAvx512 =
    kFeaturesAvx2 | kCpuAvx512F | kCpuAvx512BW | kCpuAvx512DQ | kCpuAvx512VL;
constexpr uint32_t kFeaturesAvx512Vnni = kFeaturesAvx512 | kCpuAvx512Vnni;

}  // namespace fk

#endif  // KERNELS_KERNEL_API_H_
