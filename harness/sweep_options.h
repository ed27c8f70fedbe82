// The sweep's flags and its grid: which cases a run measures, and in what order.
//
// Everything here is pure (no timing, no I/O) so the grid rule can be tested.
#ifndef HARNESS_SWEEP_OPTIONS_H_
#define HARNESS_SWEEP_OPTIONS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "kernels/registry.h"

namespace fk {

struct Shape {
  int64_t n = 0;  // weight rows = output columns
  int64_t k = 0;  // reduction length
};

struct SweepOptions {
  std::vector<Format> formats;
  std::vector<Variant> variants;
  std::vector<Path> paths;
  std::vector<Shape> shapes;
  std::vector<int64_t> batches;
  std::vector<int> threads;
  int reps = 5;            // timed repetitions, at least
  double min_time = 0.05;  // ... and at least this many seconds of timed calls
  int passes = 1;          // batch-1 cases measured in this many passes, the fastest kept
  // After the cases: rounds of short batch-1 bursts, every format's fastest kernel in turn
  // per shape and thread count, each format's GB/s as a share of the round's best (0 = off;
  // default 12, --quick 0).
  int share_rounds = 12;
  int warmup = 1;          // untimed calls first, at least
  double warmup_time = 0.1;  // ... and at least this many seconds of them
  bool quick = false;
  bool full = false;       // no grid trimming (every variant at every batch and shape)
  std::string out;         // output directory ("" = reports/<date>-<cpu>)
  // The ggml peer: "auto" (the cache's mulmat_bench, built if missing; the default),
  // "cached" (the cache's, only if built; --quick's default), "off", or a mulmat_bench path.
  std::string ggml;
  bool plot = true;
  int64_t cold_mb = 0;     // 0 = auto (4 x last-level cache, at least 128 MiB)
  int check_cols = 128;    // output columns checked against the float64 reference
  int64_t dram_mb = 1024;  // buffer of the DRAM bandwidth probe
  double settle_s = 60;    // longest wait for a quiet machine before a start/end DRAM probe
  double reprobe_s = 60;   // DRAM re-probe period during the cases (0 = never)
  std::string likwid = "auto";  // likwid-bench: "auto" (from PATH), "off", or its path
  bool help = false;
  bool dry_run = false;    // print the planned cases and exit
  std::vector<std::string> argv;  // the flags as given (recorded in results.json)
};

// Batches at or above this run only on shapes with
// n * k <= kBigBatchMaxElements (unless --full).
constexpr int64_t kBigBatch = 64;
constexpr int64_t kBigBatchMaxElements = int64_t{4096} * 4096;

// Parses argv[1..] into options (defaults filled in; --quick's defaults apply to whatever
// was not given explicitly). `cores` is the machine's logical core count (the default
// thread counts are 1 and `cores`). Errors name the flag and the offending value.
absl::StatusOr<SweepOptions> ParseSweepFlags(int argc, const char* const* argv, int cores);

// The --help text (flags, defaults, the grid rule).
std::string SweepUsage(int cores);

// One sentence per rule, for --help, results.json and the report.
std::string GridRuleText();

enum class CaseKind {
  kFused,             // one registry kernel on the quantized (or F32) weights
  kDequantThenMatmul, // dequantize the whole matrix to F32, then the F32 kernel
  kGgml,              // ggml's MUL_MAT for the same type (the peer)
};
const char* CaseKindName(CaseKind k);  // "fused", "dequant_then_matmul", "ggml"

struct CaseSpec {
  CaseKind kind = CaseKind::kFused;
  Format format = Format::kF32;
  const KernelEntry* entry = nullptr;  // fused: the kernel; dequant: the F32 kernel used
  Shape shape;
  int64_t m = 1;
  int threads = 1;
};

// The cases of a run, in order: grouped by shape, then format (weights are built once per
// group), then batch and thread count; inside a group our kernels, then the
// dequantize-then-matmul baseline, then ggml, so the three are measured side by side.
//   runnable(e): whether this CPU runs entry e.
//   ggml: whether the ggml peer is available (its cases are planned only then).
std::vector<CaseSpec> PlanCases(const SweepOptions& options,
                                absl::Span<const KernelEntry> registry,
                                bool (*runnable)(const KernelEntry&), bool ggml);

// ggml's name for a format ("q4_K"), or nullptr when ggml has no matmul for it (Q8_K).
const char* GgmlTypeName(Format f);

}  // namespace fk

#endif  // HARNESS_SWEEP_OPTIONS_H_
