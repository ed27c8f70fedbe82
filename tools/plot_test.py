"""Tests of tools/plot.py on a small made-up run whose ratios are known by construction."""

import json
import os
import shutil
import tempfile
import unittest

from tools import plot


def case(kind, fmt, variant, path, m, t, median, n=4096, k=4096, err=1e-3, **extra):
    bytes_per = {"F32": 4.0, "Q4_K": 144 / 256, "Q8_K": 292 / 256}[fmt]
    wb = int(n * k * bytes_per)
    c = {"id": 0, "machine_id": "test-cpu-2c", "kind": kind, "format": fmt, "variant": variant,
         "path": path, "kernel": f"{fmt}-{variant}-{path}", "n": n, "k": k, "m": m, "threads": t,
         "reps": 5, "median_s": median, "p25_s": median, "p75_s": median, "min_s": median,
         "max_s": median, "spread_pct": 0.0, "gflops": 2 * m * n * k / median / 1e9,
         "weight_gbps": wb / median / 1e9, "roofline": "dram_read", "roofline_value": 40.0,
         "pct_of_roofline": 0.0, "weight_bytes": wb, "f32_bytes": n * k * 4,
         "bits_per_weight": bytes_per * 8, "weight_copies": 4, "rss_peak_bytes": 2**30,
         "max_abs_err": err, "max_rel_err": err, "err_checked": 136, "times_s": [median] * 5}
    if m == 1:  # against the run's DRAM read bandwidth (made_up_run: 30 / 40 GB/s)
        c["roofline_value"] = {1: 30.0, 2: 40.0}[t]
        c["pct_of_roofline"] = 100 * c["weight_gbps"] / c["roofline_value"]
    c.update(extra)
    return c


def made_up_run():
    cases = []
    for t in (1, 2):
        for m in (1, 8):
            s = 1.0 / t * m ** 0.5
            cases += [
                case("fused", "F32", "avx2", "f32", m, t, 0.010 * s, err=1e-7),
                case("fused", "Q4_K", "scalar", "f32", m, t, 0.050 * s, err=2e-7),
                case("fused", "Q4_K", "avx2", "int8", m, t, 0.002 * s, err=5e-3),   # the best
                case("fused", "Q4_K", "avx2", "f32", m, t, 0.003 * s, err=3e-7),
                case("dequant_then_matmul", "Q4_K", "avx2", "f32", m, t, 0.020 * s, err=3e-7),
                case("ggml", "Q4_K", "ggml", "int8", m, t, 0.004 * s, err=6e-3, ggml_layout="CPU_REPACK"),
                case("ggml", "F32", "ggml", "f32", m, t, 0.010 * s, err=None),          # NaN output
                case("fused", "Q8_K", "avx2", "int8", m, t, 0.004 * s, err=4e-3,
                     other_cores=0.6 if (m, t) == (8, 2) else 0.0,
                     **({"worker_task_pct": 3.0 if m == 1 else 48.0,
                         "own_cores": 1.02 if m == 8 else 1.97} if t == 2 else {})),
            ]
    cases.append({"id": 99, "kind": "fused", "format": "Q4_K", "variant": "avx2", "path": "int8",
                  "kernel": "q4_k_int8__avx2", "n": 4096, "k": 4096, "m": 64, "threads": 2,
                  "error": "boom"})
    return {
        "schema": "fused-kernels-sweep/1",
        "machine": {"machine_id": "test-cpu-2c", "cpu_model": "Test CPU", "logical_cores": 2,
                    "isa_flags": ["avx2", "avx512f"], "last_level_cache_bytes": 32 << 20,
                    "compiler": "gcc", "bazel": "bazel 4.2.3", "git_commit": "abc123",
                    "os_kernel": "Linux", "dram_read_gbps": {"1": 30.0, "2": 40.0},
                    "peak_f32_gflops": {"1": 100.0, "2": 200.0},
                    "peak_int8_gops": {"1": 400.0, "2": 800.0}},
        "run": {"command": "tools/bazel run //harness:sweep -- --quick", "started_utc": "2026-01-02T03:04:05Z",
                "status": "complete", "cases_planned": 33, "cases_done": 33, "wall_s": 42.0,
                "grid_rule": "made up", "method": {"timing": "made up"},
                "ggml": {"available": True, "status": "ggml test"}},
        "fields": {},
        "format_table": [{"name": "F32", "bits_per_weight": 32.0},
                         {"name": "Q4_K", "bits_per_weight": 4.5},
                         {"name": "Q8_K", "bits_per_weight": 9.125}],
        "cases": cases,
    }


class PlotTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(dir=os.environ.get("TEST_TMPDIR"))
        self.reports = os.path.join(self.tmp.name, "reports")
        self.run_dir = os.path.join(self.reports, "2026-01-02-test-cpu")
        os.makedirs(self.run_dir)
        with open(os.path.join(self.run_dir, "results.json"), "w") as f:
            json.dump(made_up_run(), f)

    def tearDown(self):
        self.tmp.cleanup()

    def test_pngs_and_readme(self):
        self.assertEqual(plot.main([self.run_dir]), 0)
        for name, _ in plot.PNGS:
            p = os.path.join(self.run_dir, name)
            self.assertTrue(os.path.isfile(p), name)
            with open(p, "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n", name)
            self.assertGreater(os.path.getsize(p), 10_000, name)
        with open(os.path.join(self.reports, "README.md")) as f:
            readme = f.read()
        # Ratios known by construction (every batch, thread count and shape alike):
        # F32 / best Q4_K = 0.010 / 0.002, dequant / best = 10, ggml / best = 2.
        self.assertIn("| Q4_K | 5.00x (1) | 5.00x (1) |", readme)
        self.assertIn("| Q4_K | 10.00x (1) | 10.00x (1) |", readme)
        self.assertIn("| Q4_K | 2.00x (1) | 2.00x (1) |", readme)
        self.assertIn("| Q8_K | 2.50x (1) | 2.50x (1) |", readme)
        # GEMV: best Q4_K at 2 threads reads 9437184 B in 0.001 s = 9.4 GB/s = 24 % of 40 GB/s.
        self.assertIn("9.4 (avx2 int8) | 24 % | 4.7 | 2.00x |", readme)
        # Batch 1 across formats: F32 streams fastest (4 B / weight in 0.010 s); Q4_K's best
        # (144 / 256 B in 0.002 s) is 0.5625 / 0.002 / 400 = 70.3 % of it, Q8_K's (292 / 256 B
        # in 0.004 s) 71.3 %, at both thread counts.
        self.assertIn("### Batch 1 across formats", readme)
        self.assertIn("| F32 | 100 % (1) | 100 % (1) |", readme)
        self.assertIn("| Q4_K | 70 % (1) | 70 % (1) |", readme)
        self.assertIn("| Q8_K | 71 % (1) | 71 % (1) |", readme)
        self.assertIn("Fastest per shape: 1T F32 (1 of 1); 2T F32 (1 of 1).", readme)
        # Other work: recorded on the four Q8_K cases, one of them beside 0.6 cores.
        self.assertIn("Other work on the machine during our 4 cases (`other_cores`, /proc/stat less "
                      "the sweep): 1 ran beside more than 0.25 cores of it, their times suspect: "
                      "Q8_K-avx2-int8 4096x4096 m=8 t=2 (0.60 cores, ±0 %).", readme)
        # Worker share: recorded on the two 2-thread Q8_K cases; batch 1's workers ran 3 % of
        # the tasks (under half of their 50 %), batch 8's 48 %.
        self.assertIn("Threads that took part (`worker_task_pct`, the share of the pool's tasks its "
                      "workers ran) in our 2 cases with 2 or more threads: in 1 the workers ran under "
                      "half their share, so the time is closer to one thread's: Q8_K-avx2-int8 "
                      "4096x4096 m=1 t=2 (3 % of the tasks, ±0 %).", readme)
        # CPUs used: batch 8's two threads used 1.02 CPUs (under 1.5), batch 1's 1.97.
        self.assertIn("CPUs our threads used (`own_cores`, the sweep's CPU time over the calls' wall "
                      "time) in our 2 cases with 2 or more threads: in 1 the t threads used under "
                      "t - 0.5 CPUs: they took turns on shared CPUs, so the time is closer to one "
                      "thread's: Q8_K-avx2-int8 4096x4096 m=8 t=2 (1.02 CPUs, ±0 %).", readme)
        # Errors: worst per series; ggml's F32 output had NaNs.
        self.assertIn("| Q4_K | 3.0e-07 | 5.0e-03 | 3.0e-07 | 6.0e-03 |", readme)
        self.assertIn("| F32 | 1.0e-07 | – | – | NaN |", readme)
        self.assertIn("(2026-01-02-test-cpu/gemv_bandwidth.png)", readme)
        self.assertIn("`tools/bazel run //tools:plot -- reports/2026-01-02-test-cpu`", readme)
        self.assertIn("1 case(s) failed", readme)
        self.assertIn("Test CPU", readme)

    def test_readme_shows_the_newest_run_per_machine(self):
        other = os.path.join(self.reports, "2025-12-31-other")
        os.makedirs(other)
        doc = made_up_run()
        doc["run"]["started_utc"] = "2025-12-31T00:00:00Z"
        with open(os.path.join(other, "results.json"), "w") as f:
            json.dump(doc, f)
        self.assertEqual(plot.main([self.run_dir, "--no-png"]), 0)
        self.assertFalse(os.path.exists(os.path.join(self.run_dir, "memory.png")))
        with open(os.path.join(self.reports, "README.md")) as f:
            readme = f.read()
        # Same machine: the newest run in full, the older one only listed.
        self.assertIn("## 2026-01-02-test-cpu", readme)
        self.assertNotIn("## 2025-12-31-other", readme)
        self.assertIn("[2025-12-31-other](2025-12-31-other/results.json)", readme)
        # A newer run of fewer formats on the same machine does not supersede a fuller one.
        partial = made_up_run()
        partial["run"]["started_utc"] = "2026-02-01T00:00:00Z"
        partial["cases"] = [c for c in partial["cases"] if c.get("format") == "Q4_K"]
        part_dir = os.path.join(self.reports, "2026-02-01-test-cpu-q4k")
        os.makedirs(part_dir)
        with open(os.path.join(part_dir, "results.json"), "w") as f:
            json.dump(partial, f)
        self.assertEqual(plot.main([self.run_dir, "--no-png"]), 0)
        with open(os.path.join(self.reports, "README.md")) as f:
            readme = f.read()
        self.assertIn("## 2026-02-01-test-cpu-q4k", readme)
        self.assertIn("## 2026-01-02-test-cpu", readme)
        self.assertIn("[2025-12-31-other](2025-12-31-other/results.json)", readme)
        shutil.rmtree(part_dir)
        # Another machine gets its own full section.
        doc["machine"]["machine_id"] = "other-cpu-8c"
        with open(os.path.join(other, "results.json"), "w") as f:
            json.dump(doc, f)
        self.assertEqual(plot.main([self.run_dir, "--no-png"]), 0)
        with open(os.path.join(self.reports, "README.md")) as f:
            readme = f.read()
        self.assertLess(readme.index("## 2026-01-02-test-cpu"), readme.index("## 2025-12-31-other"))

    def test_roofline_flags_trust_and_likwid(self):
        doc = made_up_run()
        m = doc["machine"]
        # The 1-thread probes were all taken under load; likwid-bench ran beside ours.
        m["dram_read_trusted"] = {"1": False, "2": True}
        m["dram_probes"] = [
            {"threads": 1, "gbps": 30.0, "reason": "start", "quiet": False, "other_cores": 1.1},
            {"threads": 2, "gbps": 35.0, "reason": "start", "quiet": False, "other_cores": 1.0},
            {"threads": 2, "gbps": 40.0, "reason": "end", "quiet": True, "other_cores": 0.01}]
        m["likwid_bench"] = {"version": "5.2", "gbps": {"1": 14.5, "2": 28.3}, "runs": [
            {"threads": 1, "command": "likwid-bench -t load_avx512 -w S0:1090MB:1", "gbps": 14.5},
            {"threads": 2, "command": "likwid-bench -t load_avx512 -w S0:1090MB:2", "gbps": 28.3}]}
        for c in doc["cases"]:
            if c.get("m") != 1 or "error" in c:
                continue
            if c["threads"] == 1:
                c.update(roofline_trusted=False, pct_of_roofline=None, above_roofline=False)
            else:
                c.update(roofline_trusted=True, above_roofline=False)
        # The best Q4_K GEMV at 2 threads beats the roofline: 46 GB/s of 40.
        best = next(c for c in doc["cases"] if c.get("m") == 1 and c["threads"] == 2
                    and c["format"] == "Q4_K" and c["variant"] == "avx2" and c["path"] == "int8")
        best.update(median_s=9437184 / 46e9, weight_gbps=46.0, pct_of_roofline=115.0,
                    above_roofline=True)
        with open(os.path.join(self.run_dir, "results.json"), "w") as f:
            json.dump(doc, f)
        self.assertEqual(plot.main([self.run_dir]), 0)
        with open(os.path.join(self.reports, "README.md")) as f:
            readme = f.read()
        run = plot.Run(self.run_dir)
        # No plain share: flagged above, withheld without a quiet probe.
        self.assertIn("46.0 (avx2 int8) | **above** (115 %) |", readme)
        self.assertNotIn("| 115 % |", readme)
        self.assertIn("(avx2 int8) | – (no quiet probe) |", readme)
        self.assertIn("1 case(s) above their roofline (flagged, not results): "
                      "Q4_K-avx2-int8 4096x4096 m=1 t=2: 46.0 > 40.0 GB/s (dram_read)", readme)
        # Every probe, which ones were loaded, and likwid-bench's figures beside ours.
        self.assertIn("2 threads: 40.0 GB/s (best of 2 probes: 35.0 start under load, 40.0 end)", readme)
        self.assertIn("1 thread: 30.0 GB/s (best of 1 probes: 30.0 start under load); no probe was "
                      "taken on a quiet machine", readme)
        self.assertIn("likwid 5.2: 1 thread: 14.5 GB/s (ours 2.07x it), "
                      "`likwid-bench -t load_avx512 -w S0:1090MB:1`", readme)
        self.assertIn("2 threads: 28.3 GB/s (ours 1.41x it)", readme)
        self.assertIn("DRAM read 1T ≥30, 2T 40 GB/s (likwid-bench load_avx512: 1T 14, 2T 28)",
                      run.subtitle())
        # The cases the plots flag.
        self.assertEqual([c["kernel"] for c in run.cases if plot.above_roofline(c)], ["Q4_K-avx2-int8"])

    def test_above_roofline_of_older_runs_is_computed(self):
        c = case("fused", "Q4_K", "avx2", "int8", 1, 2, 9437184 / 50e9)  # 50 GB/s of 40
        del c["pct_of_roofline"]
        self.assertTrue(plot.above_roofline(c))
        c["weight_gbps"] = 39.0
        self.assertFalse(plot.above_roofline(c))
        batch = case("fused", "Q4_K", "avx2", "int8", 8, 2, 0.001, roofline="peak_int8",
                     roofline_value=100.0)
        self.assertTrue(plot.above_roofline(batch))  # 268 GFLOP/s of a 100 GFLOP/s peak
        self.assertEqual(plot.share_text({"pct_of_roofline": 87.4, "roofline_trusted": True}), "87 %")
        self.assertEqual(plot.share_text({"pct_of_roofline": 100.3, "above_roofline": True}),
                         "**above** (100.3 %)")

    def test_cases_no_faster_with_threads_are_named_and_left_out_of_the_shares(self):
        doc = made_up_run()
        for c in doc["cases"]:
            if c["kernel"] == "F32-avx2-f32" and c["m"] == 1 and c["threads"] == 2:
                c["median_s"], c["weight_gbps"] = 0.012, c["weight_gbps"] * 0.005 / 0.012  # 1 thread: 0.010 s
        with open(os.path.join(self.run_dir, "results.json"), "w") as f:
            json.dump(doc, f)
        run = plot.Run(self.run_dir)
        n, flagged = plot.no_speedup(run)
        self.assertEqual([(c["kernel"], c["m"], c["threads"]) for c in flagged], [("F32-avx2-f32", 1, 2)])
        self.assertAlmostEqual(plot.vs_one_thread(run)(flagged[0]), 1.2)
        # At 2 threads F32 is left out: Q8_K (292 / 256 B in 0.002 s) is the fastest left and
        # Q4_K (144 / 256 B in 0.001 s) streams 70.3 / 71.3 of it; at 1 thread F32 stays.
        shares = plot.stream_shares(run)
        self.assertNotIn("F32", shares[2][0])
        self.assertAlmostEqual(shares[2][0]["Q8_K"][0], 1.0)
        self.assertAlmostEqual(shares[2][0]["Q4_K"][0], (144 / 0.001) / (292 / 0.002))
        self.assertAlmostEqual(shares[1][0]["F32"][0], 1.0)
        self.assertEqual(plot.main([self.run_dir, "--no-png"]), 0)
        with open(os.path.join(self.reports, "README.md")) as f:
            readme = f.read()
        self.assertIn("ran no faster with their threads than alone (the machine held them back, on "
                      "a shared host possibly from outside the guest, or the kernel does not split "
                      "there; left out of the batch-1 share table): "
                      "F32-avx2-f32 4096x4096 m=1 t=2 (1.20x the 1-thread time, ±0 %).", readme)
        self.assertIn("| F32 | 100 % (1) | – |", readme)

    def test_interleaved_shares_replace_the_cases_best_of_run(self):
        doc = made_up_run()
        # The cases say Q4_K streams 144 / 0.002 s against F32's 1024 / 0.010 s at 1 thread
        # (70.3 %); the interleaved rounds, each format against the best of its own round, say
        # otherwise, and they are what the table shows.
        doc["interleaved_shares"] = {
            "rounds": 3, "burst_s": 0.025, "method": "made up",
            "groups": [
                {"n": 4096, "k": 4096, "threads": 1, "formats": [
                    {"format": "F32", "share": 1.0}, {"format": "Q4_K", "share": 0.5},
                    {"format": "Q8_K", "share": 0.8}]},
                {"n": 4096, "k": 4096, "threads": 2, "best_gbps": [50.0, None, 30.0, 40.0], "formats": [
                    {"format": "Q4_K", "share": 0.9}, {"format": "Q8_K", "share": 1.0},
                    {"format": "F32", "rounds": 0}]},  # never ran: no share
                {"n": 4096, "k": 4096, "threads": 4, "formats": [{"format": "Q4_K", "share": 1.0}]},
            ]}
        with open(os.path.join(self.run_dir, "results.json"), "w") as f:
            json.dump(doc, f)
        run = plot.Run(self.run_dir)
        shares = plot.stream_shares(run)
        self.assertEqual(sorted(shares), [1, 2])  # one format alone is no comparison
        self.assertAlmostEqual(shares[1][0]["Q4_K"][0], 0.5)
        self.assertAlmostEqual(shares[2][0]["Q4_K"][0], 0.9)
        self.assertNotIn("F32", shares[2][0])
        self.assertEqual(shares[2][1].most_common(1)[0][0], "Q8_K")
        self.assertEqual(plot.main([self.run_dir, "--no-png"]), 0)
        with open(os.path.join(self.reports, "README.md")) as f:
            readme = f.read()
        self.assertIn("Interleaved (sweep --share_rounds)", readme)
        self.assertIn("3 rounds in which every format's fastest batch-1 kernel ran a burst of about 25 ms", readme)
        self.assertIn("| Q4_K | 50 % (1) | 90 % (1) |", readme)
        self.assertIn("Per shape, 2 threads (median share over rounds):", readme)
        self.assertIn("| Q8_K | 100 % |", readme)
        self.assertIn("| best GB/s (median of the rounds' best) | 40.0 |", readme)
        # Without them (older runs, --share_rounds=0) the table comes from the cases.
        del doc["interleaved_shares"]
        with open(os.path.join(self.run_dir, "results.json"), "w") as f:
            json.dump(doc, f)
        self.assertAlmostEqual(plot.stream_shares(plot.Run(self.run_dir))[1][0]["Q4_K"][0],
                               (144 / 0.002) / (1024 / 0.010))

    def test_other_work_of_older_runs_is_not_claimed(self):
        doc = made_up_run()
        for c in doc["cases"]:
            c.pop("other_cores", None)
            c.pop("worker_task_pct", None)
            c.pop("own_cores", None)
        with open(os.path.join(self.run_dir, "results.json"), "w") as f:
            json.dump(doc, f)
        self.assertIsNone(plot.other_work(plot.Run(self.run_dir)))
        self.assertIsNone(plot.lone_callers(plot.Run(self.run_dir)))
        self.assertIsNone(plot.shared_cpus(plot.Run(self.run_dir)))
        self.assertEqual(plot.main([self.run_dir, "--no-png"]), 0)
        with open(os.path.join(self.reports, "README.md")) as f:
            text = f.read()
        self.assertNotIn("Other work on the machine", text)
        self.assertNotIn("Threads that took part", text)

    def test_missing_results_is_an_error(self):
        empty = os.path.join(self.tmp.name, "empty")
        os.makedirs(empty)
        self.assertEqual(plot.main([empty]), 2)

    def test_wrong_schema_is_an_error(self):
        with open(os.path.join(self.run_dir, "results.json"), "w") as f:
            json.dump({"schema": "something else"}, f)
        with self.assertRaises(SystemExit) as e:
            plot.main([self.run_dir])
        self.assertIn("unknown schema", str(e.exception))


if __name__ == "__main__":
    unittest.main()
