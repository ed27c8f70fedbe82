#include "kernels/matmul.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "kernels/cpu_features.h"

namespace fk {
namespace {

// Tasks per thread when splitting [0, n): a few, so dynamic hand-out evens out threads that
// are slowed down by other work on the machine.
constexpr int64_t kChunksPerThread = 4;

// ... but not less weight per chunk than this, down to one chunk per thread: every chunk
// starts its weight streams cold (about a microsecond before the software prefetches run
// ahead of the kernel), which matters in a matrix of a few MB. Intel Xeon, kernel_bench
// from DRAM, 2 threads, 2 runs each: 2048x2048 Q2_K (1.4 MB) 0.92x the time with 2 chunks
// instead of 8, Q4_0 (2.4 MB) 0.94x with 4; larger matrices and Q8_0 within the noise.
constexpr int64_t kMinChunkBytes = int64_t{512} << 10;

// How many chunks to cut `tiles` tiles holding `bytes` of weights into: `want`, at most
// bytes / kMinChunkBytes rounded down to a multiple of the threads (so that they get equal
// shares: 5632x2048 Q2_K in 7 chunks on 2 threads took 1.1x the time of 8 or 6), at least
// min(want, threads).
int64_t chunk_count(int64_t want, int threads, int64_t tiles, int64_t bytes) {
  const int64_t by_bytes = bytes / kMinChunkBytes / threads * threads;
  const int64_t chunks =
      std::max(std::min<int64_t>(want, threads), std::min(want, by_bytes));
  return std::max<int64_t>(1, std::min(tiles, chunks));
}

absl::Status validate(const float* input, const WeightFormat& weights, int64_t m, int64_t k,
                      int64_t n, const float* output, int64_t output_size) {
  const FormatTraits& t = weights.format_traits();
  if (m <= 0 || k <= 0 || n <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("matmul: m, k and n must be positive (m=", m, ", k=", k, ", n=", n, ")"));
  }
  if (input == nullptr) return absl::InvalidArgumentError("matmul: input is null");
  if (output == nullptr) return absl::InvalidArgumentError("matmul: output is null");
  if (weights.data() == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("matmul: weights (", t.name, ", ", weights.rows(), " x ", weights.cols(),
                     ") have no data"));
  }
  if (k % t.block_elems != 0) {
    return absl::InvalidArgumentError(absl::StrCat("matmul: k=", k, " is not a multiple of ",
                                                   t.name, "'s block of ", t.block_elems));
  }
  if (k != weights.cols()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "matmul: k=", k, " does not match the weights' columns (", weights.cols(), ")"));
  }
  if (n != weights.rows()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "matmul: n=", n, " does not match the weights' rows (", weights.rows(), ")"));
  }
  if (output_size < m * n) {
    return absl::InvalidArgumentError(absl::StrCat("matmul: output_size=", output_size,
                                                   " is less than m*n=", m * n, " (m=", m,
                                                   ", n=", n, ")"));
  }
  return absl::OkStatus();
}

// The variant / path asked for by FK_VARIANT / FK_PATH, if set and non-empty.
absl::StatusOr<std::optional<Variant>> env_variant() {
  const char* v = std::getenv("FK_VARIANT");
  if (v == nullptr || *v == '\0') return std::optional<Variant>();
  absl::StatusOr<Variant> parsed = parse_variant(v);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("FK_VARIANT: ", parsed.status().message()));
  }
  return std::optional<Variant>(*parsed);
}

absl::StatusOr<std::optional<Path>> env_path() {
  const char* p = std::getenv("FK_PATH");
  if (p == nullptr || *p == '\0') return std::optional<Path>();
  absl::StatusOr<Path> parsed = parse_path(p);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("FK_PATH: ", parsed.status().message()));
  }
  return std::optional<Path>(*parsed);
}

// set_software_prefetch_for_testing: -1 none, else 0 / 1.
std::atomic<int> g_prefetch_for_testing{-1};

// FK_PREFETCH: -1 unset (or not "0" / "1"), else 0 / 1. Read once.
int env_prefetch() {
  static const int v = [] {
    const char* e = std::getenv("FK_PREFETCH");
    if (e == nullptr || *e == '\0') return -1;
    if (std::strcmp(e, "0") == 0 || std::strcmp(e, "1") == 0) return e[0] - '0';
    std::fprintf(stderr, "FK_PREFETCH=%s ignored: use 1 (software prefetch on) or 0 (off)\n", e);
    return -1;
  }();
  return v;
}

absl::Status check_runnable(const KernelEntry& e) {
  if (kernel_runnable(e)) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "kernel ", e.name, " (variant ", variant_name(e.variant), ") needs ",
      missing_cpu_features(e.features), ", which this CPU lacks"));
}

}  // namespace

bool software_prefetch_default(const std::string& cpu_vendor, Path path, int64_t row_bytes) {
  return !(cpu_vendor == "AuthenticAMD" && path == Path::kInt8 && row_bytes < kShortRowBytes);
}

bool software_prefetch_for(Path path, int64_t row_bytes) {
  const int t = g_prefetch_for_testing.load(std::memory_order_relaxed);
  if (t >= 0) return t == 1;
  const int env = env_prefetch();
  if (env >= 0) return env == 1;
  return software_prefetch_default(cpu_vendor(), path, row_bytes);
}

void set_software_prefetch_for_testing(std::optional<bool> on) {
  g_prefetch_for_testing.store(on.has_value() ? (*on ? 1 : 0) : -1, std::memory_order_relaxed);
}

const uint8_t* pack_activations(const ActPacker& p, const float* input, int64_t m, int64_t k,
                                ThreadPool* pool, std::vector<uint8_t>* buf,
                                int64_t* row_bytes) {
  const int64_t rb = (p.row_bytes(k) + 63) / 64 * 64;
  const int64_t units = p.group_rows > 1 ? (m + p.group_rows - 1) / p.group_rows : m;
  if (buf->size() < static_cast<size_t>(units * rb) + 64) {
    buf->resize(static_cast<size_t>(units * rb) + 64);
  }
  const uintptr_t addr = reinterpret_cast<uintptr_t>(buf->data());
  uint8_t* act = buf->data() + ((64 - (addr & 63)) & 63);
  *row_bytes = rb;
  struct Job {
    const ActPacker* p;
    const float* input;
    int64_t m, k, rb;
    uint8_t* act;
    void operator()(int64_t i) const {
      if (p->group_rows > 1) {
        p->pack_group(input, m, k, i, act);
      } else {
        p->pack_row(input + i * k, k, act + i * rb);
      }
    }
  } job{&p, input, m, k, rb, act};
  if (pool != nullptr && units > 1) {
    pool->ParallelFor(units, [j = &job](int64_t i) { (*j)(i); });
  } else {
    for (int64_t i = 0; i < units; ++i) job(i);
  }
  return act;
}

namespace {

// The arguments of one matmul of `weights` (activations not packed yet).
MatmulArgs matmul_args(const float* input, const WeightFormat& weights, int64_t m,
                       float* output) {
  MatmulArgs a;
  a.m = m;
  a.k = weights.cols();
  a.n = weights.rows();
  a.input = input;
  a.weights = weights.data();
  a.row_bytes = weights.row_bytes();
  a.output = output;
  return a;
}

// Everything the tasks of one call read (one matmul, or the group of dispatch_matmuls),
// passed to them as one pointer (so wrapping a task in std::function never allocates).
struct MultiContext {
  int n_jobs = 0;
  const KernelEntry* e[kMaxMatmulJobs];
  MatmulArgs args[kMaxMatmulJobs];
  // Separate columns: job j's chunks are tasks first[j] .. first[j + 1] - 1, per[j] columns
  // each. Shared columns: every task is one range of `shared` columns of every job.
  int64_t first[kMaxMatmulJobs + 1];
  int64_t per[kMaxMatmulJobs];
  int64_t shared = 0;
  const MatmulEpilogue* epilogue = nullptr;
};

int64_t gcd64(int64_t a, int64_t b) { return b == 0 ? a : gcd64(b, a % b); }

// Runs the jobs of ctx (entries known to fit their weights and this CPU; args without
// packed activations): packs the m input rows once per distinct packer, then splits the
// output columns over the pool at multiples of the entries' n_tile (per job in proportion
// to its rows, or with an epilogue one common range of every job per task).
absl::Status run_jobs(MultiContext& ctx, const float* input, int64_t m, ThreadPool* pool,
                      MatmulScratch* scratch) {
  int n_packed = 0;  // distinct activation packers so far (each its own buffer)
  for (int j = 0; j < ctx.n_jobs; ++j) {
    const KernelEntry& e = *ctx.e[j];
    MatmulArgs& a = ctx.args[j];
    a.software_prefetch = software_prefetch_for(e.path, a.row_bytes);
    if (e.path == Path::kInt8 && e.act == nullptr) {
      return absl::InternalError(absl::StrCat("kernel ", e.name, " has no activation packer"));
    }
    if (e.act == nullptr) continue;
    // Pack once per distinct packer: a later job with the same packer reuses the rows.
    int same = 0;
    while (same < j && ctx.e[same]->act != e.act) ++same;
    if (same < j) {
      a.act = ctx.args[same].act;
      a.act_row_bytes = ctx.args[same].act_row_bytes;
      continue;
    }
    std::vector<uint8_t>* buf = &scratch->act;
    if (n_packed > 0) {
      if (scratch->more_act.size() < static_cast<size_t>(n_packed)) {
        scratch->more_act.resize(static_cast<size_t>(n_packed));
      }
      buf = &scratch->more_act[static_cast<size_t>(n_packed - 1)];
    }
    ++n_packed;
    a.act = pack_activations(*e.act, input, m, a.k, pool, buf, &a.act_row_bytes);
  }

  const int threads = pool != nullptr ? pool->size() : 1;
  const MatmulEpilogue* epilogue = ctx.epilogue;
  if (threads == 1) {
    for (int j = 0; j < ctx.n_jobs; ++j) ctx.e[j]->fn(ctx.args[j], 0, ctx.args[j].n);
    if (epilogue != nullptr) epilogue->fn(epilogue->ctx, 0, ctx.args[0].n);
    return absl::OkStatus();
  }
  MultiContext* c = &ctx;
  if (epilogue != nullptr) {
    // One range of columns of every job per task, on a common multiple of their tiles.
    int64_t tile = 1;
    for (int j = 0; j < ctx.n_jobs; ++j) {
      const int64_t t = std::max(1, ctx.e[j]->n_tile);
      tile = tile / gcd64(tile, t) * t;
    }
    const int64_t n = ctx.args[0].n;
    const int64_t tiles = (n + tile - 1) / tile;
    int64_t bytes = 0;
    for (int j = 0; j < ctx.n_jobs; ++j) bytes += ctx.args[j].n * ctx.args[j].row_bytes;
    const int64_t chunks = chunk_count(threads * kChunksPerThread, threads, tiles, bytes);
    ctx.shared = (tiles + chunks - 1) / chunks * tile;
    pool->ParallelFor((n + ctx.shared - 1) / ctx.shared, [c](int64_t t) {
      const int64_t b = t * c->shared, end = std::min(c->args[0].n, b + c->shared);
      for (int j = 0; j < c->n_jobs; ++j) c->e[j]->fn(c->args[j], b, end);
      c->epilogue->fn(c->epilogue->ctx, b, end);
    });
    return absl::OkStatus();
  }
  // Chunks per job in proportion to its rows (the jobs share k, so to its weight bytes
  // roughly), whole tiles each, so every chunk but a job's last starts and ends at a tile
  // border; all jobs' chunks in one parallel loop (one task runs on the calling thread).
  int64_t total_n = 0;
  for (int j = 0; j < ctx.n_jobs; ++j) total_n += ctx.args[j].n;
  ctx.first[0] = 0;
  for (int j = 0; j < ctx.n_jobs; ++j) {
    const int64_t n = ctx.args[j].n;
    const int64_t tile = std::max(1, ctx.e[j]->n_tile);
    const int64_t tiles = (n + tile - 1) / tile;
    const int64_t want = std::max<int64_t>(1, threads * kChunksPerThread * n / total_n);
    const int64_t chunks = chunk_count(want, threads, tiles, n * ctx.args[j].row_bytes);
    ctx.per[j] = (tiles + chunks - 1) / chunks * tile;
    ctx.first[j + 1] = ctx.first[j] + (n + ctx.per[j] - 1) / ctx.per[j];
  }
  pool->ParallelFor(ctx.first[ctx.n_jobs], [c](int64_t t) {
    int j = 0;
    while (t >= c->first[j + 1]) ++j;
    const int64_t b = (t - c->first[j]) * c->per[j];
    c->e[j]->fn(c->args[j], b, std::min(c->args[j].n, b + c->per[j]));
  });
  return absl::OkStatus();
}

// Runs an entry already known to fit the weights and this CPU.
absl::Status run_entry(const KernelEntry& e, const float* input, const WeightFormat& weights,
                       int64_t m, float* output, ThreadPool* pool, MatmulScratch* scratch) {
  MultiContext ctx;
  ctx.n_jobs = 1;
  ctx.e[0] = &e;
  ctx.args[0] = matmul_args(input, weights, m, output);
  MatmulScratch local;
  return run_jobs(ctx, input, m, pool, scratch != nullptr ? scratch : &local);
}

}  // namespace

absl::StatusOr<const KernelEntry*> select_kernel(Format format, const MatmulOptions& options,
                                                 int64_t m) {
  absl::StatusOr<KernelChoice> c = KernelChoice::Resolve(format, options);
  if (!c.ok()) return c.status();
  return &c->ForBatch(m);
}

absl::StatusOr<KernelChoice> KernelChoice::Resolve(Format format, const MatmulOptions& options) {
  std::optional<Variant> variant = options.variant;
  if (!variant) {
    absl::StatusOr<std::optional<Variant>> v = env_variant();
    if (!v.ok()) return v.status();
    variant = *v;
  }
  std::optional<Path> path = options.path;
  if (!path) {
    absl::StatusOr<std::optional<Path>> p = env_path();
    if (!p.ok()) return p.status();
    path = *p;
  }
  const Path want_path =
      path.value_or(has_int8_path(traits(format)) ? Path::kInt8 : Path::kF32);
  if (!has_path(format, want_path)) {
    std::string paths;
    for (Path p : kAllPaths) {
      if (has_path(format, p)) absl::StrAppend(&paths, paths.empty() ? "" : ", ", path_name(p));
    }
    return absl::InvalidArgumentError(absl::StrCat("no ", path_name(want_path), " path for ",
                                                   traits(format).name, " weights (its paths: ",
                                                   paths, ")"));
  }
  const KernelEntry* general = nullptr;
  if (variant) {
    // A variant with rows of its own for the format and path (amx's batch rows) must run them.
    for (const KernelEntry& e : all_kernels()) {
      if (e.format == format && e.variant == *variant && e.path == want_path && !kernel_runnable(e)) {
        return check_runnable(e);
      }
    }
    general = find_general_kernel(format, *variant, want_path);
    if (general == nullptr) {
      return absl::NotFoundError(absl::StrCat("no kernel for format ", traits(format).name,
                                              ", variant ", variant_name(*variant), ", path ",
                                              path_name(want_path)));
    }
    absl::Status s = check_runnable(*general);
    if (!s.ok() && general->variant != *variant) {
      // Name what was asked for, too: "--variant=avx512_vnni" must not read as avx512.
      return absl::FailedPreconditionError(
          absl::StrCat("variant ", variant_name(*variant), " runs its ", path_name(want_path),
                       " path on ", variant_name(general->variant), "'s kernels: ", s.message()));
    }
    if (!s.ok()) return s;
  } else {
    // The best runnable variant: the highest Variant enumerator this CPU runs.
    for (const KernelEntry& e : all_kernels()) {
      if (e.format != format || e.path != want_path || e.min_m != 1 || !kernel_runnable(e)) {
        continue;
      }
      if (general == nullptr || e.variant > general->variant) general = &e;
    }
    if (general == nullptr) {
      return absl::NotFoundError(absl::StrCat("no runnable kernel for format ",
                                              traits(format).name, ", path ",
                                              path_name(want_path)));
    }
  }
  KernelChoice c;
  c.rows_.push_back(general);
  if (!variant && general->variant == Variant::kScalar) {
    for (const KernelEntry& e : all_kernels()) {
      if (e.format != format || e.path != want_path || e.min_m != 1 || e.variant == Variant::kScalar) {
        continue;
      }
      c.slow_note_ = absl::StrCat(general->name, " is the scalar reference (slow): ", e.name,
                                  " needs ", missing_cpu_features(e.features),
                                  ", which this CPU lacks");
      break;
    }
  }
  // Batch rows: the general row's variant's, and those of the variants that extend it (amx
  // on avx512_vnni) up to the one named, or any runnable one when none was named. Of two rows
  // with the same MIN_M the extending variant's wins.
  for (const KernelEntry& e : all_kernels()) {
    if (e.format == format && e.path == want_path && e.min_m > 1 && kernel_runnable(e) &&
        extends_variant(e.variant, general->variant) &&
        (!variant || extends_variant(*variant, e.variant))) {
      c.rows_.push_back(&e);
    }
  }
  std::sort(c.rows_.begin() + 1, c.rows_.end(), [](const KernelEntry* a, const KernelEntry* b) {
    return a->min_m != b->min_m ? a->min_m < b->min_m : a->variant < b->variant;
  });
  return c;
}

const KernelEntry& KernelChoice::ForBatch(int64_t m) const {
  const KernelEntry* e = rows_.front();
  for (const KernelEntry* r : rows_)
    if (r->min_m <= m) e = r;
  return *e;
}

absl::Status dispatch_matmul(const KernelChoice& choice, const float* input,
                             const WeightFormat& weights, int64_t m, float* output,
                             int64_t output_size, ThreadPool* pool, MatmulScratch* scratch) {
  if (choice.general().format != weights.format()) {
    return absl::InvalidArgumentError(
        absl::StrCat("matmul: kernels resolved for ", traits(choice.general().format).name,
                     " weights, got ", weights.format_name()));
  }
  absl::Status s = validate(input, weights, m, weights.cols(), weights.rows(), output,
                            output_size);
  if (!s.ok()) return s;
  return run_entry(choice.ForBatch(m), input, weights, m, output, pool, scratch);
}

absl::Status dispatch_matmul(const float* input, const WeightFormat& weights, int64_t m,
                             int64_t k, int64_t n, float* output, int64_t output_size,
                             const MatmulOptions& options, MatmulScratch* scratch) {
  absl::Status s = validate(input, weights, m, k, n, output, output_size);
  if (!s.ok()) return s;
  absl::StatusOr<const KernelEntry*> e = select_kernel(weights.format(), options, m);
  if (!e.ok()) return e.status();
  return run_entry(**e, input, weights, m, output, options.pool, scratch);
}

absl::StatusOr<std::vector<float>> dispatch_matmul(const float* input,
                                                   const WeightFormat& weights, int64_t m,
                                                   int64_t k, int64_t n,
                                                   const MatmulOptions& options) {
  if (m <= 0 || n <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("matmul: m, k and n must be positive (m=", m, ", k=", k, ", n=", n, ")"));
  }
  std::vector<float> out(static_cast<size_t>(m * n));
  absl::Status s = dispatch_matmul(input, weights, m, k, n, out.data(), m * n, options);
  if (!s.ok()) return s;
  return out;
}

absl::Status dispatch_matmuls(absl::Span<const MatmulJob> jobs, const float* input, int64_t m,
                              ThreadPool* pool, MatmulScratch* scratch,
                              const MatmulEpilogue* epilogue) {
  if (jobs.empty() || jobs.size() > static_cast<size_t>(kMaxMatmulJobs)) {
    return absl::InvalidArgumentError(absl::StrCat("dispatch_matmuls: ", jobs.size(),
                                                   " jobs; 1 .. ", kMaxMatmulJobs, " allowed"));
  }
  MatmulScratch local;
  if (scratch == nullptr) scratch = &local;
  MultiContext ctx;
  ctx.n_jobs = static_cast<int>(jobs.size());
  ctx.epilogue = epilogue;
  for (int j = 0; j < ctx.n_jobs; ++j) {
    const MatmulJob& job = jobs[j];
    if (job.choice == nullptr || job.weights == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("dispatch_matmuls: job ", j, " has no kernel choice or no weights"));
    }
    const WeightFormat& w = *job.weights;
    if (job.choice->general().format != w.format()) {
      return absl::InvalidArgumentError(
          absl::StrCat("dispatch_matmuls: job ", j, ": kernels resolved for ",
                       traits(job.choice->general().format).name, " weights, got ",
                       w.format_name()));
    }
    absl::Status s = validate(input, w, m, jobs[0].weights->cols(), w.rows(), job.output,
                              job.output_size);
    if (!s.ok()) return absl::Status(s.code(), absl::StrCat("job ", j, ": ", s.message()));
    if (epilogue != nullptr && w.rows() != jobs[0].weights->rows()) {
      return absl::InvalidArgumentError(
          absl::StrCat("dispatch_matmuls: with an epilogue every job needs the same rows; job ",
                       j, " has ", w.rows(), ", job 0 ", jobs[0].weights->rows()));
    }
    ctx.e[j] = &job.choice->ForBatch(m);
    ctx.args[j] = matmul_args(input, w, m, job.output);
  }
  return run_jobs(ctx, input, m, pool, scratch);
}

absl::Status run_kernel(const KernelEntry& entry, const float* input,
                        const WeightFormat& weights, int64_t m, float* output,
                        int64_t output_size, ThreadPool* pool, MatmulScratch* scratch) {
  if (entry.format != weights.format()) {
    return absl::InvalidArgumentError(absl::StrCat("kernel ", entry.name, " is for ",
                                                   traits(entry.format).name,
                                                   " weights, got ", weights.format_name()));
  }
  absl::Status s = validate(input, weights, m, weights.cols(), weights.rows(), output,
                            output_size);
  if (!s.ok()) return s;
  s = check_runnable(entry);
  if (!s.ok()) return s;
  if (m < entry.min_m) {
    return absl::InvalidArgumentError(absl::StrCat("kernel ", entry.name,
                                                   " is for batches of at least ", entry.min_m,
                                                   " rows, got m=", m));
  }
  return run_entry(entry, input, weights, m, output, pool, scratch);
}

absl::StatusOr<std::vector<float>> matmul_transposed(const float* input, const float* w,
                                                     int64_t m, int64_t k, int64_t n,
                                                     const MatmulOptions& options) {
  if (w == nullptr) return absl::InvalidArgumentError("matmul_transposed: weights are null");
  if (k <= 0 || n <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("matmul_transposed: k and n must be positive (k=", k, ", n=", n, ")"));
  }
  absl::StatusOr<WeightFormat> view = WeightFormat::View(
      Format::kF32, n, k, w, static_cast<size_t>(n * k) * sizeof(float), nullptr);
  if (!view.ok()) return view.status();
  return dispatch_matmul(input, *view, m, k, n, options);
}

}  // namespace fk
