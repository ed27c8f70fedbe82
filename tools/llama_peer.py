"""llama.cpp as a peer: run it with a fallback for ggml's crashes, and build it on first run.

ggml 0.25.3 (llama-cpp-python 0.3.36) places weights in its AMX buffer type on Xeons with AMX
and then faults at `ldtilecfg` in ggml_backend_amx_mul_mat for every batch > 1; llama.cpp
runs fine there with `use_extra_bufts = false` in llama_model_params. So every tool of this
project that runs llama.cpp runs it in a child process, and if the child is killed by a
signal, runs it once more with the extra buffer types off and records why:

  run(cmd)                  in the parent: the child (e.g. harness/model_sweep_llama.py) with
                            FK_LLAMA_EXTRA_BUFTS=on, and on a crash again with =off
  reexec_with_fallback()    the same for a tool that uses llama.cpp in-process (the golden
                            tools): it re-runs its own script as that child
  configure(llama_cpp)      in the child: applies FK_LLAMA_EXTRA_BUFTS to every model loaded
                            (low-level API or llama_cpp.Llama), and reports the buffers
                            llama.cpp placed the weights in on stderr ("llama_peer: weights
                            in CPU_REPACK ...")
  ensure_oracle(...)        llama-cpp-python in the oracle venv, built with tools/setup_ggml
                            if it is missing (with the time it expects and progress lines)

Standard library only: it runs in the project's venv and in the oracle venv alike.
"""

import ctypes
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

ENV = "FK_LLAMA_EXTRA_BUFTS"  # "on" (llama.cpp's default) or "off" (use_extra_bufts = false)
_BUFFER_PREFIX = "llama_peer: weights in "
# llama.cpp's buffers that hold weights as they are in the file ("plain").
_PLAIN_BUFFERS = ("CPU", "CPU_Mapped", "CPU_Host")


# ---- in the process that runs llama.cpp -------------------------------------------------------

def extra_bufts_on():
    return os.environ.get(ENV, "on") != "off"


def configure(L, verbose=False):
    """Applies FK_LLAMA_EXTRA_BUFTS to every model loaded through llama_cpp module `L`, and
    installs a log callback that reports each weight buffer llama.cpp allocates on stderr (a
    copy of fd 2 taken now, so llama_cpp.Llama(verbose=False) does not silence it) and passes
    on errors (everything with verbose). Returns "on" or "off"."""
    on = extra_bufts_on()
    if not on:
        modules = [L] + [m for m in (getattr(L, "llama_cpp", None),) if m is not None]
        original = L.llama_model_default_params

        def params_without_extra_bufts():
            p = original()
            p.use_extra_bufts = False
            return p

        for m in modules:  # llama_cpp.Llama looks it up in the submodule
            if hasattr(m, "llama_model_default_params"):
                m.llama_model_default_params = params_without_extra_bufts
    err = os.fdopen(os.dup(2), "w", buffering=1, encoding="utf-8", errors="replace")
    passing = [False]  # whether the message that a GGML_LOG_LEVEL_CONT (5) line continues shows

    @L.llama_log_callback
    def log(level, text, user_data):
        s = (text or b"").decode("utf-8", "replace")
        m = re.search(r"(\S+) model buffer size\s*=\s*(.*)", s)
        if m:
            err.write("%s%s (%s)\n" % (_BUFFER_PREFIX, m.group(1), m.group(2).strip()))
            return
        if level != 5:
            passing[0] = verbose or level == 4 or "error" in s.lower()  # 4: GGML_LOG_LEVEL_ERROR
        if passing[0]:
            err.write(s)

    L.llama_log_set(log, ctypes.c_void_p(0))
    configure._keep = (log, err)  # the callback must outlive this call
    return "on" if on else "off"


# ---- in the parent -------------------------------------------------------------------------------

def describe_returncode(rc):
    """'killed by SIGSEGV' for a negative subprocess return code, else 'exit code N'."""
    if rc < 0:
        try:
            return "killed by %s" % signal.Signals(-rc).name
        except ValueError:
            return "killed by signal %d" % -rc
    return "exit code %d" % rc


def weight_buffers(stderr_text):
    """The buffers a child's configure() reported, in order: ['CPU_Mapped', 'CPU_REPACK']."""
    out = []
    for line in stderr_text.splitlines():
        if line.startswith(_BUFFER_PREFIX):
            name = line[len(_BUFFER_PREFIX):].split(" ", 1)[0]
            if name not in out:
                out.append(name)
    return out


def layout_name(buffers):
    """'CPU_REPACK' / 'AMX+CPU_REPACK' for the extra buffer types among `buffers`, 'plain'
    when the weights are only in plain CPU buffers, '' when nothing was reported."""
    extra = [b for b in buffers if b not in _PLAIN_BUFFERS]
    return "+".join(extra) if extra else ("plain" if buffers else "")


def crash_reason(returncode, stderr_text):
    """'killed by SIGSEGV with weights in AMX+CPU_REPACK' (what a record keeps)."""
    layout = layout_name(weight_buffers(stderr_text))
    return "%s with %s" % (describe_returncode(returncode),
                           ("weights in " + layout) if layout else "extra buffer types on")


class Outcome(object):
    """A llama.cpp child's result, after the fallback if there was one."""

    def __init__(self, proc, extra_bufts, crash):
        self.returncode = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.extra_bufts = extra_bufts  # "on" or "off": how the run that counts loaded weights
        self.crash = crash  # None, or why the first run (extra buffer types on) failed

    def stderr_text(self):
        return (self.stderr or b"").decode("utf-8", "replace")

    def layout(self):
        return layout_name(weight_buffers(self.stderr_text()))

    def record(self):
        """Fields for a results record: llama_extra_bufts, llama_layout, llama_crash."""
        r = {"llama_extra_bufts": self.extra_bufts, "llama_layout": self.layout()}
        if self.crash:
            r["llama_crash"] = self.crash
        return r

    def note(self):
        """'' or one line for a progress line / table cell saying the fallback ran."""
        if not self.crash:
            return ""
        return "llama.cpp %s; reran with extra buffer types off" % self.crash


def run(cmd, timeout=None, env=None):
    """Runs the llama.cpp child `cmd` (stdout and stderr captured). If it is killed by a
    signal while llama.cpp's extra buffer types are on, runs it again with them off
    (use_extra_bufts = false, as the child's configure() applies). subprocess.TimeoutExpired
    propagates (`timeout` is per run)."""
    env = dict(os.environ if env is None else env)
    env.setdefault("GGML_NO_BACKTRACE", "1")  # no gdb backtrace on a ggml abort
    if env.get(ENV) == "off":  # the caller chose: no fallback
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                           env=env)
        return Outcome(p, "off", None)
    env[ENV] = "on"
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                       env=env)
    if p.returncode >= 0:
        return Outcome(p, "on", None)
    crash = crash_reason(p.returncode, p.stderr.decode("utf-8", "replace"))
    env[ENV] = "off"
    p2 = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                        env=env)
    return Outcome(p2, "off", crash)


def reexec_with_fallback(tool, argv=None):
    """For a tool that runs llama.cpp in its own process: call first thing in main(). In the
    tool's first process it runs the tool's script again as a child (extra buffer types on),
    its stdout and stderr passed through; if that child is killed by a signal, it says so and
    runs it once more with them off, then exits with the last child's exit code. In the child
    (FK_LLAMA_EXTRA_BUFTS set, by this or by the user) it returns at once: the tool goes on
    and calls configure(llama_cpp) before loading a model."""
    if ENV in os.environ:
        return
    argv = sys.argv if argv is None else argv
    cmd = [sys.executable] + list(argv)
    env = dict(os.environ, GGML_NO_BACKTRACE="1")
    rc = None
    for mode in ("on", "off"):
        env[ENV] = mode
        p = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE)
        seen = []
        for raw in p.stderr:  # passed through as it comes, and kept for the buffer names
            line = raw.decode("utf-8", "replace")
            sys.stderr.write(line)
            sys.stderr.flush()
            if line.startswith(_BUFFER_PREFIX):
                seen.append(line)
        rc = p.wait()
        if rc >= 0 or mode == "off":
            break
        sys.stderr.write("%s: llama.cpp was %s; running again with llama.cpp's extra buffer "
                         "types off (use_extra_bufts = false)\n"
                         % (tool, crash_reason(rc, "".join(seen))))
        sys.stderr.flush()
    sys.exit(rc if rc >= 0 else 128 - rc)


# ---- building it on first run ----------------------------------------------------------------------

def fmt_duration(s):
    s = int(round(s))
    return "%ds" % s if s < 60 else "%dm%02ds" % (s // 60, s % 60)


def oracle_version(python):
    """llama_cpp.__version__ in the venv of `python`, or None."""
    if not python or not os.access(python, os.X_OK):
        return None
    try:
        p = subprocess.run([python, "-c", "import llama_cpp; print(llama_cpp.__version__)"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return p.stdout.decode().strip() if p.returncode == 0 else None


def builder_estimate(builder):
    """`builder --estimate`: the seconds the build should take, or None."""
    try:
        p = subprocess.run([builder, "--estimate"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, timeout=120)
        return float(p.stdout.decode().split()[0]) if p.returncode == 0 else None
    except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
        return None


def _last_line(path):
    last = ""
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.strip():
                last = line.strip()
    return last[:197] + "..." if len(last) > 200 else last


def ensure_oracle(python, builder, build, say, who="model_sweep", every_s=30, log_dir=None):
    """llama-cpp-python in the oracle venv whose interpreter is `python`: its version and ''
    when it is there (or was just built), else None and a one-line reason. With `build`,
    a missing one is built by `builder` (tools/setup_ggml): a line with the time it expects,
    then a progress line every `every_s` seconds through `say`; its output goes to a log in
    `log_dir` (default: the temporary directory), kept when the build fails."""
    version = oracle_version(python)
    if version:
        return version, ""
    why = "%s has no llama_cpp" % python
    if not builder or not os.access(builder, os.X_OK):
        return None, why + " (and tools/setup_ggml, which builds it, was not found)"
    expected = builder_estimate(builder)
    about = (", ~%s" % fmt_duration(expected)) if expected else ""
    if not build:
        return None, "%s; not built under --quick (--llama=auto builds it%s once; or run " \
                     "tools/setup_ggml)" % (why, about)
    fd, log = tempfile.mkstemp(prefix="%s-setup-ggml-" % who, suffix=".log", dir=log_dir)
    say("%s: %s; building it with tools/setup_ggml (llama-cpp-python from PyPI, once, into "
        "the cache)%s; log: %s" % (who, why, (": expect ~%s on %d cores" % (
            fmt_duration(expected), os.cpu_count() or 1)) if expected else "", log))
    t0 = time.time()
    with os.fdopen(fd, "w") as out:
        p = subprocess.Popen([builder], stdout=out, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL)
        done = threading.Event()

        def progress():
            while not done.wait(every_s):
                say("%s: still building llama.cpp: %s%s (log: %s)" % (
                    who, fmt_duration(time.time() - t0),
                    (" of ~" + fmt_duration(expected)) if expected else "", log))

        t = threading.Thread(target=progress, daemon=True)
        t.start()
        try:
            rc = p.wait()
        finally:
            done.set()
            if p.poll() is None:  # Ctrl-C: the builder shares our terminal, make sure it ends
                p.terminate()
                p.wait()
    took = fmt_duration(time.time() - t0)
    if rc != 0:
        last = _last_line(log)
        return None, "tools/setup_ggml failed (%s) after %s%s (log: %s)" % (
            describe_returncode(rc), took, (": " + last) if last else "", log)
    version = oracle_version(python)
    if not version:
        return None, "tools/setup_ggml ran (log: %s), but %s" % (log, why)
    os.remove(log)
    say("%s: llama-cpp-python %s built by tools/setup_ggml in %s" % (who, version, took))
    return version, ""


def find_builder(*roots):
    """tools/setup_ggml under the first of `roots` (runfiles, the workspace) that has it."""
    for root in list(roots) + [os.environ.get("BUILD_WORKSPACE_DIRECTORY")]:
        if root:
            p = os.path.join(root, "tools", "setup_ggml")
            if os.access(p, os.X_OK):
                return p
    return None
