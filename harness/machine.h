// What the sweep records about the machine it runs on, and its measured DRAM roofline.
#ifndef HARNESS_MACHINE_H_
#define HARNESS_MACHINE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"

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
// roofline is what the machine can do; other work on it only lowers a pass). The widest
// loads this CPU runs (AVX-512, else AVX2, else 64-bit scalar; ReadBandwidthMethod() names
// them), 8 independent accumulators per thread, as the kernels stream their weights.
double MeasureReadBandwidth(int threads, size_t bytes = size_t{1} << 30, int reps = 5);
std::string ReadBandwidthMethod();
// The sum of `words` 64-bit words as MeasureReadBandwidth reads them (every word, once).
uint64_t SumWords(const uint64_t* p, size_t words);

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

// The bytes a DRAM probe should read: `wanted`, raised to 4x the last-level cache `llc` when
// that is more (a probe that fits in the cache measures the cache, not DRAM).
size_t DramProbeBytes(size_t wanted, size_t llc);

// ---- memory pages -------------------------------------------------------------------------

// Bytes [begin, begin + size) of this process's memory.
struct ByteRange {
  uintptr_t begin = 0;
  size_t size = 0;
};

// How many bytes of `ranges` are backed by transparent huge pages according to `smaps` (the
// text of /proc/<pid>/smaps): each mapping's AnonHugePages, prorated by the share of the
// mapping that the ranges cover (exact for ranges that cover whole mappings, as the memory
// of kernels/pages.h does: its 2 MB-aligned part is a mapping of its own once advised).
int64_t HugePageBytesIn(const std::string& smaps, std::vector<ByteRange> ranges);

// The same for this process now; -1 when /proc/self/smaps cannot be read.
int64_t HugePageBytes(const std::vector<ByteRange>& ranges);

// ---- what else runs on the machine -------------------------------------------------------

// The CPU-time counters at one moment (Linux: /proc/stat, /proc/loadavg, getrusage).
struct CpuSnapshot {
  bool ok = false;         // false: /proc/stat could not be read
  double wall_s = 0;       // steady clock, seconds
  double busy_cpu_s = 0;   // all CPUs' non-idle time since boot: user, nice, system, irq,
                           // softirq and steal (a VM's vCPU held back by the host), seconds
  double own_cpu_s = 0;    // this process's CPU time plus its waited-for children's, seconds
  double self_cpu_s = 0;   // this process's CPU time alone (all its threads), seconds
  double loadavg_1m = -1;  // the 1-minute load average, -1 when unknown
};
CpuSnapshot ReadCpuSnapshot();

// The non-idle seconds of the aggregate "cpu" line of /proc/stat's text (`ticks_per_s`:
// USER_HZ). False when the line is missing or malformed.
bool ParseProcStatBusy(const std::string& proc_stat, double ticks_per_s, double* busy_s);

// The CPU time everything but this process (and its children) used between two snapshots,
// in cores (1.0 = one core busy all the time). NaN when a snapshot is not ok or no time
// passed.
double OtherBusyCores(const CpuSnapshot& a, const CpuSnapshot& b);

// The CPU time this process's threads used between two snapshots, in cores (2.0 = two
// threads busy all the time). NaN when no time passed.
double OwnCores(const CpuSnapshot& a, const CpuSnapshot& b);

// How far OtherBusyCores(a, b) can be off from /proc/stat's whole ticks alone, in cores: a
// tick per online CPU over the window (on 2 CPUs at 100 ticks/s: 0.2 cores over 0.1 s).
// Infinite when no time passed.
double OtherBusyResolution(const CpuSnapshot& a, const CpuSnapshot& b);

// "2026-11-25T10:11:12Z".
std::string UtcNow();

// The median of v (the mean of the middle two when v has an even size); NaN when empty.
double Median(std::vector<double> v);

// ---- the DRAM roofline: probes taken on a quiet machine, the best one kept --------------
//
// A DRAM probe is only as good as the moment it is taken: other work on the machine (or on
// the host of a VM) competes for the memory bus and only lowers it. So:
//   - before a probe the caller may wait, bounded, for the machine to be quiet
//     (WaitForQuiet: other work below `quiet_cores`, sampled over short windows);
//   - every probe records how much other work ran while it ran (other_cores) and whether
//     that was quiet;
//   - the roofline of a thread count is the best probe so far (load only lowers a probe);
//   - a share of it may be shown only once at least one quiet probe exists for that thread
//     count (Trusted): a roofline from loaded probes alone is a lower bound, not a roofline.

struct DramProbe {
  int threads = 0;
  double gbps = 0;            // bytes / s / 1e9
  double other_cores = 0;     // other work while the probe ran (NaN: unknown)
  double loadavg_1m = -1;     // when the probe ended
  bool quiet = false;         // other_cores <= the policy's quiet_cores (unknown: quiet)
  std::string reason;         // "start", "periodic", "above roofline", "end", ...
  std::string utc;            // when the probe ended
  double at_s = 0;            // seconds since the roofline object was made
};
nlohmann::ordered_json DramProbeJson(const DramProbe& p);
// False (and `why`) when a field is missing or of the wrong type.
bool DramProbeFromJson(const nlohmann::json& j, DramProbe* p, std::string* why);

struct RooflinePolicy {
  double quiet_cores = 0.25;       // other work of at most this many cores counts as quiet
  double settle_max_s = 60;        // WaitForQuiet gives up after this long (0: no waiting)
  double settle_window_s = 1;      // each quiet check samples the counters over this long
  double progress_every_s = 5;     // WaitForQuiet's progress line at most this often
  double reprobe_every_s = 60;     // DueReprobe: a periodic probe after this long (0: never)
  double above_reprobe_gap_s = 15; // ... an "above roofline" probe at most this often
};

// What the roofline needs from the world; every member can be replaced (tests).
struct RooflineEnv {
  std::function<double(int threads)> probe;                       // GB/s
  std::function<CpuSnapshot()> snapshot = ReadCpuSnapshot;
  std::function<void(double seconds)> sleep;                      // default: this thread sleeps
  std::function<double()> now;                                    // default: steady clock, s
  std::function<std::string()> utc = UtcNow;
  std::function<void(const std::string& line)> progress;          // default: none
  std::function<bool()> stop;                  // true: WaitForQuiet gives up now (Ctrl-C)
};

class DramRoofline {
 public:
  DramRoofline(RooflinePolicy policy, RooflineEnv env);

  struct Settled {
    bool quiet = false;        // false: gave up after settle_max_s
    double waited_s = 0;
    double other_cores = 0;    // of the last window (NaN: unknown)
    double loadavg_1m = -1;
  };
  // Waits until a window of settle_window_s shows other work of at most quiet_cores, for at
  // most settle_max_s (or until stop() says so), calling progress() every progress_every_s
  // with what it sees.
  Settled WaitForQuiet(const std::string& who);

  // Takes one probe now (no waiting) and records it.
  const DramProbe& Probe(int threads, const std::string& reason);
  // Records a probe taken elsewhere (e.g. an earlier process of the same run).
  void Add(const DramProbe& p);

  // The best probe so far with `threads` threads, in GB/s (0 when none).
  double Best(int threads) const;
  // Whether a quiet probe with `threads` threads exists: only then is Best() a roofline a
  // share may be shown against.
  bool Trusted(int threads) const;
  // "" when no probe is due for `threads`, else the reason for one: "first" (none yet),
  // "above roofline" (a case measured `measured_gbps` > Best() and the last such probe is
  // above_reprobe_gap_s old), "periodic" (the last probe with these threads is
  // reprobe_every_s old) or "no quiet probe yet" (not Trusted() and the last probe is
  // above_reprobe_gap_s old; not when reprobe_every_s is 0). measured_gbps <= 0: no
  // "above roofline".
  std::string DueReprobe(int threads, double measured_gbps) const;

  const std::vector<DramProbe>& probes() const { return probes_; }
  const RooflinePolicy& policy() const { return policy_; }
  double Now() const;  // seconds since construction

 private:
  RooflinePolicy policy_;
  RooflineEnv env_;
  double t0_ = 0;
  std::vector<DramProbe> probes_;
  std::map<int, double> last_probe_at_, last_above_at_;
};

// A share of a roofline and whether it is above it (a measured rate above 100 % of what the
// machine was measured to do: the roofline probe was low, or the case was not what it
// claims, e.g. weights served from a cache). pct is NaN when no share may be shown.
struct RooflineShare {
  double pct = 0;
  bool shown = false;   // roof > 0 and trusted
  bool above = false;   // measured > roof (whether shown or not)
};
RooflineShare ShareOfRoofline(double measured, double roof, bool trusted);

// ---- likwid-bench, an established tool's figure beside ours ------------------------------

struct LikwidResult {
  int threads = 0;
  bool ok = false;
  double gbps = 0;          // likwid's "MByte/s" / 1000 (likwid's MByte is 1e6 bytes)
  std::string test;         // "load_avx512", "load_avx", "load"
  std::string command;      // exactly what ran
  std::string error;        // why it did not give a figure (not ok)
  double other_cores = 0;   // other work while it ran
  double seconds = 0;       // wall time of the command
};

// likwid-bench's streaming-load test for this CPU: load_avx512 with AVX-512F, else load_avx
// with AVX, else load.
std::string LikwidLoadTest();
// The "MByte/s:" figure of likwid-bench's output; false when there is none (or it is not a
// positive number).
bool ParseLikwidMBytesPerS(const std::string& output, double* mbytes_per_s);
// The command RunLikwidBench runs (without its stderr redirection).
std::string LikwidBenchCommand(int threads, size_t bytes, const std::string& binary = "likwid-bench");
// likwid-bench's version ("5.2", from its -h text), or "" when it does not say.
std::string LikwidVersion(const std::string& binary = "likwid-bench");
// Runs `likwid-bench -t <LikwidLoadTest()> -w S0:<bytes in MB>MB:<threads>` (`binary`:
// "likwid-bench" from PATH by default) and parses it; never throws, errors in `error`.
LikwidResult RunLikwidBench(int threads, size_t bytes, const std::string& binary = "likwid-bench");
nlohmann::ordered_json LikwidJson(const LikwidResult& r);

}  // namespace fk

#endif  // HARNESS_MACHINE_H_
