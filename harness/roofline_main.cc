// //harness:roofline — our DRAM probe next to likwid-bench's streaming-load test, in rounds
// taken on a quiet machine, with the medians (the README's comparison comes from this).
//
//   tools/bazel run //harness:roofline -- [--threads=1,2] [--rounds=5] [--settle_s=300]
//       [--likwid=likwid-bench]
//
// Each round, per thread count: wait (at most --settle_s) for a quiet machine, then our probe
// (harness/machine.h, the sweep's) and likwid-bench over the same bytes, back to back. A round
// whose probe or likwid-bench run saw other work (more than 0.25 cores) is printed but left
// out of the medians.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/str_format.h"
#include "harness/machine.h"

namespace fk {
namespace {

[[noreturn]] void Usage(const std::string& error) {
  std::fprintf(error.empty() ? stdout : stderr,
               "%s%susage: roofline [--threads=1,2] [--rounds=5] [--settle_s=300] "
               "[--likwid=likwid-bench]\n"
               "  Our DRAM probe and likwid-bench's streaming-load test, back to back on a quiet\n"
               "  machine, --rounds times per thread count; prints every round and the medians\n"
               "  of the quiet ones.\n",
               error.empty() ? "" : "roofline: ", error.empty() ? "" : (error + "\n").c_str());
  std::exit(error.empty() ? 0 : 2);
}

int Main(int argc, char** argv) {
  std::vector<int> threads = {1, 2};
  int rounds = 5;
  double settle_s = 300;
  std::string likwid = "likwid-bench";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const size_t eq = a.find('=');
    const std::string name = a.substr(0, eq), v = eq == std::string::npos ? "" : a.substr(eq + 1);
    if (name == "--help" || name == "-h") Usage("");
    if (name == "--threads") {
      threads.clear();
      for (absl::string_view s : absl::StrSplit(v, ',', absl::SkipEmpty())) {
        int t = 0;
        if (!absl::SimpleAtoi(s, &t) || t < 1 || t > 1024) Usage("--threads=" + v + ": bad count");
        threads.push_back(t);
      }
      if (threads.empty()) Usage("--threads is empty");
    } else if (name == "--rounds") {
      if (!absl::SimpleAtoi(v, &rounds) || rounds < 1 || rounds > 1000) {
        Usage("--rounds=" + v + ": expected 1 .. 1000");
      }
    } else if (name == "--settle_s") {
      if (!absl::SimpleAtod(v, &settle_s) || !(settle_s >= 0 && settle_s <= 86400)) {
        Usage("--settle_s=" + v + ": expected seconds in [0, 86400]");
      }
    } else if (name == "--likwid") {
      if (v.empty()) Usage("--likwid: expected a path");
      likwid = v;
    } else {
      Usage("unknown argument '" + a + "'");
    }
  }
  const size_t llc = LastLevelCacheBytes();
  const size_t bytes = DramProbeBytes(size_t{1} << 30, llc);
  const MachineInfo mi = DescribeMachine();
  std::printf("roofline: %s, %d logical cores, LLC %zu MiB; %zu MiB per probe; likwid-bench %s\n",
              mi.cpu_model.c_str(), mi.logical_cores, llc >> 20, bytes >> 20,
              LikwidVersion(likwid).c_str());
  RooflinePolicy policy;
  policy.settle_max_s = settle_s;
  policy.progress_every_s = 30;
  RooflineEnv env;
  env.probe = [bytes](int t) { return MeasureReadBandwidth(t, bytes) / 1e9; };
  env.progress = [](const std::string& line) {
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
  };
  DramRoofline roof(policy, env);
  struct Row {
    std::vector<double> ours, theirs, ratio;
  };
  std::vector<Row> rows(threads.size());
  for (int r = 1; r <= rounds; ++r) {
    for (size_t i = 0; i < threads.size(); ++i) {
      const int t = threads[i];
      roof.WaitForQuiet("roofline");
      const DramProbe& p = roof.Probe(t, "round");
      const double ours = p.gbps, ours_other = p.other_cores;
      const bool ours_quiet = p.quiet;
      const LikwidResult l = RunLikwidBench(t, bytes, likwid);
      const bool quiet = ours_quiet && l.ok &&
                         (std::isnan(l.other_cores) || l.other_cores <= policy.quiet_cores);
      std::printf("round %d, %d thread%s: ours %.2f GB/s (other work %.2f cores), likwid-bench "
                  "%s (other work %.2f cores)%s\n",
                  r, t, t == 1 ? "" : "s", ours, ours_other,
                  l.ok ? absl::StrFormat("%.2f GB/s", l.gbps).c_str()
                       : ("failed: " + l.error).c_str(),
                  l.other_cores, quiet ? "" : "  [not quiet: left out]");
      std::fflush(stdout);
      if (quiet) {
        rows[i].ours.push_back(ours);
        rows[i].theirs.push_back(l.gbps);
        rows[i].ratio.push_back(ours / l.gbps);
      }
    }
  }
  std::string cmd = LikwidBenchCommand(0, bytes, likwid);
  cmd = cmd.substr(0, cmd.size() - 1) + "<threads>";
  std::printf("\nmedians of the quiet rounds (%s):\n", cmd.c_str());
  std::printf("| threads | quiet rounds | ours GB/s | likwid-bench GB/s | ours / likwid (median "
              "of the rounds' ratios) | ours min-max | likwid min-max |\n|---|---|---|---|---|---|---|\n");
  for (size_t i = 0; i < threads.size(); ++i) {
    const Row& w = rows[i];
    if (w.ours.empty()) {
      std::printf("| %d | 0 | – | – | – | – | – |\n", threads[i]);
      continue;
    }
    std::printf("| %d | %zu | %.1f | %.1f | %.2f | %.1f-%.1f | %.1f-%.1f |\n", threads[i],
                w.ours.size(), Median(w.ours), Median(w.theirs), Median(w.ratio),
                *std::min_element(w.ours.begin(), w.ours.end()),
                *std::max_element(w.ours.begin(), w.ours.end()),
                *std::min_element(w.theirs.begin(), w.theirs.end()),
                *std::max_element(w.theirs.begin(), w.theirs.end()));
  }
  return 0;
}

}  // namespace
}  // namespace fk

int main(int argc, char** argv) { return fk::Main(argc, argv); }
