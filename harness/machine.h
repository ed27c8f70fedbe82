// What the sweep records about the machine it runs on, and its measured DRAM roofline.
#ifndef HARNESS_MACHINE_H_
#define HARNESS_MACHINE_H_

#include <string>
#include <vector>

namespace fk {

struct MachineInfo {
  std::string cpu_model;              // "AMD EPYC 9R45" (from /proc/cpuinfo)
  std::vector<std::string> isa_flags; // the SIMD-relevant flags the CPU reports
  int logical_cores = 0;
  std::string compiler;               // compiler and version that built this binary
  std::string bazel_version;          // `bazel --version`, or "unknown"
  std::string git_commit;             // project commit (plus "-dirty"), or "unknown"
  std::string kernel;                 // uname -sr
};

// Reads /proc/cpuinfo, uname, and asks git/bazel (best effort; never fails).
MachineInfo DescribeMachine();

// Sequential read bandwidth of a buffer much larger than the caches, in bytes/s: the
// best of `reps` passes over `bytes` (default 1 GiB), split across `threads` threads (a
// roofline is what the machine can do; other work on it only lowers a pass).
// Plain C++ loads with several independent accumulators; no ISA flags needed.
double MeasureReadBandwidth(int threads, size_t bytes = size_t{1} << 30, int reps = 5);

// Arithmetic peak of this CPU, measured: register-only loops of independent multiply-adds
// on the widest vectors the CPU runs, on `threads` threads at once (the best of 3 runs).
//   kF32:  vfmadd231ps (zmm with AVX-512F, else ymm with AVX2+FMA, else scalar C++);
//          2 FLOP per lane.
//   kInt8: u8 x s8 dot products as the int8 kernels do them: vpdpbusd (zmm, AVX-512 VNNI),
//          else vpmaddubsw + vpmaddwd + vpaddd (ymm, AVX2); 2 ops per int8 multiply-add.
// Returns GFLOP/s (resp. G int8-ops/s); `how` (may be null) gets the instruction used.
enum class PeakKind { kF32, kInt8 };
double MeasurePeakGflops(PeakKind kind, int threads, std::string* how = nullptr);

// The size of the last-level cache in bytes (sysfs), or 32 MiB when unknown.
size_t LastLevelCacheBytes();

// A short machine name for directory names: "amd-epyc" etc. (lowercase, [a-z0-9-]).
std::string ShortCpuName(const std::string& cpu_model);

}  // namespace fk

#endif  // HARNESS_MACHINE_H_
