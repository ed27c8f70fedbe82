#include "harness/machine.h"

#include <sys/utsname.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

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

}  // namespace

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
  if (m.bazel_version.empty()) m.bazel_version = "unknown";
  return m;
}

double MeasureReadBandwidth(int threads, size_t bytes, int reps) {
  threads = std::max(1, threads);
  const size_t words = bytes / sizeof(uint64_t);
  uint64_t* buf = static_cast<uint64_t*>(std::aligned_alloc(64, words * sizeof(uint64_t)));
  if (buf == nullptr) return 0.0;
  for (size_t i = 0; i < words; ++i) buf[i] = i;  // touch every page
  std::vector<double> rates;
  volatile uint64_t sink = 0;
  for (int r = 0; r < reps + 1; ++r) {  // the first pass is a warm-up
    std::vector<uint64_t> sums(threads);
    std::vector<std::thread> pool;
    const auto t0 = std::chrono::steady_clock::now();
    for (int t = 0; t < threads; ++t) {
      const size_t begin = words * t / threads, end = words * (t + 1) / threads;
      pool.emplace_back([&, t, begin, end] { sums[t] = SumRange(buf + begin, end - begin); });
    }
    for (std::thread& th : pool) th.join();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    for (uint64_t v : sums) sink = sink + v;
    if (r > 0) rates.push_back(static_cast<double>(words * sizeof(uint64_t)) / s);
  }
  std::free(buf);
  std::sort(rates.begin(), rates.end());
  return rates[rates.size() / 2];
}

std::string ShortCpuName(const std::string& cpu_model) {
  std::string s;
  for (char c : cpu_model) {
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

}  // namespace fk
