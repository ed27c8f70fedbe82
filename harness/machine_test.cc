// Tests of the roofline's rules (settle, probe, best-so-far, trust, re-probe, flagging) in a
// made-up world whose load and bandwidth are scripted, so nothing depends on this machine's
// speed or load; and of the likwid-bench cross-check against captured likwid-bench output
// run through stand-in scripts.
#include <sys/stat.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "harness/machine.h"
#include "kernels/pages.h"

namespace fk {
namespace {

// A machine with a scripted amount of other work: other(t) cores busy at time t.
struct FakeWorld {
  double t = 0, busy = 0, own = 0;
  std::function<double(double)> other = [](double) { return 0.0; };
  bool readable = true;
  // Time passes by dt while this process keeps `ours` cores busy.
  void Advance(double dt, double ours) {
    const int steps = 100;
    const double start = t;
    for (int i = 0; i < steps; ++i) {
      busy += (other(start + dt * i / steps) + ours) * dt / steps;
    }
    t = start + dt;
    own += ours * dt;
  }
  CpuSnapshot Snap() const {
    CpuSnapshot s;
    s.ok = readable;
    s.wall_s = t;
    s.busy_cpu_s = busy;
    s.own_cpu_s = own;
    s.loadavg_1m = other(t);
    return s;
  }
};

// The probe of the made-up machine: 2 s of `threads` busy cores; the bus gives 30 GB/s (1T)
// or 40 GB/s (2T), minus 10 GB/s per core of other work.
struct Harness {
  FakeWorld world;
  std::vector<std::string> progress;
  int probes_taken = 0;
  RooflineEnv Env() {
    RooflineEnv e;
    e.now = [this] { return world.t; };
    e.sleep = [this](double s) { world.Advance(s, 0); };
    e.snapshot = [this] { return world.Snap(); };
    e.utc = [this] { return "T+" + std::to_string(static_cast<int>(world.t)); };
    e.progress = [this](const std::string& line) { progress.push_back(line); };
    e.probe = [this](int threads) {
      ++probes_taken;
      const double load = world.other(world.t);
      world.Advance(2.0, threads);
      return (threads == 1 ? 30.0 : 40.0) - 10.0 * load;
    };
    return e;
  }
};

TEST(Median, OddEvenAndEmpty) {
  EXPECT_EQ(Median({3, 1, 2}), 2);
  EXPECT_EQ(Median({4, 1, 3, 2}), 2.5);
  EXPECT_TRUE(std::isnan(Median({})));
}

TEST(CpuLoad, ProcStatParsing) {
  double busy = 0;
  // user nice system idle iowait irq softirq steal guest guest_nice
  ASSERT_TRUE(ParseProcStatBusy("cpu  100 20 30 5000 7 1 2 40 99 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n",
                                100, &busy));
  EXPECT_DOUBLE_EQ(busy, (100 + 20 + 30 + 1 + 2 + 40) / 100.0);  // idle, iowait, guest: not
  EXPECT_FALSE(ParseProcStatBusy("cpu0 1 2 3 4 5 6 7 8\n", 100, &busy));   // no aggregate line
  EXPECT_FALSE(ParseProcStatBusy("cpu  1 2 3\n", 100, &busy));             // truncated
  EXPECT_FALSE(ParseProcStatBusy("", 100, &busy));
}

TEST(CpuLoad, OtherBusyCoresSubtractsOurOwnTime) {
  CpuSnapshot a, b;
  a.ok = b.ok = true;
  a.wall_s = 10;
  b.wall_s = 12;
  a.busy_cpu_s = 100;
  b.busy_cpu_s = 103.5;  // 3.5 core-seconds in 2 s
  a.own_cpu_s = 1;
  b.own_cpu_s = 3;       // 2 of them ours
  EXPECT_DOUBLE_EQ(OtherBusyCores(a, b), 0.75);
  b.own_cpu_s = 5;       // tick rounding can make ours exceed the total: never below 0
  EXPECT_DOUBLE_EQ(OtherBusyCores(a, b), 0.0);
  b.ok = false;
  EXPECT_TRUE(std::isnan(OtherBusyCores(a, b)));
  b.ok = true;
  b.wall_s = a.wall_s;
  EXPECT_TRUE(std::isnan(OtherBusyCores(a, b)));
}

TEST(CpuLoad, OwnCoresIsOurCpuTimeOverTheWindow) {
  CpuSnapshot a, b;
  a.wall_s = 10;
  b.wall_s = 12;
  a.self_cpu_s = 1;
  b.self_cpu_s = 4;   // 3 core-seconds in 2 s: two threads, one of them busy half the time
  a.own_cpu_s = 1;
  b.own_cpu_s = 9;    // a child reaped meanwhile: not ours to count
  EXPECT_DOUBLE_EQ(OwnCores(a, b), 1.5);
  b.self_cpu_s = 0.5;  // never below 0
  EXPECT_DOUBLE_EQ(OwnCores(a, b), 0.0);
  b.wall_s = a.wall_s;
  EXPECT_TRUE(std::isnan(OwnCores(a, b)));
}

// Three mappings in the format of /proc/self/smaps (fields abridged): A is 4 MB all in huge
// pages, B 8 MB with 2 MB of them huge, C 2 MB with none.
constexpr char kSmaps[] =
    "7f0000000000-7f0000400000 rw-p 00000000 00:00 0 \n"
    "Size:               4096 kB\n"
    "AnonHugePages:      4096 kB\n"
    "VmFlags: rd wr mr mw me ac sd hg\n"
    "7f0000400000-7f0000c00000 rw-p 00000000 00:00 0 \n"
    "Size:               8192 kB\n"
    "FilePmdMapped:         0 kB\n"
    "AnonHugePages:      2048 kB\n"
    "7f0000c00000-7f0000e00000 rw-p 00000000 00:00 0                          [heap]\n"
    "AnonHugePages:         0 kB\n";

TEST(Pages, HugePageBytesProratesEachMappingOverTheRanges) {
  constexpr uintptr_t kA = 0x7f0000000000, kB = 0x7f0000400000, kC = 0x7f0000c00000;
  constexpr size_t kMiB = size_t{1} << 20;
  EXPECT_EQ(HugePageBytesIn(kSmaps, {{kA, 4 * kMiB}}), int64_t{4} << 20);
  // Half of B: half of its huge bytes.
  EXPECT_EQ(HugePageBytesIn(kSmaps, {{kB, 4 * kMiB}}), int64_t{1} << 20);
  // Ranges in any order, one across the A/B border, one in C.
  EXPECT_EQ(HugePageBytesIn(kSmaps, {{kC, kMiB}, {kA + 3 * kMiB, 2 * kMiB}}),
            (int64_t{1} << 20) + (int64_t{1} << 20) / 4);
  EXPECT_EQ(HugePageBytesIn(kSmaps, {}), 0);
  EXPECT_EQ(HugePageBytesIn("", {{kA, kMiB}}), 0);
}

TEST(Pages, HugePageBytesOfThisProcessIsWithinTheRange) {
  const size_t size = size_t{8} << 20;
  std::shared_ptr<unsigned char> mem = AllocateHugePages(size);
  ASSERT_NE(mem, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(mem.get()) % kHugePageBytes, 0u);
  std::memset(mem.get(), 1, size);
  // Whether the kernel gives 2 MB pages depends on its settings; the count is bounded.
  const int64_t huge = HugePageBytes({{reinterpret_cast<uintptr_t>(mem.get()), size}});
  ASSERT_GE(huge, 0) << "/proc/self/smaps unreadable";
  EXPECT_LE(huge, static_cast<int64_t>(size));
}

TEST(CpuLoad, ResolutionIsATickPerCpuOverTheWindow) {
  CpuSnapshot a, b;
  a.wall_s = 10;
  b.wall_s = 11;
  const double one_second = OtherBusyResolution(a, b);
  EXPECT_DOUBLE_EQ(one_second * static_cast<double>(sysconf(_SC_CLK_TCK)),
                   static_cast<double>(sysconf(_SC_NPROCESSORS_ONLN)));
  b.wall_s = 10.1;
  EXPECT_NEAR(OtherBusyResolution(a, b), 10 * one_second, 1e-9);
  b.wall_s = 10;
  EXPECT_TRUE(std::isinf(OtherBusyResolution(a, b)));
}

TEST(CpuLoad, RealSnapshotsAreReadable) {
  const CpuSnapshot a = ReadCpuSnapshot();
  ASSERT_TRUE(a.ok) << "/proc/stat unreadable";
  volatile double x = 0;
  for (int i = 0; i < 20000000; ++i) x = x + 1e-9 * i;  // some CPU time of our own
  const CpuSnapshot b = ReadCpuSnapshot();
  EXPECT_GT(b.wall_s, a.wall_s);
  EXPECT_GT(b.own_cpu_s, a.own_cpu_s);
  EXPECT_GT(b.self_cpu_s, a.self_cpu_s);
  EXPECT_GE(b.own_cpu_s, b.self_cpu_s);  // children's time on top of ours
  EXPECT_GE(b.busy_cpu_s, a.busy_cpu_s);
  EXPECT_GE(a.loadavg_1m, 0.0);
}

TEST(DramRoofline, WaitsForTheMachineToSettleThenProbesQuietly) {
  Harness h;
  h.world.other = [](double t) { return t < 7.5 ? 1.5 : 0.05; };  // a build ends at t = 7.5 s
  RooflinePolicy pol;
  pol.settle_max_s = 60;
  pol.settle_window_s = 1;
  pol.progress_every_s = 5;
  DramRoofline roof(pol, h.Env());
  const DramRoofline::Settled s = roof.WaitForQuiet("test");
  EXPECT_TRUE(s.quiet);
  EXPECT_NEAR(s.waited_s, 9.0, 1e-9);  // the windows [7,8] (mixed) then [8,9] (quiet)
  EXPECT_NEAR(s.other_cores, 0.05, 1e-6);
  // A progress line at once, again after 5 s, and one when it settled.
  ASSERT_EQ(h.progress.size(), 3u) << ::testing::PrintToString(h.progress);
  EXPECT_NE(h.progress[0].find("other work uses 1.50 cores"), std::string::npos) << h.progress[0];
  EXPECT_NE(h.progress[2].find("quiet after 9 s"), std::string::npos) << h.progress[2];

  const DramProbe& p = roof.Probe(2, "start");
  EXPECT_DOUBLE_EQ(p.gbps, 39.5);
  EXPECT_NEAR(p.other_cores, 0.05, 1e-6);
  EXPECT_TRUE(p.quiet);
  EXPECT_EQ(p.reason, "start");
  EXPECT_EQ(p.utc, "T+11");
  EXPECT_TRUE(roof.Trusted(2));
  EXPECT_DOUBLE_EQ(roof.Best(2), 39.5);
  EXPECT_FALSE(roof.Trusted(1));
  EXPECT_EQ(roof.Best(1), 0.0);
}

TEST(DramRoofline, WaitIsBoundedAndALoadedProbeIsNotTrusted) {
  Harness h;
  h.world.other = [](double) { return 1.07; };  // the issue's "load average 1.07 on 2 cores"
  RooflinePolicy pol;
  pol.settle_max_s = 20;
  DramRoofline roof(pol, h.Env());
  const DramRoofline::Settled s = roof.WaitForQuiet("test");
  EXPECT_FALSE(s.quiet);
  EXPECT_GE(s.waited_s, 20.0);
  EXPECT_LE(s.waited_s, 21.0);
  EXPECT_NE(h.progress.back().find("did not settle"), std::string::npos) << h.progress.back();

  const DramProbe& p = roof.Probe(2, "start");
  EXPECT_FALSE(p.quiet);
  EXPECT_NEAR(p.other_cores, 1.07, 1e-6);
  EXPECT_NEAR(roof.Best(2), 29.3, 1e-9);
  EXPECT_FALSE(roof.Trusted(2));
  // So no share is shown against it, though a faster case is still flagged as above it.
  const RooflineShare sh = ShareOfRoofline(35.0, roof.Best(2), roof.Trusted(2));
  EXPECT_FALSE(sh.shown);
  EXPECT_TRUE(std::isnan(sh.pct));
  EXPECT_TRUE(sh.above);

  // The load ends; a later quiet probe makes the roofline trusted and the best.
  h.world.other = [](double) { return 0.0; };
  const DramProbe& q = roof.Probe(2, "periodic");
  EXPECT_TRUE(q.quiet);
  EXPECT_TRUE(roof.Trusted(2));
  EXPECT_DOUBLE_EQ(roof.Best(2), 40.0);
  // A later loaded probe does not lower it.
  h.world.other = [](double) { return 1.0; };
  EXPECT_FALSE(roof.Probe(2, "periodic").quiet);
  EXPECT_DOUBLE_EQ(roof.Best(2), 40.0);
  EXPECT_TRUE(roof.Trusted(2));
  EXPECT_EQ(roof.probes().size(), 3u);
}

TEST(DramRoofline, WaitEndsOnStop) {
  Harness h;
  h.world.other = [](double) { return 2.0; };
  RooflineEnv env = h.Env();
  env.stop = [&h] { return h.world.t >= 3.0; };  // Ctrl-C after 3 s
  DramRoofline roof(RooflinePolicy(), env);
  const DramRoofline::Settled s = roof.WaitForQuiet("test");
  EXPECT_FALSE(s.quiet);
  EXPECT_NEAR(s.waited_s, 3.0, 1e-9);
}

TEST(DramRoofline, NoWaitingWhenTheBoundIsZero) {
  Harness h;
  h.world.other = [](double) { return 2.0; };
  RooflinePolicy pol;
  pol.settle_max_s = 0;
  DramRoofline roof(pol, h.Env());
  const DramRoofline::Settled s = roof.WaitForQuiet("test");
  EXPECT_FALSE(s.quiet);
  EXPECT_EQ(s.waited_s, 0.0);
  EXPECT_EQ(h.world.t, 0.0);
  EXPECT_TRUE(h.progress.empty());
}

TEST(DramRoofline, UnreadableCountersDoNotBlock) {
  Harness h;
  h.world.readable = false;
  DramRoofline roof(RooflinePolicy(), h.Env());
  EXPECT_TRUE(roof.WaitForQuiet("test").quiet);
  EXPECT_LE(h.world.t, 1.0 + 1e-9);
  const DramProbe& p = roof.Probe(1, "start");
  EXPECT_TRUE(std::isnan(p.other_cores));
  EXPECT_TRUE(p.quiet);  // unknown load: the probe is used as it is
}

TEST(DramRoofline, ReprobeRules) {
  Harness h;
  RooflinePolicy pol;
  pol.reprobe_every_s = 60;
  pol.above_reprobe_gap_s = 15;
  DramRoofline roof(pol, h.Env());
  EXPECT_EQ(roof.DueReprobe(2, 0), "first");
  roof.Probe(2, "start");                     // 40 GB/s at t = 2
  EXPECT_EQ(roof.DueReprobe(2, 0), "");
  EXPECT_EQ(roof.DueReprobe(2, 39.0), "");    // below the roofline
  EXPECT_EQ(roof.DueReprobe(2, 41.0), "above roofline");
  roof.Probe(2, "above roofline");            // t = 4
  EXPECT_EQ(roof.DueReprobe(2, 41.0), "");    // not again within 15 s
  h.world.Advance(14.5, 0);                   // t = 18.5
  EXPECT_EQ(roof.DueReprobe(2, 41.0), "");
  h.world.Advance(1.0, 0);                    // t = 19.5
  EXPECT_EQ(roof.DueReprobe(2, 41.0), "above roofline");
  EXPECT_EQ(roof.DueReprobe(2, 0), "");
  h.world.Advance(44.0, 0);                   // t = 63.5
  EXPECT_EQ(roof.DueReprobe(2, 0), "");
  h.world.Advance(1.0, 0);                    // t = 64.5: 60 s after the last probe
  EXPECT_EQ(roof.DueReprobe(2, 0), "periodic");
  EXPECT_EQ(roof.DueReprobe(1, 0), "first");  // per thread count
  // Until a probe was quiet, the shorter interval: a share is wanted as soon as possible.
  h.world.other = [](double) { return 1.0; };
  roof.Probe(1, "start");                     // loaded, t = 66.5
  EXPECT_FALSE(roof.Trusted(1));
  h.world.Advance(14.0, 0);
  EXPECT_EQ(roof.DueReprobe(1, 0), "");
  h.world.Advance(1.0, 0);                    // 15 s after it
  EXPECT_EQ(roof.DueReprobe(1, 0), "no quiet probe yet");
  h.world.other = [](double) { return 0.0; };
  roof.Probe(1, "no quiet probe yet");
  EXPECT_TRUE(roof.Trusted(1));
  h.world.Advance(30.0, 0);
  EXPECT_EQ(roof.DueReprobe(1, 0), "");       // trusted now: back to every 60 s
  pol.reprobe_every_s = 0;
  DramRoofline never(pol, h.Env());
  never.Probe(1, "start");
  h.world.Advance(1000.0, 0);
  EXPECT_EQ(never.DueReprobe(1, 0), "");
}

TEST(DramRoofline, ShareAndFlag) {
  RooflineShare s = ShareOfRoofline(20.0, 40.0, true);
  EXPECT_TRUE(s.shown);
  EXPECT_DOUBLE_EQ(s.pct, 50.0);
  EXPECT_FALSE(s.above);
  s = ShareOfRoofline(46.0, 40.0, true);
  EXPECT_TRUE(s.shown);
  EXPECT_DOUBLE_EQ(s.pct, 115.0);
  EXPECT_TRUE(s.above);
  s = ShareOfRoofline(40.0, 40.0, true);  // at the roofline is not above it
  EXPECT_FALSE(s.above);
  s = ShareOfRoofline(10.0, 0.0, true);   // no roofline
  EXPECT_FALSE(s.shown);
  EXPECT_FALSE(s.above);
}

TEST(DramRoofline, ProbesRoundTripThroughJson) {
  DramProbe p;
  p.threads = 2;
  p.gbps = 28.25;
  p.other_cores = 0.125;
  p.loadavg_1m = 0.4;
  p.quiet = true;
  p.reason = "end";
  p.utc = "2026-01-02T03:04:05Z";
  p.at_s = 12.5;
  DramProbe q;
  std::string why;
  ASSERT_TRUE(DramProbeFromJson(nlohmann::json::parse(DramProbeJson(p).dump()), &q, &why)) << why;
  EXPECT_EQ(q.threads, 2);
  EXPECT_DOUBLE_EQ(q.gbps, 28.25);
  EXPECT_DOUBLE_EQ(q.other_cores, 0.125);
  EXPECT_TRUE(q.quiet);
  EXPECT_EQ(q.reason, "end");
  EXPECT_EQ(q.utc, p.utc);
  EXPECT_FALSE(DramProbeFromJson(nlohmann::json::parse(R"({"threads": 2, "gbps": 1})"), &q, &why));
  EXPECT_NE(why.find("'quiet'"), std::string::npos) << why;
  EXPECT_FALSE(DramProbeFromJson(
      nlohmann::json::parse(R"({"threads": 0, "gbps": 1, "quiet": true, "reason": "x"})"), &q,
      &why));
  EXPECT_NE(why.find("threads must be"), std::string::npos) << why;

  // Probes of another process of the same run count as if taken here.
  Harness h;
  DramRoofline roof(RooflinePolicy(), h.Env());
  roof.Add(p);
  EXPECT_DOUBLE_EQ(roof.Best(2), 28.25);
  EXPECT_TRUE(roof.Trusted(2));
}

TEST(DramRoofline, TheProbeReadsEveryWordOnce) {
  // A probe loop that skipped data would report more bandwidth than the machine has.
  std::vector<uint64_t> buf(4096 + 3);
  for (size_t i = 0; i < buf.size(); ++i) buf[i] = (i * 2654435761u) ^ (i << 40);
  for (size_t start : {0, 1, 3}) {            // aligned and not
    for (size_t n : {0, 1, 63, 64, 65, 1000, 4096}) {
      uint64_t want = 0;
      for (size_t i = 0; i < n; ++i) want += buf[start + i];
      EXPECT_EQ(SumWords(buf.data() + start, n), want) << "start " << start << ", " << n << " words";
    }
  }
  __builtin_cpu_init();
  EXPECT_EQ(ReadBandwidthMethod(), __builtin_cpu_supports("avx512f") ? "AVX-512 loads (zmm)"
                                   : __builtin_cpu_supports("avx2")  ? "AVX2 loads (ymm)"
                                                                     : "64-bit scalar loads");
}

TEST(DramRoofline, ProbeBytesStayAboveTheCache) {
  EXPECT_EQ(DramProbeBytes(size_t{1} << 30, size_t{32} << 20), size_t{1} << 30);
  EXPECT_EQ(DramProbeBytes(size_t{256} << 20, size_t{260} << 20), size_t{1040} << 20);
}

// ---- likwid-bench ---------------------------------------------------------------------------

std::string Testdata(const std::string& name) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* ws = std::getenv("TEST_WORKSPACE");
  std::string path = "harness/testdata/" + name;
  if (srcdir != nullptr && ws != nullptr) path = std::string(srcdir) + "/" + ws + "/" + path;
  return path;
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// A stand-in for likwid-bench: prints `file` (and its arguments to `args_out`), exits `rc`.
std::string FakeLikwid(const std::string& name, const std::string& file, int rc) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string path = std::string(tmp ? tmp : "/tmp") + "/" + name;
  std::ofstream f(path);
  f << "#!/bin/sh\necho \"$@\" > '" << path << ".args'\ncat '" << file << "'\nexit " << rc
    << "\n";
  f.close();
  chmod(path.c_str(), 0755);
  return path;
}

TEST(Likwid, ParsesCapturedOutput) {
  // Captured: likwid-bench 5.2.2 (Debian) -t load_avx512 -w S0:1074MB:2 in this project's
  // KVM guest (Intel Xeon, 2 vCPUs), under load.
  const std::string out = ReadFile(Testdata("likwid_bench_load_avx512_2t.txt"));
  ASSERT_FALSE(out.empty()) << Testdata("likwid_bench_load_avx512_2t.txt");
  double mbs = 0;
  ASSERT_TRUE(ParseLikwidMBytesPerS(out, &mbs));
  EXPECT_DOUBLE_EQ(mbs, 12966.83);
  // Not the "MFlops/s:" line, not a missing or malformed figure.
  EXPECT_FALSE(ParseLikwidMBytesPerS("MFlops/s:\t\t0.00\n", &mbs));
  EXPECT_FALSE(ParseLikwidMBytesPerS("MByte/s:\t\tnan\n", &mbs));
  EXPECT_FALSE(ParseLikwidMBytesPerS("MByte/s:\n", &mbs));
  EXPECT_FALSE(ParseLikwidMBytesPerS(ReadFile(Testdata("likwid_bench_unknown_test.txt")), &mbs));
}

TEST(Likwid, RunsTheCommandAndRecordsWhyItFailed) {
  const std::string good =
      FakeLikwid("likwid_ok", Testdata("likwid_bench_load_avx512_2t.txt"), 0);
  LikwidResult r = RunLikwidBench(2, size_t{1} << 30, good);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_DOUBLE_EQ(r.gbps, 12.96683);
  EXPECT_EQ(r.threads, 2);
  // 1 GiB = 1073741824 bytes -> 1073 MB (likwid's MB is 1e6 bytes), 2 threads on socket 0.
  EXPECT_EQ(r.command, good + " -t " + LikwidLoadTest() + " -w S0:1073MB:2");
  EXPECT_EQ(ReadFile(good + ".args"), "-t " + LikwidLoadTest() + " -w S0:1073MB:2\n");
  EXPECT_EQ(LikwidJson(r)["gbps"].get<double>(), 12.96683);

  const std::string bad = FakeLikwid("likwid_bad", Testdata("likwid_bench_unknown_test.txt"), 1);
  r = RunLikwidBench(1, size_t{1} << 30, bad);
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.error.find("exit status 1"), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("Unknown test case"), std::string::npos) << r.error;
  EXPECT_TRUE(LikwidJson(r)["gbps"].is_null());
  EXPECT_EQ(LikwidJson(r)["error"].get<std::string>(), r.error);

  // Exit 0 but no figure (e.g. a likwid that changed its output).
  const std::string none = FakeLikwid("likwid_none", "/dev/null", 0);
  r = RunLikwidBench(1, size_t{1} << 30, none);
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.error.find("no \"MByte/s:\" line"), std::string::npos) << r.error;

  r = RunLikwidBench(1, size_t{1} << 30, "/nonexistent/likwid-bench");
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.error.find("not found (Debian package likwid"), std::string::npos) << r.error;
}

TEST(Likwid, TestMatchesTheCpu) {
  const std::string t = LikwidLoadTest();
  __builtin_cpu_init();
  EXPECT_EQ(t, __builtin_cpu_supports("avx512f") ? "load_avx512"
               : __builtin_cpu_supports("avx")   ? "load_avx"
                                                 : "load");
}

}  // namespace
}  // namespace fk
