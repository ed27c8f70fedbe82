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
// median of `reps` passes over `bytes` (default 1 GiB), split across `threads` threads.
// Plain C++ loads with several independent accumulators; no ISA flags needed.
double MeasureReadBandwidth(int threads, size_t bytes = size_t{1} << 30, int reps = 5);

// A short machine name for directory names: "amd-epyc" etc. (lowercase, [a-z0-9-]).
std::string ShortCpuName(const std::string& cpu_model);

}  // namespace fk

#endif  // HARNESS_MACHINE_H_
