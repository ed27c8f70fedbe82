"""//harness:model_sweep — end-to-end speed, memory and quality per weight format.

    tools/bazel run //harness:model_sweep [-- --quick] [-- --help]

For SmolLM2-135M requantized to every format (//runtime:quantize), for a synthetic
TinyLlama-1.1B-shaped model (//runtime:make_synthetic_model) in F32, Q8_0, Q6_K, Q5_K,
Q4_K and Q4_0, and for Gemma 3 270M as llama.cpp's Q4_K_M preset made it (gemma3
architecture, Q4_K / Q5_0 / Q6_K / Q8_0 mixed, tools/fetch_model gemma3), it measures per
file: file size, load time, resident weight bytes, peak RSS,
prefill tok/s (a 128-token prompt) and decode tok/s (64 greedy tokens), for our runtime with
--weights=native and --weights=f32 at 1 and 2 threads, and llama.cpp (llama-cpp-python from
the oracle venv, tools/setup_ggml) on the same file and threads; for SmolLM2 also the mean
log-likelihood per token of a fixed held-out text (harness/model_sweep_heldout.txt: the
opening of Thoreau's Walden, public domain, then prose written for this project; about 6,100
SmolLM2 tokens, scored in chunks of --ll_chunk tokens by both engines) and, per file, our difference from llama.cpp's
with its standard error (paired token by token); the prompts of SmolLM2 and Gemma 3 are the
first tokens of that text.

The llama.cpp column needs llama-cpp-python in the oracle venv: when it is missing, the sweep
builds it first with tools/setup_ggml (minutes, once; --quick only with --llama=auto). If
llama.cpp crashes on a file (ggml 0.25.3's AMX path faults on Xeons with AMX), that
configuration runs again with llama.cpp's extra buffer types off, and its record says why
(llama_crash) and which weight buffers ran (llama_layout).

Every measurement runs in its own process (so peak RSS and load time are per
configuration), after a short warm-up (16-token prompt, 4 decode steps) that pages the
weights in; the reported tok/s are the median of --reps repetitions. Results are written
after every configuration (Ctrl-C keeps what is done) to results.json / results.csv in
reports/e2e-<date>-<cpu>/, then //tools:plot_e2e draws the plots and README.md there.
"""

import argparse
import csv
import datetime
import hashlib
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time

try:
    from tools import llama_peer
except ImportError:  # run from the source tree, not through Bazel
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                    "tools"))
    import llama_peer

SYNTHETIC_FORMATS = ["F32", "Q8_0", "Q6_K", "Q5_K", "Q4_K", "Q4_0"]
QUICK_FORMATS = ["F32", "Q8_0", "Q4_K"]
MODELS = ["smollm2", "synthetic", "gemma3", "presets"]
DEFAULT_MODELS = ["smollm2", "synthetic", "gemma3"]
# --models=presets: llama.cpp's own preset files of SmolLM2 (tools/make_llama_presets, in the
# cache with a manifest), each measured as the file it is; the quality column compares our
# log-likelihood with llama.cpp's on exactly the file llama.cpp wrote.
PRESETS_MODEL = "smollm2-135m-presets"
GEMMA3_FILE = "gemma-3-270m-q4_k_m.gguf"
GEMMA3_FORMAT = "Q4_K_M"  # the file as published: llama.cpp's Q4_K_M mix, not requantized

HERE = os.path.dirname(os.path.abspath(__file__))
RUNFILES_ROOT = os.path.dirname(HERE)  # <runfiles>/fused_kernels under bazel run


def say(msg):
    print(msg, file=sys.stderr, flush=True)


def fail(msg):
    say("model_sweep: " + msg)
    sys.exit(2)


def fk_cache():
    c = os.environ.get("FK_CACHE")
    if c:
        return c
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "fused-kernels")


def workspace_dir():
    return os.environ.get("BUILD_WORKSPACE_DIRECTORY") or os.getcwd()


def user_path(p):
    if os.path.isabs(p):
        return p
    return os.path.join(os.environ.get("BUILD_WORKING_DIRECTORY") or os.getcwd(), p)


def binary(rel):
    p = os.path.join(RUNFILES_ROOT, rel)
    if not os.access(p, os.X_OK):
        fail("%s not found next to this script (run through `tools/bazel run //harness:model_sweep`)" % rel)
    return p


def fmt_s(s):
    if s < 60:
        return "%.0fs" % s
    if s < 3600:
        return "%dm%02ds" % (s // 60, s % 60)
    return "%dh%02dm" % (s // 3600, (s % 3600) // 60)


def parse_list(flag, value, allowed=None, cast=str):
    out = []
    for part in value.split(","):
        part = part.strip()
        if not part:
            continue
        if allowed is not None:
            match = [a for a in allowed if a.lower() == part.lower()]
            if not match:
                fail("--%s=%s: '%s' is not one of %s" % (flag, value, part, ",".join(allowed)))
            part = match[0]
        try:
            v = cast(part)
        except ValueError:
            fail("--%s=%s: '%s' is not valid" % (flag, value, part))
        if v not in out:
            out.append(v)
    if not out:
        fail("--%s is empty" % flag)
    return out


def parse_args(argv):
    ap = argparse.ArgumentParser(
        prog="model_sweep", description=__doc__.split("\n\n", 2)[2].split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Regenerate the committed run with one command: tools/bazel run //harness:model_sweep")
    ap.add_argument("--formats", default="",
                    help="comma-separated formats (default: SmolLM2 every format of the table, "
                         "kernels/formats.inc; the synthetic model %s; --quick: %s)" %
                         (",".join(SYNTHETIC_FORMATS), ",".join(QUICK_FORMATS)))
    ap.add_argument("--presets", default="",
                    help="with --models=presets: comma-separated preset names of the "
                         "manifest (default every one, e.g. Q4_K_M,Q3_K_S,IQ4_XS)")
    ap.add_argument("--models", default=",".join(DEFAULT_MODELS),
                    help="any of %s (default %s); presets: llama.cpp's own preset files of "
                         "SmolLM2 (tools/make_llama_presets); --formats applies to the first two, "
                         "gemma3 is its one %s file" % (", ".join(MODELS), ",".join(DEFAULT_MODELS),
                                                        GEMMA3_FORMAT))
    ap.add_argument("--threads", default="",
                    help="comma-separated thread counts, 'all' = every core (default 1,all; "
                         "--quick: all)")
    ap.add_argument("--weights", default="native,f32",
                    help="our runtime's weight modes: native (quantized, fused kernels) and/or "
                         "f32 (dequantized at load, the seed's 'before'); default both")
    ap.add_argument("--reps", type=int, default=0,
                    help="timed repetitions per configuration, median reported (default 3; "
                         "--quick: 1)")
    ap.add_argument("--prompt_tokens", type=int, default=0, help="prompt length (default 128)")
    ap.add_argument("--decode_tokens", type=int, default=0, help="decoded tokens (default 64)")
    ap.add_argument("--synthetic_shape", default="",
                    help="1.1b (TinyLlama-1.1B, default) or tiny (--quick)")
    ap.add_argument("--llama", default="",
                    help="the llama.cpp column: auto (default) = build llama-cpp-python with "
                         "tools/setup_ggml if it is missing (minutes, once); cached (--quick's "
                         "default) = only if already built; off")
    ap.add_argument("--no_llama", action="store_true", help="skip llama.cpp (= --llama=off)")
    ap.add_argument("--no_bandwidth", action="store_true",
                    help="skip the DRAM read-bandwidth probe")
    ap.add_argument("--settle_s", type=float, default=60,
                    help="before the DRAM probes at the start and the end, wait at most this many "
                         "seconds for a quiet machine (default 60; 0 = no wait); shares of DRAM "
                         "are given only once a probe was taken on a quiet machine")
    ap.add_argument("--quick", action="store_true",
                    help="a small run: formats %s, the tiny synthetic model, all cores only, 1 "
                         "rep, 32-token prompt, 16 decoded tokens" % ",".join(QUICK_FORMATS))
    ap.add_argument("--ll_chunk", type=int, default=512,
                    help="the held-out text is scored in chunks of this many tokens, each from "
                         "an empty cache, by both engines (default 512)")
    ap.add_argument("--out", default="",
                    help="output directory (default reports/e2e-<date>-<cpu>/ in the workspace; "
                         "--quick: reports/e2e-quick-<date>-<cpu>/)")
    ap.add_argument("--timeout", type=float, default=1800,
                    help="seconds before one configuration is abandoned (default 1800)")
    a = ap.parse_args(argv)
    cores = os.cpu_count() or 1
    a.models = parse_list("models", a.models, MODELS)
    if a.presets and "presets" not in a.models:
        fail("--presets=%s needs --models=presets" % a.presets)
    a.weights = parse_list("weights", a.weights, ["native", "f32"])
    a.threads = [cores if t.lower() == "all" else t for t in
                 parse_list("threads", a.threads or ("all" if a.quick else "1,all"))]
    try:
        a.threads = sorted(set(int(t) for t in a.threads))
    except ValueError:
        fail("--threads: expected integers or 'all'")
    if any(t < 1 or t > 1024 for t in a.threads):
        fail("--threads: counts must be in [1, 1024]")
    if a.no_llama:
        a.llama = "off"
    a.llama = a.llama or ("cached" if a.quick else "auto")
    if a.llama not in ("auto", "cached", "off"):
        fail("--llama=%s: expected auto, cached or off" % a.llama)
    a.reps = a.reps or (1 if a.quick else 3)
    a.prompt_tokens = a.prompt_tokens or (32 if a.quick else 128)
    a.decode_tokens = a.decode_tokens or (16 if a.quick else 64)
    a.synthetic_shape = a.synthetic_shape or ("tiny" if a.quick else "1.1b")
    if a.synthetic_shape not in ("1.1b", "tiny"):
        fail("--synthetic_shape=%s: expected 1.1b or tiny" % a.synthetic_shape)
    if a.reps < 1 or a.reps > 100:
        fail("--reps must be in [1, 100]")
    if not 2 <= a.prompt_tokens <= 1024 or not 2 <= a.decode_tokens <= 1024:
        fail("--prompt_tokens and --decode_tokens must be in [2, 1024]")
    if not 2 <= a.ll_chunk <= 8192:
        fail("--ll_chunk=%d: expected a chunk of 2 to 8192 tokens" % a.ll_chunk)
    return a


# ---- Running workers -----------------------------------------------------------------------

class WorkerError(Exception):
    pass


def parse_json(p, what, note=""):
    """The JSON (last stdout line) of a finished worker. Raises WorkerError with a reason."""
    err = p.stderr.decode("utf-8", "replace").strip()
    if p.returncode != 0:
        if p.returncode < 0:
            reason = "killed by signal %s" % signal.Signals(-p.returncode).name
        else:
            reason = "exit code %d" % p.returncode
        lines = [l for l in err.splitlines()
                 if l.strip() and not l.startswith("llama_peer: weights in ")]
        ggml = [re.sub(r"^.*/(ggml/src/)", r"\1", l) for l in lines
                if "GGML_ASSERT" in l or "fatal error" in l]
        tail = " | ".join(ggml[-1:] + lines[-2:])
        raise WorkerError("%s: %s%s%s" % (what, reason, (": " + tail) if tail else "",
                                          (" (" + note + ")") if note else ""))
    lines = [l for l in p.stdout.decode("utf-8", "replace").splitlines() if l.strip()]
    try:
        return json.loads(lines[-1])
    except (IndexError, ValueError):
        raise WorkerError("%s: no JSON result on stdout" % what)


def probe_machine(worker, threads, settle_s, reason, earlier=None):
    """The worker's --machine run: describes the machine and, for each thread count, waits
    (at most settle_s) for a quiet machine and probes DRAM by harness/machine.h's roofline
    rule; `earlier` probes of this run count towards the best. Progress goes to stderr."""
    cmd = [worker, "--machine", "--bandwidth_threads=" + ",".join(str(t) for t in threads),
           "--settle_s=%g" % settle_s, "--reason=" + reason]
    tmp = None
    if earlier:
        fd, tmp = tempfile.mkstemp(prefix="fk-dram-probes-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(earlier, f)
        cmd.append("--probes_in=" + tmp)
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, timeout=600 + settle_s)
    except subprocess.TimeoutExpired:
        raise WorkerError("machine probe: timed out")
    finally:
        if tmp:
            os.unlink(tmp)
    if p.returncode != 0:
        raise WorkerError("machine probe: exit code %d" % p.returncode)
    lines = [l for l in p.stdout.decode("utf-8", "replace").splitlines() if l.strip()]
    try:
        return json.loads(lines[-1])
    except (IndexError, ValueError):
        raise WorkerError("machine probe: no JSON result on stdout")


def run_json(cmd, timeout, what):
    """Runs a worker, returns its JSON (last stdout line). Raises WorkerError with a reason."""
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                           env=dict(os.environ, GGML_NO_BACKTRACE="1"))
    except subprocess.TimeoutExpired:
        raise WorkerError("%s: timed out after %.0f s" % (what, timeout))
    return parse_json(p, what)


def run_llama_json(cmd, timeout, what):
    """Runs llama.cpp's worker through llama_peer.run (again with extra buffer types off if
    it crashes). Returns (its JSON, fields for the record: llama_extra_bufts, llama_layout,
    llama_crash); raises WorkerError with a reason."""
    try:
        o = llama_peer.run(cmd, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise WorkerError("%s: timed out after %.0f s" % (what, timeout))
    return parse_json(o, what, o.note()), o.record()


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def tensor_types(path):
    """{type name: tensor count} of a GGUF file, from its header (gguf-py)."""
    try:
        import gguf
        r = gguf.GGUFReader(path)
        out = {}
        for t in r.tensors:
            out[t.tensor_type.name] = out.get(t.tensor_type.name, 0) + 1
        return out
    except Exception as e:  # informative only
        return {"error": str(e)}


def prepare_smollm2(formats, quantize_bin):
    src = os.path.join(fk_cache(), "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
    if not os.path.isfile(src):
        fail("%s is missing: run tools/fetch_model (tools/bazel does it for you)" % src)
    d = os.path.join(fk_cache(), "e2e", "smollm2-135m")
    os.makedirs(d, exist_ok=True)
    st = os.stat(src)
    stamp = "%s %d %s" % (sha256_file(quantize_bin), st.st_size, os.path.basename(src))
    files = {}
    for f in formats:
        out = os.path.join(d, "SmolLM2-135M-Instruct.%s.gguf" % f)
        stamp_path = out + ".stamp"
        fresh = os.path.isfile(out) and os.path.isfile(stamp_path) and \
            open(stamp_path).read() == stamp
        if not fresh:
            say("model_sweep: quantizing SmolLM2 to %s" % f)
            t0 = time.time()
            p = subprocess.run([quantize_bin, "--in=" + src, "--out=" + out, "--type=" + f],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            if p.returncode != 0:
                fail("quantizing to %s failed: %s" % (f, p.stderr.decode().strip()))
            summary = p.stdout.decode().strip().splitlines()
            for line in summary:
                say("    " + line)
            with open(stamp_path, "w") as s:
                s.write(stamp)
            say("model_sweep: %s written in %.1f s" % (out, time.time() - t0))
        files[f] = out
    return src, files


def gemma3_path():
    path = os.path.join(fk_cache(), "models", GEMMA3_FILE)
    if not os.path.isfile(path):
        fail("%s is missing: run tools/fetch_model gemma3 (tools/bazel does it for you)" % path)
    return path


def prepare_presets(names):
    """[(preset, path)] of llama.cpp's SmolLM2 presets in the cache's manifest, in manifest
    order (only `names` when given)."""
    d = os.path.join(fk_cache(), "models", "llama-presets")
    manifest = os.path.join(d, "manifest.json")
    if not os.path.isfile(manifest):
        fail("%s is missing: run tools/make_llama_presets (tools/bazel does it for you)" % manifest)
    with open(manifest) as f:
        presets = json.load(f).get("presets", [])
    known = [p["preset"] for p in presets]
    want = parse_list("presets", names, known) if names else known
    out = []
    for p in presets:
        if p["preset"] not in want:
            continue
        path = os.path.join(d, p["file"])
        if not os.path.isfile(path):
            fail("%s (preset %s in %s) is missing: run tools/make_llama_presets" %
                 (path, p["preset"], manifest))
        out.append((p["preset"], path))
    return out


def bits_per_weight(path):
    """Bits per weight of a file's matrices (2-D tensors: every matmul weight and the
    embedding): 8 x their bytes / their elements, from gguf-py. None if it cannot be read."""
    try:
        import gguf
        r = gguf.GGUFReader(path)
        nbytes = elems = 0
        for t in r.tensors:
            if len(t.shape) == 2:
                nbytes += int(t.n_bytes)
                elems += int(t.n_elements)
        return 8.0 * nbytes / elems if elems else None
    except Exception:  # informative only
        return None


def prepare_synthetic(formats, shape, gen_bin):
    say("model_sweep: synthetic %s model in %s (generated once, then cached)" %
        (shape, ",".join(formats)))
    p = subprocess.run([gen_bin, "--formats=" + ",".join(formats), "--shape=" + shape],
                       stdout=subprocess.PIPE)
    if p.returncode != 0:
        fail("make_synthetic_model failed (exit code %d)" % p.returncode)
    files = {}
    for line in p.stdout.decode().splitlines():
        parts = line.split()
        if len(parts) == 3:
            files[parts[0]] = parts[1]
    missing = [f for f in formats if f not in files]
    if missing:
        fail("make_synthetic_model did not report %s" % ",".join(missing))
    return files


def synthetic_ids(n, vocab, seed):
    # Deterministic ids past the specials and byte tokens (BOS first).
    ids, x = [1], seed
    while len(ids) < n:
        x = (x * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        ids.append(259 + (x >> 33) % (vocab - 259))
    return ids


def median(xs):
    return statistics.median(xs) if xs else None


def paired_loglik(ours, theirs):
    """Mean and standard error of ours[i] - theirs[i]: the two engines' log-likelihoods of the
    same tokens in the same contexts, so their difference is paired token by token (its
    spread is far below either engine's own spread over the text). The standard error treats
    the tokens as independent, as llama.cpp's perplexity tool does."""
    if not ours or len(ours) != len(theirs) or len(ours) < 2:
        return None
    d = [a - b for a, b in zip(ours, theirs)]
    return {"diff": statistics.fmean(d), "se": statistics.stdev(d) / len(d) ** 0.5,
            "tokens": len(d)}


# ---- Output ----------------------------------------------------------------------------------

CSV_FIELDS = ["model", "format", "engine", "weights", "threads", "status", "llama_layout",
              "llama_crash", "file_bytes",
              "load_s", "weight_bytes", "peak_rss_bytes", "prompt_tokens", "decode_tokens",
              "prefill_tok_s", "decode_tok_s", "prefill_tok_s_min", "prefill_tok_s_max",
              "decode_tok_s_min", "decode_tok_s_max", "mean_loglik", "loglik_tokens",
              "loglik_vs_llama", "loglik_vs_llama_se", "loadavg_before", "wall_s", "tensor_types", "file"]


def write_results(out_dir, doc):
    tmp = os.path.join(out_dir, "results.json.tmp")
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1)
    os.replace(tmp, os.path.join(out_dir, "results.json"))
    tmp = os.path.join(out_dir, "results.csv.tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
        w.writeheader()
        for r in doc["records"]:
            row = dict(r)
            row["tensor_types"] = " ".join("%s:%s" % kv for kv in sorted(r.get("tensor_types", {}).items()))
            pair = r.get("loglik_vs_llama") or {}
            row["loglik_vs_llama"], row["loglik_vs_llama_se"] = pair.get("diff"), pair.get("se")
            w.writerow(row)
    os.replace(tmp, os.path.join(out_dir, "results.csv"))


def short_cpu(name):
    s = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    s = re.sub(r"-(processor|cpu|with.*|\d+-core.*)$", "", s)
    return s or "cpu"


def git_commit():
    try:
        ws = workspace_dir()
        c = subprocess.run(["git", "-C", ws, "rev-parse", "--short=12", "HEAD"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout.decode().strip()
        dirty = subprocess.run(["git", "-C", ws, "status", "--porcelain", "--untracked-files=no"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout.strip()
        return (c + ("-dirty" if dirty else "")) if c else "unknown"
    except OSError:
        return "unknown"


# ---- Main --------------------------------------------------------------------------------------

def main(argv):
    a = parse_args(argv)
    worker = binary("harness/model_sweep_worker")
    quantize_bin = binary("runtime/quantize")
    gen_bin = binary("runtime/make_synthetic_model")
    llama_py = os.path.join(HERE, "model_sweep_llama.py")
    oracle = os.path.join(fk_cache(), "oracle-venv", "bin", "python")
    heldout_path = os.path.join(HERE, "model_sweep_heldout.txt")

    # The format table (kernels/formats.inc), from the worker: the formats there are, in order.
    format_table = run_json([worker, "--format_table"], 60, "format table")
    all_formats = [f["name"] for f in format_table]
    a.formats = parse_list("formats", a.formats, all_formats) if a.formats else None

    # Machine.
    say("model_sweep: describing the machine%s" %
        ("" if a.no_bandwidth else " and measuring DRAM read bandwidth"))
    machine = probe_machine(worker, [] if a.no_bandwidth else a.threads, a.settle_s, "start")
    machine["git_commit"] = git_commit()
    machine["python"] = platform.python_version()
    today = datetime.date.today().isoformat()
    out_dir = user_path(a.out) if a.out else os.path.join(
        workspace_dir(), "reports",
        "e2e-%s%s-%s" % ("quick-" if a.quick else "", today, short_cpu(machine.get("cpu_model", "cpu"))))
    os.makedirs(out_dir, exist_ok=True)

    llama_ok, llama_why = False, ""
    if a.llama == "off":
        llama_why = "--llama=off"
    else:
        # Built here first if it is missing (--llama=auto): tools/setup_ggml from the runfiles.
        version, llama_why = llama_peer.ensure_oracle(
            oracle, llama_peer.find_builder(RUNFILES_ROOT), a.llama == "auto", say)
        if version:
            llama_ok = True
            machine["llama_cpp_version"] = version
    if not llama_ok:
        say("model_sweep: llama.cpp columns skipped: " + llama_why)

    # Files.
    plans = []  # (model name, format, path, prompt ids, ll ids)
    if "smollm2" in a.models:
        fmts = a.formats or (QUICK_FORMATS if a.quick else all_formats)
        src, files = prepare_smollm2(fmts, quantize_bin)
        toks = run_json([worker, "--model=" + files[fmts[0]], "--tokenize_file=" + heldout_path],
                        600, "tokenizing the held-out text")["ids"]
        if len(toks) < a.prompt_tokens:
            fail("held-out text has %d tokens, fewer than --prompt_tokens=%d" %
                 (len(toks), a.prompt_tokens))
        ll = toks[: a.ll_chunk] if a.quick else toks  # --quick: one chunk
        for f in fmts:
            plans.append(("smollm2-135m", f, files[f], toks[: a.prompt_tokens], ll))
    if "synthetic" in a.models:
        fmts = a.formats or (QUICK_FORMATS if a.quick else SYNTHETIC_FORMATS)
        files = prepare_synthetic(fmts, a.synthetic_shape, gen_bin)
        vocab = 32000 if a.synthetic_shape == "1.1b" else 1024
        ids = synthetic_ids(a.prompt_tokens, vocab, 12345)
        name = "synthetic-1.1b" if a.synthetic_shape == "1.1b" else "synthetic-tiny"
        for f in fmts:
            plans.append((name, f, files[f], ids, None))
    if "presets" in a.models:
        presets = prepare_presets(a.presets)
        toks = run_json([worker, "--model=" + presets[0][1], "--tokenize_file=" + heldout_path],
                        600, "tokenizing the held-out text (presets)")["ids"]
        if len(toks) < a.prompt_tokens:
            fail("held-out text has %d tokens, fewer than --prompt_tokens=%d" %
                 (len(toks), a.prompt_tokens))
        ll = toks[: a.ll_chunk] if a.quick else toks
        for name, path in presets:
            plans.append((PRESETS_MODEL, name, path, toks[: a.prompt_tokens], ll))
    if "gemma3" in a.models:
        path = gemma3_path()
        toks = run_json([worker, "--model=" + path, "--tokenize_file=" + heldout_path],
                        600, "tokenizing the held-out text (Gemma 3)")["ids"]
        if len(toks) < a.prompt_tokens:
            fail("held-out text has %d Gemma 3 tokens, fewer than --prompt_tokens=%d" %
                 (len(toks), a.prompt_tokens))
        # No log-likelihood run: llama.cpp would keep 262,144 logits per held-out token,
        # which would dominate its peak RSS (its quality is //runtime:gemma3_golden_test's).
        plans.append(("gemma3-270m", GEMMA3_FORMAT, path, toks[: a.prompt_tokens], None))

    # Configurations, grouped by file so each file's pages are read once.
    configs = []
    for model, f, path, prompt, ll in plans:
        for w in a.weights:
            for i, t in enumerate(a.threads):
                configs.append((model, f, path, prompt, ll if i == 0 else None, "ours", w, t))
        if llama_ok:
            for i, t in enumerate(a.threads):
                configs.append((model, f, path, prompt, ll if i == 0 else None, "llama.cpp", None, t))

    doc = {
        "kind": "model_sweep",
        "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": "tools/bazel run //harness:model_sweep" + (" -- " + " ".join(argv) if argv else ""),
        "machine": machine,
        "format_table": format_table,
        "settings": {
            "threads": a.threads, "reps": a.reps, "prompt_tokens": a.prompt_tokens,
            "decode_tokens": a.decode_tokens, "warmup_prompt": 16, "warmup_decode": 4,
            "weights": a.weights, "synthetic_shape": a.synthetic_shape, "quick": a.quick,
            "llama_cpp": llama_ok, "llama_cpp_skipped_because": llama_why,
            "llama_cpp_fallback": "a configuration where llama.cpp is killed by a signal runs "
                                  "again with its extra buffer types off (use_extra_bufts = "
                                  "false); llama_crash says why, llama_layout which weight "
                                  "buffers ran (plain: only the file's mapping)",
            "heldout_text": "harness/model_sweep_heldout.txt", "loglik_chunk": a.ll_chunk,
        },
        "records": [],
    }
    say("model_sweep: %d configurations -> %s" % (len(configs), out_dir))

    def cost(c):
        params = os.path.getsize(c[2]) / (4.0 if c[1] == "F32" else 0.6)
        if c[0] == "gemma3-270m":
            params *= 0.3  # the 178 MB embedding is read for one row per token (and the head)
        return params * (a.reps + 0.5) * (a.prompt_tokens + 4 * a.decode_tokens) / c[7] ** 0.7

    total_cost = sum(cost(c) for c in configs)
    done_cost, t_start = 0.0, time.time()
    interrupted = False
    file_sizes, types_cache, bpw_cache = {}, {}, {}
    # Per-token log-likelihoods by (model, format, engine, weights), kept out of results.json
    # (thousands of numbers per record); each of our records gets its paired difference from
    # llama.cpp's on the same file (loglik_vs_llama) once both have run.
    lls, ll_recs = {}, {}
    try:
        for n, (model, f, path, prompt, ll, engine, w, t) in enumerate(configs, 1):
            if path not in types_cache:
                types_cache[path] = tensor_types(path)
                file_sizes[path] = os.path.getsize(path)
                bpw_cache[path] = bits_per_weight(path)
            rec = {"model": model, "format": f, "engine": engine, "weights": w, "threads": t,
                   "file": path, "file_bytes": file_sizes[path], "tensor_types": types_cache[path],
                   "bits_per_weight": bpw_cache[path],
                   "loadavg_before": round(os.getloadavg()[0], 2)}
            common = ["--model=" + path, "--threads=%d" % t,
                      "--prompt_ids=" + ",".join(map(str, prompt)),
                      "--decode_tokens=%d" % a.decode_tokens, "--reps=%d" % a.reps,
                      "--warmup_prompt=16", "--warmup_decode=4"]
            if ll:
                common += ["--ll_ids=" + ",".join(map(str, ll)), "--ll_chunk=%d" % a.ll_chunk]
            if engine == "ours":
                # A DRAM probe beside each timed repetition (model_sweep_worker.cc).
                cmd = [worker, "--weights=" + w] + common + ([] if a.no_bandwidth else ["--adjacent_probe"])
            else:
                cmd = [oracle, llama_py] + common
            label = "%s %s %s%s t=%d" % (model, f, engine, (" " + w) if w else "", t)
            t0 = time.time()
            try:
                if engine == "ours":
                    res = run_json(cmd, a.timeout, label)
                else:
                    res, fallback = run_llama_json(cmd, a.timeout, label)
                    rec.update(fallback)
                rec["status"] = "ok"
                for k in ("load_s", "weight_bytes", "peak_rss_bytes", "prompt_tokens",
                          "decode_tokens", "mean_loglik", "loglik_tokens", "generated_ids",
                          "prefill_tok_s_all", "decode_tok_s_all", "llama_cpp_version",
                          "kernels", "formats", "rss_after_load_bytes", "system_info",
                          "profile_prefill", "profile_decode", "dram_adjacent_gbs",
                          "dram_adjacent_gbs_all"):
                    if k in res:
                        rec[k] = res[k]
                if res.get("loglik_all"):
                    lls[(model, f, engine, w)] = res["loglik_all"]
                    ll_recs[(model, f, engine, w)] = rec
                    rec["loglik_chunk"] = res.get("loglik_chunk")
                    theirs = lls.get((model, f, "llama.cpp", None))
                    for (m2, f2, e2, w2), ours in lls.items():
                        if (m2, f2, e2) == (model, f, "ours") and theirs is not None:
                            ll_recs[(m2, f2, e2, w2)]["loglik_vs_llama"] = paired_loglik(ours, theirs)
                for k in ("prefill", "decode"):
                    xs = res.get(k + "_tok_s_all") or []
                    rec[k + "_tok_s"] = median(xs)
                    rec[k + "_tok_s_min"] = min(xs) if xs else None
                    rec[k + "_tok_s_max"] = max(xs) if xs else None
                msg = "prefill %7.1f tok/s  decode %6.2f tok/s  weights %7.1f MB  RSS %7.1f MB  load %5.2fs" % (
                    rec["prefill_tok_s"] or 0, rec["decode_tok_s"] or 0,
                    rec.get("weight_bytes", 0) / 1e6, rec.get("peak_rss_bytes", 0) / 1e6,
                    rec.get("load_s", 0))
                if rec.get("mean_loglik") is not None:
                    msg += "  LL %.4f" % rec["mean_loglik"]
                if rec.get("llama_crash"):
                    msg += "  [first run %s; ran with extra buffer types off]" % rec["llama_crash"]
            except WorkerError as e:
                rec["status"] = "failed: " + str(e).split(": ", 1)[-1]
                msg = rec["status"]
            rec["wall_s"] = round(time.time() - t0, 2)
            doc["records"].append(rec)
            write_results(out_dir, doc)
            done_cost += cost(configs[n - 1])
            elapsed = time.time() - t_start
            eta = elapsed / done_cost * (total_cost - done_cost) if done_cost else 0
            say("[%3d/%d] %-42s %s | %s elapsed, ETA ~%s" %
                (n, len(configs), label, msg, fmt_s(elapsed), fmt_s(eta)))
    except KeyboardInterrupt:
        interrupted = True
        say("\nmodel_sweep: interrupted; %d results kept in %s" % (len(doc["records"]), out_dir))
    if not interrupted and not a.no_bandwidth:
        # The probe again at the end (after the same wait for a quiet machine); the roofline
        # is the best probe of the run, trusted once one was quiet (harness/machine.h).
        say("model_sweep: measuring DRAM read bandwidth again")
        try:
            end = probe_machine(worker, a.threads, a.settle_s, "end", machine.get("dram_probes"))
            for key in ("dram_probes", "dram_read_gbs", "dram_read_trusted"):
                machine[key] = end.get(key, machine.get(key))
            machine["dram_settle_end"] = end.get("dram_settle")
        except WorkerError as e:
            say("model_sweep: " + str(e))
    doc["wall_s"] = round(time.time() - t_start, 1)
    doc["complete"] = not interrupted
    write_results(out_dir, doc)
    say("model_sweep: results in %s (%s)" % (out_dir, fmt_s(time.time() - t_start)))
    try:
        from tools import plot_e2e
        plot_e2e.main([out_dir])
    except ImportError as e:
        say("model_sweep: plots skipped (%s); run tools/bazel run //tools:plot_e2e -- %s" % (e, out_dir))
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
