// dispatch_matmul: output = input x W^T straight from W's blocks (fused dequantize).
//
// The one entry point the runtime and the harness use. It validates shapes, picks a
// registry entry (the best this CPU runs, or the one named in MatmulOptions or by the
// environment variables FK_VARIANT / FK_PATH), packs the activations once per call with the
// entry's ActPacker (the int8 path's quantization; the float panel rows' panels), and splits the n output columns over the caller's thread pool at
// multiples of the entry's n_tile. Results are bit-identical for any thread count.
#ifndef KERNELS_MATMUL_H_
#define KERNELS_MATMUL_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "kernels/registry.h"
#include "kernels/thread_pool.h"
#include "kernels/weight_format.h"

namespace fk {

struct MatmulOptions {
  // Unset: FK_VARIANT / FK_PATH from the environment if set, else the best runnable
  // variant and the default path (int8 for quantized formats, f32 for F32 weights).
  // A variant that has no kernel for the (format, path) uses the variant it extends:
  // avx512_vnni only adds int8 kernels, so its f32 path is avx512's.
  std::optional<Variant> variant;
  std::optional<Path> path;
  ThreadPool* pool = nullptr;  // nullptr: run on the calling thread
};

// Reusable per-caller buffers (the int8 path's quantized activations, used from a 64-byte
// aligned offset), so repeated calls do not allocate once warmed up. Not shared between
// concurrent calls.
struct MatmulScratch {
  std::vector<uint8_t> act;
  std::vector<std::vector<uint8_t>> more_act;  // dispatch_matmuls: further packers' rows
};

// Picks the registry entry dispatch would use for `format` under `options` for a batch of m
// rows, or an error naming the variant/path and what the CPU lacks (or that no such kernel
// exists).
absl::StatusOr<const KernelEntry*> select_kernel(Format format,
                                                 const MatmulOptions& options = {},
                                                 int64_t m = 1);

// What dispatch runs for one weight format under fixed options, resolved once (FK_VARIANT /
// FK_PATH read and the CPU checked at Resolve): the general kernel of the chosen variant and
// path, and the rows of the same variant and path that the registry marks for larger batches
// (MIN_M). Callers that run the same weights many times (the runtime) resolve once per weight.
class KernelChoice {
 public:
  static absl::StatusOr<KernelChoice> Resolve(Format format, const MatmulOptions& options = {});
  // The row for a batch of m: the largest min_m <= m.
  const KernelEntry& ForBatch(int64_t m) const;
  const KernelEntry& general() const { return *rows_.front(); }
  absl::Span<const KernelEntry* const> rows() const { return rows_; }
  // Empty, unless no variant was named and the choice fell to the scalar reference while the
  // registry has a faster kernel for the format and path that this CPU cannot run (the f16
  // path without AVX-512 FP16): then one line saying so, naming that kernel and the missing
  // features, for tools to warn with (the reference is correct but many times slower).
  const std::string& slow_note() const { return slow_note_; }

 private:
  std::vector<const KernelEntry*> rows_;  // ascending min_m; rows_[0]->min_m == 1
  std::string slow_note_;
};

// input: m x k row-major f32. weights: n rows x k. Returns m x n.
absl::StatusOr<std::vector<float>> dispatch_matmul(const float* input,
                                                   const WeightFormat& weights, int64_t m,
                                                   int64_t k, int64_t n,
                                                   const MatmulOptions& options = {});

// Same, into the caller's buffer of output_size floats (>= m * n); no allocation once
// `scratch` is warm (scratch may be nullptr: a temporary is used).
absl::Status dispatch_matmul(const float* input, const WeightFormat& weights, int64_t m,
                             int64_t k, int64_t n, float* output, int64_t output_size,
                             const MatmulOptions& options = {},
                             MatmulScratch* scratch = nullptr);

// Same, with kernels resolved beforehand (no environment or CPU lookups per call).
absl::Status dispatch_matmul(const KernelChoice& choice, const float* input,
                             const WeightFormat& weights, int64_t m, float* output,
                             int64_t output_size, ThreadPool* pool = nullptr,
                             MatmulScratch* scratch = nullptr);

// One matmul of a group that reads the same input (dispatch_matmuls).
struct MatmulJob {
  const KernelChoice* choice = nullptr;  // resolved for weights->format()
  const WeightFormat* weights = nullptr;
  float* output = nullptr;  // m x weights->rows()
  int64_t output_size = 0;
};

// Work on a finished column range of every job's output (dispatch_matmuls with shared
// columns): fn(ctx, n_begin, n_end) for all m rows, called once per range, on whichever
// thread computed it.
struct MatmulEpilogue {
  void (*fn)(void* ctx, int64_t n_begin, int64_t n_end) = nullptr;
  void* ctx = nullptr;
};

// Several matmuls of one m x k input (a layer's Q, K and V; gate and up) as one parallel
// region: the activations are quantized once per distinct activation packer instead of once
// per matmul, and the column ranges of all jobs are handed out together (one thread-pool
// synchronisation instead of one per matmul). Outputs are bit-identical to separate
// dispatch_matmul calls. At most kMaxMatmulJobs jobs.
// With an epilogue every job must have the same number of rows n: each task computes the same
// column range of every job, then runs the epilogue on it.
constexpr int kMaxMatmulJobs = 4;
absl::Status dispatch_matmuls(absl::Span<const MatmulJob> jobs, const float* input, int64_t m,
                              ThreadPool* pool = nullptr, MatmulScratch* scratch = nullptr,
                              const MatmulEpilogue* epilogue = nullptr);

// Packs the m x k input with packer p as dispatch does, into buf (grown as needed; every
// row / group 64-byte aligned, row_bytes apart, in parallel on the pool if one is given);
// returns the packed rows and sets *row_bytes (MatmulArgs act / act_row_bytes).
const uint8_t* pack_activations(const ActPacker& p, const float* input, int64_t m, int64_t k,
                                ThreadPool* pool, std::vector<uint8_t>* buf,
                                int64_t* row_bytes);

// Software prefetch of the weight rows by the batch-1 kernels (MatmulArgs::
// software_prefetch), by CPU vendor, path and weight row length, as measured (README,
// "Software prefetch on Zen 4"): off for AMD's int8 path on rows shorter than
// kShortRowBytes (on Zen 4 those kernels read short rows from DRAM up to 1.4x faster with
// the hardware prefetchers alone, and rows of 4.7 KB and more up to 1.35x slower), on
// everywhere else (on the Intel Xeons Q2_K took up to 2x without it; on Zen 4 Q8_0's f32
// path 1.3x).
constexpr int64_t kShortRowBytes = 4096;
bool software_prefetch_default(const std::string& cpu_vendor, Path path, int64_t row_bytes);
// What dispatch sets for a kernel of `path` on weights of row_bytes per row: FK_PREFETCH
// from the environment ("1" on, "0" off; read once, any other value is reported on stderr
// and ignored), else software_prefetch_default(cpu_vendor(), path, row_bytes).
// set_software_prefetch_for_testing overrides both (std::nullopt: back to them).
bool software_prefetch_for(Path path, int64_t row_bytes);
void set_software_prefetch_for_testing(std::optional<bool> on);

// Runs one specific registry entry (tests, benchmarks, the sweep). Same checks as above,
// plus: the entry's format must match the weights and the CPU must run it.
absl::Status run_kernel(const KernelEntry& entry, const float* input,
                        const WeightFormat& weights, int64_t m, float* output,
                        int64_t output_size, ThreadPool* pool = nullptr,
                        MatmulScratch* scratch = nullptr);

// F32 weights: output = input x W^T (the seed's matmul_transposed), through dispatch.
absl::StatusOr<std::vector<float>> matmul_transposed(const float* input, const float* w,
                                                     int64_t m, int64_t k, int64_t n,
                                                     const MatmulOptions& options = {});

}  // namespace fk

#endif  // KERNELS_MATMUL_H_
