#include "harness/sweep_options.h"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <map>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace fk {
namespace {

constexpr Shape kDefaultShapes[] = {{2048, 2048}, {5632, 2048},  {2048, 5632},
                                    {4096, 4096}, {14336, 4096}, {4096, 14336}};
constexpr int64_t kDefaultBatches[] = {1, 8, 64, 256};
constexpr Shape kQuickShape = {4096, 4096};
constexpr int64_t kQuickBatches[] = {1, 8};

absl::Status FlagError(absl::string_view flag, absl::string_view value, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("--", flag, "=", value, ": ", why, " (see --help)"));
}

std::vector<std::string> SplitList(absl::string_view value) {
  std::vector<std::string> out;
  for (absl::string_view part : absl::StrSplit(value, ',', absl::SkipWhitespace())) {
    out.emplace_back(absl::StripAsciiWhitespace(part));
  }
  return out;
}

absl::StatusOr<int64_t> ParseInt(absl::string_view flag, absl::string_view value, int64_t lo,
                                 int64_t hi) {
  int64_t v = 0;
  if (!absl::SimpleAtoi(value, &v) || v < lo || v > hi) {
    return FlagError(flag, value, absl::StrCat("expected an integer in [", lo, ", ", hi, "]"));
  }
  return v;
}

absl::StatusOr<double> ParseDouble(absl::string_view flag, absl::string_view value, double lo,
                                   double hi) {
  double v = 0;
  if (!absl::SimpleAtod(value, &v) || !(v >= lo && v <= hi)) {
    return FlagError(flag, value, absl::StrCat("expected a number in [", lo, ", ", hi, "]"));
  }
  return v;
}

absl::StatusOr<bool> ParseBool(absl::string_view flag, absl::string_view value) {
  const std::string v = absl::AsciiStrToLower(value);
  if (v == "" || v == "true" || v == "1" || v == "yes") return true;
  if (v == "false" || v == "0" || v == "no") return false;
  return FlagError(flag, value, "expected true or false");
}

absl::StatusOr<std::vector<Shape>> ParseShapes(absl::string_view value) {
  std::vector<Shape> out;
  for (const std::string& s : SplitList(value)) {
    std::vector<std::string> nk = absl::StrSplit(absl::AsciiStrToLower(s), 'x');
    int64_t n = 0, k = 0;
    if (nk.size() != 2 || !absl::SimpleAtoi(nk[0], &n) || !absl::SimpleAtoi(nk[1], &k) ||
        n < 1 || k < 1 || n > (int64_t{1} << 20) || k > (int64_t{1} << 20)) {
      return FlagError("shapes", value,
                       absl::StrCat("'", s, "' is not NxK with 1 <= N, K <= 1048576 (e.g. 4096x14336)"));
    }
    out.push_back({n, k});
  }
  if (out.empty()) return FlagError("shapes", value, "no shapes given");
  return out;
}

// Integers lo..hi, deduplicated in the order given; "all" means `all` (thread counts).
absl::StatusOr<std::vector<int64_t>> ParseIntList(absl::string_view flag, absl::string_view value,
                                                  int64_t lo, int64_t hi, int64_t all = 0) {
  std::vector<int64_t> out;
  for (const std::string& s : SplitList(value)) {
    int64_t v = 0;
    if (all > 0 && absl::AsciiStrToLower(s) == "all") {
      v = all;
    } else {
      absl::StatusOr<int64_t> p = ParseInt(flag, s, lo, hi);
      if (!p.ok()) return FlagError(flag, value, p.status().message());
      v = *p;
    }
    if (std::find(out.begin(), out.end(), v) == out.end()) out.push_back(v);
  }
  if (out.empty()) return FlagError(flag, value, "empty list");
  return out;
}

bool IsAll(absl::string_view value) { return absl::AsciiStrToLower(value) == "all"; }

// Wraps text at `width` columns (words are never split).
std::string Wrap(absl::string_view text, size_t width) {
  std::string out, line;
  for (absl::string_view word : absl::StrSplit(text, ' ', absl::SkipEmpty())) {
    if (!line.empty() && line.size() + 1 + word.size() > width) {
      absl::StrAppend(&out, line, "\n");
      line.clear();
    }
    absl::StrAppend(&line, line.empty() ? "" : " ", word);
  }
  return absl::StrCat(out, line, "\n");
}

}  // namespace

const char* CaseKindName(CaseKind k) {
  switch (k) {
    case CaseKind::kFused:
      return "fused";
    case CaseKind::kDequantThenMatmul:
      return "dequant_then_matmul";
    case CaseKind::kGgml:
      return "ggml";
  }
  return "?";
}

const char* GgmlTypeName(Format f) {
  const FormatTraits& t = traits(f);
  return t.ggml_peer ? t.ggml_name : nullptr;  // Q8_K: an activation format in ggml
}

std::string GridRuleText() {
  return absl::StrCat(
      "Batch 1 (GEMV): every registry kernel this CPU runs (every variant and path) on every "
      "shape and thread count. Batch > 1: only the best variant per (format, path), i.e. the "
      "highest variant this CPU runs, and of its rows the one dispatch picks for that batch "
      "(a row with a MIN_M, such as the K-quant weight panels, from its MIN_M on), labelled by "
      "its own kernel name; no row runs below its MIN_M; batches >= ",
      kBigBatch, " only on shapes with n*k <= 4096*4096 (batch 8 on every shape); every batch "
      "at every thread count. For every "
      "(format, shape, batch, threads) that has a case, the dequantize-then-matmul baseline "
      "(with the best F32 kernel) and ggml's MUL_MAT (when available; no Q8_K in ggml) run "
      "right after it. The F32-weights baseline is the F32 format's own cases. --full lifts "
      "the trimming.");
}

std::string SweepUsage(int cores) {
  return absl::StrCat(
      "usage: tools/bazel run //harness:sweep -- [flags]\n"
      "\n"
      "The performance sweep: every kernel of the registry (format x variant x path) on\n"
      "weight shapes x batch sizes x thread counts, with two baselines and ggml's MUL_MAT\n"
      "measured in the same run, then plots. It first measures the machine (DRAM read\n"
      "bandwidth and arithmetic peak at each thread count; CPU, ISA flags, compiler, Bazel,\n"
      "git commit). Each case: warm-up, then >= --reps timed calls (and >= --min_time s);\n"
      "median and spread, GFLOP/s, weight GB/s, % of the DRAM roofline (batch 1) or of the\n"
      "measured arithmetic peak of its path (f32 FMA or int8 dot; batch > 1), memory, peak\n"
      "RSS, and the error against a float64 dequantize-then-matmul reference on --check_cols\n"
      "output columns of every row. Weights are cold: enough copies to exceed the caches are\n"
      "cycled (--cold_mb). Ctrl-C stops after the current case; what was measured is kept.\n"
      "\n",
      Wrap(absl::StrCat("Grid rule (default): ", GridRuleText()), 88),
      "\n"
      "flags:\n"
      "  --formats=LIST    formats (default all: ", format_names(), ")\n"
      "  --variants=LIST   variants (default all: ", variant_names(), ")\n"
      "  --paths=LIST      activation paths (default all: ", path_names(), ")\n"
      "  --shapes=LIST     weight shapes NxK (n output rows, k inputs), default\n"
      "                    2048x2048,5632x2048,2048x5632,4096x4096,14336x4096,4096x14336\n"
      "                    (the matrices of a 1B- and an 8B-class llama)\n"
      "  --batch=LIST      activation rows m (default 1,8,64,256)\n"
      "  --threads=LIST    thread counts; 'all' = ", cores, " (default 1,all)\n"
      "  --reps=N          timed repetitions per case, at least (default 5)\n"
      "  --min_time=S      ... and at least S seconds of timed calls (default 0.05)\n"
      "  --passes=N        measure the batch-1 cases (ours, the baseline's, ggml's) in N\n"
      "                    passes, minutes apart (the later ones in reverse order), and keep\n"
      "                    each case's fastest pass (default 1): a shared host that slows the\n"
      "                    machine for seconds or minutes then rarely slows one case in all\n"
      "                    of them, which matters most for the batch-1 GB/s shares\n"
      "  --share_rounds=N  after the cases, per shape and thread count, N rounds in which\n"
      "                    every format's fastest batch-1 kernel runs a short burst (~25 ms) in\n"
      "                    turn; each format's GB/s is taken as a share of the best of the same\n"
      "                    round and the median over rounds reported (interleaved_shares in\n"
      "                    results.json, the share table of the report). A shared host whose\n"
      "                    memory speeds up and slows down over seconds to minutes then meets\n"
      "                    every format in the same state (default 12; --quick 0; 0 = off)\n"
      "  --warmup=N        untimed calls before timing, at least (default 1)\n"
      "  --warmup_time=S   ... and at least S seconds of them (default 0.1; with --quick\n"
      "                    0.02): on a virtual machine an idle second core has been seen to\n"
      "                    take tens of ms before a 2-thread call really runs on 2 cores\n"
      "  --quick           a small grid in under a minute: 4096x4096, batch 1,8, threads all,\n"
      "                    --min_time=0.01, 256 MiB DRAM probe (explicit flags still win)\n"
      "  --full            no trimming: every variant at every batch and shape (hours)\n"
      "  --out=DIR         output directory (default reports/<date>-<cpu>/ in the workspace;\n"
      "                    relative paths are taken from where you ran bazel)\n"
      "  --ggml=MODE       the ggml peer (tools/ggml_peer/mulmat_bench, in\n"
      "                    $FK_CACHE/ggml_peer/): auto (default) = build it with\n"
      "                    tools/setup_ggml if it is missing (llama-cpp-python from PyPI,\n"
      "                    minutes, once); cached (--quick's default) = use it if built (only\n"
      "                    recompiles mulmat_bench, seconds); off; or the PATH of a\n"
      "                    mulmat_bench. If ggml crashes on a case, the peer is restarted and\n"
      "                    the case retried with the next weight layout llama.cpp would use\n"
      "                    (AMX -> CPU_REPACK -> plain); results name the layout and the crash\n"
      "  --[no]plot        run //tools:plot on the results at the end (default on)\n"
      "  --cold_mb=N       weight copies cycled per case total >= N MiB (default 0 = auto:\n"
      "                    4 x last-level cache, at least 128)\n"
      "  --check_cols=N    output columns checked per case (default 128)\n"
      "  --dram_mb=N       buffer of the DRAM bandwidth probe in MiB (default 1024; raised to\n"
      "                    4 x the last-level cache when that is more)\n"
      "  --settle_s=S      before the first and after the last DRAM probe, wait at most S s for\n"
      "                    a quiet machine (other work under 0.25 cores; default 60, --quick\n"
      "                    20; 0 = no wait). Shares of the DRAM roofline are shown only once a\n"
      "                    probe was taken on a quiet machine\n"
      "  --reprobe_s=S     probe DRAM again every S s of cases (default 60; 0 = never) and when\n"
      "                    a batch-1 case beats the best probe so far; the best probe is the\n"
      "                    roofline\n"
      "  --likwid=auto|off|PATH  likwid-bench's load test beside our probe (auto: likwid-bench\n"
      "                    from PATH, Debian package likwid, installed by tools/bazel)\n"
      "  --dry_run         list the planned cases (no measuring) and exit\n"
      "  --help            this text\n"
      "\n"
      "Writes results.json (machine, run, field descriptions, one record per case) and\n"
      "results.csv after every case (atomically), then the plots and reports/README.md.\n");
}

absl::StatusOr<SweepOptions> ParseSweepFlags(int argc, const char* const* argv, int cores) {
  SweepOptions o;
  cores = std::max(1, cores);
  std::set<std::string> given;
  std::map<std::string, std::string> values;
  const std::set<std::string> bool_flags = {"quick", "full", "plot", "help", "dry_run"};
  const std::set<std::string> value_flags = {
      "formats", "variants",   "paths",   "shapes",   "batch",     "threads", "reps",
      "min_time", "passes",    "warmup",  "warmup_time", "out",    "ggml",    "cold_mb",
      "check_cols", "dram_mb", "settle_s", "reprobe_s", "likwid", "share_rounds"};
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    o.argv.push_back(a);
    if (a == "-h") a = "--help";
    if (!absl::StartsWith(a, "--")) {
      return absl::InvalidArgumentError(
          absl::StrCat("unexpected argument '", a, "': flags look like --name=value (see --help)"));
    }
    std::string name = a.substr(2), value;
    const size_t eq = name.find('=');
    const bool has_value = eq != std::string::npos;
    if (has_value) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    if (bool_flags.count(name) == 0 && value_flags.count(name) == 0 && !has_value &&
        absl::StartsWith(name, "no") && bool_flags.count(name.substr(2))) {
      name = name.substr(2);
      value = "false";
    } else if (bool_flags.count(name)) {
      if (!has_value) value = "true";
    } else if (value_flags.count(name)) {
      if (!has_value) {
        if (i + 1 >= argc) {
          return absl::InvalidArgumentError(absl::StrCat("--", name, " needs a value (see --help)"));
        }
        value = argv[++i];
        o.argv.push_back(value);
      }
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name, " (see --help)"));
    }
    given.insert(name);
    values[name] = value;
  }

  auto has = [&](const char* n) { return given.count(n) > 0; };
  for (const char* b : {"quick", "full", "plot", "help", "dry_run"}) {
    if (!has(b)) continue;
    absl::StatusOr<bool> v = ParseBool(b, values[b]);
    if (!v.ok()) return v.status();
    if (std::string(b) == "quick") o.quick = *v;
    if (std::string(b) == "full") o.full = *v;
    if (std::string(b) == "plot") o.plot = *v;
    if (std::string(b) == "help") o.help = *v;
    if (std::string(b) == "dry_run") o.dry_run = *v;
  }
  if (o.help) return o;

  // Formats, variants, paths.
  if (has("formats") && !IsAll(values["formats"])) {
    for (const std::string& s : SplitList(values["formats"])) {
      const FormatTraits* t = find_format(s);
      if (t == nullptr) {
        return FlagError("formats", values["formats"],
                         absl::StrCat("unknown format '", s, "'; formats are ", format_names()));
      }
      if (std::find(o.formats.begin(), o.formats.end(), t->format) == o.formats.end()) {
        o.formats.push_back(t->format);
      }
    }
    if (o.formats.empty()) return FlagError("formats", values["formats"], "empty list");
  } else {
    for (const FormatTraits& t : all_formats()) o.formats.push_back(t.format);
  }
  if (has("variants") && !IsAll(values["variants"])) {
    for (const std::string& s : SplitList(values["variants"])) {
      absl::StatusOr<Variant> v = parse_variant(s);
      if (!v.ok()) return FlagError("variants", values["variants"], v.status().message());
      if (std::find(o.variants.begin(), o.variants.end(), *v) == o.variants.end()) {
        o.variants.push_back(*v);
      }
    }
    if (o.variants.empty()) return FlagError("variants", values["variants"], "empty list");
  } else {
    o.variants = {Variant::kScalar, Variant::kAvx2, Variant::kAvx512, Variant::kAvx512Vnni, Variant::kAmx};
  }
  if (has("paths") && !IsAll(values["paths"])) {
    for (const std::string& s : SplitList(values["paths"])) {
      absl::StatusOr<Path> p = parse_path(s);
      if (!p.ok()) return FlagError("paths", values["paths"], p.status().message());
      if (std::find(o.paths.begin(), o.paths.end(), *p) == o.paths.end()) o.paths.push_back(*p);
    }
    if (o.paths.empty()) return FlagError("paths", values["paths"], "empty list");
  } else {
    o.paths.assign(std::begin(kAllPaths), std::end(kAllPaths));
  }

  // Grid.
  if (has("shapes")) {
    absl::StatusOr<std::vector<Shape>> s = ParseShapes(values["shapes"]);
    if (!s.ok()) return s.status();
    o.shapes = *s;
  } else if (o.quick) {
    o.shapes = {kQuickShape};
  } else {
    o.shapes.assign(std::begin(kDefaultShapes), std::end(kDefaultShapes));
  }
  for (const Shape& s : o.shapes) {
    for (Format f : o.formats) {
      const FormatTraits& t = traits(f);
      if (s.k % t.block_elems != 0) {
        return FlagError("shapes", values["shapes"],
                         absl::StrCat("k=", s.k, " of ", s.n, "x", s.k, " is not a multiple of ",
                                      t.name, "'s block of ", t.block_elems,
                                      " (choose k or narrow --formats)"));
      }
    }
  }
  if (has("batch")) {
    absl::StatusOr<std::vector<int64_t>> b = ParseIntList("batch", values["batch"], 1, 4096);
    if (!b.ok()) return b.status();
    o.batches = *b;
  } else if (o.quick) {
    o.batches.assign(std::begin(kQuickBatches), std::end(kQuickBatches));
  } else {
    o.batches.assign(std::begin(kDefaultBatches), std::end(kDefaultBatches));
  }
  if (has("threads")) {
    absl::StatusOr<std::vector<int64_t>> t =
        ParseIntList("threads", values["threads"], 1, 256, cores);
    if (!t.ok()) return t.status();
    for (int64_t v : *t) o.threads.push_back(static_cast<int>(v));
  } else if (o.quick || cores == 1) {
    o.threads = {cores};
  } else {
    o.threads = {1, cores};
  }

  // Measurement.
  if (has("reps")) {
    absl::StatusOr<int64_t> v = ParseInt("reps", values["reps"], 1, 1000);
    if (!v.ok()) return v.status();
    o.reps = static_cast<int>(*v);
  }
  if (has("passes")) {
    absl::StatusOr<int64_t> v = ParseInt("passes", values["passes"], 1, 10);
    if (!v.ok()) return v.status();
    o.passes = static_cast<int>(*v);
  }
  if (has("share_rounds")) {
    absl::StatusOr<int64_t> v = ParseInt("share_rounds", values["share_rounds"], 0, 200);
    if (!v.ok()) return v.status();
    o.share_rounds = static_cast<int>(*v);
  } else if (o.quick) {
    o.share_rounds = 0;
  }
  if (has("min_time")) {
    absl::StatusOr<double> v = ParseDouble("min_time", values["min_time"], 0.0, 60.0);
    if (!v.ok()) return v.status();
    o.min_time = *v;
  } else if (o.quick) {
    o.min_time = 0.01;
  }
  if (has("warmup")) {
    absl::StatusOr<int64_t> v = ParseInt("warmup", values["warmup"], 0, 100);
    if (!v.ok()) return v.status();
    o.warmup = static_cast<int>(*v);
  }
  if (has("warmup_time")) {
    absl::StatusOr<double> v = ParseDouble("warmup_time", values["warmup_time"], 0.0, 60.0);
    if (!v.ok()) return v.status();
    o.warmup_time = *v;
  } else if (o.quick) {
    o.warmup_time = 0.02;
  }
  if (has("cold_mb")) {
    absl::StatusOr<int64_t> v = ParseInt("cold_mb", values["cold_mb"], 0, 65536);
    if (!v.ok()) return v.status();
    o.cold_mb = *v;
  }
  if (has("check_cols")) {
    absl::StatusOr<int64_t> v = ParseInt("check_cols", values["check_cols"], 1, 1 << 20);
    if (!v.ok()) return v.status();
    o.check_cols = static_cast<int>(*v);
  }
  if (has("settle_s")) {
    absl::StatusOr<double> v = ParseDouble("settle_s", values["settle_s"], 0.0, 3600.0);
    if (!v.ok()) return v.status();
    o.settle_s = *v;
  } else if (o.quick) {
    o.settle_s = 20;
  }
  if (has("reprobe_s")) {
    absl::StatusOr<double> v = ParseDouble("reprobe_s", values["reprobe_s"], 0.0, 86400.0);
    if (!v.ok()) return v.status();
    o.reprobe_s = *v;
  }
  if (has("likwid")) {
    if (values["likwid"].empty()) return FlagError("likwid", "", "expected auto, off or a path");
    o.likwid = values["likwid"];
  }
  if (has("dram_mb")) {
    absl::StatusOr<int64_t> v = ParseInt("dram_mb", values["dram_mb"], 16, 65536);
    if (!v.ok()) return v.status();
    o.dram_mb = *v;
  } else if (o.quick) {
    o.dram_mb = 256;
  }
  if (has("out")) {
    if (values["out"].empty()) return FlagError("out", "", "empty directory name");
    o.out = values["out"];
  }
  if (has("ggml")) {
    if (values["ggml"].empty()) {
      return FlagError("ggml", "", "expected auto, cached, off or a path to mulmat_bench");
    }
    o.ggml = values["ggml"];
  } else {
    o.ggml = o.quick ? "cached" : "auto";
  }
  return o;
}

std::vector<CaseSpec> PlanCases(const SweepOptions& o, absl::Span<const KernelEntry> registry,
                                bool (*runnable)(const KernelEntry&), bool ggml) {
  auto wanted = [&](const KernelEntry& e) {
    return std::find(o.variants.begin(), o.variants.end(), e.variant) != o.variants.end() &&
           std::find(o.paths.begin(), o.paths.end(), e.path) != o.paths.end() && runnable(e);
  };
  // The row dispatch runs for a batch of m among `rows` (one format and path): the largest
  // MIN_M <= m, of two such the extending variant's (amx over avx512_vnni).
  auto row_for_batch = [](const std::vector<const KernelEntry*>& rows, int64_t m) {
    const KernelEntry* r = nullptr;
    for (const KernelEntry* e : rows) {
      if (e->min_m <= m &&
          (r == nullptr || e->min_m > r->min_m || (e->min_m == r->min_m && e->variant > r->variant))) {
        r = e;
      }
    }
    return r;
  };
  // The best variant's rows of a path among `entries` (one format): the highest variant
  // that has a general row (MIN_M 1), as dispatch picks it, and the batch rows of the
  // variants that extend it (amx).
  auto best_rows = [](const std::vector<const KernelEntry*>& entries, Path p) {
    const KernelEntry* general = nullptr;
    for (const KernelEntry* e : entries) {
      if (e->path == p && e->min_m == 1 && (general == nullptr || e->variant > general->variant)) {
        general = e;
      }
    }
    std::vector<const KernelEntry*> rows;
    for (const KernelEntry* e : entries) {
      if (general != nullptr && e->path == p && extends_variant(e->variant, general->variant)) rows.push_back(e);
    }
    return rows;
  };
  // The dequantize-then-matmul baseline uses the F32 kernel dispatch would pick: the
  // highest variant this CPU runs (whatever --variants says: it is a baseline).
  std::vector<const KernelEntry*> f32_entries;
  for (const KernelEntry& e : registry) {
    if (e.format == Format::kF32 && e.path == Path::kF32 && runnable(e)) f32_entries.push_back(&e);
  }
  const std::vector<const KernelEntry*> best_f32 = best_rows(f32_entries, Path::kF32);

  std::vector<CaseSpec> cases;
  for (const Shape& s : o.shapes) {
    for (Format f : o.formats) {
      // All wanted entries of this format, and the best (highest variant) rows per path.
      std::vector<const KernelEntry*> all;
      std::vector<std::vector<const KernelEntry*>> best;
      for (const KernelEntry& e : registry) {
        if (e.format == f && wanted(e)) all.push_back(&e);
      }
      for (Path p : o.paths) {
        std::vector<const KernelEntry*> rows = best_rows(all, p);
        if (!rows.empty()) best.push_back(std::move(rows));
      }
      for (int64_t m : o.batches) {
        if (!o.full && m >= kBigBatch && s.n * s.k > kBigBatchMaxElements) continue;
        // Batch 1 (or --full): every wanted row this batch may run; otherwise per path the
        // best variant's row for this batch.
        std::vector<const KernelEntry*> entries;
        if (m == 1 || o.full) {
          for (const KernelEntry* e : all) {
            if (e->min_m <= m) entries.push_back(e);
          }
        } else {
          for (const std::vector<const KernelEntry*>& rows : best) {
            if (const KernelEntry* e = row_for_batch(rows, m)) entries.push_back(e);
          }
        }
        if (entries.empty()) continue;
        for (int t : o.threads) {
          for (const KernelEntry* e : entries) {
            cases.push_back({CaseKind::kFused, f, e, s, m, t});
          }
          const KernelEntry* f32 = row_for_batch(best_f32, m);
          if (f != Format::kF32 && f32 != nullptr) {
            cases.push_back({CaseKind::kDequantThenMatmul, f, f32, s, m, t});
          }
          if (ggml && GgmlTypeName(f) != nullptr) {
            cases.push_back({CaseKind::kGgml, f, nullptr, s, m, t});
          }
        }
      }
    }
  }
  return cases;
}

}  // namespace fk
