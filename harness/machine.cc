#include "harness/machine.h"

#include <immintrin.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <limits>
#include <memory>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "kernels/pages.h"

namespace fk {
namespace {

std::string RunCommand(const char* cmd) {
  std::string out;
  FILE* p = popen(cmd, "r");
  if (p == nullptr) return out;
  char buf[256];
  while (fgets(buf, sizeof buf, p) != nullptr) out += buf;
  pclose(p);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

// Sums a range of 64-bit words with 8 independent accumulators (keeps the loads in flight).
uint64_t SumRange(const uint64_t* p, size_t words) {
  uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0;
  size_t i = 0;
  for (; i + 8 <= words; i += 8) {
    a0 += p[i];
    a1 += p[i + 1];
    a2 += p[i + 2];
    a3 += p[i + 3];
    a4 += p[i + 4];
    a5 += p[i + 5];
    a6 += p[i + 6];
    a7 += p[i + 7];
  }
  for (; i < words; ++i) a0 += p[i];
  return a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7;
}

// The same with the widest loads the CPU has: 8 x 64 bytes in flight per iteration, as the
// kernels (and likwid-bench's load_avx512) stream. `words` is split at 64-byte blocks; the
// tail (and an unaligned head) is summed by SumRange.
__attribute__((target("avx512f"))) uint64_t SumRangeAvx512(const uint64_t* p, size_t words) {
  __m512i a[8];
  for (__m512i& x : a) x = _mm512_setzero_si512();
  size_t i = 0;
  for (; i + 64 <= words; i += 64) {
    for (int j = 0; j < 8; ++j) {
      a[j] = _mm512_add_epi64(a[j], _mm512_loadu_si512(p + i + 8 * j));
    }
  }
  for (int j = 1; j < 8; ++j) a[0] = _mm512_add_epi64(a[0], a[j]);
  alignas(64) uint64_t out[8];
  _mm512_store_si512(out, a[0]);
  uint64_t sum = SumRange(p + i, words - i);
  for (uint64_t v : out) sum += v;
  return sum;
}

__attribute__((target("avx2"))) uint64_t SumRangeAvx2(const uint64_t* p, size_t words) {
  __m256i a[8];
  for (__m256i& x : a) x = _mm256_setzero_si256();
  size_t i = 0;
  for (; i + 32 <= words; i += 32) {
    for (int j = 0; j < 8; ++j) {
      a[j] = _mm256_add_epi64(
          a[j], _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 4 * j)));
    }
  }
  for (int j = 1; j < 8; ++j) a[0] = _mm256_add_epi64(a[0], a[j]);
  alignas(32) uint64_t out[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(out), a[0]);
  uint64_t sum = SumRange(p + i, words - i);
  for (uint64_t v : out) sum += v;
  return sum;
}

using SumFn = uint64_t (*)(const uint64_t*, size_t);

// The widest sum this CPU runs, and its name for the method text.
SumFn ChooseSum(const char** name) {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) {
    *name = "AVX-512 loads (zmm)";
    return SumRangeAvx512;
  }
  if (__builtin_cpu_supports("avx2")) {
    *name = "AVX2 loads (ymm)";
    return SumRangeAvx2;
  }
  *name = "64-bit scalar loads";
  return SumRange;
}

// ---- peak probes: independent chains of multiply-adds, registers only ----------------------
// Each returns the number of operations done (FLOP or int8 ops); `sink` keeps the results
// alive. 12 accumulators cover the latency of one multiply-add on current cores.

__attribute__((target("avx512f"))) double PeakF32Avx512(int64_t iters, float* sink) {
  __m512 a[12];
  for (int j = 0; j < 12; ++j) a[j] = _mm512_set1_ps(1.0f + 0.01f * j);
  const __m512 b = _mm512_set1_ps(0.9999999f), c = _mm512_set1_ps(1e-7f);
  for (int64_t i = 0; i < iters; ++i) {
    for (int j = 0; j < 12; ++j) a[j] = _mm512_fmadd_ps(a[j], b, c);
  }
  __m512 s = a[0];
  for (int j = 1; j < 12; ++j) s = _mm512_add_ps(s, a[j]);
  alignas(64) float out[16];  // (no _mm512_reduce_*: GCC 12 warns inside them)
  _mm512_store_ps(out, s);
  for (float v : out) *sink += v;
  return 2.0 * 16 * 12 * static_cast<double>(iters);
}

__attribute__((target("avx2,fma"))) double PeakF32Avx2(int64_t iters, float* sink) {
  __m256 a[12];
  for (int j = 0; j < 12; ++j) a[j] = _mm256_set1_ps(1.0f + 0.01f * j);
  const __m256 b = _mm256_set1_ps(0.9999999f), c = _mm256_set1_ps(1e-7f);
  for (int64_t i = 0; i < iters; ++i) {
    for (int j = 0; j < 12; ++j) a[j] = _mm256_fmadd_ps(a[j], b, c);
  }
  alignas(32) float out[8];
  __m256 s = a[0];
  for (int j = 1; j < 12; ++j) s = _mm256_add_ps(s, a[j]);
  _mm256_store_ps(out, s);
  for (float v : out) *sink += v;
  return 2.0 * 8 * 12 * static_cast<double>(iters);
}

double PeakF32Scalar(int64_t iters, float* sink) {
  float a[12];
  for (int j = 0; j < 12; ++j) a[j] = 1.0f + 0.01f * j;
  for (int64_t i = 0; i < iters; ++i) {
    for (int j = 0; j < 12; ++j) a[j] = a[j] * 0.9999999f + 1e-7f;
  }
  for (float v : a) *sink += v;
  return 2.0 * 12 * static_cast<double>(iters);
}

__attribute__((target("avx512f,avx512bw,avx512vnni"))) double PeakInt8Vnni(int64_t iters,
                                                                         float* sink) {
  __m512i a[12];
  for (int j = 0; j < 12; ++j) a[j] = _mm512_set1_epi32(j);
  const __m512i u = _mm512_set1_epi8(3), v = _mm512_set1_epi8(-5);
  for (int64_t i = 0; i < iters; ++i) {
    for (int j = 0; j < 12; ++j) a[j] = _mm512_dpbusd_epi32(a[j], u, v);
  }
  __m512i s = a[0];
  for (int j = 1; j < 12; ++j) s = _mm512_add_epi32(s, a[j]);
  alignas(64) int32_t out[16];
  _mm512_store_si512(out, s);
  for (int32_t x : out) *sink += static_cast<float>(x);
  return 2.0 * 64 * 12 * static_cast<double>(iters);
}

__attribute__((target("avx2"))) double PeakInt8Avx2(int64_t iters, float* sink) {
  __m256i a[12];
  for (int j = 0; j < 12; ++j) a[j] = _mm256_set1_epi32(j);
  const __m256i u = _mm256_set1_epi8(3), v = _mm256_set1_epi8(-5), ones = _mm256_set1_epi16(1);
  for (int64_t i = 0; i < iters; ++i) {
    for (int j = 0; j < 12; ++j) {
      a[j] = _mm256_add_epi32(a[j], _mm256_madd_epi16(_mm256_maddubs_epi16(u, v), ones));
      // Keep the compiler from hoisting the loop-invariant products out of the loop.
      __asm__ volatile("" : "+x"(a[j]));
    }
  }
  __m256i s = a[0];
  for (int j = 1; j < 12; ++j) s = _mm256_add_epi32(s, a[j]);
  alignas(32) int32_t out[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(out), s);
  for (int32_t x : out) *sink += static_cast<float>(x);
  return 2.0 * 32 * 12 * static_cast<double>(iters);
}

using PeakFn = double (*)(int64_t, float*);

PeakFn ChoosePeak(PeakKind kind, std::string* how) {
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
  const bool vnni = avx512 && __builtin_cpu_supports("avx512vnni");
  if (kind == PeakKind::kF32) {
    if (avx512) {
      *how = "vfmadd231ps zmm (AVX-512F), 2 FLOP per lane";
      return PeakF32Avx512;
    }
    if (avx2) {
      *how = "vfmadd231ps ymm (AVX2+FMA), 2 FLOP per lane";
      return PeakF32Avx2;
    }
    *how = "scalar C++ multiply-add, 2 FLOP each";
    return PeakF32Scalar;
  }
  if (vnni) {
    *how = "vpdpbusd zmm (AVX-512 VNNI), 2 ops per u8*s8 multiply-add";
    return PeakInt8Vnni;
  }
  if (avx2) {
    *how = "vpmaddubsw+vpmaddwd+vpaddd ymm (AVX2), 2 ops per u8*s8 multiply-add";
    return PeakInt8Avx2;
  }
  *how = "no int8 SIMD on this CPU: scalar f32 multiply-add instead";
  return PeakF32Scalar;
}

// Ops per second of `threads` threads each running fn(iters) at once.
double RunPeak(PeakFn fn, int threads, int64_t iters) {
  std::vector<double> ops(threads);
  std::vector<float> sinks(threads);
  std::vector<std::thread> pool;
  const auto t0 = std::chrono::steady_clock::now();
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] { ops[t] = fn(iters, &sinks[t]); });
  }
  for (std::thread& th : pool) th.join();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  volatile float keep = 0;
  double total = 0;
  for (int t = 0; t < threads; ++t) {
    total += ops[t];
    keep = keep + sinks[t];
  }
  return total / s;
}

}  // namespace

double MeasurePeakGflops(PeakKind kind, int threads, std::string* how) {
  threads = std::max(1, threads);
  std::string local;
  const PeakFn fn = ChoosePeak(kind, how != nullptr ? how : &local);
  // Calibrate the loop to about 0.1 s per run on one thread.
  int64_t iters = 1 << 16;
  for (;;) {
    const auto t0 = std::chrono::steady_clock::now();
    float sink = 0;
    fn(iters, &sink);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (s > 0.02 || iters > (int64_t{1} << 40)) {
      iters = static_cast<int64_t>(static_cast<double>(iters) * 0.1 / std::max(s, 1e-6)) + 1;
      break;
    }
    iters *= 4;
  }
  std::vector<double> rates;
  for (int r = 0; r < 3; ++r) rates.push_back(RunPeak(fn, threads, iters));
  return *std::max_element(rates.begin(), rates.end()) / 1e9;  // best of 3, as the DRAM probe
}

size_t LastLevelCacheBytes() {
  size_t best = 0;
  for (int i = 0; i < 8; ++i) {
    std::ifstream f("/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(i) + "/size");
    std::string v;
    if (!(f >> v) || v.empty()) continue;
    size_t mult = 1;
    if (v.back() == 'K') mult = size_t{1} << 10;
    if (v.back() == 'M') mult = size_t{1} << 20;
    if (mult != 1) v.pop_back();
    char* end = nullptr;
    const unsigned long long x = std::strtoull(v.c_str(), &end, 10);
    if (end != v.c_str()) best = std::max(best, static_cast<size_t>(x) * mult);
  }
  return best > 0 ? best : size_t{32} << 20;
}

MachineInfo DescribeMachine() {
  MachineInfo m;
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  std::string flags;
  while (std::getline(cpuinfo, line)) {
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string key = line.substr(0, colon);
    key.erase(key.find_last_not_of(" \t") + 1);
    std::string value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(" \t"));
    if (key == "model name" && m.cpu_model.empty()) m.cpu_model = value;
    if (key == "flags" && flags.empty()) flags = value;
  }
  std::istringstream fs(flags);
  for (std::string f; fs >> f;) {
    if (f.rfind("avx", 0) == 0 || f == "fma" || f == "f16c" || f.rfind("amx", 0) == 0 ||
        f == "sse4_2" || f == "gfni" || f == "vpclmulqdq") {
      m.isa_flags.push_back(f);
    }
  }
  if (m.cpu_model.empty()) m.cpu_model = "unknown CPU";
  m.logical_cores = static_cast<int>(std::thread::hardware_concurrency());
#if defined(__clang__)
  m.compiler = std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
  m.compiler = std::string("gcc ") + __VERSION__;
#else
  m.compiler = "unknown";
#endif
  struct utsname u;
  if (uname(&u) == 0) m.kernel = std::string(u.sysname) + " " + u.release;
  // Under `bazel run` the working directory is the runfiles tree; ask git in the user's.
  const char* wd = std::getenv("BUILD_WORKSPACE_DIRECTORY");
  const std::string cd = wd ? std::string("cd '") + wd + "' && " : std::string();
  m.git_commit = RunCommand((cd + "git rev-parse --short=12 HEAD 2>/dev/null").c_str());
  if (m.git_commit.empty()) {
    m.git_commit = "unknown";
  } else if (!RunCommand((cd + "git status --porcelain --untracked-files=no 2>/dev/null").c_str())
                  .empty()) {
    m.git_commit += "-dirty";
  }
  const char* real = std::getenv("BAZEL_REAL");
  m.bazel_version = RunCommand(
      (std::string(real ? real : "bazel") + " --version 2>/dev/null | head -n 1").c_str());
  if (m.bazel_version.find("no_version") != std::string::npos) {
    // Debian's bazel-bootstrap is built without a version stamp; its package knows it.
    const std::string v =
        RunCommand("dpkg-query -W -f='${Version}' bazel-bootstrap 2>/dev/null");
    if (!v.empty()) m.bazel_version = "bazel " + v + " (Debian bazel-bootstrap)";
  }
  if (m.bazel_version.empty()) m.bazel_version = "unknown";
  return m;
}

double MeasureReadBandwidth(int threads, size_t bytes, int reps) {
  threads = std::max(1, threads);
  const size_t words = bytes / sizeof(uint64_t);
  // In 2 MB pages, as the weights the sweep streams (kernels/pages.h).
  const std::shared_ptr<unsigned char> mem = AllocateHugePages(words * sizeof(uint64_t));
  if (mem == nullptr) return 0.0;
  uint64_t* buf = reinterpret_cast<uint64_t*>(mem.get());
  for (size_t i = 0; i < words; ++i) buf[i] = i;  // touch every page
  const char* how = nullptr;
  const SumFn sum = ChooseSum(&how);
  std::vector<double> rates;
  volatile uint64_t sink = 0;
  for (int r = 0; r < reps + 1; ++r) {  // the first pass is a warm-up
    std::vector<uint64_t> sums(threads);
    std::vector<std::thread> pool;
    const auto t0 = std::chrono::steady_clock::now();
    for (int t = 0; t < threads; ++t) {
      const size_t begin = words * t / threads, end = words * (t + 1) / threads;
      pool.emplace_back([&, t, begin, end] { sums[t] = sum(buf + begin, end - begin); });
    }
    for (std::thread& th : pool) th.join();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    for (uint64_t v : sums) sink = sink + v;
    if (r > 0) rates.push_back(static_cast<double>(words * sizeof(uint64_t)) / s);
  }
  // The best pass: a roofline is what the machine can do; other work only lowers it.
  return *std::max_element(rates.begin(), rates.end());
}

double Median(std::vector<double> v) {
  if (v.empty()) return std::nan("");
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

std::string ShortCpuName(const std::string& cpu_model) {
  // Trademark marks first: "Intel(R) Xeon(R)" is "intel-xeon", not "intel-r-xeon-r".
  std::string model = cpu_model;
  for (const char* mark : {"(R)", "(r)", "(TM)", "(tm)"}) {
    for (size_t p; (p = model.find(mark)) != std::string::npos;) model.erase(p, std::strlen(mark));
  }
  std::string s;
  for (char c : model) {
    if (std::isalnum(static_cast<unsigned char>(c))) {
      s += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    } else if (!s.empty() && s.back() != '-') {
      s += '-';
    }
  }
  while (!s.empty() && s.back() == '-') s.pop_back();
  // Drop marketing noise so names stay short.
  for (const char* noise : {"-processor", "-with-radeon-graphics", "-cpu"}) {
    const size_t p = s.find(noise);
    if (p != std::string::npos) s.erase(p, std::strlen(noise));
  }
  return s.empty() ? "cpu" : s.substr(0, 40);
}

uint64_t SumWords(const uint64_t* p, size_t words) {
  const char* how = nullptr;
  return ChooseSum(&how)(p, words);
}

std::string ReadBandwidthMethod() {
  const char* how = nullptr;
  ChooseSum(&how);
  return how;
}

size_t DramProbeBytes(size_t wanted, size_t llc) { return std::max(wanted, 4 * llc); }

// ---- what else runs on the machine -------------------------------------------------------

bool ParseProcStatBusy(const std::string& proc_stat, double ticks_per_s, double* busy_s) {
  std::istringstream in(proc_stat);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string name;
    if (!(ls >> name) || name != "cpu") continue;
    // user nice system idle iowait irq softirq steal [guest guest_nice: already in user]
    unsigned long long v[8];
    for (unsigned long long& x : v) {
      if (!(ls >> x)) return false;
    }
    if (ticks_per_s <= 0) return false;
    const unsigned long long busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
    *busy_s = static_cast<double>(busy) / ticks_per_s;
    return true;
  }
  return false;
}

CpuSnapshot ReadCpuSnapshot() {
  CpuSnapshot s;
  s.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
                 .count();
  std::ifstream f("/proc/stat");
  std::stringstream text;
  text << f.rdbuf();
  s.ok = ParseProcStatBusy(text.str(), static_cast<double>(sysconf(_SC_CLK_TCK)), &s.busy_cpu_s);
  auto cpu = [](int who) {
    struct rusage u;
    if (getrusage(who, &u) != 0) return 0.0;
    return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           1e-6 * static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
  };
  s.self_cpu_s = cpu(RUSAGE_SELF);
  s.own_cpu_s = s.self_cpu_s + cpu(RUSAGE_CHILDREN);
  std::ifstream la("/proc/loadavg");
  double one = -1;
  if (la >> one) s.loadavg_1m = one;
  return s;
}

double OtherBusyResolution(const CpuSnapshot& a, const CpuSnapshot& b) {
  const double window = b.wall_s - a.wall_s;
  const double hz = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double cpus = static_cast<double>(std::max(1L, sysconf(_SC_NPROCESSORS_ONLN)));
  if (!(window > 0) || !(hz > 0)) return std::numeric_limits<double>::infinity();
  return cpus / (hz * window);
}

double OtherBusyCores(const CpuSnapshot& a, const CpuSnapshot& b) {
  const double wall = b.wall_s - a.wall_s;
  if (!a.ok || !b.ok || !(wall > 0)) return std::nan("");
  const double other = (b.busy_cpu_s - a.busy_cpu_s) - (b.own_cpu_s - a.own_cpu_s);
  // /proc/stat counts in ticks (10 ms), getrusage in microseconds: a little noise below 0.
  return std::max(0.0, other / wall);
}

double OwnCores(const CpuSnapshot& a, const CpuSnapshot& b) {
  const double wall = b.wall_s - a.wall_s;
  if (!(wall > 0)) return std::nan("");
  return std::max(0.0, b.self_cpu_s - a.self_cpu_s) / wall;
}

int64_t HugePageBytesIn(const std::string& smaps, std::vector<ByteRange> ranges) {
  std::sort(ranges.begin(), ranges.end(),
            [](const ByteRange& x, const ByteRange& y) { return x.begin < y.begin; });
  // The ranges' bytes inside [lo, hi). Ranges are assumed not to overlap each other.
  auto covered = [&ranges](uintptr_t lo, uintptr_t hi) {
    size_t sum = 0;
    auto it = std::upper_bound(ranges.begin(), ranges.end(), lo,
                               [](uintptr_t v, const ByteRange& r) { return v < r.begin; });
    if (it != ranges.begin()) --it;
    for (; it != ranges.end() && it->begin < hi; ++it) {
      const uintptr_t b = std::max(lo, it->begin), e = std::min<uintptr_t>(hi, it->begin + it->size);
      if (e > b) sum += e - b;
    }
    return sum;
  };
  double total = 0;
  uintptr_t lo = 0, hi = 0;  // the mapping whose fields are being read
  std::istringstream in(smaps);
  std::string line;
  while (std::getline(in, line)) {
    unsigned long long a = 0, b = 0;
    long long kb = 0;
    int used = 0;
    if (std::sscanf(line.c_str(), "%llx-%llx %n", &a, &b, &used) == 2 && used > 0) {
      lo = static_cast<uintptr_t>(a);
      hi = static_cast<uintptr_t>(b);
    } else if (std::sscanf(line.c_str(), "AnonHugePages: %lld kB", &kb) == 1 && kb > 0 && hi > lo) {
      total += static_cast<double>(kb) * 1024.0 * static_cast<double>(covered(lo, hi)) /
               static_cast<double>(hi - lo);
    }
  }
  return static_cast<int64_t>(std::llround(total));
}

int64_t HugePageBytes(const std::vector<ByteRange>& ranges) {
  std::ifstream f("/proc/self/smaps");
  if (!f) return -1;
  std::stringstream text;
  text << f.rdbuf();
  return HugePageBytesIn(text.str(), ranges);
}

std::string UtcNow() {
  const std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

// ---- the DRAM roofline ----------------------------------------------------------------------

nlohmann::ordered_json DramProbeJson(const DramProbe& p) {
  nlohmann::ordered_json j;
  j["threads"] = p.threads;
  j["gbps"] = p.gbps;
  j["reason"] = p.reason;
  j["utc"] = p.utc;
  j["at_s"] = std::round(p.at_s * 10) / 10;
  if (std::isnan(p.other_cores)) {
    j["other_cores"] = nullptr;
  } else {
    j["other_cores"] = std::round(p.other_cores * 1000) / 1000;
  }
  j["loadavg_1m"] = p.loadavg_1m;
  j["quiet"] = p.quiet;
  return j;
}

bool DramProbeFromJson(const nlohmann::json& j, DramProbe* p, std::string* why) {
  auto need = [&](const char* key, bool (nlohmann::json::*is)() const noexcept) {
    if (!j.is_object() || !j.contains(key) || !(j[key].*is)()) {
      *why = absl::StrCat("DRAM probe record ", j.dump(), ": '", key, "' is missing or of the "
                          "wrong type");
      return false;
    }
    return true;
  };
  if (!need("threads", &nlohmann::json::is_number_integer) ||
      !need("gbps", &nlohmann::json::is_number) || !need("quiet", &nlohmann::json::is_boolean) ||
      !need("reason", &nlohmann::json::is_string)) {
    return false;
  }
  p->threads = j["threads"].get<int>();
  p->gbps = j["gbps"].get<double>();
  p->quiet = j["quiet"].get<bool>();
  p->reason = j["reason"].get<std::string>();
  p->utc = j.value("utc", "");
  p->at_s = j.contains("at_s") && j["at_s"].is_number() ? j["at_s"].get<double>() : 0.0;
  p->other_cores = j.contains("other_cores") && j["other_cores"].is_number()
                       ? j["other_cores"].get<double>()
                       : std::nan("");
  p->loadavg_1m =
      j.contains("loadavg_1m") && j["loadavg_1m"].is_number() ? j["loadavg_1m"].get<double>() : -1;
  if (p->threads < 1 || !(p->gbps >= 0)) {
    *why = absl::StrCat("DRAM probe record ", j.dump(), ": threads must be >= 1 and gbps >= 0");
    return false;
  }
  return true;
}

DramRoofline::DramRoofline(RooflinePolicy policy, RooflineEnv env)
    : policy_(policy), env_(std::move(env)) {
  if (!env_.snapshot) env_.snapshot = ReadCpuSnapshot;
  if (!env_.utc) env_.utc = UtcNow;
  if (!env_.now) {
    env_.now = [] {
      return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
          .count();
    };
  }
  if (!env_.sleep) {
    env_.sleep = [](double s) {
      std::this_thread::sleep_for(std::chrono::duration<double>(std::max(0.0, s)));
    };
  }
  t0_ = env_.now();
}

double DramRoofline::Now() const { return env_.now() - t0_; }

DramRoofline::Settled DramRoofline::WaitForQuiet(const std::string& who) {
  Settled r;
  r.other_cores = std::nan("");
  if (policy_.settle_max_s <= 0) return r;
  const double start = env_.now();
  double last_progress = start;
  for (;;) {
    const CpuSnapshot a = env_.snapshot();
    env_.sleep(policy_.settle_window_s);
    const CpuSnapshot b = env_.snapshot();
    r.other_cores = OtherBusyCores(a, b);
    r.loadavg_1m = b.loadavg_1m;
    r.waited_s = env_.now() - start;
    if (std::isnan(r.other_cores) || r.other_cores <= policy_.quiet_cores) {
      r.quiet = true;
      if (r.waited_s > policy_.settle_window_s * 1.5 && env_.progress) {
        env_.progress(absl::StrFormat("%s: the machine is quiet after %.0f s (other work %.2f "
                                      "cores)", who, r.waited_s, r.other_cores));
      }
      return r;
    }
    if (env_.stop && env_.stop()) return r;
    if (r.waited_s >= policy_.settle_max_s) {
      if (env_.progress) {
        env_.progress(absl::StrFormat(
            "%s: the machine did not settle in %.0f s (other work %.2f cores, load average "
            "%.2f); probing anyway, and the probe is recorded as taken under load",
            who, r.waited_s, r.other_cores, r.loadavg_1m));
      }
      return r;
    }
    if (env_.progress &&
        (r.waited_s <= policy_.settle_window_s * 1.5 ||
         env_.now() - last_progress >= policy_.progress_every_s)) {
      last_progress = env_.now();
      env_.progress(absl::StrFormat(
          "%s: waiting for a quiet machine before the DRAM probe: other work uses %.2f cores "
          "(load average %.2f); %.0f of at most %.0f s",
          who, r.other_cores, r.loadavg_1m, r.waited_s, policy_.settle_max_s));
    }
  }
}

const DramProbe& DramRoofline::Probe(int threads, const std::string& reason) {
  const CpuSnapshot a = env_.snapshot();
  DramProbe p;
  p.threads = threads;
  p.gbps = env_.probe(threads);
  const CpuSnapshot b = env_.snapshot();
  p.other_cores = OtherBusyCores(a, b);
  p.loadavg_1m = b.loadavg_1m;
  p.quiet = std::isnan(p.other_cores) || p.other_cores <= policy_.quiet_cores;
  p.reason = reason;
  p.utc = env_.utc();
  p.at_s = Now();
  Add(p);
  return probes_.back();
}

void DramRoofline::Add(const DramProbe& p) {
  probes_.push_back(p);
  const double now = Now();
  last_probe_at_[p.threads] = now;
  if (p.reason == "above roofline") last_above_at_[p.threads] = now;
}

double DramRoofline::Best(int threads) const {
  double best = 0;
  for (const DramProbe& p : probes_) {
    if (p.threads == threads) best = std::max(best, p.gbps);
  }
  return best;
}

bool DramRoofline::Trusted(int threads) const {
  for (const DramProbe& p : probes_) {
    if (p.threads == threads && p.quiet && p.gbps > 0) return true;
  }
  return false;
}

std::string DramRoofline::DueReprobe(int threads, double measured_gbps) const {
  const double now = Now();
  const auto last = last_probe_at_.find(threads);
  if (last == last_probe_at_.end()) return "first";
  if (measured_gbps > 0 && measured_gbps > Best(threads)) {
    const auto above = last_above_at_.find(threads);
    if (above == last_above_at_.end() || now - above->second >= policy_.above_reprobe_gap_s) {
      return "above roofline";
    }
  }
  if (policy_.reprobe_every_s > 0 && now - last->second >= policy_.reprobe_every_s) {
    return "periodic";
  }
  if (policy_.reprobe_every_s > 0 && !Trusted(threads) &&
      now - last->second >= policy_.above_reprobe_gap_s) {
    return "no quiet probe yet";
  }
  return "";
}

RooflineShare ShareOfRoofline(double measured, double roof, bool trusted) {
  RooflineShare s;
  s.above = roof > 0 && measured > roof;
  s.shown = roof > 0 && trusted;
  s.pct = s.shown ? 100.0 * measured / roof : std::nan("");
  return s;
}

// ---- likwid-bench ---------------------------------------------------------------------------

std::string LikwidLoadTest() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return "load_avx512";
  if (__builtin_cpu_supports("avx")) return "load_avx";
  return "load";
}

bool ParseLikwidMBytesPerS(const std::string& output, double* mbytes_per_s) {
  std::istringstream in(output);
  std::string line;
  while (std::getline(in, line)) {
    const size_t p = line.find("MByte/s:");
    if (p == std::string::npos) continue;
    const std::string rest = line.substr(p + 8);
    char* end = nullptr;
    const double v = std::strtod(rest.c_str(), &end);
    if (end == rest.c_str() || !(v > 0) || !std::isfinite(v)) return false;
    *mbytes_per_s = v;
    return true;
  }
  return false;
}

std::string LikwidBenchCommand(int threads, size_t bytes, const std::string& binary) {
  const size_t mb = bytes / 1000000;  // likwid's MB is 1e6 bytes
  return absl::StrCat(binary, " -t ", LikwidLoadTest(), " -w S0:", mb, "MB:", threads);
}

std::string LikwidVersion(const std::string& binary) {
  const std::string help = RunCommand(absl::StrCat("'", binary, "' -h 2>&1 | head -n 3").c_str());
  const size_t p = help.find("Version");
  if (p == std::string::npos) return "";
  std::istringstream in(help.substr(p + 7));
  std::string v;
  in >> v;
  return v;
}

LikwidResult RunLikwidBench(int threads, size_t bytes, const std::string& binary) {
  LikwidResult r;
  r.threads = threads;
  r.test = LikwidLoadTest();
  r.command = LikwidBenchCommand(threads, bytes, binary);
  if (RunCommand(absl::StrCat("command -v '", binary, "' >/dev/null 2>&1 && echo yes").c_str()) !=
      "yes") {
    r.error = absl::StrCat(binary, " not found (Debian package likwid; tools/bazel installs it)");
    return r;
  }
  const CpuSnapshot a = ReadCpuSnapshot();
  std::string out;
  int status = -1;
  {
    FILE* p = popen(absl::StrCat(r.command, " 2>&1").c_str(), "r");
    if (p == nullptr) {
      r.error = absl::StrCat("cannot run ", r.command, ": ", std::strerror(errno));
      return r;
    }
    char buf[512];
    while (fgets(buf, sizeof buf, p) != nullptr) out += buf;
    status = pclose(p);
  }
  const CpuSnapshot b = ReadCpuSnapshot();
  r.other_cores = OtherBusyCores(a, b);
  r.seconds = b.wall_s - a.wall_s;
  double mbs = 0;
  if (status != 0 || !ParseLikwidMBytesPerS(out, &mbs)) {
    // The last non-empty line is where likwid says what went wrong.
    std::string last;
    std::istringstream in(out);
    for (std::string line; std::getline(in, line);) {
      if (line.find_first_not_of(" \t-*") != std::string::npos) last = line;
    }
    r.error = absl::StrCat(
        status != 0 ? absl::StrCat("exit status ", WIFEXITED(status) ? WEXITSTATUS(status) : status)
                    : std::string("no \"MByte/s:\" line in its output"),
        last.empty() ? "" : absl::StrCat(": ", last));
    return r;
  }
  r.ok = true;
  r.gbps = mbs / 1000.0;
  return r;
}

nlohmann::ordered_json LikwidJson(const LikwidResult& r) {
  nlohmann::ordered_json j;
  j["threads"] = r.threads;
  j["command"] = r.command;
  if (r.ok) {
    j["gbps"] = r.gbps;
  } else {
    j["gbps"] = nullptr;
    j["error"] = r.error;
  }
  if (std::isnan(r.other_cores)) {
    j["other_cores"] = nullptr;
  } else {
    j["other_cores"] = std::round(r.other_cores * 1000) / 1000;
  }
  j["seconds"] = std::round(r.seconds * 10) / 10;
  return j;
}

}  // namespace fk
