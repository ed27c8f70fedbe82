#!/usr/bin/env python3
"""Large randomized cross-check of kernels/quants_ref.cc against ggml (developer-side).

    tools/golden/crosscheck.py [--blocks N] [--seed S]

The golden files hold a few dozen blocks per format, enough to pin the algorithms but not
the last-bit evaluation order of the K-quant scale searches (a reordering there changes
roughly one block in a few hundred). This compiles kernels/quants_ref.cc and
kernels/formats.cc into a temporary shared library with the project's floating-point flags
and compares its quantize_row_*_ref byte for byte with ggml's on N random blocks per format
(several distributions), and its dequantize_row_*_ref bit for bit with gguf-py. Runs with
the oracle venv (re-execs itself like tools/make_golden). Exit status 1 on any mismatch.
"""

import argparse
import ctypes
import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CACHE = Path(os.environ.get("FK_CACHE") or
             Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fused-kernels")
ORACLE_PYTHON = CACHE / "oracle-venv" / "bin" / "python"

if importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("gguf") is None:
    if ORACLE_PYTHON.exists() and Path(sys.prefix).resolve() != ORACLE_PYTHON.parents[1].resolve():
        os.execv(str(ORACLE_PYTHON), [str(ORACLE_PYTHON), __file__, *sys.argv[1:]])
    sys.stderr.write(f"crosscheck: llama_cpp and gguf are needed; {ORACLE_PYTHON} not found "
                     "(run tools/setup_ggml first)\n")
    sys.exit(2)

import numpy as np  # noqa: E402

from importlib.machinery import SourceFileLoader  # noqa: E402

# tools/make_golden has no .py suffix; load it as a module for its oracles and distributions.
_loader = SourceFileLoader("make_golden", str(ROOT / "tools" / "make_golden"))
make_golden = importlib.util.module_from_spec(importlib.util.spec_from_loader("make_golden", _loader))
_loader.exec_module(make_golden)


def build_ours(tmp):
    so = Path(tmp) / "libquants_ref.so"
    cmd = ["c++", "-std=c++17", "-O3", "-ffp-contract=off", "-fno-fast-math", "-fPIC", "-shared",
           f"-I{ROOT}", str(ROOT / "kernels" / "quants_ref.cc"), str(ROOT / "kernels" / "formats.cc"),
           "-o", str(so), "-labsl_strings"]
    subprocess.run(cmd, check=True)
    return ctypes.CDLL(str(so))


def demangled_symbols(lib):
    """{demangled name: mangled name} of the library's exported symbols."""
    mangled = [line.split()[-1] for line in subprocess.run(
        ["nm", "-D", "--defined-only", lib._name], capture_output=True, text=True,
        check=True).stdout.splitlines()]
    demangled = subprocess.run(["c++filt"], input="\n".join(mangled), capture_output=True,
                               text=True, check=True).stdout.splitlines()
    return dict(zip(demangled, mangled))


def our_fn(lib, symbols, prefix, name):
    """fk::<prefix>_<name>_ref(const float*/void*, void*/float*, int64_t) from our library."""
    want = f"fk::{prefix}_{name.lower().replace('_k', '_K')}_ref("
    for demangled, sym in symbols.items():
        if demangled.startswith(want):
            fn = getattr(lib, sym)
            fn.restype = None
            fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
            return fn
    raise SystemExit(f"crosscheck: {want} not found in {lib._name}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--blocks", type=int, default=20000, help="random blocks per format")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if args.blocks <= 0:
        ap.error("--blocks must be positive")

    ggml = make_golden.Ggml()
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        ours = build_ours(tmp)
        symbols = demangled_symbols(ours)
        for name, _, block_elems, block_bytes in make_golden.FORMATS:
            quant = our_fn(ours, symbols, "quantize_row", name)
            dequant = our_fn(ours, symbols, "dequantize_row", name)
            rng = np.random.default_rng(args.seed)
            dists = range(1, 17)  # the plain distributions (17 is a selection, not a generator)
            k = max(block_elems, 32)
            bad_q = bad_d = 0
            for b in range(args.blocks):
                x = make_golden.make_row(dists[b % len(dists)], k, rng)
                want = ggml.quantize(name, x.reshape(1, k), k // block_elems * block_bytes)[0]
                got = np.zeros_like(want)
                quant(x.ctypes.data, got.ctypes.data, k)
                if not np.array_equal(got, want):
                    bad_q += 1
                want_y = make_golden.dequantize(name, want.reshape(1, -1), k)[0].astype(np.float32)
                got_y = np.empty(k, dtype=np.float32)
                dequant(want.ctypes.data, got_y.ctypes.data, k)
                if not np.array_equal(got_y.view(np.uint32), want_y.view(np.uint32)):
                    bad_d += 1
            print(f"{name}: {args.blocks} blocks, quantize mismatches {bad_q}, "
                  f"dequantize mismatches {bad_d}")
            failures += bad_q + bad_d
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
