// Microbenchmarks of every registry kernel this CPU runs, through run_kernel (so the int8
// path's activation quantization is included, as in real use).
//
//   bazel run //harness:kernel_bench -- [--threads=N] [--hot] [benchmark flags]
//
// Benchmarks are named "<entry>/m:<m>/n:<n>/k:<k>", e.g. "q4_k_int8__avx2/m:1/n:4096/k:4096";
// select with --benchmark_filter=<regex>. Counters: bytes_per_second = weight bytes read
// per second, GFLOPs = 2*m*n*k per second / 1e9.
//
// By default each iteration reads the next of several copies of the weights, together at
// least kColdBytes, so weights stream from DRAM as they do in a forward pass over a whole
// model (a single 4096x4096 Q4_K matrix, 9.4 MB, would otherwise sit in a 32 MB L3).
// --hot uses one copy (cache-resident when it fits).
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/match.h"
#include "benchmark/benchmark.h"
#include "kernels/matmul.h"
#include "kernels/registry.h"
#include "kernels/thread_pool.h"
#include "kernels/weight_format.h"

namespace fk {
namespace {

constexpr size_t kColdBytes = size_t{160} << 20;  // 5x a 32 MB L3
constexpr int64_t kDistinctRows = 64;  // rows actually quantized; repeated to fill n

struct Shape {
  int64_t m, n, k;
};
constexpr Shape kShapes[] = {
    {1, 4096, 4096},  {8, 4096, 4096},  {64, 4096, 4096},
    {1, 14336, 4096}, {8, 14336, 4096}, {64, 14336, 4096},
};

struct Config {
  int threads = 1;
  bool hot = false;
};
Config g_config;

// Weight copies per (format, n, k), built on first use: kDistinctRows rows of N(0, 0.02)
// quantized by the reference quantizer, tiled to n rows, then copied until kColdBytes.
const std::vector<WeightFormat>& weights_for(Format f, int64_t n, int64_t k) {
  static std::map<std::tuple<Format, int64_t, int64_t>, std::vector<WeightFormat>> cache;
  auto key = std::make_tuple(f, n, k);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  std::mt19937_64 rng(42);
  std::normal_distribution<float> nd(0.0f, 0.02f);
  std::vector<float> w(static_cast<size_t>(kDistinctRows * k));
  for (float& v : w) v = nd(rng);
  WeightFormat base = *WeightFormat::Quantize(w.data(), kDistinctRows, k, f);
  const size_t rb = static_cast<size_t>(base.row_bytes());
  std::vector<uint8_t> bytes(rb * static_cast<size_t>(n));
  for (int64_t r = 0; r < n; ++r)
    std::memcpy(bytes.data() + rb * r, base.row_data(r % kDistinctRows), rb);
  const size_t copies = g_config.hot ? 1 : (kColdBytes + bytes.size() - 1) / bytes.size();
  std::vector<WeightFormat> out;
  for (size_t c = 0; c < copies; ++c)
    out.push_back(*WeightFormat::FromBytes(f, n, k, bytes.data(), bytes.size()));
  return cache.emplace(key, std::move(out)).first->second;
}

ThreadPool* pool() {
  static ThreadPool* p = new ThreadPool(g_config.threads);
  return p;
}

void run(benchmark::State& state, const KernelEntry* e, Shape s) {
  const std::vector<WeightFormat>& ws = weights_for(e->format, s.n, s.k);
  std::vector<float> x(static_cast<size_t>(s.m * s.k));
  std::mt19937_64 rng(7);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (float& v : x) v = nd(rng);
  std::vector<float> out(static_cast<size_t>(s.m * s.n));
  MatmulScratch scratch;
  size_t c = 0;
  for (auto _ : state) {
    absl::Status st = run_kernel(*e, x.data(), ws[c], s.m, out.data(), s.m * s.n, pool(),
                                 &scratch);
    if (!st.ok()) {
      state.SkipWithError(std::string(st.message()).c_str());
      break;
    }
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
    c = (c + 1) % ws.size();
  }
  const double bytes = static_cast<double>(ws[0].memory_bytes());
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes));
  state.counters["GFLOPs"] = benchmark::Counter(
      2.0 * s.m * s.n * s.k * state.iterations() / 1e9, benchmark::Counter::kIsRate);
  state.counters["threads"] = g_config.threads;
}

void register_all() {
  for (const KernelEntry& e : all_kernels()) {
    if (!kernel_runnable(e)) continue;
    for (const Shape& s : kShapes) {
      benchmark::RegisterBenchmark(
          absl::StrCat(e.name, "/m:", s.m, "/n:", s.n, "/k:", s.k).c_str(),
          [entry = &e, s](benchmark::State& st) { run(st, entry, s); })
          ->Unit(benchmark::kMicrosecond)
          ->UseRealTime();
    }
  }
}

constexpr char kUsage[] =
    "usage: kernel_bench [--threads=N] [--hot] [Google Benchmark flags]\n"
    "  --threads=N   threads per matmul (default 1)\n"
    "  --hot         one copy of the weights (cache-resident when small) instead of\n"
    "                streaming copies from DRAM\n"
    "  e.g. --benchmark_filter='q4_k_int8__avx2/m:1/'\n";

}  // namespace
}  // namespace fk

int main(int argc, char** argv) {
  // Our flags first; the rest go to Google Benchmark.
  std::vector<char*> rest = {argv[0]};
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::fputs(fk::kUsage, stdout);
      std::fputs("\nGoogle Benchmark flags:\n", stdout);
      rest.push_back(argv[i]);
    } else if (absl::StartsWith(a, "--threads=")) {
      int t = 0;
      if (!absl::SimpleAtoi(a.substr(10), &t) || t < 1 || t > 256) {
        std::fprintf(stderr, "kernel_bench: --threads must be an integer in [1, 256], got '%s'\n",
                     a.substr(10).c_str());
        return 2;
      }
      fk::g_config.threads = t;
    } else if (a == "--hot") {
      fk::g_config.hot = true;
    } else {
      rest.push_back(argv[i]);
    }
  }
  int rest_argc = static_cast<int>(rest.size());
  benchmark::Initialize(&rest_argc, rest.data());
  if (benchmark::ReportUnrecognizedArguments(rest_argc, rest.data())) {
    std::fputs(fk::kUsage, stderr);
    return 2;
  }
  fk::register_all();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
