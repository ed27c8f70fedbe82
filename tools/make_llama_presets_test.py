"""Tests of tools/make_llama_presets with a stand-in for llama-cpp-python (no llama.cpp needed):
what it writes and records, idempotence, a changed file remade, the recorded SHA-256s checked,
a failed / crashing quantization, bad arguments, and the wrapper's --check (tools/bazel's fast
path)."""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
TMP = os.environ.get("TEST_TMPDIR") or tempfile.gettempdir()

ALL = ["F16", "BF16", "Q8_0", "Q6_K", "Q5_K_M", "Q5_K_S", "Q4_K_M", "Q4_K_S", "Q3_K_L",
       "Q3_K_M", "Q3_K_S", "Q2_K", "IQ4_NL", "IQ4_XS"]

# A stand-in llama_cpp package: the LLAMA_FTYPE constants, a log hook for llama_peer.configure,
# and llama_model_quantize writing a small GGUF (gguf-py) whose content depends only on the
# ftype. FAKE_CALLS gets a line per call; FAKE_FAIL=<ftype> returns 1 with an error on stderr;
# FAKE_CRASH=<ftype> kills the process while FK_LLAMA_EXTRA_BUFTS=on.
FAKE = r'''
import os, signal, sys
__version__ = "0.3.36"
_FTYPES = %(ftypes)r
for _n, _v in _FTYPES.items():
    globals()["LLAMA_FTYPE_MOSTLY_" + _n] = _v

class _Params(object):
    def __init__(self):
        self.ftype = 7
        self.allow_requantize = False

def llama_model_quantize_default_params():
    return _Params()

def llama_model_default_params():  # wrapped by llama_peer.configure with them off
    return _Params()

def llama_log_callback(f):
    return f

def llama_log_set(cb, user_data):
    pass

def llama_model_quantize(src, dst, params):
    with open(os.environ["FAKE_CALLS"], "a") as f:
        f.write("%%d %%s %%s\n" %% (params.ftype, params.allow_requantize,
                                   os.environ.get("FK_LLAMA_EXTRA_BUFTS")))
    if os.environ.get("FAKE_CRASH") == str(params.ftype) and \
            os.environ.get("FK_LLAMA_EXTRA_BUFTS") == "on":
        os.kill(os.getpid(), signal.SIGSEGV)
    if os.environ.get("FAKE_FAIL") == str(params.ftype):
        sys.stderr.write("llama_model_quantize: failed to quantize: fake error %%d\n" %% params.ftype)
        return 1
    import numpy as np, gguf
    w = gguf.GGUFWriter(dst.decode(), "llama")
    w.add_tensor("w.weight", np.full((4, 32), float(params.ftype), dtype=np.float32))
    w.add_tensor("norm.weight", np.ones(32, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return 0
'''

FTYPES = {p: i + 1 for i, p in enumerate(ALL)}


def read(path):
    with open(path) as f:
        return f.read()


class MakeLlamaPresetsTest(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(dir=TMP)
        self.tools = os.path.join(self.dir, "tools")
        os.makedirs(self.tools)
        for name in ("make_llama_presets", "make_llama_presets.py", "llama_peer.py"):
            shutil.copy(os.path.join(HERE, name), self.tools)
        os.chmod(os.path.join(self.tools, "make_llama_presets"), 0o755)
        fake = os.path.join(self.dir, "fake")
        os.makedirs(os.path.join(fake, "llama_cpp"))
        with open(os.path.join(fake, "llama_cpp", "__init__.py"), "w") as f:
            f.write(FAKE % {"ftypes": FTYPES})
        self.source = os.path.join(self.dir, "source.gguf")
        with open(self.source, "wb") as f:
            f.write(b"GGUF stand-in source")
        self.out = os.path.join(self.dir, "out")
        self.calls = os.path.join(self.dir, "calls")
        self.env = dict(os.environ, FAKE_CALLS=self.calls,
                        PYTHONPATH=fake + os.pathsep + os.environ.get("PYTHONPATH", ""))
        for k in ("FK_LLAMA_EXTRA_BUFTS", "FAKE_FAIL", "FAKE_CRASH"):
            self.env.pop(k, None)
        # The stand-in source is the "recorded" one (no warning), with no presets recorded.
        self.record({}, hashlib.sha256(read(self.source).encode()).hexdigest())

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def run_tool(self, *args, env=None, script="make_llama_presets.py"):
        cmd = [sys.executable, os.path.join(self.tools, script), "--source", self.source,
               "--out", self.out] + list(args)
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env=env or self.env, timeout=300)
        return p.returncode, p.stdout.decode(), p.stderr.decode()

    def check(self):
        return subprocess.run([os.path.join(self.tools, "make_llama_presets"), "--check",
                               "--out=" + self.out], env=self.env).returncode

    def calls_made(self):
        return read(self.calls).splitlines() if os.path.exists(self.calls) else []

    def manifest(self):
        with open(os.path.join(self.out, "manifest.json")) as f:
            return {e["preset"]: e for e in json.load(f)["presets"]}

    def record(self, expected, source_sha):
        """Writes the recorded SHA-256s into the copy of the script."""
        path = os.path.join(self.tools, "make_llama_presets.py")
        text = read(path)
        self.assertIn('\nSOURCE_SHA256 = "', text)
        self.assertIn("\nEXPECTED = {\n", text)
        text = re.sub(r'SOURCE_SHA256 = "[0-9a-f]+"', 'SOURCE_SHA256 = "%s"' % source_sha, text)
        table = "EXPECTED = {\n%s}\n" % "".join('    "%s": "%s",\n' % kv for kv in expected.items())
        text = re.sub(r"EXPECTED = \{\n.*?^\}\n", lambda _: table, text, count=1,
                      flags=re.S | re.M)
        self.assertIn(table, text)
        with open(path, "w") as f:
            f.write(text)

    def test_makes_every_preset_with_its_ftype_and_a_manifest(self):
        rc, _, err = self.run_tool()
        self.assertEqual(rc, 0, err)
        self.assertEqual(len(self.calls_made()), len(ALL))
        self.assertEqual(sorted(self.calls_made()),
                         sorted("%d True on" % FTYPES[p] for p in ALL))  # allow_requantize
        m = self.manifest()
        self.assertEqual(list(m), ALL)
        for p in ALL:
            e = m[p]
            path = os.path.join(self.out, e["file"])
            self.assertEqual(e["file"], "SmolLM2-135M-Instruct.%s.gguf" % p)
            self.assertEqual(e["bytes"], os.path.getsize(path))
            self.assertEqual(len(e["sha256"]), 64)
            self.assertEqual(e["tensor_types"], {"F32": 2})
            self.assertEqual(e["llama_ftype"], FTYPES[p])
            self.assertEqual(e["llama_cpp_python"], "0.3.36")
            self.assertIsNone(e["sha256_expected"])  # not the recorded source
        self.assertEqual(len(set(e["sha256"] for e in m.values())), len(ALL))
        leftovers = [n for n in os.listdir(self.out) if n.endswith(".tmp")]
        self.assertEqual(leftovers, [])
        self.assertIn("[14/14] IQ4_XS", err)
        self.assertEqual(self.check(), 0)

    def test_second_run_quantizes_nothing_and_a_changed_file_is_remade(self):
        self.assertEqual(self.run_tool()[0], 0)
        n = len(self.calls_made())
        rc, _, err = self.run_tool()
        self.assertEqual(rc, 0, err)
        self.assertEqual(len(self.calls_made()), n)
        self.assertIn("0 made, 14 up to date", err)
        rc, _, err = self.run_tool("--quiet")
        self.assertEqual((rc, err), (0, ""))
        path = os.path.join(self.out, "SmolLM2-135M-Instruct.Q6_K.gguf")
        with open(path, "ab") as f:
            f.write(b"x")
        self.assertEqual(self.check(), 1)  # the stamp sees the size change
        rc, _, err = self.run_tool()
        self.assertEqual(rc, 0, err)
        self.assertEqual(self.calls_made()[n:], ["%d True on" % FTYPES["Q6_K"]])
        self.assertIn("Q6_K: quantizing with llama.cpp (size", err)
        self.assertEqual(self.check(), 0)

    def test_recorded_sha256_checked(self):
        self.assertEqual(self.run_tool()[0], 0)
        m = self.manifest()
        source_sha = m["F16"]["source_sha256"]
        expected = {p: m[p]["sha256"] for p in ALL}
        self.record(expected, source_sha)
        rc, _, err = self.run_tool()  # the stamp changed with the script: verified again
        self.assertEqual(rc, 0, err)
        self.assertEqual(self.manifest()["Q8_0"]["sha256_expected"], expected["Q8_0"])
        self.assertEqual(self.check(), 0)
        expected["Q8_0"] = "0" * 64
        self.record(expected, source_sha)
        os.remove(os.path.join(self.out, "SmolLM2-135M-Instruct.Q8_0.gguf"))
        rc, _, err = self.run_tool()
        self.assertEqual(rc, 1, err)
        self.assertIn("SHA-256 %s differs from the one recorded" % m["Q8_0"]["sha256"], err)
        self.assertIn("SHA-256 differs from the recorded one: Q8_0", err)
        self.assertTrue(self.manifest()["Q8_0"].get("sha256_mismatch"))
        self.assertFalse(self.manifest()["F16"].get("sha256_mismatch"))
        self.assertEqual(self.check(), 1)  # no stamp: tools/bazel tries again and says so
        rc, out, _ = self.run_tool("--list")
        self.assertRegex(out, r"\nQ8_0 +MISMATCH")
        self.assertEqual(self.run_tool()[0], 1)  # still reported on the next run

    def test_failed_quantization_is_named_and_leaves_no_file(self):
        env = dict(self.env, FAKE_FAIL=str(FTYPES["Q4_K_M"]))
        rc, _, err = self.run_tool(env=env)
        self.assertEqual(rc, 1, err)
        self.assertIn("Q4_K_M: source.gguf -> ", err)
        self.assertIn("llama_model_quantize: failed to quantize: fake error %d"
                      % FTYPES["Q4_K_M"], err)
        self.assertIn("failed: Q4_K_M", err)
        self.assertFalse(os.path.exists(
            os.path.join(self.out, "SmolLM2-135M-Instruct.Q4_K_M.gguf")))
        self.assertNotIn("Q4_K_M", self.manifest())
        self.assertEqual(len(self.manifest()), len(ALL) - 1)
        self.assertEqual([n for n in os.listdir(self.out) if n.endswith(".tmp")], [])
        self.assertEqual(self.check(), 1)
        rc, _, err = self.run_tool("--presets=q4_k_m")  # case-insensitive; now it works
        self.assertEqual(rc, 0, err)
        self.assertEqual(self.check(), 0)

    def test_crash_is_retried_with_extra_buffer_types_off_and_recorded(self):
        env = dict(self.env, FAKE_CRASH=str(FTYPES["IQ4_NL"]))
        rc, _, err = self.run_tool("--presets=IQ4_NL,F16", env=env)
        self.assertEqual(rc, 0, err)
        iq = "%d True" % FTYPES["IQ4_NL"]
        self.assertEqual([c for c in self.calls_made() if c.startswith(iq)],
                         [iq + " on", iq + " off"])
        self.assertIn("killed by SIGSEGV", self.manifest()["IQ4_NL"]["llama_crash"])
        self.assertNotIn("llama_crash", self.manifest()["F16"])
        self.assertEqual(self.check(), 1)  # only two of the presets

    def test_bad_arguments_and_missing_prerequisites(self):
        rc, _, err = self.run_tool("--presets=Q4_K_M,Q9_K")
        self.assertEqual(rc, 2)
        self.assertIn("unknown preset 'Q9_K' (valid: F16, BF16,", err)
        os.remove(self.source)
        rc, _, err = self.run_tool()
        self.assertEqual(rc, 2)
        self.assertIn("the source model %s is missing (tools/fetch_model" % self.source, err)
        env = dict(self.env, FK_CACHE=os.path.join(self.dir, "no-cache"))
        p = subprocess.run([os.path.join(self.tools, "make_llama_presets")], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.assertEqual(p.returncode, 2)
        self.assertIn("run tools/setup_ggml", p.stderr.decode())
        p = subprocess.run([os.path.join(self.tools, "make_llama_presets"), "--help"], env=env,
                           stdout=subprocess.PIPE)
        self.assertEqual(p.returncode, 0)
        self.assertIn("--check", p.stdout.decode())
        self.assertEqual(self.check(), 1)  # nothing made


if __name__ == "__main__":
    unittest.main()
