"""//harness:sweep with a ggml peer that crashes on its second case (a stand-in for
mulmat_bench, so no llama.cpp is needed): the sweep restarts it, retries that case with the
next layout llama.cpp would use and records the layout that ran and why the first failed."""

import csv
import json
import os
import subprocess
import sys
import tempfile
import unittest

SWEEP = os.path.join(os.environ.get("TEST_SRCDIR", ""), "fused_kernels", "harness", "sweep")

# Speaks mulmat_bench's protocol 4 with extra buffer types AMX and CPU_REPACK; counts its
# cases in a file (across restarts) and dies with SIGSEGV on the second one while in AMX, as
# ggml 0.25.3's AMX mul_mat does on Xeons with AMX.
STUB = r'''#!%(python)s
import json, os, signal, sys
counter = %(counter)r
print(json.dumps({"protocol": 4, "ggml_version": "9.9", "ggml_commit": "stub",
                  "extra_bufts": ["AMX", "CPU_REPACK"]}), flush=True)
for line in sys.stdin:
    t, n, k, m, threads, reps, min_time, cold, cols, want, warmup = line.split()
    count = (int(open(counter).read()) if os.path.exists(counter) else 0) + 1
    open(counter, "w").write(str(count))
    layout = "AMX" if want == "auto" else want
    print(json.dumps({"start": True, "type": t, "layout": layout}), flush=True)
    if count == 2 and layout == "AMX":
        sys.stderr.write("stub: fault at ldtilecfg in AMX\n")
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGSEGV)
    print(json.dumps({"type": t, "n": int(n), "k": int(k), "m": int(m), "threads": int(threads),
                      "layout": layout, "weight_bytes": int(n) * int(k) // 2, "copies": 1,
                      "times_s": [0.001, 0.002], "max_abs_err": 0.0, "max_rel_err": 0.0,
                      "checked_cols": int(cols)}), flush=True)
'''


class SweepPeerCrashTest(unittest.TestCase):
    def test_crash_on_second_case_is_retried_with_the_next_layout(self):
        tmp = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
        stub = os.path.join(tmp, "mulmat_bench")
        with open(stub, "w") as f:
            f.write(STUB % {"python": sys.executable, "counter": os.path.join(tmp, "count")})
        os.chmod(stub, 0o755)
        out = os.path.join(tmp, "out")
        p = subprocess.run(
            [SWEEP, "--ggml=" + stub, "--formats=q4_0", "--variants=scalar", "--shapes=256x2048",
             "--batch=1,8", "--threads=1", "--reps=1", "--min_time=0.1", "--dram_mb=16",
             "--cold_mb=1", "--settle_s=0", "--reprobe_s=0", "--likwid=off", "--noplot",
             "--out=" + out],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=600)
        log = p.stdout.decode() + p.stderr.decode()
        self.assertEqual(p.returncode, 0, log)
        self.assertIn("ggml crashed on this case first: AMX: killed by SIGSEGV", log)

        with open(os.path.join(out, "results.json")) as f:
            doc = json.load(f)
        ggml = [c for c in doc["cases"] if c["kind"] == "ggml"]
        self.assertEqual([(c["m"], c["ggml_layout"]) for c in ggml], [(1, "AMX"), (8, "CPU_REPACK")])
        self.assertNotIn("ggml_crash", ggml[0])
        self.assertEqual(ggml[1]["ggml_crash"],
                         "AMX: killed by SIGSEGV (stderr: stub: fault at ldtilecfg in AMX)")
        self.assertEqual(ggml[1]["kernel"], "ggml q4_0 CPU_REPACK")
        self.assertNotIn("error", ggml[1])
        self.assertEqual(ggml[1]["reps"], 2)  # the retry's timings were recorded
        self.assertEqual(doc["run"]["ggml"]["restarts"], 1)
        self.assertEqual(doc["run"]["ggml"]["extra_bufts"], ["AMX", "CPU_REPACK"])
        self.assertIn("ggml_crash", doc["fields"])
        # The other work on the machine is recorded for our cases only (the peer is other
        # work), when /proc/stat's ticks resolve a quarter core over the case: at least
        # 0.1 s of timed calls does on up to 5 CPUs (the scalar kernels on 256 x 2048 take
        # about a millisecond a call, so --min_time=0.1 is reached within the 200 calls).
        ours = [c for c in doc["cases"] if c["kind"] != "ggml"]
        long_enough = [c for c in ours if sum(c["times_s"]) >= 0.1]
        self.assertTrue(long_enough)
        if os.cpu_count() <= 5:
            for c in long_enough:
                self.assertIn("other_cores", c, c["kernel"])
        for c in ours:
            if "other_cores" in c:
                # Between no other work and every CPU busy, give or take a quarter core.
                self.assertGreater(c["other_cores"], -0.3, c["kernel"])
                self.assertLess(c["other_cores"], os.cpu_count() + 0.3, c["kernel"])
        for c in ggml:
            self.assertNotIn("other_cores", c)
        self.assertIn("other_cores", doc["fields"])
        # One thread: no worker share or CPUs used to report.
        for c in ours:
            self.assertNotIn("worker_task_pct", c)
            self.assertNotIn("own_cores", c)
        self.assertIn("worker_task_pct", doc["fields"])
        self.assertIn("own_cores", doc["fields"])
        # Our weight copies' share in 2 MB pages is a percentage (whether the kernel gave
        # any depends on its transparent_hugepage setting); the stub peer reports none.
        for c in ours:
            self.assertGreaterEqual(c["weight_huge_pct"], 0.0, c["kernel"])
            self.assertLessEqual(c["weight_huge_pct"], 100.0, c["kernel"])
        for c in ggml:
            self.assertNotIn("weight_huge_pct", c)
        self.assertIn("weight_huge_pct", doc["fields"])

        with open(os.path.join(out, "results.csv")) as f:
            rows = [r for r in csv.DictReader(f) if r["kind"] == "ggml"]
        self.assertEqual([r["ggml_layout"] for r in rows], ["AMX", "CPU_REPACK"])
        self.assertEqual(rows[0]["ggml_crash"], "")
        self.assertTrue(rows[1]["ggml_crash"].startswith("AMX: killed by SIGSEGV"), rows[1])


if __name__ == "__main__":
    unittest.main()
