// Microbenchmarks of every registry kernel this CPU runs, through run_kernel (so the int8
// path's activation quantization is included, as in real use), plus the thread pool's
// per-call overhead.
//
//   bazel run //harness:kernel_bench -- [--threads=N] [--hot] [--no_dram] [benchmark flags]
//
// Kernel benchmarks are named "<entry>/m:<m>/n:<n>/k:<k>", e.g.
// "q4_k_int8__avx512_vnni/m:1/n:14336/k:4096"; select with --benchmark_filter=<regex>.
// Shapes: GEMV (m = 1) 4096x4096, 14336x4096 and 4096x14336 (n x k), batched m = 8, 64, 256
// at 4096x4096; a row with a MIN_M (e.g. q4_k_int8_panel__avx512, MIN_M 8) only on shapes with
// m >= MIN_M. Counters:
//   bytes_per_second  weight bytes read per second
//   GFLOPs            2 m n k per second / 1e9
//   dram_probe_GBps   batch 1 only: DRAM read bandwidth with the same thread count, probed
//                     (harness/machine.h: at least 256 MiB and 4x the last-level cache,
//                     best of 3 passes) right after the benchmark, outside its timing
//   dram_probe_quiet  1 when other work used at most 0.25 cores during that probe, else 0
//   dram_GBps         batch 1 only: the roofline, the best probe so far (other work only
//                     lowers a probe; on a shared host the bandwidth drifts)
//   dram_frac         batch 1 only: weight bytes/s / dram_GBps, the fraction of the roofline;
//                     absent until a probe was quiet (no share of a probe taken under load)
//   above_roofline    batch 1 only: 1 when the benchmark read faster than dram_GBps (a flag:
//                     the probe was low or the weights came from a cache), else 0
// Before the first benchmark it waits (at most 30 s, with progress lines) for a quiet machine
// and probes once (1 GiB at least); that figure is printed and recorded in the JSON context
// ("dram_read_GBps", "dram_read_quiet"). --no_dram skips all probes.
//
// "pack/<packer>/k:4096": one activation row quantized by each int8 path's packer (bytes/s =
// input floats read), e.g. the avx2 packers against the reference ones they replaced.
//
// "pool/..." benchmarks: ParallelFor of empty tasks, and a 576x576 batch-1 matmul (the size a
// small transformer calls ~200 times per token; K-quants: 576x768, a whole number of blocks)
// with the best kernel per format, inline ("threads:1") and on the pool: their difference is
// what the pool costs per call.
//
// "attention/..." benchmarks: one decoded token's attention in one layer of the TinyLlama-1.1B
// shape (32 query heads over 4 key / value heads, head_dim 64) over ctx cached positions,
// as the runtime calls it (blocks of up to kAttentionScratchRows query heads per key / value
// head), per attention kernel. The cache's keys and values are 2 KB per position (512 KB at
// ctx 256, in L2 on the machines seen; 2 MB at ctx 1024, the size of an Intel Xeon's L2).
// items/s counts (query head, position) pairs.
//
// By default each iteration reads the next of several copies of the weights, together at
// least 4 x the last-level cache (and kColdBytes), so weights stream from DRAM as they do in
// a forward pass over a whole model (a single 4096x4096 Q4_K matrix, 9.4 MB, would otherwise
// sit in a 32 MB L3; the Intel Xeon guests report 260 MB of L3, where a fixed 160 MB of
// copies read 20.9 GB/s of Q4_K against a 16.4 GB/s DRAM probe).
// Each copy is in 2 MB pages, as the sweep's and the runtime's weights (kernels/pages.h).
// --hot uses one copy (cache-resident when it fits).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "benchmark/benchmark.h"
#include "harness/machine.h"
#include "kernels/attention.h"
#include "kernels/cpu_features.h"
#include "kernels/matmul.h"
#include "kernels/registry.h"
#include "kernels/thread_pool.h"
#include "kernels/weight_format.h"

namespace fk {
namespace {

constexpr size_t kColdBytes = size_t{160} << 20;  // at least; raised to 4 x the LLC
constexpr int64_t kDistinctRows = 64;  // rows actually quantized; repeated to fill n
constexpr size_t kProbeBytes = size_t{256} << 20;  // per-benchmark DRAM probe, at least

struct Shape {
  int64_t m, n, k;
};
constexpr Shape kShapes[] = {
    {1, 4096, 4096},   {1, 14336, 4096}, {1, 4096, 14336},
    {8, 4096, 4096},   {64, 4096, 4096}, {256, 4096, 4096},
};

struct Config {
  std::vector<Shape> shapes{std::begin(kShapes), std::end(kShapes)};
  int threads = 1;
  bool hot = false;
  bool dram = true;
};
Config g_config;

// Every DRAM probe of this run (the roofline is the best; shares only once one was quiet).
DramRoofline* g_roofline = nullptr;

// Weight copies of one (format, n, k), built on first use and kept until another is asked
// for (benchmarks are registered format by format, shape by shape, so each set is built
// once): kDistinctRows rows of N(0, 0.02) quantized by the reference quantizer, tiled to n
// rows, then copied until ColdBytes().
size_t ColdBytes() {
  static const size_t bytes = DramProbeBytes(kColdBytes, LastLevelCacheBytes());
  return bytes;
}

const std::vector<WeightFormat>& weights_for(Format f, int64_t n, int64_t k) {
  static std::tuple<Format, int64_t, int64_t> key{Format::kF32, -1, -1};
  static std::vector<WeightFormat> copies;
  if (key == std::make_tuple(f, n, k)) return copies;
  copies.clear();
  key = std::make_tuple(f, n, k);
  std::mt19937_64 rng(42);
  std::normal_distribution<float> nd(0.0f, 0.02f);
  std::vector<float> w(static_cast<size_t>(kDistinctRows * k));
  for (float& v : w) v = nd(rng);
  WeightFormat base = *WeightFormat::Quantize(w.data(), kDistinctRows, k, f);
  const size_t rb = static_cast<size_t>(base.row_bytes());
  std::vector<uint8_t> bytes(rb * static_cast<size_t>(n));
  for (int64_t r = 0; r < n; ++r)
    std::memcpy(bytes.data() + rb * r, base.row_data(r % kDistinctRows), rb);
  const size_t count = g_config.hot ? 1 : (ColdBytes() + bytes.size() - 1) / bytes.size();
  copies = *WeightFormat::Copies(f, n, k, bytes.data(), bytes.size(), count,
                                 WeightFormat::Memory::kHugePages);
  return copies;
}

ThreadPool* pool() {
  static ThreadPool* p = new ThreadPool(g_config.threads);
  return p;
}

std::vector<float> random_input(int64_t m, int64_t k) {
  std::vector<float> x(static_cast<size_t>(m * k));
  std::mt19937_64 rng(7);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (float& v : x) v = nd(rng);
  return x;
}

void run(benchmark::State& state, const KernelEntry* e, Shape s) {
  const std::vector<WeightFormat>& ws = weights_for(e->format, s.n, s.k);
  const std::vector<float> x = random_input(s.m, s.k);
  std::vector<float> out(static_cast<size_t>(s.m * s.n));
  MatmulScratch scratch;
  size_t c = 0;
  const auto loop_start = std::chrono::steady_clock::now();
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
  const double loop_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - loop_start).count();
  const double bytes = static_cast<double>(ws[0].memory_bytes());
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes));
  state.counters["GFLOPs"] = benchmark::Counter(
      2.0 * s.m * s.n * s.k * state.iterations() / 1e9, benchmark::Counter::kIsRate);
  if (g_roofline != nullptr && s.m == 1) {
    // The DRAM bandwidth right after this benchmark (on a shared host it drifts by tens of
    // percent within minutes, so one probe at start-up is not a fair roofline for all).
    // Google Benchmark calls this several times while it sizes the run; the short sizing
    // calls (their counters are discarded) reuse the last probe instead of taking one.
    const DramProbe& p = loop_s >= 0.1 || g_roofline->probes().empty()
                             ? g_roofline->Probe(g_config.threads, "after a benchmark")
                             : g_roofline->probes().back();
    const double roof = g_roofline->Best(g_config.threads);
    state.counters["dram_probe_GBps"] = p.gbps;
    state.counters["dram_probe_quiet"] = p.quiet ? 1 : 0;
    state.counters["dram_GBps"] = roof;
    if (g_roofline->Trusted(g_config.threads)) {
      state.counters["dram_frac"] = benchmark::Counter(state.iterations() * bytes / (roof * 1e9),
                                                       benchmark::Counter::kIsRate);
    }
    // The loop's own wall time (Google Benchmark's is not visible here) for the flag.
    const double gbps = state.iterations() * bytes / 1e9 / std::max(loop_s, 1e-12);
    state.counters["above_roofline"] = ShareOfRoofline(gbps, roof, true).above ? 1 : 0;
  }
  state.counters["threads"] = g_config.threads;
}

// ParallelFor of `tasks` empty tasks on the benchmark's pool.
void pool_overhead(benchmark::State& state, int64_t tasks) {
  std::atomic<int64_t> sink{0};
  const std::function<void(int64_t)> fn = [&](int64_t t) {
    sink.fetch_add(t, std::memory_order_relaxed);
  };
  for (auto _ : state) pool()->ParallelFor(tasks, fn);
  state.counters["threads"] = g_config.threads;
}

// k of the small matmul: 576, rounded up to a whole block (K-quants: 768).
int64_t tiny_k(Format f) {
  const int64_t b = traits(f).block_elems;
  return (576 + b - 1) / b * b;
}

// A 576 x tiny_k batch-1 matmul (hot in cache) with `e`, inline or on the pool.
void tiny_matmul(benchmark::State& state, const KernelEntry* e, bool on_pool) {
  const int64_t n = 576, k = tiny_k(e->format);
  std::mt19937_64 rng(42);
  std::normal_distribution<float> nd(0.0f, 0.02f);
  std::vector<float> wf(static_cast<size_t>(n * k));
  for (float& v : wf) v = nd(rng);
  const WeightFormat w = *WeightFormat::Quantize(wf.data(), n, k, e->format);
  const std::vector<float> x = random_input(1, k);
  std::vector<float> out(static_cast<size_t>(n));
  MatmulScratch scratch;
  for (auto _ : state) {
    absl::Status st =
        run_kernel(*e, x.data(), w, 1, out.data(), n, on_pool ? pool() : nullptr, &scratch);
    if (!st.ok()) {
      state.SkipWithError(std::string(st.message()).c_str());
      break;
    }
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.counters["threads"] = on_pool ? g_config.threads : 1;
}

// Quantizing one activation row of k = 4096 with `p` (hot in cache): input floats per second.
void pack_row(benchmark::State& state, const ActPacker* p) {
  const int64_t k = 4096;
  const std::vector<float> x = random_input(1, k);
  std::vector<uint8_t> buf(static_cast<size_t>(p->row_bytes(k) + 64));
  uint8_t* out = buf.data() + ((64 - reinterpret_cast<uintptr_t>(buf.data()) % 64) % 64);
  for (auto _ : state) {
    p->pack_row(x.data(), k, out);
    benchmark::DoNotOptimize(out);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * k * static_cast<int64_t>(sizeof(float)));
}

void attention_layer(benchmark::State& state, const AttentionKernel* kern, int64_t ctx) {
  constexpr int64_t kHeads = 32, kKvHeads = 4, kHeadDim = 64;
  constexpr int64_t kKvDim = kKvHeads * kHeadDim;
  const std::vector<float> q = random_input(1, kHeads * kHeadDim);
  const std::vector<float> k = random_input(ctx, kKvDim);
  const std::vector<float> v = random_input(ctx, kKvDim);
  std::vector<float> scores(static_cast<size_t>(kAttentionScratchRows * ctx));
  std::vector<float> out(static_cast<size_t>(kHeads * kHeadDim));
  const int64_t group = kHeads / kKvHeads;
  for (auto _ : state) {
    for (int64_t g = 0; g < kKvHeads; ++g) {
      for (int64_t h0 = g * group; h0 < (g + 1) * group; h0 += kAttentionScratchRows) {
        AttentionRows rows;
        rows.q = q.data() + h0 * kHeadDim;
        rows.q_stride = kHeadDim;
        rows.out = out.data() + h0 * kHeadDim;
        rows.out_stride = kHeadDim;
        rows.k = k.data() + g * kHeadDim;
        rows.v = v.data() + g * kHeadDim;
        rows.stride = kKvDim;
        rows.head_dim = kHeadDim;
        rows.rows = std::min<int64_t>(kAttentionScratchRows, (g + 1) * group - h0);
        rows.hi0 = ctx - 1;
        rows.pos_step = 0;
        rows.scale = 0.125f;
        rows.scores = scores.data();
        rows.scores_stride = ctx;
        kern->rows_fn(rows);
      }
    }
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * kHeads * ctx);
}

void register_all() {
  for (int64_t tasks : {2, 8}) {
    benchmark::RegisterBenchmark(absl::StrCat("pool/parallel_for/tasks:", tasks).c_str(),
                                 [tasks](benchmark::State& st) { pool_overhead(st, tasks); })
        ->Unit(benchmark::kMicrosecond)
        ->UseRealTime();
  }
  for (const FormatTraits& t : all_formats()) {
    absl::StatusOr<const KernelEntry*> e = select_kernel(t.format);
    if (!e.ok()) continue;
    for (bool on_pool : {false, true}) {
      benchmark::RegisterBenchmark(
          absl::StrCat("pool/matmul/", (*e)->name, "/n:576/k:", tiny_k(t.format), "/threads:",
                       on_pool ? g_config.threads : 1)
              .c_str(),
          [entry = *e, on_pool](benchmark::State& st) { tiny_matmul(st, entry, on_pool); })
          ->Unit(benchmark::kMicrosecond)
          ->UseRealTime();
    }
  }
  for (const AttentionKernel& kern : all_attention_kernels()) {
    if (!cpu_has(kern.features)) continue;
    for (int64_t ctx : {256, 1024}) {
      benchmark::RegisterBenchmark(absl::StrCat("attention/", kern.name, "/ctx:", ctx).c_str(),
                                   [kp = &kern, ctx](benchmark::State& st) { attention_layer(st, kp, ctx); })
          ->Unit(benchmark::kMicrosecond)
          ->UseRealTime();
    }
  }
  // Every activation packer a runnable int8 kernel uses, once.
  std::vector<const ActPacker*> packers;
  for (const KernelEntry& e : all_kernels()) {
    if (e.path != Path::kInt8 || !kernel_runnable(e)) continue;
    if (std::find(packers.begin(), packers.end(), e.act) == packers.end()) packers.push_back(e.act);
  }
  for (const ActPacker* p : packers) {
    benchmark::RegisterBenchmark(absl::StrCat("pack/", p->name, "/k:4096").c_str(),
                                 [p](benchmark::State& st) { pack_row(st, p); })
        ->Unit(benchmark::kMicrosecond)
        ->UseRealTime();
  }
  for (const FormatTraits& t : all_formats()) {
    for (const Shape& s : g_config.shapes) {
      for (const KernelEntry& e : all_kernels()) {
        if (e.format != t.format || !kernel_runnable(e)) continue;
        if (s.k % t.block_elems != 0) continue;
        if (s.m < e.min_m) continue;  // a row for batches of at least MIN_M
        benchmark::RegisterBenchmark(
            absl::StrCat(e.name, "/m:", s.m, "/n:", s.n, "/k:", s.k).c_str(),
            [entry = &e, s](benchmark::State& st) { run(st, entry, s); })
            ->Unit(benchmark::kMicrosecond)
            ->UseRealTime();
      }
    }
  }
}

constexpr char kUsage[] =
    "usage: kernel_bench [--threads=N] [--hot] [--no_dram] [Google Benchmark flags]\n"
    "  --threads=N   threads per matmul (default 1)\n"
    "  --hot         one copy of the weights (cache-resident when small) instead of\n"
    "                streaming copies from DRAM\n"
    "  --no_dram     skip the DRAM bandwidth probes (a wait of up to 30 s for a quiet\n"
    "                machine, about 2 s, and 1-2 s per batch-1 benchmark) and the dram_* /\n"
    "                above_roofline counters\n"
    "  --shapes=M:N:K[,M:N:K...]  kernel shapes instead of the defaults (K a multiple of 256\n"
    "                for the K-quants; formats whose block K is not a multiple of are skipped)\n"
    "  e.g. --benchmark_filter='q4_k_int8__avx512_vnni/m:1/' --benchmark_repetitions=5\n";

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
    } else if (a == "--no_dram") {
      fk::g_config.dram = false;
    } else if (absl::StartsWith(a, "--shapes=")) {
      fk::g_config.shapes.clear();
      for (absl::string_view part : absl::StrSplit(a.substr(9), ',')) {
        std::vector<absl::string_view> f = absl::StrSplit(part, ':');
        fk::Shape s{0, 0, 0};
        if (f.size() != 3 || !absl::SimpleAtoi(f[0], &s.m) || !absl::SimpleAtoi(f[1], &s.n) ||
            !absl::SimpleAtoi(f[2], &s.k) || s.m < 1 || s.n < 1 || s.k < 1) {
          std::fprintf(stderr, "kernel_bench: --shapes wants M:N:K[,M:N:K...] with positive "
                       "integers, got '%s'\n", std::string(part).c_str());
          return 2;
        }
        fk::g_config.shapes.push_back(s);
      }
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
  const fk::MachineInfo machine = fk::DescribeMachine();
  benchmark::AddCustomContext("cpu_model", machine.cpu_model);
  benchmark::AddCustomContext("git_commit", machine.git_commit);
  benchmark::AddCustomContext("kernel_threads", std::to_string(fk::g_config.threads));
  {
    // Dispatch's software-prefetch choice per path on this CPU (kernels/matmul.h).
    std::string prefetch;
    for (fk::Path p : {fk::Path::kInt8, fk::Path::kF32, fk::Path::kBf16, fk::Path::kF16}) {
      const bool short_rows = fk::software_prefetch_for(p, fk::kShortRowBytes - 1);
      const bool long_rows = fk::software_prefetch_for(p, fk::kShortRowBytes);
      absl::StrAppend(&prefetch, prefetch.empty() ? "" : ", ", fk::path_name(p), " ",
                      short_rows == long_rows ? (long_rows ? "on" : "off")
                                              : absl::StrCat(short_rows ? "on" : "off", " below ",
                                                             fk::kShortRowBytes, "-byte rows, else ",
                                                             long_rows ? "on" : "off"));
    }
    benchmark::AddCustomContext("software_prefetch", absl::StrCat(prefetch, " (", fk::cpu_vendor(), ")"));
  }
  std::unique_ptr<fk::DramRoofline> roofline;
  if (fk::g_config.dram) {
    const size_t llc = fk::LastLevelCacheBytes();
    const size_t start_bytes = fk::DramProbeBytes(size_t{1} << 30, llc);
    const size_t bench_bytes = fk::DramProbeBytes(fk::kProbeBytes, llc);
    fk::RooflinePolicy policy;
    policy.settle_max_s = 30;
    fk::RooflineEnv env;
    // The first probe reads more and takes the best of 5 passes; the per-benchmark ones 3.
    env.probe = [start_bytes, bench_bytes, first = true](int t) mutable {
      const double gbps = first ? fk::MeasureReadBandwidth(t, start_bytes) / 1e9
                                : fk::MeasureReadBandwidth(t, bench_bytes, 3) / 1e9;
      first = false;
      return gbps;
    };
    env.progress = [](const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); };
    roofline = std::make_unique<fk::DramRoofline>(policy, env);
    roofline->WaitForQuiet("kernel_bench");
    std::fprintf(stderr, "kernel_bench: measuring DRAM read bandwidth (%d thread%s)...\n",
                 fk::g_config.threads, fk::g_config.threads == 1 ? "" : "s");
    const fk::DramProbe& p = roofline->Probe(fk::g_config.threads, "start");
    const std::string gbps = absl::StrFormat("%.1f", p.gbps);
    std::fprintf(stderr, "kernel_bench: DRAM read bandwidth %s GB/s with %d thread%s (%zu MiB "
                 "sequential read, best of 5; other work %.2f cores: %s)\n",
                 gbps.c_str(), fk::g_config.threads, fk::g_config.threads == 1 ? "" : "s",
                 start_bytes >> 20, p.other_cores,
                 p.quiet ? "quiet" : "taken under load, so no dram_frac until a quiet probe");
    benchmark::AddCustomContext("dram_read_GBps", gbps);
    benchmark::AddCustomContext("dram_read_quiet", p.quiet ? "true" : "false");
    fk::g_roofline = roofline.get();
  }
  fk::register_all();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
