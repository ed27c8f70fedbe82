"""Tests of tools/plot_e2e.py on a small hand-made results.json: every plot is written and
the README states the ratios that follow from the numbers given (computed here by hand)."""

import json
import os
import tempfile
import unittest

from tools import plot_e2e

GB = 1e9


def rec(model, fmt, engine, weights, threads, wbytes, dec, pre, ll=None, rss=None):
    r = {"model": model, "format": fmt, "engine": engine, "weights": weights,
         "threads": threads, "status": "ok", "file_bytes": wbytes * 1.01,
         "weight_bytes": wbytes, "peak_rss_bytes": rss or wbytes * 1.1, "load_s": 0.5,
         "prefill_tok_s": pre, "prefill_tok_s_min": pre * 0.9, "prefill_tok_s_max": pre * 1.1,
         "decode_tok_s": dec, "decode_tok_s_min": dec * 0.9, "decode_tok_s_max": dec * 1.1,
         "tensor_types": {fmt: 3, "F32": 2}}
    if ll is not None:
        r["mean_loglik"] = ll
        r["loglik_tokens"] = 436
    return r


def make_doc():
    f32 = 4.4 * GB
    q4k = f32 / 7.1  # 0.62 GB
    q8 = f32 / 3.76
    m = "synthetic-1.1b"
    records = [
        # F32 file: native and f32 mode are the same weights.
        rec(m, "F32", "ours", "native", 2, f32, 8.0, 40.0),
        rec(m, "F32", "ours", "f32", 2, f32, 8.0, 40.0),
        rec(m, "F32", "llama.cpp", None, 2, f32, 9.0, 60.0),
        # Q4_K: decode 5x faster than its f32 mode (beats 4x), prefill 1.25x.
        rec(m, "Q4_K", "ours", "native", 2, q4k, 40.0, 50.0),
        rec(m, "Q4_K", "ours", "f32", 2, f32, 8.0, 40.0),
        rec(m, "Q4_K", "llama.cpp", None, 2, q4k, 32.0, 45.0),
        # Q8_0: decode 3x (holds).
        rec(m, "Q8_0", "ours", "native", 2, q8, 24.0, 44.0),
        rec(m, "Q8_0", "ours", "f32", 2, f32, 8.0, 40.0),
        # SmolLM2 with log-likelihoods.
        rec("smollm2-135m", "F32", "ours", "native", 2, 0.54 * GB, 50, 500, ll=-3.30),
        rec("smollm2-135m", "F32", "llama.cpp", None, 2, 0.54 * GB, 50, 500, ll=-3.30),
        dict(rec("smollm2-135m", "Q4_K", "ours", "native", 2, 0.09 * GB, 200, 600, ll=-3.38),
             loglik_chunk=512, loglik_vs_llama={"diff": -0.01, "se": 0.0021, "tokens": 436}),
        rec("smollm2-135m", "Q4_K", "llama.cpp", None, 2, 0.09 * GB, 150, 600, ll=-3.37),
        # llama.cpp's own preset files: a mixed preset has no row in the format table, its
        # bits per weight come with the record.
        rec("smollm2-135m-presets", "Q4_K_M", "ours", "native", 2, 0.1 * GB, 190, 610,
            ll=-3.3825),
        rec("smollm2-135m-presets", "Q4_K_M", "llama.cpp", None, 2, 0.1 * GB, 150, 600,
            ll=-3.3790),
        # A preset named like a table format: its own bits per weight, not the table's 4.5.
        rec("smollm2-135m-presets", "Q4_K", "ours", "native", 2, 0.1 * GB, 190, 610, ll=-3.40),
    ]
    for r in records[-3:]:
        r["bits_per_weight"] = 5.25
    # A profiled decode of 10 tokens: 8 ms of matmuls (ffn_down the largest, 3 ms) reading
    # 0.2 GB, 1 ms of attention, 1 ms else: 10 ms in all.
    parts = {k: {"seconds": 0.0, "calls": 10, "weight_bytes": 0} for k in
             ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down",
              "lm_head", "attention", "other")}
    parts["ffn_gate"].update(seconds=0.025, weight_bytes=int(0.1 * GB))
    parts["ffn_down"].update(seconds=0.030, weight_bytes=int(0.05 * GB))
    parts["lm_head"].update(seconds=0.025, weight_bytes=int(0.05 * GB))
    parts["attention"]["seconds"] = 0.01
    parts["other"]["seconds"] = 0.01
    records[3]["profile_decode"] = {"evals": 10, "tokens": 10, "seconds": 0.1, "parts": parts}
    smol_llama = [r for r in records if r["model"] == "smollm2-135m" and r["engine"] == "llama.cpp"]
    failed = dict(smol_llama[-1], format="Q8_K", status="failed: killed by signal SIGSEGV")
    return {
        "kind": "model_sweep", "created": "2026-11-25T00:00:00Z",
        "command": "tools/bazel run //harness:model_sweep",
        "machine": {"cpu_model": "Test CPU", "logical_cores": 2, "isa_flags": ["avx2"],
                    "compiler": "gcc", "git_commit": "abc", "dram_read_gbs": {"2": 40.0},
                    "llama_cpp_version": "0.3.36"},
        "settings": {"threads": [2], "reps": 3, "prompt_tokens": 128, "decode_tokens": 64,
                     "weights": ["native", "f32"]},
        # A made-up table: the plots must take order and bits per weight from it.
        "format_table": [{"name": "F32", "bits_per_weight": 32.0},
                         {"name": "Q4_K", "bits_per_weight": 4.5},
                         {"name": "Q8_0", "bits_per_weight": 8.5},
                         {"name": "Q8_K", "bits_per_weight": 9.125}],
        "records": records + [failed],
        "complete": True,
    }


class PlotE2eTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):  # plotting takes seconds: once for all tests
        cls.dir = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
        with open(os.path.join(cls.dir, "results.json"), "w") as f:
            json.dump(make_doc(), f)
        cls.rc = plot_e2e.main([cls.dir])
        with open(os.path.join(cls.dir, "README.md")) as f:
            cls.readme = f.read()

    def test_main_succeeds(self):
        self.assertEqual(self.rc, 0)

    def test_every_plot_is_written(self):
        for name in ["memory.png", "decode.png", "prefill.png", "speedup_vs_bytes.png",
                     "quality.png"]:
            path = os.path.join(self.dir, name)
            self.assertTrue(os.path.isfile(path), name)
            with open(path, "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n", name)
            self.assertIn("](%s)" % name, self.readme)

    def test_claims_follow_from_the_numbers(self):
        # 4.4 GB / 0.62 GB = 7.1x less memory for Q4_K.
        self.assertIn("**Memory: up to 7.1x less, not 8x.**", self.readme)
        self.assertIn("F32 weights take 4.40 GB", self.readme)
        # Decode 40 / 8 = 5.00x (over 4x), Q8_0 24 / 8 = 3.00x (within 2-4x).
        self.assertIn("is beaten (over 4x) by Q4_K", self.readme)
        self.assertIn("holds for Q8_0", self.readme)
        self.assertIn("Q4_K 5.00x (bytes ratio 7.1x)", self.readme)
        # Bandwidth: 40 GB/s / 4.4 GB = 9.1 tok/s at most for F32; 8 tok/s = 35.2 GB/s = 88%.
        self.assertIn("at most 9.1 tok/s; measured 8.00 tok/s, i.e. 35.2 GB/s of weights (88% of DRAM)",
                      self.readme)
        # Prefill 50 / 40 = 1.25x.
        self.assertIn("Q4_K 1.25x", self.readme)
        # Ours vs llama.cpp on the Q4_K file: 40 vs 32 = 1.25x.
        self.assertIn("Q4_K 40.00 vs 32.00 (1.25x)", self.readme)
        # Quality: -3.38 - (-3.30) = -0.08; llama.cpp -3.37 - (-3.30) = -0.07.
        self.assertIn("Q4_K -0.0800 (llama.cpp -0.0700)", self.readme)

    def test_reports_readme_links_the_run_once(self):
        # reports/README.md carries this run's claims; its links are rewritten to be relative
        # to reports/, and the "(tables below)" link must not get the run's name twice.
        from tools import plot
        parent, name = os.path.split(self.dir)
        text = "\n".join(plot.e2e_sections(parent))
        self.assertIn("(tables in [%s/README.md](%s/README.md))" % (name, name), text)
        self.assertNotIn("%s/%s/" % (name, name), text)

    def test_decode_breakdown_follows_the_profile(self):
        # Q4_K, 2 threads: 10 ms per token, matmuls 80 %, ffn_down 30 %, attention 10 %,
        # other 10 %; 0.2 GB of weights in 80 ms = 2.50 GB/s, in 100 ms = 2.00 GB/s.
        self.assertIn("| Q4_K | 10.000 | 80.0% | ffn_down 30.0% | 10.0% | 10.0% | 2.50 | 2.00 |",
                      self.readme)
        # Formats without a profile get no row.
        self.assertNotIn("| Q8_0 | ", self.readme.split("Where a decoded token")[1].split("###")[0])

    def test_paired_difference_with_its_standard_error(self):
        # A record with the sweep's paired difference shows it (and its error) in place of
        # the difference of the two means, and the table says how the text was scored.
        self.assertIn("| Q4_K | 4.50 | -3.3800 | – | -3.3700 | -0.0100 ± 0.0021 |", self.readme)
        self.assertIn("436 tokens, scored in chunks of 512", self.readme)

    def test_presets_get_their_own_quality_table_with_the_gap(self):
        # -3.3825 - (-3.3790) = -0.0035; bits per weight from the record (5.25).
        self.assertIn("### Quality: SmolLM2-135M (llama.cpp's own preset files)", self.readme)
        self.assertIn("| Q4_K_M | 5.25 | -3.3825 | – | -3.3790 | -0.0035 |", self.readme)
        self.assertIn("| Q4_K | 5.25 | -3.4000 | – | – | – |", self.readme)
        # The requantized model's table comes first (its gap column: the test above).
        self.assertLess(self.readme.index("### Quality: SmolLM2-135M (requantized)"),
                        self.readme.index("### Quality: SmolLM2-135M (llama.cpp's own"))

    def test_failed_configurations_are_listed(self):
        self.assertIn("smollm2-135m Q8_K llama.cpp, 2 thread(s): failed: killed by signal SIGSEGV",
                      self.readme)

    def render_alone(self, doc):
        """plot_e2e's README for `doc`, written in a directory of its own (the class's run must
        stay the only one beside it)."""
        d = tempfile.mkdtemp(dir=tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR")))
        with open(os.path.join(d, "results.json"), "w") as f:
            json.dump(doc, f)
        self.assertEqual(plot_e2e.main([d]), 0)
        with open(os.path.join(d, "README.md")) as f:
            return f.read()

    def test_dram_shares_follow_the_roofline_rule(self):
        # A share only against a roofline with a quiet probe; above it, a flag.
        quiet = {"dram_read_gbs": {"2": 40.0}, "dram_read_trusted": {"2": True}}
        loaded = {"dram_read_gbs": {"2": 40.0}, "dram_read_trusted": {"2": False}}
        self.assertEqual(plot_e2e.share_bw(quiet, 2), 40.0)
        self.assertIsNone(plot_e2e.share_bw(loaded, 2))
        self.assertEqual(plot_e2e.share_bw({"dram_read_gbs": {"2": 40.0}}, 2), 40.0)  # older runs
        self.assertEqual(plot_e2e.share_cell(30.0, 40.0), "30.0 (75%)")
        self.assertEqual(plot_e2e.share_cell(46.0, 40.0), "46.0 (above DRAM! 115%)")
        self.assertEqual(plot_e2e.share_cell(30.0, None), "30.0")
        doc = make_doc()
        doc["machine"]["dram_read_trusted"] = {"2": False}
        readme = self.render_alone(doc)
        self.assertIn("(88% of DRAM)", self.readme)  # the quiet run gives the share ...
        self.assertNotIn("(88% of DRAM)", readme)    # ... the loaded one does not
        self.assertIn("| 35.2 |", readme)            # F32's weight GB/s, without a share
        self.assertIn("40.0 GB/s at 2 threads (no probe on a quiet machine", readme)

    def test_dram_shares_beside_the_run(self):
        # With a probe beside the run: its share first, then the run's best probe's.
        self.assertEqual(plot_e2e.share_cells(30.0, 32.0, 40.0), "30.0 (94% / 75%)")
        self.assertEqual(plot_e2e.share_cells(33.0, 32.0, 40.0), "33.0 (above DRAM! 103% / 82%)")
        self.assertEqual(plot_e2e.share_cells(30.0, None, 40.0), "30.0 (75%)")
        self.assertEqual(plot_e2e.share_cells(30.0, 32.0, None), "30.0 (94%)")
        doc = make_doc()
        for r in doc["records"]:
            if r["engine"] == "ours" and r.get("weights") == "native" and r["format"] == "F32":
                r["dram_adjacent_gbs"] = 2 * r["decode_tok_s"] * r["weight_bytes"] / 1e9
        readme = self.render_alone(doc)
        self.assertIn("(% of the DRAM probe beside it / of the run's best probe)", readme)
        self.assertIn("(50% / ", readme)

    def test_missing_results_is_a_clear_error(self):
        with self.assertRaises(SystemExit) as e:
            plot_e2e.main([os.path.join(self.dir, "nowhere")])
        self.assertIn("results.json not found", str(e.exception))


if __name__ == "__main__":
    unittest.main()
