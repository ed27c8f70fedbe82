// Tests of the sweep's pure parts: flags, the grid rule, statistics, the error check, the
// output files and the ggml peer protocol (against a stand-in script, not ggml).
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <chrono>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "harness/machine.h"
#include "harness/sweep_measure.h"
#include "harness/sweep_options.h"
#include "harness/sweep_output.h"
#include "harness/sweep_peer.h"
#include "kernels/matmul.h"
#include "kernels/registry.h"

namespace fk {
namespace {

absl::StatusOr<SweepOptions> Parse(std::vector<std::string> args, int cores = 2) {
  std::vector<const char*> argv = {"sweep"};
  for (const std::string& a : args) argv.push_back(a.c_str());
  return ParseSweepFlags(static_cast<int>(argv.size()), argv.data(), cores);
}

TEST(SweepFlags, Defaults) {
  absl::StatusOr<SweepOptions> o = Parse({}, 4);
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->formats.size(), all_formats().size());
  EXPECT_EQ(o->variants.size(), 5u);  // scalar .. avx512_vnni, amx
  EXPECT_EQ(o->paths.size(), 4u);  // f32, int8, bf16, f16
  ASSERT_EQ(o->shapes.size(), 6u);
  EXPECT_EQ(o->shapes[4].n, 14336);
  EXPECT_EQ(o->shapes[4].k, 4096);
  EXPECT_EQ(o->shapes[5].n, 4096);
  EXPECT_EQ(o->shapes[5].k, 14336);
  EXPECT_EQ(o->batches, (std::vector<int64_t>{1, 8, 64, 256}));
  EXPECT_EQ(o->threads, (std::vector<int>{1, 4}));
  EXPECT_EQ(o->reps, 5);
  EXPECT_EQ(o->passes, 1);
  EXPECT_EQ(o->share_rounds, 12);
  EXPECT_TRUE(o->plot);
  EXPECT_FALSE(o->quick);
}

TEST(SweepFlags, GgmlPeerIsBuiltByDefaultButNotUnderQuick) {
  EXPECT_EQ(Parse({})->ggml, "auto");
  EXPECT_EQ(Parse({"--quick"})->ggml, "cached");
  EXPECT_EQ(Parse({"--quick", "--ggml=auto"})->ggml, "auto");
  EXPECT_EQ(Parse({"--ggml=off"})->ggml, "off");
  EXPECT_EQ(Parse({"--ggml=/x/mulmat_bench"})->ggml, "/x/mulmat_bench");
  absl::StatusOr<SweepOptions> empty = Parse({"--ggml="});
  ASSERT_FALSE(empty.ok());
  EXPECT_TRUE(absl::StrContains(empty.status().message(), "auto, cached, off or a path"));
}

TEST(SweepFlags, QuickDefaultsYieldToExplicitFlags) {
  absl::StatusOr<SweepOptions> q = Parse({"--quick"}, 2);
  ASSERT_TRUE(q.ok()) << q.status();
  ASSERT_EQ(q->shapes.size(), 1u);
  EXPECT_EQ(q->batches, (std::vector<int64_t>{1, 8}));
  EXPECT_EQ(q->threads, (std::vector<int>{2}));
  EXPECT_LT(q->min_time, 0.05);
  EXPECT_EQ(q->share_rounds, 0);
  EXPECT_EQ(Parse({"--quick", "--share_rounds=5"})->share_rounds, 5);

  absl::StatusOr<SweepOptions> e =
      Parse({"--quick", "--batch", "1,4", "--threads=1", "--shapes=256x512,64X256"}, 2);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->batches, (std::vector<int64_t>{1, 4}));
  EXPECT_EQ(e->threads, (std::vector<int>{1}));
  ASSERT_EQ(e->shapes.size(), 2u);
  EXPECT_EQ(e->shapes[1].n, 64);
  EXPECT_EQ(e->shapes[1].k, 256);
}

TEST(SweepFlags, ListsAndBooleans) {
  absl::StatusOr<SweepOptions> o = Parse(
      {"--formats=q4_k,F32", "--variants=avx2", "--paths=int8", "--threads=all,1,all", "--noplot"},
      8);
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->formats, (std::vector<Format>{Format::kQ4_K, Format::kF32}));
  EXPECT_EQ(o->variants, (std::vector<Variant>{Variant::kAvx2}));
  EXPECT_EQ(o->paths, (std::vector<Path>{Path::kInt8}));
  EXPECT_EQ(o->threads, (std::vector<int>{8, 1}));
  EXPECT_FALSE(o->plot);
  EXPECT_EQ(o->argv.size(), 5u);
}

TEST(SweepFlags, ErrorsNameTheFlagAndValue) {
  struct Bad {
    std::vector<std::string> args;
    std::vector<std::string> expect;  // substrings of the message
  };
  const Bad bad[] = {
      {{"--bogus=1"}, {"unknown flag --bogus"}},
      {{"stray"}, {"unexpected argument 'stray'"}},
      {{"--shapes=4096"}, {"--shapes=4096", "NxK"}},
      {{"--shapes=0x256"}, {"'0x256'"}},
      {{"--shapes=64x100"}, {"k=100", "Q4_0", "32"}},
      {{"--formats=q4_0", "--shapes=64x160"}, {}},  // 160 is a multiple of 32: fine
      {{"--formats=q4_k", "--shapes=64x160"}, {"k=160", "Q4_K", "256"}},
      {{"--formats=q4_2"}, {"--formats=q4_2", "unknown format 'q4_2'"}},
      {{"--variants=avx9"}, {"--variants=avx9"}},
      {{"--paths=int4"}, {"--paths=int4"}},
      {{"--batch=0"}, {"--batch=0", "[1, 4096]"}},
      {{"--batch=1,x"}, {"--batch=1,x"}},
      {{"--threads=0"}, {"--threads=0"}},
      {{"--reps=-3"}, {"--reps=-3"}},
      {{"--passes=0"}, {"--passes=0", "[1, 10]"}},
      {{"--passes=11"}, {"--passes=11"}},
      {{"--passes=3"}, {}},
      {{"--share_rounds=-1"}, {"--share_rounds=-1", "[0, 200]"}},
      {{"--share_rounds=0"}, {}},
      {{"--min_time=abc"}, {"--min_time=abc"}},
      {{"--quick=maybe"}, {"--quick=maybe", "true or false"}},
      {{"--out="}, {"--out"}},
      {{"--reps"}, {"--reps needs a value"}},
  };
  for (const Bad& b : bad) {
    absl::StatusOr<SweepOptions> o = Parse(b.args);
    if (b.expect.empty()) {
      EXPECT_TRUE(o.ok()) << b.args[0] << ": " << o.status();
      continue;
    }
    ASSERT_FALSE(o.ok()) << b.args[0];
    for (const std::string& s : b.expect) {
      EXPECT_TRUE(absl::StrContains(o.status().message(), s))
          << "message '" << o.status().message() << "' lacks '" << s << "'";
    }
  }
}

TEST(SweepFlags, HelpStatesTheGridRule) {
  absl::StatusOr<SweepOptions> o = Parse({"--help"});
  ASSERT_TRUE(o.ok());
  EXPECT_TRUE(o->help);
  const std::string usage = SweepUsage(2);
  for (const char* flag : {"--formats", "--variants", "--paths", "--shapes", "--batch",
                           "--threads", "--reps", "--passes", "--share_rounds", "--quick", "--out", "--full", "--ggml"}) {
    EXPECT_TRUE(absl::StrContains(usage, flag)) << flag;
  }
  EXPECT_TRUE(absl::StrContains(usage, "Grid rule"));
  EXPECT_TRUE(absl::StrContains(usage, "best variant"));
}

// ---- the grid rule, on a registry of our own -------------------------------------------

KernelEntry Entry(Format f, Variant v, Path p, const char* name) {
  return KernelEntry{f, v, p, /*features=*/0, /*min_m=*/1, 1, 1, nullptr, name};
}

const KernelEntry kFakeRegistry[] = {
    Entry(Format::kF32, Variant::kScalar, Path::kF32, "f32_f32__scalar"),
    Entry(Format::kQ4_0, Variant::kScalar, Path::kF32, "q4_0_f32__scalar"),
    Entry(Format::kQ4_0, Variant::kScalar, Path::kInt8, "q4_0_int8__scalar"),
    Entry(Format::kQ8_K, Variant::kScalar, Path::kInt8, "q8_k_int8__scalar"),
    Entry(Format::kF32, Variant::kAvx2, Path::kF32, "f32_f32__avx2"),
    Entry(Format::kQ4_0, Variant::kAvx2, Path::kF32, "q4_0_f32__avx2"),
    Entry(Format::kQ4_0, Variant::kAvx2, Path::kInt8, "q4_0_int8__avx2"),
    Entry(Format::kQ4_0, Variant::kAvx512Vnni, Path::kInt8, "q4_0_int8__avx512_vnni"),
};

bool AllRunnable(const KernelEntry&) { return true; }
bool NoVnni(const KernelEntry& e) { return e.variant != Variant::kAvx512Vnni; }

SweepOptions GridOptions() {
  absl::StatusOr<SweepOptions> o =
      Parse({"--formats=f32,q4_0,q8_k", "--shapes=4096x4096,14336x4096", "--batch=1,8,64",
             "--threads=1,2"});
  EXPECT_TRUE(o.ok()) << o.status();
  return *o;
}

int Count(const std::vector<CaseSpec>& cases, CaseKind kind, Format f, int64_t m, int64_t n,
          const char* name = nullptr) {
  int c = 0;
  for (const CaseSpec& s : cases) {
    if (s.kind == kind && s.format == f && s.m == m && s.shape.n == n &&
        (name == nullptr || (s.entry != nullptr && std::string(s.entry->name) == name))) {
      ++c;
    }
  }
  return c;
}

TEST(SweepGrid, BatchOneRunsEveryVariantLargerBatchesTheBestPerPath) {
  const std::vector<CaseSpec> cases =
      PlanCases(GridOptions(), kFakeRegistry, AllRunnable, /*ggml=*/true);
  // Batch 1: all five Q4_0 kernels, on both shapes, at both thread counts.
  EXPECT_EQ(Count(cases, CaseKind::kFused, Format::kQ4_0, 1, 4096), 5 * 2);
  EXPECT_EQ(Count(cases, CaseKind::kFused, Format::kQ4_0, 1, 14336), 5 * 2);
  // Batch 8: the best per path: avx2 for f32, avx512_vnni for int8.
  EXPECT_EQ(Count(cases, CaseKind::kFused, Format::kQ4_0, 8, 4096), 2 * 2);
  EXPECT_EQ(Count(cases, CaseKind::kFused, Format::kQ4_0, 8, 4096, "q4_0_f32__avx2"), 2);
  EXPECT_EQ(Count(cases, CaseKind::kFused, Format::kQ4_0, 8, 4096, "q4_0_int8__avx512_vnni"), 2);
  EXPECT_EQ(Count(cases, CaseKind::kFused, Format::kQ4_0, 8, 4096, "q4_0_int8__avx2"), 0);
  // Batch 64: on shapes with n*k <= 4096*4096, at both thread counts (the best per path).
  EXPECT_EQ(Count(cases, CaseKind::kFused, Format::kQ4_0, 64, 4096), 2 * 2);
  int big_one_thread = 0;
  for (const CaseSpec& c : cases) big_one_thread += c.m >= 64 && c.threads == 1;
  EXPECT_GT(big_one_thread, 0);
  EXPECT_EQ(Count(cases, CaseKind::kFused, Format::kQ4_0, 64, 14336), 0);
  EXPECT_EQ(Count(cases, CaseKind::kFused, Format::kQ4_0, 8, 14336), 2 * 2);
  // Baselines: one dequantize-then-matmul per group with the best F32 kernel; none for F32.
  EXPECT_EQ(Count(cases, CaseKind::kDequantThenMatmul, Format::kQ4_0, 1, 4096, "f32_f32__avx2"), 2);
  EXPECT_EQ(Count(cases, CaseKind::kDequantThenMatmul, Format::kF32, 1, 4096), 0);
  EXPECT_EQ(Count(cases, CaseKind::kDequantThenMatmul, Format::kQ8_K, 8, 4096), 2);
  // ggml: every group, except Q8_K (no such matmul in ggml).
  EXPECT_EQ(Count(cases, CaseKind::kGgml, Format::kQ4_0, 64, 4096), 2);
  EXPECT_EQ(Count(cases, CaseKind::kGgml, Format::kF32, 1, 14336), 2);
  EXPECT_EQ(Count(cases, CaseKind::kGgml, Format::kQ8_K, 1, 4096), 0);
  // Grouping: shape, then format; inside a group ours, then the baseline, then ggml.
  for (size_t i = 1; i < cases.size(); ++i) {
    if (cases[i].shape.n == cases[i - 1].shape.n && cases[i].format == cases[i - 1].format &&
        cases[i].m == cases[i - 1].m && cases[i].threads == cases[i - 1].threads) {
      EXPECT_LE(static_cast<int>(cases[i - 1].kind), static_cast<int>(cases[i].kind)) << i;
    }
  }
  std::set<std::pair<int64_t, Format>> seen;
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto key = std::make_pair(cases[i].shape.n, cases[i].format);
    if (i > 0 && key != std::make_pair(cases[i - 1].shape.n, cases[i - 1].format)) {
      EXPECT_EQ(seen.count(key), 0u) << "group (shape, format) split at case " << i;
    }
    seen.insert(key);
  }
}

TEST(SweepGrid, RespectsRunnableFiltersGgmlAndFull) {
  SweepOptions o = GridOptions();
  std::vector<CaseSpec> cases = PlanCases(o, kFakeRegistry, NoVnni, /*ggml=*/false);
  EXPECT_EQ(Count(cases, CaseKind::kFused, Format::kQ4_0, 1, 4096), 4 * 2);
  EXPECT_EQ(Count(cases, CaseKind::kFused, Format::kQ4_0, 8, 4096, "q4_0_int8__avx2"), 2);
  for (const CaseSpec& c : cases) EXPECT_NE(c.kind, CaseKind::kGgml);

  o.variants = {Variant::kScalar};
  o.paths = {Path::kInt8};
  cases = PlanCases(o, kFakeRegistry, AllRunnable, false);
  EXPECT_EQ(Count(cases, CaseKind::kFused, Format::kQ4_0, 1, 4096), 2);
  EXPECT_EQ(Count(cases, CaseKind::kFused, Format::kQ4_0, 8, 4096, "q4_0_int8__scalar"), 2);
  EXPECT_EQ(Count(cases, CaseKind::kFused, Format::kF32, 1, 4096), 0);  // F32 has no int8 path
  // The baseline still uses the best F32 kernel, whatever --variants says.
  EXPECT_EQ(Count(cases, CaseKind::kDequantThenMatmul, Format::kQ4_0, 1, 4096, "f32_f32__avx2"), 2);

  o = GridOptions();
  o.full = true;
  cases = PlanCases(o, kFakeRegistry, AllRunnable, true);
  EXPECT_EQ(Count(cases, CaseKind::kFused, Format::kQ4_0, 64, 14336), 5 * 2);
}

// A row with a MIN_M (weight panels for batches) runs from its MIN_M on, as dispatch would
// pick it, under its own name, and never below it.
TEST(SweepGrid, RowsForBatchesRunFromTheirMinM) {
  KernelEntry panel = Entry(Format::kQ4_K, Variant::kAvx512, Path::kInt8, "q4_k_int8_panel__avx512");
  panel.min_m = 8;
  const KernelEntry registry[] = {
      Entry(Format::kF32, Variant::kAvx2, Path::kF32, "f32_f32__avx2"),
      Entry(Format::kQ4_K, Variant::kScalar, Path::kInt8, "q4_k_int8__scalar"),
      Entry(Format::kQ4_K, Variant::kAvx512, Path::kInt8, "q4_k_int8__avx512"),
      panel,
  };
  absl::StatusOr<SweepOptions> o =
      Parse({"--formats=q4_k", "--paths=int8", "--shapes=4096x4096", "--batch=1,4,8,64",
             "--threads=1,2"});
  ASSERT_TRUE(o.ok()) << o.status();
  std::vector<CaseSpec> cases = PlanCases(*o, registry, AllRunnable, /*ggml=*/false);
  const char* kPanel = "q4_k_int8_panel__avx512";
  EXPECT_EQ(Count(cases, CaseKind::kFused, Format::kQ4_K, 1, 4096), 2 * 2);  // scalar, avx512
  EXPECT_EQ(Count(cases, CaseKind::kFused, Format::kQ4_K, 1, 4096, kPanel), 0);
  EXPECT_EQ(Count(cases, CaseKind::kFused, Format::kQ4_K, 4, 4096), 2);
  EXPECT_EQ(Count(cases, CaseKind::kFused, Format::kQ4_K, 4, 4096, "q4_k_int8__avx512"), 2);
  EXPECT_EQ(Count(cases, CaseKind::kFused, Format::kQ4_K, 8, 4096), 2);
  EXPECT_EQ(Count(cases, CaseKind::kFused, Format::kQ4_K, 8, 4096, kPanel), 2);
  EXPECT_EQ(Count(cases, CaseKind::kFused, Format::kQ4_K, 64, 4096, kPanel), 2);
  for (const CaseSpec& c : cases) {
    if (c.entry != nullptr) {
      EXPECT_GE(c.m, c.entry->min_m) << c.entry->name;
    }
  }
  // The baseline's F32 kernel is the general one at every batch.
  EXPECT_EQ(Count(cases, CaseKind::kDequantThenMatmul, Format::kQ4_K, 8, 4096, "f32_f32__avx2"), 2);

  // --full: every row at every batch it may run.
  o->full = true;
  cases = PlanCases(*o, registry, AllRunnable, false);
  EXPECT_EQ(Count(cases, CaseKind::kFused, Format::kQ4_K, 4, 4096), 2 * 2);
  EXPECT_EQ(Count(cases, CaseKind::kFused, Format::kQ4_K, 8, 4096), 3 * 2);
  EXPECT_EQ(Count(cases, CaseKind::kFused, Format::kQ4_K, 8, 4096, kPanel), 2);

  // --variants=scalar: the scalar row at every batch.
  o->full = false;
  o->variants = {Variant::kScalar};
  cases = PlanCases(*o, registry, AllRunnable, false);
  EXPECT_EQ(Count(cases, CaseKind::kFused, Format::kQ4_K, 8, 4096, "q4_k_int8__scalar"), 2);
  EXPECT_EQ(Count(cases, CaseKind::kFused, Format::kQ4_K, 8, 4096, kPanel), 0);
}

// A variant that extends the best one with batch rows only (amx on avx512_vnni) serves the
// batches from its MIN_M on, as dispatch does; without it in --variants the base's rows do.
TEST(SweepGrid, ExtendingVariantsServeTheirBatches) {
  KernelEntry panel = Entry(Format::kQ4_K, Variant::kAvx512Vnni, Path::kInt8, "q4_k_int8_panel__avx512_vnni");
  panel.min_m = 8;
  KernelEntry tiles = Entry(Format::kQ4_K, Variant::kAmx, Path::kInt8, "q4_k_int8_tiles__amx");
  tiles.min_m = 64;
  const KernelEntry registry[] = {
      Entry(Format::kF32, Variant::kAvx2, Path::kF32, "f32_f32__avx2"),
      Entry(Format::kQ4_K, Variant::kScalar, Path::kInt8, "q4_k_int8__scalar"),
      Entry(Format::kQ4_K, Variant::kAvx512Vnni, Path::kInt8, "q4_k_int8__avx512_vnni"),
      panel,
      tiles,
  };
  absl::StatusOr<SweepOptions> o = Parse({"--formats=q4_k", "--paths=int8", "--shapes=4096x4096",
                                          "--batch=1,8,64,128", "--threads=1"});
  ASSERT_TRUE(o.ok()) << o.status();
  std::vector<CaseSpec> cases = PlanCases(*o, registry, AllRunnable, /*ggml=*/false);
  EXPECT_EQ(Count(cases, CaseKind::kFused, Format::kQ4_K, 8, 4096, "q4_k_int8_panel__avx512_vnni"), 1);
  EXPECT_EQ(Count(cases, CaseKind::kFused, Format::kQ4_K, 8, 4096, "q4_k_int8_tiles__amx"), 0);
  EXPECT_EQ(Count(cases, CaseKind::kFused, Format::kQ4_K, 64, 4096), 1);
  EXPECT_EQ(Count(cases, CaseKind::kFused, Format::kQ4_K, 64, 4096, "q4_k_int8_tiles__amx"), 1);
  EXPECT_EQ(Count(cases, CaseKind::kFused, Format::kQ4_K, 128, 4096, "q4_k_int8_tiles__amx"), 1);
  // --full: every row from its MIN_M (scalar, the general row, the panel, the tiles).
  o->full = true;
  cases = PlanCases(*o, registry, AllRunnable, false);
  EXPECT_EQ(Count(cases, CaseKind::kFused, Format::kQ4_K, 64, 4096), 4);
  EXPECT_EQ(Count(cases, CaseKind::kFused, Format::kQ4_K, 8, 4096), 3);
  // Without amx in --variants: the avx512_vnni panel at every batch from 8.
  o->full = false;
  o->variants = {Variant::kAvx512Vnni};
  cases = PlanCases(*o, registry, AllRunnable, false);
  EXPECT_EQ(Count(cases, CaseKind::kFused, Format::kQ4_K, 64, 4096, "q4_k_int8_panel__avx512_vnni"), 1);
  EXPECT_EQ(Count(cases, CaseKind::kFused, Format::kQ4_K, 64, 4096, "q4_k_int8_tiles__amx"), 0);
}

TEST(SweepGrid, DefaultGridOnTheRealRegistryIsPlanned) {
  absl::StatusOr<SweepOptions> o = Parse({});
  ASSERT_TRUE(o.ok());
  const std::vector<CaseSpec> cases = PlanCases(*o, all_kernels(), kernel_runnable, true);
  ASSERT_FALSE(cases.empty());
  for (const CaseSpec& c : cases) {
    if (c.kind == CaseKind::kFused) {
      EXPECT_TRUE(kernel_runnable(*c.entry)) << c.entry->name;
      EXPECT_EQ(c.entry->format, c.format);
      EXPECT_GE(c.m, c.entry->min_m) << c.entry->name;
      // Batches > 1 run the row dispatch picks for the batch.
      if (c.m > 1) {
        absl::StatusOr<KernelChoice> choice = KernelChoice::Resolve(c.format, MatmulOptions{c.entry->variant, c.entry->path});
        ASSERT_TRUE(choice.ok()) << choice.status();
        EXPECT_EQ(&choice->ForBatch(c.m), c.entry) << c.entry->name << " m=" << c.m;
      }
    }
  }
}

// ---- statistics and the error check ---------------------------------------------------

TEST(SweepMeasure, Stats) {
  const TimeStats s = ComputeStats({5, 1, 3, 2, 4});
  EXPECT_EQ(s.reps, 5);
  EXPECT_DOUBLE_EQ(s.median, 3);
  EXPECT_DOUBLE_EQ(s.min, 1);
  EXPECT_DOUBLE_EQ(s.max, 5);
  EXPECT_DOUBLE_EQ(s.p25, 2);
  EXPECT_DOUBLE_EQ(s.p75, 4);
  EXPECT_DOUBLE_EQ(s.spread_pct, 2.0 / 3.0 * 100);
  EXPECT_DOUBLE_EQ(ComputeStats({1, 2, 3, 4}).median, 2.5);
  EXPECT_EQ(ComputeStats({}).reps, 0);
}

// Each round's formats against that round's best, not each format's best of the run against
// the best of any: a format measured while the memory was fast must not set the bar for one
// measured while it was slow.
TEST(SweepMeasure, InterleavedSharesCompareWithinARound) {
  const double nan = std::nan("");
  // Rounds 0, 1: fast memory (A streams 60, B 45); rounds 2, 3: slow (A 30, B 29); round 4:
  // C alone ran besides A (B missing).
  const std::vector<ShareStats> s = InterleavedShares({{60, 45, nan}, {60, 45, nan}, {30, 29, nan},
                                                       {30, 29, nan}, {40, 0, 20}});
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[0].rounds, 5);
  EXPECT_DOUBLE_EQ(s[0].median, 1.0);
  EXPECT_EQ(s[1].rounds, 4);
  EXPECT_EQ(s[1].shares, (std::vector<double>{0.75, 0.75, 29.0 / 30, 29.0 / 30}));
  EXPECT_DOUBLE_EQ(s[1].median, (0.75 + 29.0 / 30) / 2);  // best-of-run against best: 0.75
  EXPECT_DOUBLE_EQ(s[1].p25, 0.75);
  EXPECT_EQ(s[2].rounds, 1);
  EXPECT_DOUBLE_EQ(s[2].median, 0.5);
  EXPECT_EQ(RoundBest({{60, 45, nan}, {30, 29, nan}, {nan, nan, nan}, {40, 0, 20}}),
            (std::vector<double>{60, 30, 0, 40}));
  // A round where nothing ran counts for nobody; a format that never ran has no share.
  const std::vector<ShareStats> none = InterleavedShares({{nan, nan}, {10, nan}});
  EXPECT_EQ(none[0].rounds, 1);
  EXPECT_EQ(none[1].rounds, 0);
  EXPECT_TRUE(std::isnan(none[1].median));
}

TEST(SweepMeasure, TimeRepsHonoursRepsMinTimeAndStop) {
  // A fake clock: every call of fn advances it by `step` seconds, so the rules are tested
  // without depending on how fast this machine runs a call.
  double fake_now = 0.0, step = 1.0 / 256;  // exact in binary: the sums are exact too
  const SecondsClock clock = [&] { return fake_now; };
  int calls = 0;
  volatile int stop = 0;
  auto tick = [&](int) { ++calls; fake_now += step; return true; };
  std::vector<double> t = TimeReps(tick, 2, 0.0, 7, 0.0, 100, &stop, clock);
  EXPECT_EQ(t.size(), 7u);
  EXPECT_EQ(calls, 9);  // 2 warm-up calls
  for (double x : t) EXPECT_DOUBLE_EQ(x, step);  // each call's own interval
  // warmup_time: 2 warm-up calls would take 7.8 ms; 20 ms of them take 6 calls (23.4 ms),
  // then the 7 timed ones. A warm-up time only lengthens the warm-up, never the timed part.
  calls = 0;
  t = TimeReps(tick, 2, 0.02, 7, 0.0, 100, &stop, clock);
  EXPECT_EQ(t.size(), 7u);
  EXPECT_EQ(calls, 13);
  calls = 0;
  t = TimeReps(tick, 9, 0.02, 7, 0.0, 100, &stop, clock);  // the count wins when it is longer
  EXPECT_EQ(calls, 16);
  calls = 0;
  t = TimeReps(tick, 1, 10.0, 7, 0.0, 20, &stop, clock);  // max_reps caps the warm-up too
  EXPECT_EQ(calls, 27);
  // min_time: 7 reps of 3.9 ms are 27 ms < 50 ms, so it keeps going: 13 calls reach 50.8 ms.
  t = TimeReps(tick, 0, 0.0, 7, 0.05, 1000, &stop, clock);
  EXPECT_EQ(t.size(), 13u);
  // max_reps caps min_time: 1 s would need 256 calls.
  t = TimeReps(tick, 0, 0.0, 1, 1.0, 20, &stop, clock);
  EXPECT_EQ(t.size(), 20u);
  t = TimeReps(tick, 0, 0.0, 5, 0.0, 3, &stop, clock);
  EXPECT_EQ(t.size(), 3u);  // max_reps
  t = TimeReps([&](int rep) { fake_now += step; return rep < 4; }, 1, 0.0, 10, 0.0, 100, &stop,
               clock);
  EXPECT_EQ(t.size(), 3u);  // fn failed at its 5th call (rep 4): warm-up + 3 timed
  // The stop flag, raised by a call (as SIGINT would), ends the loop after that call.
  calls = 0;
  t = TimeReps([&](int) { fake_now += step; if (++calls == 4) stop = 1; return true; }, 0, 0.0,
               10, 0.0, 100, &stop, clock);
  EXPECT_EQ(t.size(), 4u);
  EXPECT_TRUE(TimeReps(tick, 0, 0.0, 5, 0.0, 100, &stop, clock).empty());
  stop = 0;
  // The default clock is the real one: a call that sleeps 2 ms is timed at >= 2 ms (a lower
  // bound only; no assertion on how fast anything runs).
  t = TimeReps([](int) { std::this_thread::sleep_for(std::chrono::milliseconds(2)); return true; },
               0, 0.0, 2, 0.0, 2, &stop);
  ASSERT_EQ(t.size(), 2u);
  for (double x : t) EXPECT_GE(x, 0.002);
}

TEST(SweepMeasure, CheckColumnsCoverEndsAndTail) {
  const std::vector<int64_t> c = CheckColumns(14336, 128);
  ASSERT_GE(c.size(), 128u);
  EXPECT_EQ(c.front(), 0);
  EXPECT_EQ(c.back(), 14335);
  for (int64_t j = 14328; j < 14336; ++j) {
    EXPECT_TRUE(std::find(c.begin(), c.end(), j) != c.end()) << j;
  }
  for (size_t i = 1; i < c.size(); ++i) EXPECT_LT(c[i - 1], c[i]);
  EXPECT_EQ(CheckColumns(5, 128), (std::vector<int64_t>{0, 1, 2, 3, 4}));
}

TEST(SweepMeasure, ReferenceAndCompareCatchWrongOutputs) {
  // W: 3 rows of k=4; x: 2 rows. Exact integer products.
  const int64_t m = 2, n = 3, k = 4;
  const float w[n][k] = {{1, 2, 3, 4}, {-1, 0, 1, 0}, {0.5f, 0.5f, 0.5f, 0.5f}};
  const float x[m * k] = {1, 1, 1, 1, 2, 0, -1, 3};
  const std::vector<int64_t> cols = {0, 2};
  const std::vector<double> ref =
      ReferenceColumns(x, m, k, cols, [&](int64_t j) { return w[j]; });
  ASSERT_EQ(ref.size(), 4u);
  EXPECT_DOUBLE_EQ(ref[0], 10);   // row 0, col 0
  EXPECT_DOUBLE_EQ(ref[1], 2);    // row 0, col 2
  EXPECT_DOUBLE_EQ(ref[2], 2 + 0 - 3 + 12);
  EXPECT_DOUBLE_EQ(ref[3], 2);
  float out[m * n] = {10, 999, 2, 11, 999, 2};  // column 1 is not checked
  ErrorStats e = CompareColumns(out, m, n, cols, ref);
  EXPECT_EQ(e.checked, 4);
  EXPECT_DOUBLE_EQ(e.max_abs_err, 0);
  out[3] = 11.5f;  // row 1, col 0 off by 0.5
  e = CompareColumns(out, m, n, cols, ref);
  EXPECT_DOUBLE_EQ(e.max_abs_err, 0.5);
  EXPECT_DOUBLE_EQ(e.ref_max_abs, 11);
  EXPECT_DOUBLE_EQ(e.max_rel_err, 0.5 / 11);
  out[2] = std::nanf("");
  e = CompareColumns(out, m, n, cols, ref);
  EXPECT_TRUE(std::isnan(e.max_abs_err));
  EXPECT_TRUE(std::isnan(e.max_rel_err));
}

TEST(SweepMeasure, PeakRssIsPositive) { EXPECT_GT(PeakRssBytes(), 1 << 20); }

// ---- output files ---------------------------------------------------------------------

std::string TempDir() {
  const char* t = std::getenv("TEST_TMPDIR");
  return t != nullptr ? t : "/tmp";
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

TEST(SweepOutput, WritesJsonAndCsvAtomically) {
  const std::string dir = TempDir() + "/sweep_output";
  mkdir(dir.c_str(), 0755);
  nlohmann::ordered_json doc;
  doc["schema"] = "fused-kernels-sweep/1";
  doc["machine"] = {{"cpu_model", "X"}};
  doc["cases"] = nlohmann::ordered_json::array();
  doc["cases"].push_back({{"id", 0}, {"kind", "fused"}, {"kernel", "a,\"b\""}, {"median_s", 0.5},
                          {"times_s", {0.5, 0.6}}});
  doc["cases"].push_back({{"id", 1}, {"kind", "ggml"}, {"error", "boom"}});
  ResultsWriter writer(dir);
  writer.SetHeader(doc);
  writer.AddCase({{"id", 0}, {"kind", "replaced"}});
  writer.AddCase(doc["cases"][1]);
  writer.SetCase(0, doc["cases"][0]);  // a later pass's record replaces the first
  EXPECT_EQ(writer.cases(), 2u);
  ASSERT_TRUE(writer.Write().ok());
  const nlohmann::json back = nlohmann::json::parse(ReadFile(dir + "/results.json"));
  EXPECT_EQ(back["machine"]["cpu_model"], "X");
  ASSERT_EQ(back["cases"].size(), 2u);
  EXPECT_EQ(back["cases"][0]["times_s"][1], 0.6);
  EXPECT_EQ(back["cases"][1]["error"], "boom");
  struct stat st;
  EXPECT_NE(stat((dir + "/results.json.tmp").c_str(), &st), 0) << "temporary file left behind";

  const std::string csv = ReadFile(dir + "/results.csv");
  std::istringstream lines(csv);
  std::string header, row0, row1;
  std::getline(lines, header);
  std::getline(lines, row0);
  std::getline(lines, row1);
  EXPECT_TRUE(absl::StartsWith(header, "id,machine_id,kind,format,"));
  EXPECT_FALSE(absl::StrContains(header, "times_s"));
  EXPECT_FALSE(absl::StrContains(header, "pass_medians_s"));
  EXPECT_TRUE(absl::StrContains(header, ",pass_kept,"));
  EXPECT_TRUE(absl::StrContains(row0, "\"a,\"\"b\"\"\"")) << row0;  // CSV quoting
  EXPECT_TRUE(absl::StrContains(row0, ",0.5,")) << row0;
  EXPECT_TRUE(absl::EndsWith(row1, ",boom")) << row1;
  // Every described field has a CSV column except the two arrays (per-call times, per-pass
  // medians).
  EXPECT_EQ(CsvColumns().size() + 2, FieldDescriptions().size());
}

// sweep --passes: a case's record is its fastest pass, with every pass's median.
TEST(SweepOutput, MergePassKeepsTheFastestPass) {
  using ojson = nlohmann::ordered_json;
  const ojson p1 = {{"id", 7}, {"kernel", "k"}, {"median_s", 0.3}, {"other_cores", 0.5},
                    {"times_s", {0.3, 0.31}}};
  ojson kept = MergePass(p1, ojson());  // the first pass
  EXPECT_EQ(kept["pass_kept"], 1);
  EXPECT_EQ(kept["pass_medians_s"], ojson({0.3}));
  EXPECT_EQ(kept["median_s"], 0.3);

  // A faster pass replaces every measured field, keeps the first pass's id.
  const ojson p2 = {{"id", 99}, {"kernel", "k"}, {"median_s", 0.2}, {"times_s", {0.2}}};
  kept = MergePass(kept, p2);
  EXPECT_EQ(kept["id"], 7);
  EXPECT_EQ(kept["median_s"], 0.2);
  EXPECT_FALSE(kept.contains("other_cores")) << "a field of the slower pass was left over";
  EXPECT_EQ(kept["times_s"], ojson({0.2}));
  EXPECT_EQ(kept["pass_kept"], 2);
  EXPECT_EQ(kept["pass_medians_s"], ojson({0.3, 0.2}));

  // A slower pass, an equal one and a failed one change nothing but the medians.
  kept = MergePass(kept, {{"id", 100}, {"median_s", 0.25}});
  kept = MergePass(kept, {{"id", 101}, {"median_s", 0.2}, {"other_cores", 1.0}});
  kept = MergePass(kept, {{"id", 102}, {"error", "boom"}});
  EXPECT_EQ(kept["median_s"], 0.2);
  EXPECT_EQ(kept["pass_kept"], 2);
  EXPECT_FALSE(kept.contains("other_cores"));
  EXPECT_FALSE(kept.contains("error"));
  EXPECT_EQ(kept["pass_medians_s"], ojson({0.3, 0.2, 0.25, 0.2, nullptr}));
  // The arrays stay last, times_s the very last (the order results.json is written in).
  auto last = kept.end();
  EXPECT_EQ((--last).key(), "times_s");
  EXPECT_EQ((--last).key(), "pass_medians_s");

  // A case that failed in its first pass takes the first pass that did not.
  ojson failed = MergePass({{"id", 3}, {"error", "crash"}}, ojson());
  EXPECT_EQ(failed["pass_medians_s"], ojson({nullptr}));
  failed = MergePass(failed, {{"id", 50}, {"median_s", 0.4}});
  EXPECT_FALSE(failed.contains("error"));
  EXPECT_EQ(failed["id"], 3);
  EXPECT_EQ(failed["median_s"], 0.4);
  EXPECT_EQ(failed["pass_kept"], 2);
}

TEST(SweepOutput, UnwritableDirectoryIsAnError) {
  const absl::Status s = WriteFileAtomically("/nonexistent-dir/x/results.json", "{}");
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(absl::StrContains(s.message(), "/nonexistent-dir/x/results.json.tmp"));
}

// ---- the roofline in records, the CSV and the console ----------------------------------

TEST(SweepRoofline, FlagsSettleReprobeAndLikwid) {
  absl::StatusOr<SweepOptions> d = Parse({});
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->settle_s, 60);
  EXPECT_EQ(d->reprobe_s, 60);
  EXPECT_EQ(d->likwid, "auto");
  absl::StatusOr<SweepOptions> q = Parse({"--quick"});
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->settle_s, 20);
  absl::StatusOr<SweepOptions> e =
      Parse({"--quick", "--settle_s=0", "--reprobe_s=5.5", "--likwid=off"});
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->settle_s, 0);
  EXPECT_EQ(e->reprobe_s, 5.5);
  EXPECT_EQ(e->likwid, "off");
  absl::StatusOr<SweepOptions> bad = Parse({"--settle_s=-1"});
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(absl::StrContains(bad.status().message(), "--settle_s=-1")) << bad.status();
  bad = Parse({"--reprobe_s=soon"});
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(absl::StrContains(bad.status().message(), "--reprobe_s=soon")) << bad.status();
  bad = Parse({"--likwid="});
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(absl::StrContains(bad.status().message(), "--likwid")) << bad.status();
  EXPECT_TRUE(absl::StrContains(SweepUsage(2), "--likwid=auto|off|PATH"));
}

TEST(SweepRoofline, SharesOnlyFromTrustedRooflinesAndAboveIsFlagged) {
  nlohmann::ordered_json rec = {{"weight_gbps", 23.0}, {"gflops", 46.0}};
  // Below a trusted roofline: a plain share.
  SetRoofline("dram_read", 30.0, true, &rec);
  EXPECT_EQ(rec["roofline"], "dram_read");
  EXPECT_EQ(rec["roofline_value"], 30.0);
  EXPECT_EQ(rec["roofline_trusted"], true);
  EXPECT_NEAR(rec["pct_of_roofline"].get<double>(), 76.6667, 1e-3);
  EXPECT_EQ(rec["above_roofline"], false);
  EXPECT_EQ(RooflineConsole(rec), "  77% DRAM");
  // Above it: flagged everywhere.
  SetRoofline("dram_read", 20.0, true, &rec);
  EXPECT_NEAR(rec["pct_of_roofline"].get<double>(), 115.0, 1e-9);
  EXPECT_EQ(rec["above_roofline"], true);
  EXPECT_EQ(RooflineConsole(rec), " 115%!DRAM");
  // A roofline from loaded probes only: no share, but still flagged when above it.
  SetRoofline("dram_read", 20.0, false, &rec);
  EXPECT_TRUE(rec["pct_of_roofline"].is_null());
  EXPECT_EQ(rec["roofline_trusted"], false);
  EXPECT_EQ(rec["above_roofline"], true);
  EXPECT_EQ(RooflineConsole(rec), "  n/a!DRAM");
  SetRoofline("dram_read", 40.0, false, &rec);
  EXPECT_EQ(RooflineConsole(rec), "  n/a DRAM");
  // No roofline at all (no probe): nothing to be above.
  SetRoofline("dram_read", 0.0, true, &rec);
  EXPECT_TRUE(rec["pct_of_roofline"].is_null());
  EXPECT_EQ(rec["above_roofline"], false);
  // The peaks use GFLOP/s.
  SetRoofline("peak_int8", 40.0, true, &rec);
  EXPECT_NEAR(rec["pct_of_roofline"].get<double>(), 115.0, 1e-9);
  EXPECT_EQ(rec["above_roofline"], true);
  EXPECT_EQ(RooflineConsole(rec), " 115%!int8pk");
  SetRoofline("peak_f32", 92.0, true, &rec);
  EXPECT_EQ(RooflineConsole(rec), "  50% f32pk");

  // The CSV has the flag and the trust as columns, and an empty share when not trusted.
  const std::vector<std::string> cols = CsvColumns();
  auto col = [&](const std::string& name) {
    return std::find(cols.begin(), cols.end(), name) - cols.begin();
  };
  ASSERT_LT(col("above_roofline"), static_cast<long>(cols.size()));
  ASSERT_LT(col("roofline_trusted"), static_cast<long>(cols.size()));
  rec["id"] = 7;
  SetRoofline("dram_read", 20.0, false, &rec);
  std::vector<std::string> cells = absl::StrSplit(CsvLine(rec), ',');
  ASSERT_EQ(cells.size(), cols.size());
  EXPECT_EQ(cells[col("above_roofline")], "true");
  EXPECT_EQ(cells[col("roofline_trusted")], "false");
  EXPECT_EQ(cells[col("pct_of_roofline")], "");
  SetRoofline("dram_read", 30.0, true, &rec);
  cells = absl::StrSplit(CsvLine(rec), ',');
  EXPECT_EQ(cells[col("above_roofline")], "false");
  EXPECT_EQ(cells[col("pct_of_roofline")], "76.6667");
}

// ---- the ggml peer protocol, against stand-in scripts ----------------------------------

std::string WriteScript(const std::string& name, const std::string& body) {
  const std::string path = TempDir() + "/" + name;
  std::ofstream(path) << "#!/bin/sh\n" << body;
  chmod(path.c_str(), 0755);
  return path;
}

TEST(SweepPeer, MissingOrOutdatedPeerIsReportedInOneLine) {
  std::string why;
  EXPECT_EQ(GgmlPeer::Start("/nonexistent/mulmat_bench", &why), nullptr);
  EXPECT_TRUE(absl::StrContains(why, "/nonexistent/mulmat_bench")) << why;
  EXPECT_TRUE(absl::StrContains(why, "tools/setup_ggml")) << why;
  EXPECT_EQ(why.find('\n'), std::string::npos);

  const std::string old = WriteScript("old_peer", "echo '{\"ggml_version\":\"1\"}'\ncat >/dev/null\n");
  EXPECT_EQ(GgmlPeer::Start(old, &why), nullptr);
  EXPECT_TRUE(absl::StrContains(why, "outdated")) << why;
}

TEST(SweepPeer, SpeaksProtocol4) {
  const std::string fake = WriteScript(
      "fake_peer",
      "echo '{\"protocol\":4,\"ggml_version\":\"9.9\",\"ggml_commit\":\"abc\"}'\n"
      "while read t n k m th reps mt cold cols layout warm; do\n"
      "  if [ \"$t\" = bad ]; then echo '{\"type\":\"bad\",\"error\":\"unknown ggml type\"}'; continue; fi\n"
      "  [ \"$warm\" = 0.125000 ] || cols=-1\n"
      "  echo \"{\\\"type\\\":\\\"$t\\\",\\\"n\\\":$n,\\\"k\\\":$k,\\\"m\\\":$m,\\\"threads\\\":$th,"
      "\\\"layout\\\":\\\"plain\\\",\\\"weight_bytes\\\":$((n*k)),\\\"copies\\\":3,"
      "\\\"times_s\\\":[0.25,0.5],\\\"max_abs_err\\\":$reps,\\\"max_rel_err\\\":null,"
      "\\\"checked_cols\\\":$cols}\"\n"
      "done\n");
  std::string why;
  std::unique_ptr<GgmlPeer> peer = GgmlPeer::Start(fake, &why);
  ASSERT_NE(peer, nullptr) << why;
  EXPECT_EQ(peer->version(), "9.9 (commit abc)");
  absl::StatusOr<GgmlResult> r =
      peer->Run(GgmlCase{"q4_K", 64, 256, 8, 2, 7, 0.01, 1e6, 16, 0.125});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->weight_bytes, 64 * 256);
  EXPECT_EQ(r->copies, 3);
  EXPECT_EQ(r->times_s, (std::vector<double>{0.25, 0.5}));
  EXPECT_DOUBLE_EQ(r->max_abs_err, 7);  // the script echoes reps here: the line went through
  EXPECT_TRUE(std::isnan(r->max_rel_err));
  EXPECT_EQ(r->checked_cols, 16);  // -1 if the warm-up time did not arrive as 0.125000
  absl::StatusOr<GgmlResult> bad = peer->Run("bad", 1, 32, 1, 1, 5, 0, 0, 1);
  EXPECT_FALSE(bad.ok());
  EXPECT_TRUE(absl::StrContains(bad.status().message(), "unknown ggml type"));
  EXPECT_TRUE(peer->alive());
}

TEST(SweepPeer, DeadPeerFailsCleanly) {
  const std::string dies = WriteScript(
      "dying_peer", "echo '{\"protocol\":4,\"ggml_version\":\"1\",\"ggml_commit\":\"c\"}'\nexit 0\n");
  std::string why;
  std::unique_ptr<GgmlPeer> peer = GgmlPeer::Start(dies, &why);
  ASSERT_NE(peer, nullptr) << why;
  absl::StatusOr<GgmlResult> r = peer->Run("q4_0", 64, 256, 1, 1, 5, 0, 0, 8);
  EXPECT_FALSE(r.ok());
  EXPECT_FALSE(peer->alive());
  EXPECT_EQ(peer->crash().how, "exited with code 0");
  EXPECT_FALSE(peer->Run("q4_0", 64, 256, 1, 1, 5, 0, 0, 8).ok());
}

// ---- a peer that crashes: restart and retry with the next layout --------------------------

// A stand-in for mulmat_bench with extra buffer types AMX and CPU_REPACK. It counts the cases
// it is given in `counter` (across restarts) and dies as `crash` says (a shell condition on
// $count, $t and $layout, e.g. crashing with SIGSEGV in AMX on the second case).
std::string CrashingPeer(const std::string& name, const std::string& crash_when,
                         const std::string& crash_how = "kill -SEGV $$") {
  const std::string counter = TempDir() + "/" + name + ".count";
  std::remove(counter.c_str());
  return WriteScript(
      name,
      "echo '{\"protocol\":4,\"ggml_version\":\"9.9\",\"ggml_commit\":\"abc\","
      "\"extra_bufts\":[\"AMX\",\"CPU_REPACK\"]}'\n"
      "while read t n k m th reps mt cold cols want warm; do\n"
      "  count=$(( $(cat '" + counter + "' 2>/dev/null || echo 0) + 1 ))\n"
      "  echo $count > '" + counter + "'\n"
      "  layout=$want; [ \"$want\" = auto ] && layout=AMX\n"
      "  echo \"{\\\"start\\\":true,\\\"type\\\":\\\"$t\\\",\\\"layout\\\":\\\"$layout\\\"}\"\n"
      "  if " + crash_when + "; then echo \"fault in $layout ldtilecfg\" >&2; " + crash_how +
      "; fi\n"
      "  echo \"{\\\"type\\\":\\\"$t\\\",\\\"layout\\\":\\\"$layout\\\",\\\"weight_bytes\\\":$n,"
      "\\\"copies\\\":1,\\\"times_s\\\":[0.5],\\\"max_abs_err\\\":0,\\\"max_rel_err\\\":0,"
      "\\\"checked_cols\\\":$count}\"\n"
      "done\n");
}

GgmlCase Case(const char* type, int64_t m) { return GgmlCase{type, 64, 256, m, 1, 1, 0, 0, 8}; }

TEST(SweepPeer, NextLayoutFollowsLlamaCppsOrder) {
  const std::vector<std::string> bufts = {"AMX", "CPU_REPACK"};
  EXPECT_EQ(NextGgmlLayout(bufts, "AMX"), "CPU_REPACK");
  EXPECT_EQ(NextGgmlLayout(bufts, "CPU_REPACK"), "plain");
  EXPECT_EQ(NextGgmlLayout(bufts, "plain"), "");
  EXPECT_EQ(NextGgmlLayout(bufts, ""), "");  // died before naming a layout: nothing to skip
  EXPECT_EQ(NextGgmlLayout({"CPU_REPACK"}, "CPU_REPACK"), "plain");
  EXPECT_EQ(NextGgmlLayout({}, "KLEIDIAI"), "plain");
}

TEST(SweepPeer, CrashOnTheSecondCaseIsRetriedWithTheNextLayout) {
  const std::string path =
      CrashingPeer("amx_crash_peer", "[ $count = 2 ] && [ \"$layout\" = AMX ]");
  std::string why;
  std::unique_ptr<GgmlSupervisor> peer = GgmlSupervisor::Start(path, &why);
  ASSERT_NE(peer, nullptr) << why;
  EXPECT_EQ(peer->extra_bufts(), (std::vector<std::string>{"AMX", "CPU_REPACK"}));

  absl::StatusOr<GgmlResult> first = peer->Run(Case("q4_0", 1));
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->layout, "AMX");
  EXPECT_TRUE(first->crashes.empty());

  absl::StatusOr<GgmlResult> second = peer->Run(Case("q4_0", 8));  // dies in AMX, then runs
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->layout, "CPU_REPACK");
  ASSERT_EQ(second->crashes.size(), 1u);
  EXPECT_EQ(second->crashes[0].layout, "AMX");
  EXPECT_EQ(second->crashes[0].how, "killed by SIGSEGV");
  EXPECT_EQ(second->crashes[0].stderr_tail, "fault in AMX ldtilecfg");
  EXPECT_EQ(CrashesToString(second->crashes),
            "AMX: killed by SIGSEGV (stderr: fault in AMX ldtilecfg)");
  EXPECT_EQ(second->checked_cols, 3);  // the retry was the peer's third case
  EXPECT_EQ(peer->restarts(), 1);

  // The next case starts from llama.cpp's own choice again.
  absl::StatusOr<GgmlResult> third = peer->Run(Case("q4_0", 8));
  ASSERT_TRUE(third.ok()) << third.status();
  EXPECT_EQ(third->layout, "AMX");
  EXPECT_TRUE(third->crashes.empty());
  EXPECT_EQ(peer->restarts(), 1);
}

TEST(SweepPeer, CrashInEveryLayoutIsAnErrorNamingEachAndTheNextCaseRuns) {
  const std::string path = CrashingPeer("always_crash_peer", "[ \"$t\" = q6_K ]", "kill -ABRT $$");
  std::string why;
  std::unique_ptr<GgmlSupervisor> peer = GgmlSupervisor::Start(path, &why);
  ASSERT_NE(peer, nullptr) << why;
  absl::StatusOr<GgmlResult> r = peer->Run(Case("q6_K", 8));
  ASSERT_FALSE(r.ok());
  const std::string msg(r.status().message());
  EXPECT_TRUE(absl::StrContains(msg, "AMX: killed by SIGABRT")) << msg;
  EXPECT_TRUE(absl::StrContains(msg, "CPU_REPACK: killed by SIGABRT")) << msg;
  EXPECT_TRUE(absl::StrContains(msg, "plain: killed by SIGABRT")) << msg;
  EXPECT_EQ(peer->restarts(), 2);  // restarted for CPU_REPACK and for plain
  absl::StatusOr<GgmlResult> next = peer->Run(Case("q4_K", 1));
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(next->layout, "AMX");
  EXPECT_EQ(peer->restarts(), 3);
}

TEST(SweepPeer, UnexpectedExitCountsAsACrash) {
  const std::string path = CrashingPeer("exit_peer", "[ \"$layout\" = AMX ]", "exit 7");
  std::string why;
  std::unique_ptr<GgmlSupervisor> peer = GgmlSupervisor::Start(path, &why);
  ASSERT_NE(peer, nullptr) << why;
  absl::StatusOr<GgmlResult> r = peer->Run(Case("q8_0", 1));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->layout, "CPU_REPACK");
  ASSERT_EQ(r->crashes.size(), 1u);
  EXPECT_EQ(r->crashes[0].how, "exited with code 7");
}

TEST(SweepPeer, RejectedCaseIsNotACrash) {
  const std::string path = WriteScript(
      "rejecting_peer",
      "echo '{\"protocol\":4,\"ggml_version\":\"1\",\"ggml_commit\":\"c\",\"extra_bufts\":[]}'\n"
      "while read line; do echo '{\"type\":\"q8_K\",\"error\":\"ggml has no CPU matmul\"}'; done\n");
  std::string why;
  std::unique_ptr<GgmlSupervisor> peer = GgmlSupervisor::Start(path, &why);
  ASSERT_NE(peer, nullptr) << why;
  absl::StatusOr<GgmlResult> r = peer->Run(Case("q8_K", 1));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(absl::StrContains(r.status().message(), "no CPU matmul")) << r.status();
  EXPECT_EQ(peer->restarts(), 0);
}

// ---- building the peer on first run, with a stand-in for tools/setup_ggml ---------------

struct BuildRun {
  std::unique_ptr<GgmlSupervisor> peer;
  std::string status;
  std::string progress;
};

BuildRun StartOrBuild(GgmlPeerSetup setup) {
  setup.log_dir = TempDir();  // a failed build's log is kept: not in /tmp
  BuildRun b;
  const std::string out = TempDir() + "/build_progress.txt";
  FILE* f = std::fopen(out.c_str(), "w+");
  b.peer = StartOrBuildGgmlPeer(setup, f, &b.status);
  std::fclose(f);
  b.progress = ReadFile(out);
  return b;
}

constexpr char kGoodPeer[] =
    "echo '{\"protocol\":4,\"ggml_version\":\"9.9\",\"ggml_commit\":\"abc\",\"extra_bufts\":[]}'\n"
    "cat >/dev/null\n";

// A builder that expects `estimate` seconds, records its arguments in `log` and runs `body`.
std::string StubBuilder(const std::string& name, const std::string& log, const std::string& body,
                        int estimate = 222) {
  std::remove(log.c_str());
  return WriteScript(name, "if [ \"$1\" = --estimate ]; then echo " + std::to_string(estimate) +
                               "; exit 0; fi\n"
                               "echo \"$@\" >> '" + log + "'\n" + body);
}

TEST(SweepPeerBuild, AlreadyBuiltPeerIsNotRebuilt) {
  const std::string dir = TempDir() + "/built";
  mkdir(dir.c_str(), 0755);
  const std::string log = dir + "/builder.log";
  GgmlPeerSetup setup;
  setup.path = WriteScript("built/mulmat_bench", kGoodPeer);
  setup.builder = StubBuilder("built/setup_ggml", log, "exit 1\n");
  BuildRun b = StartOrBuild(setup);
  ASSERT_NE(b.peer, nullptr) << b.status;
  EXPECT_EQ(b.status, "ggml 9.9 (commit abc) from " + setup.path);
  EXPECT_FALSE(std::ifstream(log).good()) << "the builder ran";
  EXPECT_EQ(b.progress, "");
}

TEST(SweepPeerBuild, MissingPeerIsBuiltWithProgressAndThenUsed) {
  const std::string dir = TempDir() + "/missing";
  mkdir(dir.c_str(), 0755);
  const std::string log = dir + "/builder.log";
  const std::string good = WriteScript("missing/good_peer", kGoodPeer);
  GgmlPeerSetup setup;
  setup.path = dir + "/ggml_peer/mulmat_bench";
  setup.builder = StubBuilder(
      "missing/setup_ggml", log,
      "echo 'tools/setup_ggml: building'; sleep 2.5; mkdir -p '" + dir + "/ggml_peer'; cp '" +
          good + "' '" + setup.path + "'\n");
  setup.progress_every_s = 1;
  BuildRun b = StartOrBuild(setup);
  ASSERT_NE(b.peer, nullptr) << b.status << "\n" << b.progress;
  EXPECT_TRUE(absl::StrContains(b.status, "built by tools/setup_ggml in")) << b.status;
  EXPECT_TRUE(absl::StrContains(b.progress, "not found")) << b.progress;
  EXPECT_TRUE(absl::StrContains(b.progress, "expect ~3m42s")) << b.progress;  // --estimate's 222
  EXPECT_TRUE(absl::StrContains(b.progress, "still building the ggml peer")) << b.progress;
  EXPECT_EQ(ReadFile(log), "\n");  // one run, the full build (no --peer_only)
}

TEST(SweepPeerBuild, FailedBuildIsOneLineAndNoPeer) {
  const std::string dir = TempDir() + "/failing";
  mkdir(dir.c_str(), 0755);
  const std::string log = dir + "/builder.log";
  GgmlPeerSetup setup;
  setup.path = dir + "/ggml_peer/mulmat_bench";
  setup.builder = StubBuilder("failing/setup_ggml", log,
                              "echo 'compiling'; echo 'cmake: not found' >&2; exit 2\n");
  BuildRun b = StartOrBuild(setup);
  EXPECT_EQ(b.peer, nullptr);
  EXPECT_EQ(b.status.find('\n'), std::string::npos) << b.status;
  EXPECT_TRUE(absl::StrContains(b.status, "tools/setup_ggml failed (exited with code 2)")) << b.status;
  EXPECT_TRUE(absl::StrContains(b.status, "cmake: not found")) << b.status;
  EXPECT_TRUE(std::ifstream(log).good());
}

TEST(SweepPeerBuild, CachedModeOnlyCompilesThePeerAndExplicitPathNeverBuilds) {
  const std::string dir = TempDir() + "/cached";
  mkdir(dir.c_str(), 0755);
  const std::string log = dir + "/builder.log";
  const std::string good = WriteScript("cached/good_peer", kGoodPeer);
  GgmlPeerSetup setup;
  setup.path = dir + "/ggml_peer/mulmat_bench";
  setup.full_build = false;  // --quick
  const std::string peer_only =
      "[ \"$1\" = --peer_only ] || exit 1\nmkdir -p '" + dir + "/ggml_peer'; cp '" + good + "' '" +
      setup.path + "'\n";

  // llama-cpp-python is not built (the builder expects minutes): no build at all.
  setup.builder = StubBuilder("cached/setup_ggml", log, peer_only);
  BuildRun b = StartOrBuild(setup);
  EXPECT_EQ(b.peer, nullptr);
  EXPECT_FALSE(std::ifstream(log).good()) << "the builder ran";
  EXPECT_TRUE(absl::StrContains(b.status, "not built under --quick (--ggml=auto builds it, ~3m42s"))
      << b.status;

  // It is built (seconds expected), only mulmat_bench is missing: compiled with --peer_only.
  setup.builder = StubBuilder("cached/setup_ggml", log, peer_only, 5);
  b = StartOrBuild(setup);
  ASSERT_NE(b.peer, nullptr) << b.status;
  EXPECT_EQ(ReadFile(log), "--peer_only\n");
  EXPECT_TRUE(absl::StrContains(b.status, "built by tools/setup_ggml")) << b.status;

  // --peer_only finds llama-cpp-python missing after all (exit 3).
  std::remove(setup.path.c_str());
  setup.builder = StubBuilder("cached/setup_ggml", log, "exit 3\n", 5);
  b = StartOrBuild(setup);
  EXPECT_EQ(b.peer, nullptr);
  EXPECT_TRUE(absl::StrContains(b.status, "not built under --quick")) << b.status;

  setup.build = false;  // --ggml=PATH
  std::remove(log.c_str());
  b = StartOrBuild(setup);
  EXPECT_EQ(b.peer, nullptr);
  EXPECT_TRUE(absl::StrContains(b.status, "not found")) << b.status;
  EXPECT_FALSE(std::ifstream(log).good()) << "the builder ran";
}

// ---- machine probes -------------------------------------------------------------------

TEST(Machine, PeaksAndCacheAreMeasured) {
  std::string how;
  const double f32 = MeasurePeakGflops(PeakKind::kF32, 1, &how);
  EXPECT_GT(f32, 0.1);
  EXPECT_FALSE(how.empty());
  EXPECT_GT(LastLevelCacheBytes(), size_t{1} << 16);
  EXPECT_EQ(ShortCpuName("AMD EPYC 9R14 96-Core Processor"), "amd-epyc-9r14-96-core");
  EXPECT_EQ(ShortCpuName("Intel(R) Xeon(R) Processor"), "intel-xeon");
  EXPECT_EQ(ShortCpuName("Intel(R) Core(TM) i7-8650U CPU @ 1.90GHz"), "intel-core-i7-8650u-1-90ghz");
}

}  // namespace
}  // namespace fk
