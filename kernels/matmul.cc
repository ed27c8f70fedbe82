#include "kernels/matmul.h"

#include <algorithm>
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

absl::Status check_runnable(const KernelEntry& e) {
  if (kernel_runnable(e)) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "kernel ", e.name, " (variant ", variant_name(e.variant), ") needs ",
      missing_cpu_features(e.features), ", which this CPU lacks"));
}

// 64-byte aligned start of scratch->act holding at least `bytes` (the vector over-allocates
// by 64 so the aligned start always fits).
uint8_t* aligned_act(MatmulScratch* scratch, size_t bytes) {
  if (scratch->act.size() < bytes + 64) scratch->act.resize(bytes + 64);
  const uintptr_t p = reinterpret_cast<uintptr_t>(scratch->act.data());
  return scratch->act.data() + ((64 - (p & 63)) & 63);
}

// Everything one call's parallel tasks read, passed to them as one pointer (so wrapping a
// task in std::function never allocates).
struct CallContext {
  const KernelEntry* e;
  MatmulArgs args;
  int64_t per_chunk;        // output columns per task (a multiple of the entry's n_tile)
  uint8_t* act;             // int8 path: packed activation rows
};

// Packs the m activation rows for the entry's int8 path into scratch (rows in parallel
// when a pool is given) and points `ctx->args` at them.
void pack_activations(CallContext* ctx, ThreadPool* pool, MatmulScratch* scratch) {
  const ActPacker& p = *ctx->e->act;
  MatmulArgs& a = ctx->args;
  // Rows padded to 64 bytes, so every row starts aligned.
  const int64_t rb = (p.row_bytes(a.k) + 63) / 64 * 64;
  ctx->act = aligned_act(scratch, static_cast<size_t>(a.m * rb));
  a.act = ctx->act;
  a.act_row_bytes = rb;
  if (pool != nullptr && a.m > 1) {
    pool->ParallelFor(a.m, [ctx](int64_t i) {
      const MatmulArgs& a = ctx->args;
      ctx->e->act->pack_row(a.input + i * a.k, a.k, ctx->act + i * a.act_row_bytes);
    });
  } else {
    for (int64_t i = 0; i < a.m; ++i) p.pack_row(a.input + i * a.k, a.k, ctx->act + i * rb);
  }
}

// Runs an entry already known to fit the weights and this CPU.
absl::Status run_entry(const KernelEntry& e, const float* input, const WeightFormat& weights,
                       int64_t m, float* output, ThreadPool* pool, MatmulScratch* scratch) {
  CallContext ctx;
  ctx.e = &e;
  MatmulArgs& args = ctx.args;
  args.m = m;
  args.k = weights.cols();
  args.n = weights.rows();
  args.input = input;
  args.weights = weights.data();
  args.row_bytes = weights.row_bytes();
  args.output = output;
  MatmulScratch local;
  if (e.path == Path::kInt8) {
    if (e.act == nullptr) {
      return absl::InternalError(absl::StrCat("kernel ", e.name, " has no activation packer"));
    }
    pack_activations(&ctx, pool, scratch != nullptr ? scratch : &local);
  }

  const int threads = pool != nullptr ? pool->size() : 1;
  const int64_t tile = std::max(1, e.n_tile);
  const int64_t tiles = (args.n + tile - 1) / tile;
  const int64_t chunks = std::min<int64_t>(tiles, threads * kChunksPerThread);
  if (threads == 1 || chunks <= 1) {
    e.fn(args, 0, args.n);
    return absl::OkStatus();
  }
  // Chunks of whole tiles, so every chunk but the last starts and ends at a tile border.
  ctx.per_chunk = (tiles + chunks - 1) / chunks * tile;
  const int64_t n_chunks = (args.n + ctx.per_chunk - 1) / ctx.per_chunk;
  CallContext* c = &ctx;
  pool->ParallelFor(n_chunks, [c](int64_t t) {
    c->e->fn(c->args, t * c->per_chunk, std::min(c->args.n, (t + 1) * c->per_chunk));
  });
  return absl::OkStatus();
}

// The variant a requested variant falls back to when it has no kernel for a (format, path):
// avx512_vnni only adds int8 kernels, so its f32 path is avx512's.
std::optional<Variant> base_variant(Variant v) {
  if (v == Variant::kAvx512Vnni) return Variant::kAvx512;
  return std::nullopt;
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
  const bool int8 = has_int8_path(traits(format));
  const Path want_path = path.value_or(int8 ? Path::kInt8 : Path::kF32);
  if (!int8 && want_path == Path::kInt8) {
    return absl::InvalidArgumentError(absl::StrCat("no int8 path for ", traits(format).name,
                                                   " weights (path must be f32)"));
  }
  const KernelEntry* general = nullptr;
  if (variant) {
    general = find_kernel(format, *variant, want_path);
    for (std::optional<Variant> v = base_variant(*variant); general == nullptr && v;
         v = base_variant(*v)) {
      general = find_kernel(format, *v, want_path);
    }
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
  for (const KernelEntry& e : all_kernels()) {
    if (e.format == format && e.variant == general->variant && e.path == want_path &&
        e.min_m > 1 && kernel_runnable(e)) {
      c.rows_.push_back(&e);
    }
  }
  std::sort(c.rows_.begin() + 1, c.rows_.end(),
            [](const KernelEntry* a, const KernelEntry* b) { return a->min_m < b->min_m; });
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
