"""Tests of tools/llama_peer.py with stand-ins for llama.cpp and tools/setup_ggml (no
llama.cpp needed): the rerun with extra buffer types off after a crash, what it records,
the in-process tools' re-exec, configure() on a fake llama_cpp module, and building the
oracle on first run."""

import ctypes
import os
import subprocess
import sys
import tempfile
import types
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import llama_peer  # noqa: E402

TMP = os.environ.get("TEST_TMPDIR") or tempfile.gettempdir()


def write(path, text, mode=0o755):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def read(path):
    with open(path) as f:
        return f.read()


def runs(counter):
    return int(read(counter)) if os.path.exists(counter) else 0


# A stand-in for harness/model_sweep_llama.py: with extra buffer types on it puts weights in
# AMX and dies as `crash` says; with them off it prints its JSON. Counts its runs.
LLAMA_CHILD = r'''#!%(python)s
import json, os, signal, sys
counter = %(counter)r
n = (int(open(counter).read()) if os.path.exists(counter) else 0) + 1
open(counter, "w").write(str(n))
sys.stderr.write("llama_peer: weights in CPU_Mapped (92.10 MiB)\n")
if os.environ.get("FK_LLAMA_EXTRA_BUFTS") == "on":
    sys.stderr.write("llama_peer: weights in %(buffer)s (12.66 MiB)\n")
    sys.stderr.flush()
    %(crash)s
print(json.dumps({"extra_bufts": os.environ.get("FK_LLAMA_EXTRA_BUFTS")}))
'''


def llama_child(name, crash="os.kill(os.getpid(), signal.SIGSEGV)", buffer="AMX"):
    counter = os.path.join(TMP, name + ".count")
    if os.path.exists(counter):
        os.remove(counter)
    path = write(os.path.join(TMP, name), LLAMA_CHILD % {
        "python": sys.executable, "counter": counter, "crash": crash, "buffer": buffer})
    return path, counter


class RunTest(unittest.TestCase):
    def test_crash_reruns_with_extra_bufts_off_and_says_why(self):
        child, counter = llama_child("crashing_llama")
        o = llama_peer.run([child], timeout=60)
        self.assertEqual(o.returncode, 0, o.stderr_text())
        self.assertEqual(runs(counter), 2)
        self.assertEqual(o.stdout.decode().strip(), '{"extra_bufts": "off"}')
        self.assertEqual(o.extra_bufts, "off")
        self.assertEqual(o.crash, "killed by SIGSEGV with weights in AMX")
        self.assertEqual(o.record(), {"llama_extra_bufts": "off", "llama_layout": "plain",
                                      "llama_crash": "killed by SIGSEGV with weights in AMX"})
        self.assertIn("reran with extra buffer types off", o.note())

    def test_no_crash_runs_once_with_llamas_defaults(self):
        child, counter = llama_child("fine_llama", crash="pass", buffer="CPU_REPACK")
        o = llama_peer.run([child])
        self.assertEqual((o.returncode, runs(counter), o.extra_bufts, o.crash), (0, 1, "on", None))
        self.assertEqual(o.layout(), "CPU_REPACK")
        self.assertEqual(o.record(), {"llama_extra_bufts": "on", "llama_layout": "CPU_REPACK"})
        self.assertEqual(o.note(), "")

    def test_an_error_exit_is_not_retried(self):
        child, counter = llama_child("failing_llama", crash="sys.exit(2)")
        o = llama_peer.run([child])
        self.assertEqual((o.returncode, runs(counter), o.crash), (2, 1, None))

    def test_extra_bufts_off_from_the_caller_is_one_run(self):
        child, counter = llama_child("off_llama")
        o = llama_peer.run([child], env=dict(os.environ, FK_LLAMA_EXTRA_BUFTS="off"))
        self.assertEqual((o.returncode, runs(counter), o.extra_bufts), (0, 1, "off"))

    def test_names(self):
        self.assertEqual(llama_peer.describe_returncode(-11), "killed by SIGSEGV")
        self.assertEqual(llama_peer.describe_returncode(3), "exit code 3")
        self.assertEqual(llama_peer.layout_name(["CPU_Mapped", "AMX", "CPU_REPACK"]), "AMX+CPU_REPACK")
        self.assertEqual(llama_peer.layout_name([]), "")
        self.assertEqual(llama_peer.crash_reason(-4, ""), "killed by SIGILL with extra buffer types on")


# A stand-in for a golden tool that runs llama.cpp in-process.
TOOL = r'''#!%(python)s
import os, signal, sys
sys.path.insert(0, %(here)r)
import llama_peer
llama_peer.reexec_with_fallback("stub_tool")
counter = %(counter)r
open(counter, "a").write(os.environ["FK_LLAMA_EXTRA_BUFTS"] + "\n")
if os.environ["FK_LLAMA_EXTRA_BUFTS"] == "on":
    sys.stderr.write("llama_peer: weights in AMX (1 MiB)\n")
    sys.stderr.flush()
    %(crash)s
print("wrote the golden file with extra buffer types", os.environ["FK_LLAMA_EXTRA_BUFTS"])
'''


class ReexecTest(unittest.TestCase):
    def tool(self, name, crash):
        counter = os.path.join(TMP, name + ".runs")
        if os.path.exists(counter):
            os.remove(counter)
        path = write(os.path.join(TMP, name), TOOL % {
            "python": sys.executable, "here": HERE, "counter": counter, "crash": crash})
        env = {k: v for k, v in os.environ.items() if k != llama_peer.ENV}
        p = subprocess.run([sys.executable, path], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env=env, timeout=60)
        return p, read(counter).split()

    def test_crashing_tool_runs_again_with_extra_bufts_off(self):
        p, modes = self.tool("crashing_tool", "os.kill(os.getpid(), signal.SIGSEGV)")
        err = p.stderr.decode()
        self.assertEqual(p.returncode, 0, err)
        self.assertEqual(modes, ["on", "off"])
        self.assertEqual(p.stdout.decode(), "wrote the golden file with extra buffer types off\n")
        self.assertIn("stub_tool: llama.cpp was killed by SIGSEGV with weights in AMX; running "
                      "again with llama.cpp's extra buffer types off", err)

    def test_failing_tool_keeps_its_exit_code(self):
        p, modes = self.tool("failing_tool", "sys.exit(5)")
        self.assertEqual((p.returncode, modes), (5, ["on"]))


class ConfigureTest(unittest.TestCase):
    def fake_llama_cpp(self):
        def default_params():
            return types.SimpleNamespace(use_extra_bufts=True, use_mmap=True)

        sub = types.SimpleNamespace(llama_model_default_params=default_params)
        L = types.SimpleNamespace(
            llama_model_default_params=default_params, llama_cpp=sub,
            llama_log_callback=ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p,
                                                ctypes.c_void_p))
        L.llama_log_set = lambda cb, user: setattr(L, "callback", cb)
        return L

    def configure(self, mode):
        L = self.fake_llama_cpp()
        old = os.environ.get(llama_peer.ENV)
        os.environ[llama_peer.ENV] = mode
        log = os.path.join(TMP, "configure_%s.log" % mode)
        saved = os.dup(2)
        try:
            with open(log, "w") as f:
                os.dup2(f.fileno(), 2)
            got = llama_peer.configure(L)
            L.callback(2, b"load_tensors:   CPU_REPACK model buffer size =    12.66 MiB\n", None)
            L.callback(2, b"llama_context: n_ctx = 128", None)  # info: not passed on
            L.callback(5, b"...\n", None)  # nor its continuation (the load progress dots)
            L.callback(4, b"llama_model_load: error loading model", None)
            L.callback(5, b": bad magic\n", None)  # an error's continuation is
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            if old is None:
                del os.environ[llama_peer.ENV]
            else:
                os.environ[llama_peer.ENV] = old
        return L, got, read(log)

    def test_off_loads_without_extra_bufts_everywhere(self):
        L, got, _ = self.configure("off")
        self.assertEqual(got, "off")
        self.assertFalse(L.llama_model_default_params().use_extra_bufts)
        self.assertFalse(L.llama_cpp.llama_model_default_params().use_extra_bufts)  # Llama()'s
        self.assertTrue(L.llama_model_default_params().use_mmap)

    def test_on_keeps_llamas_defaults_and_reports_buffers(self):
        L, got, err = self.configure("on")
        self.assertEqual(got, "on")
        self.assertTrue(L.llama_cpp.llama_model_default_params().use_extra_bufts)
        self.assertEqual(err, "llama_peer: weights in CPU_REPACK (12.66 MiB)\n"
                              "llama_model_load: error loading model: bad magic\n")
        self.assertEqual(llama_peer.weight_buffers(err), ["CPU_REPACK"])


class EnsureOracleTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(dir=TMP)
        self.oracle = os.path.join(self.dir, "oracle-venv", "bin", "python")
        self.ran = os.path.join(self.dir, "builder.ran")
        self.said = []

    def builder(self, body, estimate=450):
        return write(os.path.join(self.dir, "setup_ggml"),
                     '#!/bin/sh\nif [ "$1" = --estimate ]; then echo %d; exit 0; fi\n'
                     'echo run >> %s\n%s' % (estimate, self.ran, body))

    def make_oracle(self):
        return ("mkdir -p %s\nprintf '#!/bin/sh\\necho 0.3.36\\n' > %s\nchmod +x %s\n"
                % (os.path.dirname(self.oracle), self.oracle, self.oracle))

    def ensure(self, builder, build=True):
        return llama_peer.ensure_oracle(self.oracle, builder, build, self.said.append,
                                        who="test", every_s=1, log_dir=self.dir)

    def test_already_built_is_not_rebuilt(self):
        builder = self.builder(self.make_oracle())
        subprocess.run([builder], check=True)
        os.remove(self.ran)
        self.assertEqual(self.ensure(builder), ("0.3.36", ""))
        self.assertFalse(os.path.exists(self.ran))
        self.assertEqual(self.said, [])

    def test_missing_is_built_with_the_expected_time_and_progress(self):
        builder = self.builder("echo compiling; sleep 2.5\n" + self.make_oracle())
        self.assertEqual(self.ensure(builder), ("0.3.36", ""))
        said = "\n".join(self.said)
        self.assertIn("building it with tools/setup_ggml", said)
        self.assertIn("expect ~7m30s", said)
        self.assertIn("still building llama.cpp", said)
        self.assertIn("llama-cpp-python 0.3.36 built by tools/setup_ggml", said)
        self.assertEqual(read(self.ran), "run\n")

    def test_failed_build_is_one_line(self):
        builder = self.builder("echo 'cmake: not found' >&2; exit 2\n")
        version, why = self.ensure(builder)
        self.assertIsNone(version)
        self.assertNotIn("\n", why)
        self.assertIn("tools/setup_ggml failed (exit code 2)", why)
        self.assertIn("cmake: not found", why)

    def test_quick_does_not_build(self):
        builder = self.builder(self.make_oracle())
        version, why = self.ensure(builder, build=False)
        self.assertIsNone(version)
        self.assertIn("--llama=auto builds it, ~7m30s", why)
        self.assertFalse(os.path.exists(self.ran))


if __name__ == "__main__":
    unittest.main()
