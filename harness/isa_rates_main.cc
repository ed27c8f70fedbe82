// //harness:isa_rates — how many 512-bit instructions of each kind (and of a few mixes) this
// CPU runs per cycle, independent ones back to back: the throughputs the kernels' decode loops
// are made of, and what mask registers cost beside them (the README's analysis of the
// Q2_K / Q3_K tiles and of Q5_0 / Q5_1's fifth bits on Zen 4 comes from this).
//
//   tools/bazel run -c opt //harness:isa_rates -- [--reps=5] [--iters=4000000]
//
// The core clock is measured first with a chain of dependent scalar adds (one per cycle on
// every x86 core), so the rates are per core cycle whatever the frequency or the TSC's rate.
// Each figure is the median of --reps timed runs. Needs AVX-512 (F, BW, VL) and VNNI; on
// another CPU it says which is missing and exits 1.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/match.h"
#include "harness/isa_rates_loops.h"
#include "harness/machine.h"
#include "kernels/cpu_features.h"
#include "kernels/kernel_api.h"

namespace fk {
namespace {

[[noreturn]] void Usage(const std::string& error) {
  std::fprintf(error.empty() ? stdout : stderr,
               "%s%susage: isa_rates [--reps=5] [--iters=4000000]\n"
               "  512-bit instructions per core cycle, by kind and for a few mixes, independent\n"
               "  ones back to back (throughput); the core clock from a dependent-add chain.\n"
               "  Each figure: the median of --reps runs of --iters iterations.\n",
               error.empty() ? "" : "isa_rates: ", error.empty() ? "" : (error + "\n").c_str());
  std::exit(error.empty() ? 0 : 2);
}

double Seconds(void (*run)(int64_t), int64_t iters) {
  const auto t0 = std::chrono::steady_clock::now();
  run(iters);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// 8 dependent adds per iteration: 8 cycles.
void AddChain(int64_t iters) {
  uint64_t x = 0;
  for (int64_t i = 0; i < iters; ++i) {
    __asm__ volatile(
        "add $1, %0\n add $1, %0\n add $1, %0\n add $1, %0\n"
        "add $1, %0\n add $1, %0\n add $1, %0\n add $1, %0\n"
        : "+r"(x));
  }
}

double MedianSeconds(void (*run)(int64_t), int64_t iters, int reps) {
  run(iters / 10);  // warm up (clock, caches)
  std::vector<double> s;
  for (int r = 0; r < reps; ++r) s.push_back(Seconds(run, iters));
  return Median(s);
}

int Main(int argc, char** argv) {
  int reps = 5;
  int64_t iters = 4000000;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") Usage("");
    if (absl::StartsWith(a, "--reps=")) {
      if (!absl::SimpleAtoi(a.substr(7), &reps) || reps < 1 || reps > 1000)
        Usage("--reps wants an integer in 1..1000, got '" + a.substr(7) + "'");
    } else if (absl::StartsWith(a, "--iters=")) {
      if (!absl::SimpleAtoi(a.substr(8), &iters) || iters < 1000 || iters > 4000000000LL)
        Usage("--iters wants an integer in 1000..4000000000, got '" + a.substr(8) + "'");
    } else {
      Usage("unknown argument '" + a + "'");
    }
  }
  const MachineInfo m = DescribeMachine();
  std::printf("CPU: %s, %d logical cores\n", m.cpu_model.c_str(), m.logical_cores);
  if ((cpu_features() & kFeaturesAvx512Vnni) != kFeaturesAvx512Vnni) {
    std::fprintf(stderr, "isa_rates: this CPU lacks AVX-512 F/BW/DQ/VL or VNNI (or "
                         "FK_DISABLE_CPU_FEATURES hides them); nothing to measure\n");
    return 1;
  }
  const double ghz = 8.0 * static_cast<double>(iters) / MedianSeconds(AddChain, iters, reps) / 1e9;
  std::printf("core clock (dependent adds, median of %d): %.2f GHz\n", reps, ghz);
  std::printf("%-32s %8s %10s\n", "instructions (512-bit)", "per cycle", "w/o copies");
  for (const IsaLoop& l : isa_loops()) {
    const double cycles = MedianSeconds(l.run, iters, reps) * ghz * 1e9;
    const double n = static_cast<double>(iters);
    std::printf("%-32s %8.2f %10.2f\n", l.name, l.ops * n / cycles, (l.ops - l.copies) * n / cycles);
  }
  return 0;
}

}  // namespace
}  // namespace fk

int main(int argc, char** argv) { return fk::Main(argc, argv); }
