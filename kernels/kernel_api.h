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

  // The m activation rows packed once per call by the entry's ActPacker (below): int8 path:
  // one row per act_row_bytes (Q8_K values for K-quants, Q8_0 for the legacy formats); a
  // packer of row groups (ActPacker::group_rows, the f32 panel rows'): its own layout,
  // act_row_bytes per group. nullptr for rows without a packer.
  const uint8_t* act = nullptr;
  int64_t act_row_bytes = 0;

  float* output = nullptr;  // m x n, row i at output + i * n

  // Set by the SIMD tiling driver (kernels/simd/driver-inl.h), not by callers: a tile that
  // starts at weight row j0 covers rows j0, j0 + row_step, j0 + 2 row_step, ... and writes
  // their output columns. Batch 1 uses it to read a range of rows as kGemvNR sequential
  // streams instead of kGemvNR adjacent rows at a time.
  int64_t row_step = 1;

  // Whether the batch-1 SIMD kernels issue software prefetches of the weight rows ahead of
  // the tile they compute (prefetch_ahead, kernels/simd/common-inl.h). Set by dispatch per
  // kernel and weights (software_prefetch_for, kernels/matmul.h); results do not depend
  // on it.
  bool software_prefetch = true;
};

// How a kernel wants its activations. Dispatch packs the m activation rows once per call,
// for all threads, into units 64-byte aligned that MatmulArgs act / act_row_bytes point at.
//   * group_rows == 1 (every int8-path packer): pack_row quantizes each row alone into
//     row_bytes(k) bytes. Every such packer holds exactly the values of its `format`'s
//     reference quantizer (Q8_0 or Q8_K, formats.h): the same scales and quants, possibly
//     reordered and with precomputed sums, so results do not depend on which packer ran.
//     The reference packers (kernels/registry.cc) are the reference Q8_0 / Q8_K blocks.
//   * group_rows > 1 (format kF32: the f32 panel rows): the packer lays out all m rows as
//     ceil(m / group_rows) groups of row_bytes(k) bytes in a layout of its own (blocks of
//     k of every group side by side, say); pack_group writes group g's part of it (dispatch
//     runs the groups in parallel). The values are the input floats, unchanged.
struct ActPacker {
  const char* name;  // e.g. "q8_0_ref", "q8_k_nibble__avx512", "f32_panel__avx512"
  Format format;     // the values the layout holds: kQ8_0 or kQ8_K, or kF32 (exact copies)
  // Bytes of one packed row (group_rows > 1: one unit) of k elements (k a multiple of the
  // format's block).
  int64_t (*row_bytes)(int64_t k);
  // group_rows == 1: quantizes x[0..k) into out[0..row_bytes(k)); out is 64-byte aligned.
  void (*pack_row)(const float* x, int64_t k, uint8_t* out);
  // group_rows == 1: the packed row's values d * q in element order (tests check them
  // against the reference quantizer's, bit for bit).
  void (*unpack_row)(const uint8_t* packed, int64_t k, float* out);
  int group_rows = 1;
  // group_rows > 1: writes rows [g * group_rows, min(m, (g + 1) * group_rows)) of the m x k
  // input x into their places in `out` (the packed m rows, 64-byte aligned, row_bytes(k)
  // bytes per group); unpack_group reads them back (group_rows x k floats, zero past m).
  void (*pack_group)(const float* x, int64_t m, int64_t k, int64_t g, uint8_t* out) = nullptr;
  void (*unpack_group)(const uint8_t* packed, int64_t m, int64_t k, int64_t g,
                       float* out) = nullptr;
};

// Computes output columns [n_begin, n_end) for every one of the m rows.
// Dispatch guarantees n_begin is a multiple of the entry's n_tile, so a kernel may
// process rows in tiles of n_tile and a tail at the end; the bits of each output must not
// depend on how [0, n) was split among calls (thread-count determinism).
using MatmulKernelFn = void (*)(const MatmulArgs& args, int64_t n_begin, int64_t n_end);

// kAmx: Intel AMX tiles (AMX-TILE + AMX-INT8) for batched int8 GEMM; it has only batch rows
// (MIN_M > 1) and extends avx512_vnni, whose general rows it runs (registry.h: base_variant).
enum class Variant : uint8_t { kScalar, kAvx2, kAvx512, kAvx512Vnni, kAmx };
// Whose bits an amx row gives (kernels/avx512/int8_amx.cc asserts it per codec, AmxTest
// checks it): the avx512_vnni panel row's, except where that row sums the sub-blocks' dots
// in float (Q4_K, Q5_K, Q6_K, IQ4_XS); there the avx512 panel row's exact integer totals.
constexpr Variant amx_bits_of(Format f) {
  return f == Format::kQ4_K || f == Format::kQ5_K || f == Format::kQ6_K || f == Format::kIQ4_XS
             ? Variant::kAvx512
             : Variant::kAvx512Vnni;
}
// kF32: f32 activations as they are; kInt8: activations quantized to Q8_0 / Q8_K, integer
// dots; kBf16 (BF16 weights): activations rounded to bf16 (nearest-even), products of two
// bf16 values (exact in f32) summed in f32 (AVX-512 BF16's vdpbf16ps); kF16 (F16 weights):
// activations scaled per row by a power of two and rounded to fp16, products summed in fp16
// (AVX-512 FP16's FMAs) in short chains that are then added in f32 (the chains below).
enum class Path : uint8_t { kF32, kInt8, kBf16, kF16 };
constexpr Path kAllPaths[] = {Path::kF32, Path::kInt8, Path::kBf16, Path::kF16};

// The f16 path's arithmetic, which every kernel of it (the scalar reference included) follows
// exactly, so that its rounding is the same whatever the ISA: k is taken in steps of
// kF16PathLanes elements, element s * kF16PathLanes + l going to lane l (elements past k: 0).
// Each lane sums w * x over kF16PathChainSteps consecutive steps in fp16, one rounding per
// fused multiply-add (nearest-even, from +0); then its sum goes to f32, lanes l and
// l + kF16PathLanes / 2 into the f32 lane l (the low half first). The kF16PathLanes / 2 f32
// lanes are summed at the end and multiplied by the row's 2^-e. An output that comes out
// non-finite is computed again on the f32 path (from the input floats), so fp16's range
// never turns a finite result into inf or NaN.
constexpr int kF16PathLanes = 32;
constexpr int kF16PathChainSteps = 16;
// The packed activation rows: f16_act_pack_row_ref (kernels/formats.h).

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
  kCpuAvx512Bf16 = 1u << 8,  // vdpbf16ps, vcvtne2ps2bf16
  kCpuAvx512Fp16 = 1u << 9,  // fp16 arithmetic (vfmadd231ph, vcvtph2psx)
  // AMX: cpuid, XCR0 bits 17/18 (tile state saved by the OS) and the Linux permission
  // (arch_prctl ARCH_REQ_XCOMP_PERM) all say yes, checked once per process.
  kCpuAmxTile = 1u << 10,
  kCpuAmxInt8 = 1u << 11,
};
constexpr uint32_t kFeaturesAvx2 = kCpuAvx2 | kCpuFma | kCpuF16c;
constexpr uint32_t kFeaturesAvx512 =
    kFeaturesAvx2 | kCpuAvx512F | kCpuAvx512BW | kCpuAvx512DQ | kCpuAvx512VL;
constexpr uint32_t kFeaturesAvx512Vnni = kFeaturesAvx512 | kCpuAvx512Vnni;
constexpr uint32_t kFeaturesAvx512Bf16 = kFeaturesAvx512 | kCpuAvx512Bf16;
constexpr uint32_t kFeaturesAvx512Fp16 = kFeaturesAvx512 | kCpuAvx512Fp16;
// The amx rows scale the tiles' int32 dots with the avx512_vnni panel kernels' steps.
constexpr uint32_t kFeaturesAmx = kFeaturesAvx512Vnni | kCpuAmxTile | kCpuAmxInt8;

}  // namespace fk

#endif  // KERNELS_KERNEL_API_H_
