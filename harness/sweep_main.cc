// //harness:sweep — the performance sweep. `tools/bazel run //harness:sweep -- --help`.
//
// Measures the machine, then every case of the grid (harness/sweep_options.h): our
// registry kernels, the dequantize-then-matmul baseline and ggml's MUL_MAT, side by side;
// writes results.json / results.csv after every case and calls //tools:plot at the end.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "harness/machine.h"
#include "harness/sweep_measure.h"
#include "harness/sweep_options.h"
#include "harness/sweep_output.h"
#include "harness/sweep_peer.h"
#include "kernels/formats_json.h"
#include "kernels/matmul.h"
#include "kernels/registry.h"
#include "kernels/thread_pool.h"
#include "kernels/weight_format.h"
#include "nlohmann/json.hpp"

namespace fk {
namespace {

using ojson = nlohmann::ordered_json;

volatile int g_stop = 0;  // set by the first Ctrl-C
void OnSigint(int) {
  g_stop = 1;
  signal(SIGINT, SIG_DFL);  // a second Ctrl-C ends the process at once
}

constexpr int kMaxReps = 200;
constexpr int64_t kDistinctRows = 256;  // rows of random weights quantized; tiled to n rows

std::string NowUtc() {
  const std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

std::string Today() {
  const std::time_t t = std::time(nullptr);
  char buf[16];
  std::strftime(buf, sizeof buf, "%Y-%m-%d", std::localtime(&t));
  return buf;
}

std::string FormatSeconds(double s) {
  if (s < 60) return absl::StrFormat("%.0fs", s);
  return absl::StrFormat("%dm%02ds", static_cast<int>(s) / 60, static_cast<int>(s) % 60);
}

std::string FormatTime(double s) {
  if (s < 1e-3) return absl::StrFormat("%6.1f us", s * 1e6);
  if (s < 1) return absl::StrFormat("%6.2f ms", s * 1e3);
  return absl::StrFormat("%6.3f s ", s);
}

std::string ShapeName(const Shape& s) { return absl::StrCat(s.n, "x", s.k); }

// The 1-, 5- and 15-minute load averages ("0.12 0.30 0.25"): other work on the machine
// makes timings noisy, so the run records it.
std::string LoadAverage() {
  std::ifstream f("/proc/loadavg");
  std::string a, b, c;
  if (!(f >> a >> b >> c)) return "unknown";
  return absl::StrCat(a, " ", b, " ", c);
}

// Resolves the output directory as the help text says.
std::string ResolveOut(const SweepOptions& o, const MachineInfo& mi) {
  const char* ws = std::getenv("BUILD_WORKSPACE_DIRECTORY");
  const char* wd = std::getenv("BUILD_WORKING_DIRECTORY");
  if (o.out.empty()) {
    const std::string root = ws != nullptr ? ws : ".";
    return absl::StrCat(root, "/reports/", Today(), "-", ShortCpuName(mi.cpu_model));
  }
  if (o.out[0] == '/' || wd == nullptr) return o.out;
  return absl::StrCat(wd, "/", o.out);
}

absl::Status MakeDirs(const std::string& path) {
  std::string cur;
  for (size_t i = 0; i <= path.size(); ++i) {
    if (i == path.size() || path[i] == '/') {
      if (!cur.empty() && mkdir(cur.c_str(), 0755) != 0 && errno != EEXIST) {
        return absl::InvalidArgumentError(
            absl::StrCat("--out: cannot create directory ", cur, ": ", std::strerror(errno)));
      }
    }
    if (i < path.size()) cur += path[i];
  }
  return absl::OkStatus();
}

// ---- the machine ------------------------------------------------------------------------

struct Machine {
  MachineInfo info;
  std::map<int, double> peak_f32, peak_int8;
  std::string peak_f32_how, peak_int8_how;
  size_t llc = 0;
  size_t dram_bytes = 0;                // what each DRAM probe reads
  std::unique_ptr<DramRoofline> dram;   // every DRAM probe of the run; the roofline = the best
  DramRoofline::Settled settle_start, settle_end;
  bool settled_end = false;
  std::string likwid_status;            // "" = ran (see likwid), else why not
  std::string likwid_version;
  std::vector<LikwidResult> likwid;     // likwid-bench's figure per thread count

  double Dram(int t) const { return dram ? dram->Best(t) : 0.0; }
  bool DramTrusted(int t) const { return dram && dram->Trusted(t); }
};

std::string Plural(int t) { return t == 1 ? "" : "s"; }

// "quiet: other work 0.02 cores" / "taken under load: other work 1.07 cores, load 1.10".
std::string ProbeLoad(const DramProbe& p) {
  if (std::isnan(p.other_cores)) return "load unknown";
  return p.quiet ? absl::StrFormat("quiet: other work %.2f cores", p.other_cores)
                 : absl::StrFormat("taken under load: other work %.2f cores, load average %.2f",
                                   p.other_cores, p.loadavg_1m);
}

// Takes a DRAM probe now and prints it with what it did to the roofline.
void ProbeDram(Machine& m, int t, const std::string& reason) {
  const double before = m.Dram(t);
  const bool trusted_before = m.DramTrusted(t);
  const DramProbe& p = m.dram->Probe(t, reason);
  std::string effect;
  if (m.Dram(t) > before && before > 0) {
    effect = absl::StrFormat("; roofline raised from %.1f", before);
  } else if (before > 0) {
    effect = absl::StrFormat("; roofline stays %.1f (best so far)", m.Dram(t));
  }
  if (!m.DramTrusted(t)) {
    effect += "; no share of it is shown until a probe is taken on a quiet machine";
  } else if (!trusted_before && before > 0) {
    effect += "; shares are shown from now on";
  }
  std::printf("sweep: DRAM probe (%s), %d thread%s: %.1f GB/s (%s)%s\n", reason.c_str(), t,
              Plural(t).c_str(), p.gbps, ProbeLoad(p).c_str(), effect.c_str());
  std::fflush(stdout);
}

Machine MeasureMachine(const SweepOptions& o) {
  Machine m;
  m.info = DescribeMachine();
  m.llc = LastLevelCacheBytes();
  std::printf("sweep: machine: %s, %d logical cores, LLC %zu MiB, %s\n", m.info.cpu_model.c_str(),
              m.info.logical_cores, m.llc >> 20, m.info.compiler.c_str());
  std::printf("sweep: ISA: %s\n", absl::StrJoin(m.info.isa_flags, " ").c_str());
  std::printf("sweep: commit %s, %s\n", m.info.git_commit.c_str(), m.info.bazel_version.c_str());
  m.dram_bytes = DramProbeBytes(static_cast<size_t>(o.dram_mb) << 20, m.llc);
  if (m.dram_bytes > static_cast<size_t>(o.dram_mb) << 20) {
    std::printf("sweep: note: the DRAM probe reads %zu MiB, not %lld: 4 x the %zu MiB last-level "
                "cache, so it measures DRAM, not the cache\n",
                m.dram_bytes >> 20, static_cast<long long>(o.dram_mb), m.llc >> 20);
  }
  std::fflush(stdout);

  RooflinePolicy policy;
  policy.settle_max_s = o.settle_s;
  policy.reprobe_every_s = o.reprobe_s;
  RooflineEnv env;
  const size_t bytes = m.dram_bytes;
  env.probe = [bytes](int t) { return MeasureReadBandwidth(t, bytes) / 1e9; };
  env.progress = [](const std::string& line) {
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
  };
  env.stop = [] { return g_stop != 0; };
  m.dram = std::make_unique<DramRoofline>(policy, env);
  m.settle_start = m.dram->WaitForQuiet("sweep");

  const std::string likwid_bin = o.likwid == "auto" ? "likwid-bench" : o.likwid;
  if (o.likwid == "off") m.likwid_status = "off (--likwid=off)";
  for (int t : o.threads) {
    if (g_stop) break;
    ProbeDram(m, t, "start");
    if (m.likwid_status.empty()) {
      std::printf("sweep: likwid-bench, %d thread%s: %s ...\n", t, Plural(t).c_str(),
                  LikwidBenchCommand(t, m.dram_bytes, likwid_bin).c_str());
      std::fflush(stdout);
      LikwidResult r = RunLikwidBench(t, m.dram_bytes, likwid_bin);
      if (r.ok) {
        const double ours = m.dram->probes().back().gbps;
        std::printf("sweep: likwid-bench %s, %d thread%s: %.1f GB/s (ours just before: %.1f GB/s, "
                    "%.2fx likwid's; %s)\n", r.test.c_str(), t, Plural(t).c_str(), r.gbps, ours,
                    ours / r.gbps,
                    std::isnan(r.other_cores)
                        ? "load unknown"
                        : absl::StrFormat("other work %.2f cores", r.other_cores).c_str());
      } else {
        std::printf("sweep: likwid-bench, %d thread%s: no figure: %s; going on without it\n", t,
                    Plural(t).c_str(), r.error.c_str());
        if (absl::StrContains(r.error, "not found")) m.likwid_status = r.error;
      }
      std::fflush(stdout);
      m.likwid.push_back(std::move(r));
    }
    m.peak_f32[t] = MeasurePeakGflops(PeakKind::kF32, t, &m.peak_f32_how);
    m.peak_int8[t] = MeasurePeakGflops(PeakKind::kInt8, t, &m.peak_int8_how);
    std::printf("sweep: %d thread%s: peak f32 %.0f GFLOP/s, peak int8 %.0f Gop/s\n", t,
                Plural(t).c_str(), m.peak_f32[t], m.peak_int8[t]);
    std::fflush(stdout);
  }
  if (m.likwid_status.empty() && !m.likwid.empty()) m.likwid_version = LikwidVersion(likwid_bin);
  return m;
}

ojson SettledJson(const DramRoofline::Settled& s) {
  ojson j;
  j["quiet"] = s.quiet;
  j["waited_s"] = std::round(s.waited_s * 10) / 10;
  if (std::isnan(s.other_cores)) {
    j["other_cores"] = nullptr;
  } else {
    j["other_cores"] = std::round(s.other_cores * 1000) / 1000;
  }
  return j;
}

ojson MachineJson(const Machine& m, const SweepOptions& o) {
  ojson j;
  j["machine_id"] = absl::StrCat(ShortCpuName(m.info.cpu_model), "-", m.info.logical_cores, "c");
  j["cpu_model"] = m.info.cpu_model;
  j["logical_cores"] = m.info.logical_cores;
  j["isa_flags"] = m.info.isa_flags;
  j["last_level_cache_bytes"] = m.llc;
  j["compiler"] = m.info.compiler;
  j["bazel"] = m.info.bazel_version;
  j["git_commit"] = m.info.git_commit;
  j["os_kernel"] = m.info.kernel;
  ojson dram = ojson::object(), trusted = ojson::object(), pf, pi;
  for (int t : o.threads) {
    if (m.Dram(t) <= 0) continue;
    dram[std::to_string(t)] = m.Dram(t);
    trusted[std::to_string(t)] = m.DramTrusted(t);
  }
  for (const auto& [t, v] : m.peak_f32) pf[std::to_string(t)] = v;
  for (const auto& [t, v] : m.peak_int8) pi[std::to_string(t)] = v;
  j["dram_read_gbps"] = dram;
  j["dram_read_trusted"] = trusted;
  ojson probes = ojson::array();
  if (m.dram) {
    for (const DramProbe& p : m.dram->probes()) probes.push_back(DramProbeJson(p));
  }
  j["dram_probes"] = probes;
  j["dram_settle"] = {{"start", SettledJson(m.settle_start)}};
  if (m.settled_end) j["dram_settle"]["end"] = SettledJson(m.settle_end);
  const RooflinePolicy pol = m.dram ? m.dram->policy() : RooflinePolicy();
  j["dram_method"] = absl::StrCat(
      "sequential read of a ", m.dram_bytes >> 20,
      " MiB buffer (at least 4x the last-level cache) split across the threads, ",
      ReadBandwidthMethod(), " with 8 independent accumulators per thread (harness/machine.cc), "
      "best of 5 passes after a warm-up pass. Probed before the first case (after waiting up to ", o.settle_s,
      " s for a quiet machine: other work, from /proc/stat less this process, at most ",
      pol.quiet_cores, " cores), every ", o.reprobe_s,
      " s of cases, when a batch-1 case beats the best probe so far (at most every ",
      pol.above_reprobe_gap_s,
      " s), and after the last case (after the same wait). Every probe is in dram_probes with "
      "the other work during it; dram_read_gbps, the batch-1 roofline, is the best probe "
      "(other work only lowers a probe); dram_read_trusted says whether a probe with that "
      "thread count was quiet: only then are shares of it given (pct_of_roofline)");
  ojson lk;
  lk["tool"] = "likwid-bench (Debian package likwid), streaming-load test, same bytes as our probe";
  if (!m.likwid_version.empty()) lk["version"] = m.likwid_version;
  if (!m.likwid_status.empty()) lk["status"] = m.likwid_status;
  ojson runs = ojson::array();
  for (const LikwidResult& r : m.likwid) runs.push_back(LikwidJson(r));
  lk["runs"] = runs;
  ojson lk_gbps = ojson::object();
  for (const LikwidResult& r : m.likwid) {
    if (r.ok) lk_gbps[std::to_string(r.threads)] = r.gbps;
  }
  lk["gbps"] = lk_gbps;
  j["likwid_bench"] = lk;
  j["peak_f32_gflops"] = pf;
  j["peak_f32_method"] = absl::StrCat(m.peak_f32_how,
                                      "; register-only loop, 12 independent accumulators per "
                                      "thread, all threads at once, best of 3");
  j["peak_int8_gops"] = pi;
  j["peak_int8_method"] = absl::StrCat(m.peak_int8_how,
                                       "; register-only loop, 12 independent accumulators per "
                                       "thread, all threads at once, best of 3");
  return j;
}

// ---- weights and inputs -----------------------------------------------------------------

struct Weights {
  Format format = Format::kF32;
  Shape shape;
  std::vector<WeightFormat> copies;  // identical bytes, cycled per call (cold weights)
  double huge_pct = std::nan("");    // share of the copies' bytes in 2 MB pages
  std::vector<float> distinct;       // kDistinctRows dequantized rows (the reference's W)
  int64_t distinct_rows = 0;
  std::map<int64_t, std::vector<double>> ref;  // by m: reference at the checked columns
};

absl::StatusOr<std::unique_ptr<Weights>> BuildWeights(Format f, const Shape& s, size_t cold_bytes) {
  auto w = std::make_unique<Weights>();
  w->format = f;
  w->shape = s;
  w->distinct_rows = std::min<int64_t>(s.n, kDistinctRows);
  const int64_t dr = w->distinct_rows;
  std::mt19937_64 rng(1000003u * static_cast<uint64_t>(f) + 7919u * static_cast<uint64_t>(s.n) +
                      static_cast<uint64_t>(s.k));
  std::normal_distribution<float> nd(0.0f, 0.02f);
  std::vector<float> src(static_cast<size_t>(dr * s.k));
  for (float& v : src) v = nd(rng);
  absl::StatusOr<WeightFormat> base = WeightFormat::Quantize(src.data(), dr, s.k, f);
  if (!base.ok()) return base.status();
  absl::StatusOr<std::vector<float>> deq = base->ToF32();
  if (!deq.ok()) return deq.status();
  w->distinct = std::move(*deq);
  const size_t rb = static_cast<size_t>(base->row_bytes());
  const size_t bytes = rb * static_cast<size_t>(s.n);
  std::vector<uint8_t> tiled(bytes);
  for (int64_t r = 0; r < s.n; ++r) {
    std::memcpy(tiled.data() + rb * r, base->row_data(r % dr), rb);
  }
  const size_t copies = std::max<size_t>(1, (cold_bytes + bytes - 1) / bytes);
  // In 2 MB pages, as the runtime holds a model's weights (kernels/pages.h).
  absl::StatusOr<std::vector<WeightFormat>> made = WeightFormat::Copies(
      f, s.n, s.k, tiled.data(), bytes, copies, WeightFormat::Memory::kHugePages);
  if (!made.ok()) return made.status();
  w->copies = std::move(*made);
  std::vector<ByteRange> ranges;
  for (const WeightFormat& c : w->copies) ranges.push_back({reinterpret_cast<uintptr_t>(c.data()), bytes});
  const int64_t huge = HugePageBytes(ranges);
  if (huge >= 0) w->huge_pct = 100.0 * static_cast<double>(huge) / static_cast<double>(bytes * copies);
  return w;
}

// ---- running one case -------------------------------------------------------------------

struct CaseResult {
  std::vector<double> times;
  std::string error;  // non-empty: the case failed (no timings)
  std::string layout;
  double max_abs_err = 0, max_rel_err = 0;
  int64_t err_checked = 0;
  std::string err_note;
  int64_t weight_bytes = 0;
  int64_t copies = 0;
  std::string ggml_crash;  // ggml: the crashes before the layout that ran ("" = none)
  double other_cores = std::nan("");  // ours: other work on the machine during the calls
  double worker_task_pct = std::nan("");  // ours, 2+ threads: the pool's tasks run by workers
  double own_cores = std::nan("");  // ours, 2+ threads: CPUs this process used during the calls
  double weight_huge_pct = std::nan("");  // share of the weight copies' bytes in 2 MB pages
};

struct Context {
  const SweepOptions* o;
  const Machine* machine;
  size_t cold_bytes;
  std::map<int, std::unique_ptr<ThreadPool>> pools;
  GgmlSupervisor* peer = nullptr;
  // Per shape.
  Shape shape;
  std::vector<float> x;         // max-m rows of activations
  std::vector<float> out;       // output of the case
  std::vector<float> dequant;   // the dequantize-then-matmul baseline's F32 matrix
  std::vector<int64_t> cols;    // checked columns
  MatmulScratch scratch;
};

const std::vector<double>& ReferenceFor(Context& ctx, Weights& w, int64_t m) {
  auto it = w.ref.find(m);
  if (it != w.ref.end()) return it->second;
  const int64_t k = w.shape.k;
  std::vector<double> ref = ReferenceColumns(
      ctx.x.data(), m, k, ctx.cols,
      [&](int64_t j) { return w.distinct.data() + (j % w.distinct_rows) * k; });
  return w.ref.emplace(m, std::move(ref)).first->second;
}

CaseResult RunOurs(Context& ctx, const CaseSpec& c, Weights& w) {
  CaseResult r;
  const Shape& s = c.shape;
  ThreadPool* pool = ctx.pools.at(c.threads).get();
  std::fill(ctx.out.begin(), ctx.out.begin() + c.m * s.n, std::nanf(""));
  absl::Status status;
  std::function<bool(int)> call;
  WeightFormat f32_view;
  if (c.kind == CaseKind::kFused) {
    call = [&](int rep) {
      status = run_kernel(*c.entry, ctx.x.data(), w.copies[rep % w.copies.size()], c.m,
                          ctx.out.data(), c.m * s.n, pool, &ctx.scratch);
      return status.ok();
    };
  } else {  // dequantize the whole matrix (rows split over the pool), then the F32 kernel
    const size_t need = static_cast<size_t>(s.n * s.k);
    if (ctx.dequant.size() < need) ctx.dequant.resize(need);
    absl::StatusOr<WeightFormat> view = WeightFormat::View(
        Format::kF32, s.n, s.k, ctx.dequant.data(), need * sizeof(float), nullptr);
    if (!view.ok()) {
      r.error = std::string(view.status().message());
      return r;
    }
    f32_view = *view;
    const DequantizeRowFn deq = traits(c.format).dequantize_row;
    constexpr int64_t kRowsPerTask = 16;
    const int64_t tasks = (s.n + kRowsPerTask - 1) / kRowsPerTask;
    call = [&, deq, tasks](int rep) {
      const WeightFormat& src = w.copies[rep % w.copies.size()];
      pool->ParallelFor(tasks, [&](int64_t t) {
        const int64_t end = std::min(s.n, (t + 1) * kRowsPerTask);
        for (int64_t row = t * kRowsPerTask; row < end; ++row) {
          deq(src.row_data(row), ctx.dequant.data() + row * s.k, s.k);
        }
      });
      status = run_kernel(*c.entry, ctx.x.data(), f32_view, c.m, ctx.out.data(), c.m * s.n, pool,
                          &ctx.scratch);
      return status.ok();
    };
  }
  // Over the calls (warm-up and timed): the other work on the machine, and which threads ran.
  const CpuSnapshot cpu_before = ReadCpuSnapshot();
  const ThreadPool::TaskCounts tasks_before = pool->task_counts();
  r.times = TimeReps(call, ctx.o->warmup, ctx.o->warmup_time, ctx.o->reps, ctx.o->min_time,
                     kMaxReps, &g_stop);
  const ThreadPool::TaskCounts tasks_after = pool->task_counts();
  const CpuSnapshot cpu_after = ReadCpuSnapshot();
  // /proc/stat counts whole ticks: calls too short for them to resolve a quarter core (0.08 s
  // on 2 CPUs) record none.
  if (OtherBusyResolution(cpu_before, cpu_after) <= 0.25) r.other_cores = OtherBusyCores(cpu_before, cpu_after);
  if (c.threads >= 2 && tasks_after.all > tasks_before.all) {
    r.worker_task_pct = 100.0 * static_cast<double>(tasks_after.by_workers - tasks_before.by_workers) /
                        static_cast<double>(tasks_after.all - tasks_before.all);
  }
  // The pool's threads work or spin through the calls, so t threads each on a CPU of its own
  // use about t CPUs; fewer when they took turns on shared ones (getrusage: microseconds).
  if (c.threads >= 2) r.own_cores = OwnCores(cpu_before, cpu_after);
  if (!status.ok()) {
    r.error = std::string(status.message());
    r.times.clear();
    return r;
  }
  r.weight_bytes = static_cast<int64_t>(w.copies[0].memory_bytes());
  r.copies = static_cast<int64_t>(w.copies.size());
  r.weight_huge_pct = w.huge_pct;
  if (r.times.empty()) return r;
  const ErrorStats e = CompareColumns(ctx.out.data(), c.m, s.n, ctx.cols, ReferenceFor(ctx, w, c.m));
  r.max_abs_err = e.max_abs_err;
  r.max_rel_err = e.max_rel_err;
  r.err_checked = e.checked;
  return r;
}

CaseResult RunGgml(Context& ctx, const CaseSpec& c) {
  CaseResult r;
  absl::StatusOr<GgmlResult> g = ctx.peer->Run(
      GgmlCase{GgmlTypeName(c.format), c.shape.n, c.shape.k, c.m, c.threads, ctx.o->reps,
               ctx.o->min_time, static_cast<double>(ctx.cold_bytes), ctx.o->check_cols,
               ctx.o->warmup_time});
  if (!g.ok()) {
    r.error = std::string(g.status().message());
    return r;
  }
  r.times = g->times_s;
  r.layout = g->layout;
  r.ggml_crash = CrashesToString(g->crashes);
  r.weight_bytes = g->weight_bytes;
  r.copies = g->copies;
  r.weight_huge_pct = g->huge_pct;
  r.max_abs_err = g->max_abs_err;
  r.max_rel_err = g->max_rel_err;
  r.err_checked = static_cast<int64_t>(g->checked_cols) * c.m;
  r.err_note = "ggml's own weights (quantized by ggml), reference from ggml's to_float";
  return r;
}

// ---- records ---------------------------------------------------------------------------

std::string CaseName(const CaseSpec& c, const std::string& layout = "") {
  switch (c.kind) {
    case CaseKind::kFused:
      return c.entry->name;
    case CaseKind::kDequantThenMatmul:
      return absl::StrCat("dequant+", c.entry->name);
    case CaseKind::kGgml:
      return absl::StrCat("ggml ", GgmlTypeName(c.format), layout.empty() ? "" : " ", layout);
  }
  return "?";
}

ojson Record(const Context& ctx, const CaseSpec& c, const CaseResult& r, int id) {
  const Machine& mc = *ctx.machine;
  const FormatTraits& t = traits(c.format);
  ojson j;
  j["id"] = id;
  j["machine_id"] = absl::StrCat(ShortCpuName(mc.info.cpu_model), "-", mc.info.logical_cores, "c");
  j["kind"] = CaseKindName(c.kind);
  j["format"] = t.name;
  switch (c.kind) {
    case CaseKind::kFused:
      j["variant"] = variant_name(c.entry->variant);
      j["path"] = path_name(c.entry->path);
      break;
    case CaseKind::kDequantThenMatmul:
      j["variant"] = variant_name(c.entry->variant);
      j["path"] = "f32";
      break;
    case CaseKind::kGgml:
      j["variant"] = "ggml";
      j["path"] = has_int8_path(traits(c.format)) ? "int8" : "f32";
      break;
  }
  j["kernel"] = CaseName(c, r.layout);
  if (c.kind == CaseKind::kFused) {
    j["software_prefetch"] = software_prefetch_for(c.entry->path, c.shape.k / t.block_elems * t.block_bytes);
  } else if (c.kind == CaseKind::kDequantThenMatmul) {
    j["software_prefetch"] = software_prefetch_for(c.entry->path, c.shape.k * int64_t{sizeof(float)});
  }
  j["n"] = c.shape.n;
  j["k"] = c.shape.k;
  j["m"] = c.m;
  j["threads"] = c.threads;
  const double flops = 2.0 * static_cast<double>(c.m) * c.shape.n * c.shape.k;
  const int64_t wbytes =
      r.weight_bytes > 0 ? r.weight_bytes
                         : static_cast<int64_t>(c.shape.n * (c.shape.k / t.block_elems) * t.block_bytes);
  if (!r.error.empty()) {
    j["error"] = r.error;
  } else {
    const TimeStats st = ComputeStats(r.times);
    j["reps"] = st.reps;
    j["median_s"] = st.median;
    j["p25_s"] = st.p25;
    j["p75_s"] = st.p75;
    j["min_s"] = st.min;
    j["max_s"] = st.max;
    j["spread_pct"] = st.spread_pct;
    j["gflops"] = flops / st.median / 1e9;
    j["weight_gbps"] = static_cast<double>(wbytes) / st.median / 1e9;
    if (c.m == 1) {
      SetRoofline("dram_read", mc.Dram(c.threads), mc.DramTrusted(c.threads), &j);
    } else if (j["path"] == "bf16" || j["path"] == "f16") {
      // vdpbf16ps and fp16 FMAs have no measured peak here (the f32 FMA probe would
      // understate them 2x).
      SetRoofline("none", 0.0, true, &j);
    } else {
      const bool int8 = j["path"] == "int8";
      const auto& peaks = int8 ? mc.peak_int8 : mc.peak_f32;
      SetRoofline(int8 ? "peak_int8" : "peak_f32",
                  peaks.count(c.threads) ? peaks.at(c.threads) : 0.0, true, &j);
    }
  }
  j["weight_bytes"] = wbytes;
  j["f32_bytes"] = c.shape.n * c.shape.k * 4;
  j["bits_per_weight"] = t.bits_per_weight;
  j["weight_copies"] = r.copies;
  if (!std::isnan(r.weight_huge_pct)) j["weight_huge_pct"] = std::round(r.weight_huge_pct * 10) / 10;
  j["rss_peak_bytes"] = PeakRssBytes();
  {
    double one_minute = 0;
    if (std::sscanf(LoadAverage().c_str(), "%lf", &one_minute) == 1) j["loadavg_1m"] = one_minute;
  }
  if (r.error.empty()) {
    j["max_abs_err"] = r.max_abs_err;  // NaN is written as null
    j["max_rel_err"] = r.max_rel_err;
    j["err_checked"] = r.err_checked;
  }
  if (!r.err_note.empty()) j["err_note"] = r.err_note;
  if (!r.layout.empty()) j["ggml_layout"] = r.layout;
  if (!r.ggml_crash.empty()) j["ggml_crash"] = r.ggml_crash;
  if (!std::isnan(r.other_cores)) j["other_cores"] = std::round(r.other_cores * 1000) / 1000;
  if (!std::isnan(r.worker_task_pct)) j["worker_task_pct"] = std::round(r.worker_task_pct * 10) / 10;
  if (!std::isnan(r.own_cores)) j["own_cores"] = std::round(r.own_cores * 1000) / 1000;
  j["times_s"] = r.times;
  return j;
}

// A new shape: activations (for the largest batch of its cases), output, checked columns.
void EnterShape(Context& ctx, const Shape& shape, const std::vector<CaseSpec>& cases) {
  ctx.shape = shape;
  int64_t max_m = 1;
  for (const CaseSpec& d : cases) {
    if (d.shape.n == shape.n && d.shape.k == shape.k) max_m = std::max(max_m, d.m);
  }
  std::mt19937_64 rng(12345 + shape.n * 31 + shape.k);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  ctx.x.resize(static_cast<size_t>(max_m * shape.k));
  for (float& v : ctx.x) v = nd(rng);
  ctx.out.assign(static_cast<size_t>(max_m * shape.n), 0.0f);
  ctx.cols = CheckColumns(shape.n, ctx.o->check_cols);
  std::vector<float>().swap(ctx.dequant);
}

// The interleaved shares (--share_rounds): per shape and thread count, every format's
// fastest batch-1 kernel of the run (its kept median), in rounds of one short burst each,
// the order rotated every round. `kept[i]` is case i's record (fastest pass).
constexpr double kShareBurstS = 0.025;
ojson RunShares(Context& ctx, const std::vector<CaseSpec>& cases, const std::vector<const ojson*>& kept) {
  const SweepOptions& o = *ctx.o;
  ojson groups = ojson::array();
  std::vector<Shape> shapes;
  for (const CaseSpec& c : cases) {
    if (std::none_of(shapes.begin(), shapes.end(),
                     [&](const Shape& s) { return s.n == c.shape.n && s.k == c.shape.k; })) {
      shapes.push_back(c.shape);
    }
  }
  for (const Shape& shape : shapes) {
    // Per thread count, per format (in the run's order): the fastest fused batch-1 case.
    std::map<int, std::vector<size_t>> pick;
    for (int t : o.threads) {
      std::vector<size_t> best;  // case indices
      for (size_t i = 0; i < cases.size(); ++i) {
        const CaseSpec& c = cases[i];
        if (c.kind != CaseKind::kFused || c.m != 1 || c.threads != t || c.shape.n != shape.n ||
            c.shape.k != shape.k || kept[i] == nullptr || kept[i]->contains("error") ||
            !kept[i]->contains("median_s")) {
          continue;
        }
        const double med = (*kept[i])["median_s"].get<double>();
        auto same = std::find_if(best.begin(), best.end(),
                                 [&](size_t b) { return cases[b].format == c.format; });
        if (same == best.end()) {
          best.push_back(i);
        } else if (med < (*kept[*same])["median_s"].get<double>()) {
          *same = i;
        }
      }
      if (best.size() >= 2) pick[t] = best;
    }
    if (pick.empty()) continue;
    EnterShape(ctx, shape, cases);
    std::map<Format, std::unique_ptr<Weights>> weights;
    for (const auto& [t, idx] : pick) {
      for (size_t i : idx) {
        const Format f = cases[i].format;
        if (weights.count(f)) continue;
        absl::StatusOr<std::unique_ptr<Weights>> w = BuildWeights(f, shape, ctx.cold_bytes);
        if (!w.ok()) {
          std::fprintf(stderr, "sweep: shares: building %s %s weights: %s\n", traits(f).name,
                       ShapeName(shape).c_str(), std::string(w.status().message()).c_str());
          return groups;
        }
        weights[f] = std::move(*w);
      }
    }
    for (const auto& [t, idx] : pick) {
      ThreadPool* pool = ctx.pools.at(t).get();
      std::vector<std::vector<double>> gbps(static_cast<size_t>(o.share_rounds),
                                            std::vector<double>(idx.size(), std::nan("")));
      std::vector<int> calls(idx.size(), 0);  // per format: cycles its weight copies across bursts
      std::string error;
      for (int r = 0; r < o.share_rounds && !g_stop && error.empty(); ++r) {
        for (size_t q = 0; q < idx.size() && !g_stop; ++q) {
          const size_t f = (q + static_cast<size_t>(r)) % idx.size();
          const CaseSpec& c = cases[idx[f]];
          Weights& w = *weights.at(c.format);
          absl::Status status;
          auto call = [&](int) {
            status = run_kernel(*c.entry, ctx.x.data(), w.copies[calls[f]++ % w.copies.size()], 1,
                                ctx.out.data(), shape.n, pool, &ctx.scratch);
            return status.ok();
          };
          const std::vector<double> times = TimeReps(call, 1, 0.005, 3, kShareBurstS, kMaxReps, &g_stop);
          if (!status.ok()) {
            error = absl::StrCat(c.entry->name, ": ", status.message());
            break;
          }
          if (times.empty()) continue;
          const double med = ComputeStats(times).median;
          if (med > 0) {
            gbps[static_cast<size_t>(r)][f] =
                static_cast<double>(w.copies[0].memory_bytes()) / med / 1e9;
          }
        }
      }
      if (g_stop) return groups;
      const std::vector<ShareStats> shares = InterleavedShares(gbps);
      ojson g;
      g["n"] = shape.n;
      g["k"] = shape.k;
      g["threads"] = t;
      if (!error.empty()) g["error"] = error;
      ojson fs = ojson::array();
      std::string line = absl::StrFormat("sweep: shares %11s t=%d:", ShapeName(shape), t);
      // Per round: the best GB/s (the memory's state at that moment, for the format that
      // streams fastest).
      ojson round_best = ojson::array();
      for (double b : RoundBest(gbps)) round_best.push_back(b > 0 ? ojson(b) : ojson(nullptr));
      g["best_gbps"] = round_best;
      for (size_t f = 0; f < idx.size(); ++f) {
        const CaseSpec& c = cases[idx[f]];
        std::vector<double> g_f;
        ojson per_round = ojson::array();  // aligned with best_gbps; null: did not run
        for (const std::vector<double>& round : gbps) {
          if (round[f] > 0) g_f.push_back(round[f]);
          per_round.push_back(round[f] > 0 ? ojson(round[f]) : ojson(nullptr));
        }
        ojson e;
        e["format"] = traits(c.format).name;
        e["kernel"] = c.entry->name;
        e["rounds"] = shares[f].rounds;
        if (shares[f].rounds > 0) {
          e["share"] = shares[f].median;
          e["share_p25"] = shares[f].p25;
          e["share_p75"] = shares[f].p75;
          e["gbps_median"] = ComputeStats(g_f).median;
        }
        e["shares"] = shares[f].shares;
        e["gbps"] = per_round;
        fs.push_back(e);
        if (shares[f].rounds > 0) {
          absl::StrAppendFormat(&line, " %s %.0f%%", traits(c.format).name, 100 * shares[f].median);
        }
      }
      g["formats"] = fs;
      groups.push_back(g);
      if (!error.empty()) absl::StrAppend(&line, "  FAILED: ", error);
      std::printf("%s\n", line.c_str());
      std::fflush(stdout);
    }
  }
  return groups;
}

// Predicted seconds of a case (for the ETA only; calibrated against the elapsed time).
double PredictSeconds(const Context& ctx, const CaseSpec& c) {
  const Machine& mc = *ctx.machine;
  const FormatTraits& t = traits(c.format);
  const double bytes = static_cast<double>(c.shape.n) * c.shape.k * t.block_bytes / t.block_elems;
  const double flops = 2.0 * c.m * c.shape.n * c.shape.k;
  const double bw = (mc.Dram(c.threads) > 0 ? mc.Dram(c.threads) : 20.0) * 1e9;
  const double peak = (mc.peak_f32.count(c.threads) ? mc.peak_f32.at(c.threads) : 50.0) * 1e9;
  const bool scalar = c.kind == CaseKind::kFused && c.entry->variant == Variant::kScalar;
  double call = std::max(bytes / bw, flops / (peak * (scalar ? 0.03 : 0.4)));
  if (c.kind == CaseKind::kDequantThenMatmul) {
    call += static_cast<double>(c.shape.n) * c.shape.k * (8.0 / bw + 1.0 / (0.5e9 * c.threads));
  }
  const double warm = std::max<double>(ctx.o->warmup, ctx.o->warmup_time / call);
  const double timed = std::max<double>(ctx.o->reps, ctx.o->min_time / call);
  return (std::min<double>(warm, kMaxReps) + std::min<double>(timed, kMaxReps)) * call + 0.01;
}

// Runs //tools:plot on the output directory (from the runfiles of this binary).
void RunPlot(const std::string& out, const char* argv0) {
  std::string runfiles;
  if (const char* r = std::getenv("RUNFILES_DIR"); r != nullptr && *r != '\0') {
    runfiles = r;
  } else {
    runfiles = absl::StrCat(argv0, ".runfiles");
  }
  std::string plot = absl::StrCat(runfiles, "/fused_kernels/tools/plot");
  if (access(plot.c_str(), X_OK) != 0) plot = "tools/plot";  // `bazel run`: cwd is runfiles
  if (access(plot.c_str(), X_OK) != 0) {
    std::printf("sweep: //tools:plot not found in the runfiles; run: tools/bazel run //tools:plot -- %s\n",
                out.c_str());
    return;
  }
  // The stub's shebang names `python`, which not every machine has; python3 runs it too
  // (it then starts the project's venv interpreter).
  const std::string cmd = absl::StrCat(
      std::system("command -v python3 >/dev/null 2>&1") == 0 ? "python3 " : "", "'", plot,
      "' '", out, "'");
  std::printf("sweep: plotting: //tools:plot %s\n", out.c_str());
  std::fflush(stdout);
  const int rc = std::system(cmd.c_str());
  if (rc != 0) std::printf("sweep: plotting failed (exit %d)\n", rc);
}

int Main(int argc, char** argv) {
  const int cores = std::max(1u, std::thread::hardware_concurrency());
  absl::StatusOr<SweepOptions> parsed = ParseSweepFlags(argc, argv, cores);
  if (!parsed.ok()) {
    std::fprintf(stderr, "sweep: %s\n", std::string(parsed.status().message()).c_str());
    return 2;
  }
  const SweepOptions& o = *parsed;
  if (o.help) {
    std::fputs(SweepUsage(cores).c_str(), stdout);
    return 0;
  }
  if (o.dry_run) {
    const std::vector<CaseSpec> cases = PlanCases(o, all_kernels(), kernel_runnable, true);
    std::map<std::string, int> counts;
    for (const CaseSpec& c : cases) {
      std::printf("%-28s %11s m=%-4lld t=%d\n",
                  c.kind == CaseKind::kGgml ? absl::StrCat("ggml ", GgmlTypeName(c.format)).c_str()
                  : c.kind == CaseKind::kFused ? c.entry->name
                                               : absl::StrCat("dequant+", c.entry->name).c_str(),
                  ShapeName(c.shape).c_str(), static_cast<long long>(c.m), c.threads);
      ++counts[absl::StrCat(CaseKindName(c.kind), " m=", c.m)];
    }
    std::printf("sweep: %zu cases planned (ggml cases included as if it were available):\n",
                cases.size());
    for (const auto& [k, v] : counts) std::printf("  %-28s %d\n", k.c_str(), v);
    return 0;
  }
  signal(SIGINT, OnSigint);
  signal(SIGPIPE, SIG_IGN);
  const auto t_start = std::chrono::steady_clock::now();
  const std::string started = NowUtc();
  const std::string load_start = LoadAverage();

  Machine machine = MeasureMachine(o);
  const std::string out = ResolveOut(o, machine.info);
  if (absl::Status s = MakeDirs(out); !s.ok()) {
    std::fprintf(stderr, "sweep: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  Context ctx;
  ctx.o = &o;
  ctx.machine = &machine;
  ctx.cold_bytes = o.cold_mb > 0 ? static_cast<size_t>(o.cold_mb) << 20
                                 : std::max<size_t>(4 * machine.llc, size_t{128} << 20);

  // The peer (built first if it is missing and --ggml=auto).
  std::unique_ptr<GgmlSupervisor> peer;
  std::string ggml_status;
  if (o.ggml == "off") {
    ggml_status = "off (--ggml=off)";
  } else {
    GgmlPeerSetup setup;
    const bool cache = o.ggml == "auto" || o.ggml == "cached";
    setup.path = cache ? DefaultGgmlPeerPath() : o.ggml;
    setup.build = cache;
    setup.full_build = o.ggml == "auto";
    setup.builder = FindGgmlBuilder(argv[0]);
    setup.stop = &g_stop;
    peer = StartOrBuildGgmlPeer(setup, stdout, &ggml_status);
  }
  std::printf("sweep: ggml peer: %s%s\n", ggml_status.c_str(),
              peer ? "" : "; going on without it");
  ctx.peer = peer.get();

  const std::vector<CaseSpec> cases = PlanCases(o, all_kernels(), kernel_runnable, peer != nullptr);
  int n_fused = 0, n_deq = 0, n_ggml = 0;
  double predicted_total = 0;
  // What runs, in order: every case (pass 1), then with --passes the batch-1 cases again,
  // passes 2, 4, ... in reverse order (so a case's passes are minutes apart, their neighbours
  // different ones).
  struct Run {
    size_t index;  // into cases
    int pass;      // 1-based
  };
  std::vector<Run> schedule;
  for (size_t i = 0; i < cases.size(); ++i) schedule.push_back({i, 1});
  for (int pass = 2; pass <= o.passes; ++pass) {
    std::vector<Run> again;
    for (size_t i = 0; i < cases.size(); ++i) {
      if (cases[i].m == 1) again.push_back({i, pass});
    }
    if (pass % 2 == 0) std::reverse(again.begin(), again.end());
    schedule.insert(schedule.end(), again.begin(), again.end());
  }
  for (const CaseSpec& c : cases) {
    n_fused += c.kind == CaseKind::kFused;
    n_deq += c.kind == CaseKind::kDequantThenMatmul;
    n_ggml += c.kind == CaseKind::kGgml;
  }
  for (const Run& r : schedule) predicted_total += PredictSeconds(ctx, cases[r.index]);
  std::printf("sweep: %zu cases (%d ours, %d dequantize-then-matmul, %d ggml)%s; results in %s\n",
              cases.size(), n_fused, n_deq, n_ggml, o.full ? ", --full" : "", out.c_str());
  if (o.passes > 1) {
    std::printf("sweep: %d passes: the %zu batch-1 cases run %d times, the fastest pass kept "
                "(%zu runs in all)\n",
                o.passes, (schedule.size() - cases.size()) / (o.passes - 1), o.passes,
                schedule.size());
  }
  if (!o.full) std::printf("sweep: grid rule: %s\n", GridRuleText().c_str());
  std::fflush(stdout);
  for (int t : o.threads) ctx.pools[t] = std::make_unique<ThreadPool>(t);

  // The run record, rewritten after every case.
  ojson doc;
  doc["schema"] = "fused-kernels-sweep/1";
  doc["about"] =
      "Performance sweep of fused dequantize+matmul kernels (output[m][n] = sum_k "
      "input[m][k] * W[n][k], W in a GGUF block format), with baselines and ggml measured in "
      "the same run. One record per case in 'cases'; field meanings in 'fields'. Records carry "
      "machine_id, so runs from several machines can be concatenated.";
  doc["machine"] = MachineJson(machine, o);
  // The format table the run was built with: the plots take format order and bits per weight
  // from here.
  doc["format_table"] = FormatTableJson();
  ojson run;
  run["command"] = absl::StrCat("tools/bazel run //harness:sweep",
                                o.argv.empty() ? "" : " -- ", absl::StrJoin(o.argv, " "));
  run["started_utc"] = started;
  run["loadavg_start"] = load_start;
  run["finished_utc"] = nullptr;
  run["status"] = "running";
  run["wall_s"] = 0.0;
  run["cases_planned"] = cases.size();
  run["cases_done"] = 0;
  run["grid_rule"] = o.full ? "--full: every selected kernel at every batch and shape"
                            : GridRuleText();
  run["options"] = {
      {"formats", [&] { std::vector<std::string> v; for (Format f : o.formats) v.push_back(traits(f).name); return v; }()},
      {"variants", [&] { std::vector<std::string> v; for (Variant x : o.variants) v.push_back(variant_name(x)); return v; }()},
      {"paths", [&] { std::vector<std::string> v; for (Path p : o.paths) v.push_back(path_name(p)); return v; }()},
      {"shapes", [&] { std::vector<std::string> v; for (const Shape& s : o.shapes) v.push_back(ShapeName(s)); return v; }()},
      {"batches", o.batches},
      {"threads", o.threads},
      {"reps", o.reps},
      {"min_time_s", o.min_time},
      {"passes", o.passes},
      {"warmup", o.warmup},
      {"warmup_time_s", o.warmup_time},
      {"quick", o.quick},
      {"full", o.full},
      {"cold_bytes", ctx.cold_bytes},
      {"check_cols", o.check_cols},
  };
  run["method"] = {
      {"timing",
       absl::StrCat("per case (other_cores: the other work on the machine during each of ours; "
                    "worker_task_pct: the share of the pool's tasks its worker threads ran; "
                    "own_cores: the CPUs its threads used): ",
                    "at least ", o.warmup, " untimed call(s) and at least ",
                    o.warmup_time, " s of them (a 2-thread call after an idle gap has been "
                    "seen to run on one core for tens of ms on a virtual machine), then at "
                    "least ", o.reps,
                    " timed calls and at least ", o.min_time, " s of them (at most ", kMaxReps,
                    "); each call timed alone with steady_clock; median, quartiles, min, max",
                    o.passes > 1
                        ? absl::StrCat(". Batch-1 cases in ", o.passes,
                                       " passes (every case, then the batch-1 cases again, "
                                       "every other pass in reverse order); each record is "
                                       "its case's pass with the lowest median (pass_kept, "
                                       "pass_medians_s)")
                        : "")},
      {"weights",
       absl::StrCat("N(0, 0.02) random rows (", kDistinctRows,
                    " distinct rows, quantized by the project's reference quantizer, repeated "
                    "to n rows); enough identical copies that together they exceed ",
                    ctx.cold_bytes >> 20,
                    " MiB are cycled call by call, so weights stream from DRAM as in a forward "
                    "pass over a whole model; each copy in memory advised for 2 MB pages "
                    "(MADV_HUGEPAGE), as the runtime holds a model's weights, the peer's too "
                    "(weight_huge_pct: the share the kernel backed with 2 MB pages)")},
      {"activations", "N(0, 1), the first m rows of one matrix per shape"},
      {"error",
       absl::StrCat("every case is checked: the output of its last call at ", o.check_cols,
                    " output columns spread over n (plus the last 8) for every row m, against "
                    "a float64 sum over the float weights of the reference dequantizer (bit-"
                    "identical to gguf-py) times the f32 activations. max_abs_err = max |y - "
                    "ref|, max_rel_err = max_abs_err / max |ref|. The int8 paths add activation "
                    "quantization error.")},
      {"roofline",
       "batch 1: weight bytes per second / DRAM read bandwidth with the same thread count "
       "(the best probe of the run, machine.dram_read_gbps; no share when no probe with that "
       "thread count was quiet); batch > 1: GFLOP/s (2*m*n*k per second) / measured "
       "arithmetic peak of the path (f32 path and F32 kernels: f32 FMA peak; int8 path and "
       "ggml's quantized types: int8 dot peak) with the same thread count. A case above its "
       "roofline is flagged (above_roofline; '!' in the console), not shown as a plain share"},
      {"dequant_then_matmul",
       "each call dequantizes the whole (cold) quantized matrix to an F32 buffer with the "
       "reference dequantizer, rows split over the same threads, then runs the best F32 "
       "kernel; the time is both"},
      {"f32_weights", "the F32 format's own cases (weights already resident as F32)"},
      {"ggml",
       "tools/ggml_peer/mulmat_bench: ggml's CPU backend MUL_MAT as llama.cpp runs it (weights "
       "in the first of the CPU device's extra buffer types (AMX, CPU_REPACK) that supports "
       "the type, else plain), same shape, batch, threads, warm-up, reps and cold copies; its own "
       "random weights, quantized by ggml. If ggml crashes on a case, the peer is restarted "
       "and the case retried with the next layout llama.cpp would use (AMX -> CPU_REPACK -> "
       "plain); ggml_layout names the layout that ran, ggml_crash every crash before it"},
      {"rss", "rss_peak_bytes: the sweep process's peak resident set so far (getrusage), "
              "including all weight copies"},
  };
  run["ggml"] = {{"available", peer != nullptr}, {"status", ggml_status}};
  if (peer != nullptr) run["ggml"]["extra_bufts"] = peer->extra_bufts();
  doc["run"] = run;
  doc["fields"] = FieldDescriptions();
  ResultsWriter writer(out);
  writer.SetHeader(doc);
  // Results are rewritten after a case when a second has passed since the last write (and
  // at the end, also after Ctrl-C), so an interrupted run keeps what it measured.
  auto last_write = std::chrono::steady_clock::now() - std::chrono::seconds(10);

  std::printf("sweep: %s predicted (calibrated as it runs)\n",
              FormatSeconds(predicted_total).c_str());
  std::fflush(stdout);
  double predicted_done = 0;
  const auto t_cases = std::chrono::steady_clock::now();
  std::unique_ptr<Weights> weights;
  bool have_shape = false;
  int id = 0, failures = 0;
  std::vector<ojson> records;  // kept to rescale the batch-1 rooflines after the last probe
  std::vector<size_t> record_of(cases.size());  // the case's record, after its first pass
  int runs = 0;
  for (size_t i = 0; i < schedule.size() && !g_stop; ++i) {
    const CaseSpec& c = cases[schedule[i].index];
    const int pass = schedule[i].pass;
    // New shape: activations, output, checked columns.
    if (!have_shape || c.shape.n != ctx.shape.n || c.shape.k != ctx.shape.k) {
      have_shape = true;
      weights.reset();
      EnterShape(ctx, c.shape, cases);
    }
    if (c.kind != CaseKind::kGgml && (!weights || weights->format != c.format)) {
      weights.reset();
      absl::StatusOr<std::unique_ptr<Weights>> w = BuildWeights(c.format, c.shape, ctx.cold_bytes);
      if (!w.ok()) {
        std::fprintf(stderr, "sweep: building %s %s weights: %s\n", traits(c.format).name,
                     ShapeName(c.shape).c_str(), std::string(w.status().message()).c_str());
        return 1;
      }
      weights = std::move(*w);
    }
    CaseResult r = c.kind == CaseKind::kGgml ? RunGgml(ctx, c) : RunOurs(ctx, c, *weights);
    if (g_stop) break;  // an interrupted case is not recorded
    ++runs;
    ojson rec = Record(ctx, c, r, pass == 1 ? id++ : records[record_of[schedule[i].index]]["id"].get<int>());
    if (c.m == 1 && r.error.empty() &&
        machine.dram->DueReprobe(c.threads, rec["weight_gbps"].get<double>()) ==
            "above roofline") {
      // Faster than every probe so far: probe again before the share is shown.
      ProbeDram(machine, c.threads, "above roofline");
      SetRoofline("dram_read", machine.Dram(c.threads), machine.DramTrusted(c.threads), &rec);
    }
    if (pass == 1) {
      if (o.passes > 1 && c.m == 1) rec = MergePass(rec, ojson());  // pass_* fields
      record_of[schedule[i].index] = records.size();
      writer.AddCase(rec);
      records.push_back(rec);
    } else {
      const size_t kept = record_of[schedule[i].index];
      records[kept] = MergePass(records[kept], rec);
      writer.SetCase(kept, records[kept]);
    }
    predicted_done += PredictSeconds(ctx, c);
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t_cases).count();
    const double eta = predicted_done > 0 ? elapsed / predicted_done * (predicted_total - predicted_done) : 0;
    if (std::chrono::steady_clock::now() - last_write > std::chrono::seconds(1)) {
      doc["machine"] = MachineJson(machine, o);
      doc["run"]["cases_done"] = id;
      doc["run"]["wall_s"] =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
      writer.SetHeader(doc);
      if (absl::Status s = writer.Write(); !s.ok()) {
        std::fprintf(stderr, "sweep: %s\n", std::string(s.message()).c_str());
        return 1;
      }
      last_write = std::chrono::steady_clock::now();
    }
    // Progress.
    std::string line = absl::StrFormat("[%4d/%4zu] %-26s %11s m=%-3d t=%d ", runs, schedule.size(),
                                       rec["kernel"].get<std::string>(), ShapeName(c.shape),
                                       static_cast<int>(c.m), c.threads);
    if (o.passes > 1 && c.m == 1) {
      const ojson& kept = records[record_of[schedule[i].index]];
      line = absl::StrCat(line, "pass ", pass, " (kept: ", kept["pass_kept"].get<int>(), ") ");
    }
    if (!r.error.empty()) {
      ++failures;
      line += absl::StrCat("FAILED: ", r.error);
    } else {
      line += absl::StrFormat("%s ±%2.0f%% %7.1f GB/s %7.1f GFLOP/s %s  err %.1e",
                              FormatTime(rec["median_s"].get<double>()),
                              rec["spread_pct"].get<double>(), rec["weight_gbps"].get<double>(),
                              rec["gflops"].get<double>(), RooflineConsole(rec), r.max_rel_err);
      if (std::isnan(r.max_rel_err) || r.max_rel_err > 0.05) line += " (!)";
    }
    line += absl::StrCat("  ETA ", FormatSeconds(eta));
    if (!r.ggml_crash.empty()) {
      absl::StrAppend(&line, "\n             ggml crashed on this case first: ", r.ggml_crash,
                      "; restarted it and ran the case in layout ", r.layout);
    }
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
    // The periodic DRAM probes, between cases.
    for (int t : o.threads) {
      if (g_stop || i + 1 >= schedule.size()) break;
      const std::string due = machine.dram->DueReprobe(t, 0);
      if (due == "periodic" || due == "no quiet probe yet") ProbeDram(machine, t, due);
    }
  }
  weights.reset();
  if (peer != nullptr) {
    doc["run"]["ggml"]["restarts"] = peer->restarts();
    peer.reset();
  }
  if (!g_stop && o.share_rounds > 0 && !records.empty()) {
    std::vector<const ojson*> kept(cases.size(), nullptr);
    for (size_t i = 0; i < cases.size(); ++i) kept[i] = &records[record_of[i]];  // every case ran
    std::printf("sweep: interleaved shares: %d rounds of %.0f ms bursts per shape and thread count\n",
                o.share_rounds, kShareBurstS * 1e3);
    std::fflush(stdout);
    const auto t_shares = std::chrono::steady_clock::now();
    ojson sh;
    sh["rounds"] = o.share_rounds;
    sh["burst_s"] = kShareBurstS;
    sh["method"] = absl::StrCat(
        "after the cases, per shape and thread count: ", o.share_rounds,
        " rounds; in each, every format's fastest batch-1 kernel of the run (lowest kept median) runs "
        "one burst (a warm-up call, then >= 3 timed calls and >= ", kShareBurstS,
        " s; weights and activations made as for the cases, cold copies cycled), the order rotated by one format "
        "per round. share: the median over rounds of the format's GB/s (median of its burst) over the "
        "highest GB/s of that round (best_gbps, per round); share_p25 / share_p75 its quartiles, "
        "shares the ratios of the rounds it ran in, gbps its GB/s per round (null: did not run)");
    sh["groups"] = RunShares(ctx, cases, kept);
    sh["wall_s"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_shares).count();
    if (!g_stop) doc["interleaved_shares"] = sh;
  }

  if (!g_stop && !records.empty()) {
    // Probe DRAM again, on a quiet machine if it gets quiet: the roofline is the best probe.
    machine.settle_end = machine.dram->WaitForQuiet("sweep");
    machine.settled_end = true;
    for (int t : o.threads) {
      if (!g_stop) ProbeDram(machine, t, "end");
    }
  }
  // Every batch-1 record against the final roofline (the best probe of the run), flagged
  // when above it.
  doc["machine"] = MachineJson(machine, o);
  writer = ResultsWriter(out);
  std::vector<std::string> above;
  for (ojson& rec : records) {
    if (rec.value("roofline", "") == "dram_read") {
      const int t = rec["threads"].get<int>();
      SetRoofline("dram_read", machine.Dram(t), machine.DramTrusted(t), &rec);
    }
    if (rec.value("above_roofline", false)) {
      above.push_back(absl::StrFormat(
          "%s %lldx%lld m=%lld t=%d: %.1f > %.1f %s", rec["kernel"].get<std::string>(),
          rec["n"].get<long long>(), rec["k"].get<long long>(), rec["m"].get<long long>(),
          rec["threads"].get<int>(),
          rec["roofline"] == "dram_read" ? rec["weight_gbps"].get<double>()
                                         : rec["gflops"].get<double>(),
          rec["roofline_value"].get<double>(),
          rec["roofline"] == "dram_read" ? "GB/s" : "GFLOP/s"));
    }
    writer.AddCase(rec);
  }
  for (int t : o.threads) {
    if (machine.Dram(t) <= 0) continue;
    int n = 0;
    for (const DramProbe& p : machine.dram->probes()) n += p.threads == t;
    std::printf("sweep: DRAM roofline, %d thread%s: %.1f GB/s, the best of %d probe%s%s\n", t,
                Plural(t).c_str(), machine.Dram(t), n, Plural(n).c_str(),
                machine.DramTrusted(t)
                    ? ""
                    : "; none was taken on a quiet machine, so it is only a lower bound and no "
                      "share of it is given (pct_of_roofline empty): rerun on a quiet machine");
  }
  for (const LikwidResult& r : machine.likwid) {
    if (r.ok && machine.Dram(r.threads) > 0) {
      std::printf("sweep: likwid-bench %s, %d thread%s: %.1f GB/s; our roofline is %.2fx it\n",
                  r.test.c_str(), r.threads, Plural(r.threads).c_str(), r.gbps,
                  machine.Dram(r.threads) / r.gbps);
    }
  }
  if (!above.empty()) {
    std::printf("sweep: %zu case%s above the roofline (marked '!', above_roofline in "
                "results.csv; a flag, not a result):\n", above.size(),
                Plural(static_cast<int>(above.size())).c_str());
    for (size_t i = 0; i < above.size() && i < 12; ++i) std::printf("  %s\n", above[i].c_str());
    if (above.size() > 12) std::printf("  ... and %zu more\n", above.size() - 12);
  }
  std::fflush(stdout);

  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  doc["run"]["status"] = g_stop ? "interrupted" : "complete";
  doc["run"]["finished_utc"] = NowUtc();
  doc["run"]["wall_s"] = wall;
  doc["run"]["cases_done"] = id;
  doc["run"]["loadavg_end"] = LoadAverage();
  writer.SetHeader(doc);
  if (absl::Status s = writer.Write(); !s.ok()) {
    std::fprintf(stderr, "sweep: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  if (g_stop) {
    std::printf("\nsweep: interrupted after %d of %zu cases (%s); results so far in %s\n"
                "sweep: plot them with: tools/bazel run //tools:plot -- %s\n",
                id, cases.size(), FormatSeconds(wall).c_str(), out.c_str(), out.c_str());
    return 130;
  }
  const std::string failed = failures ? absl::StrCat(", ", failures, " FAILED") : "";
  std::printf("sweep: %d cases in %s%s; %s/results.json, results.csv\n", id,
              FormatSeconds(wall).c_str(), failed.c_str(), out.c_str());
  std::fflush(stdout);
  if (o.plot) RunPlot(out, argv[0]);
  return failures ? 1 : 0;
}

}  // namespace
}  // namespace fk

int main(int argc, char** argv) { return fk::Main(argc, argv); }
