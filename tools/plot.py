"""Plots and the summary README of //harness:sweep runs.

    tools/bazel run //tools:plot -- reports/<run> [more runs...] [--readme=PATH]

For each run directory (holding the sweep's results.json) writes the PNGs next to it:
  gemv_bandwidth.png   batch-1 weight GB/s per format and kernel against the DRAM roofline
  speedup.png          speedup over F32 weights and over dequantize-then-matmul, per format
  memory.png           weight bytes per format against F32
  gflops_vs_batch.png  GFLOP/s versus batch, per format (ours, baselines, ggml)
  error.png            error versus the float64 reference, per format and path
  vs_ggml.png          this project versus ggml, per format and batch
and regenerates the README of the reports directory (the parent of the run directories,
when it is called "reports", or --readme): the tables behind the plots for every run found
there, newest first, with the images. Nothing in it is typed by hand.
"""

import argparse
import datetime
import json
import math
import os
import re
import statistics
import sys
import tempfile
from collections import Counter, defaultdict

# Under Bazel $HOME may not be writable; matplotlib only needs a cache directory.
os.environ.setdefault("MPLCONFIGDIR", os.path.join(tempfile.gettempdir(), "fk-matplotlib"))
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

VARIANT_ORDER = ["scalar", "avx2", "avx512", "avx512_vnni", "amx"]
VARIANT_COLORS = {
    "scalar": "#9e9e9e",
    "avx2": "#1f77b4",
    "avx512": "#2ca02c",
    "avx512_vnni": "#17becf",
    "amx": "#9467bd",
    "ggml": "#d62728",
    "dequant": "#ff7f0e",
    "f32": "#7f7f7f",
}
PNGS = [
    ("gemv_bandwidth.png", "Batch-1 (GEMV) weight bandwidth against the DRAM roofline"),
    ("speedup.png", "Speedup over F32 weights and over dequantize-then-matmul"),
    ("memory.png", "Weight memory per format against F32"),
    ("gflops_vs_batch.png", "GFLOP/s versus batch"),
    ("error.png", "Error versus the float64 reference"),
    ("vs_ggml.png", "This project versus ggml"),
]


# ---- loading and summarizing ------------------------------------------------------------


class Run:
    """One sweep run: its machine, run info and the successful case records."""

    def __init__(self, directory):
        self.dir = os.path.abspath(directory)
        path = os.path.join(self.dir, "results.json")
        try:
            with open(path) as f:
                doc = json.load(f)
        except OSError as e:
            raise SystemExit(f"plot: cannot read {path}: {e.strerror}")
        except json.JSONDecodeError as e:
            raise SystemExit(f"plot: {path} is not valid JSON: {e}")
        if doc.get("schema") != "fused-kernels-sweep/1":
            raise SystemExit(f"plot: {path}: unknown schema {doc.get('schema')!r}")
        self.machine = doc["machine"]
        self.run = doc["run"]
        self.all_cases = doc["cases"]
        self.interleaved = doc.get("interleaved_shares")  # sweep --share_rounds (None before)
        self.cases = [c for c in doc["cases"] if "error" not in c and c.get("median_s")]
        self.name = os.path.basename(self.dir)
        self.threads = sorted({c["threads"] for c in self.cases})
        self.tmax = max(self.threads) if self.threads else 1
        # Formats in the order of the run's own table (kernels/formats.inc, written by the sweep).
        table = doc.get("format_table")
        if not isinstance(table, list) or not table:
            raise SystemExit(f"plot: {path} has no format_table (written by //harness:sweep)")
        self.format_table = {f["name"]: f for f in table}
        self.formats = [f["name"] for f in table if any(c["format"] == f["name"] for c in self.cases)]
        self.batches = sorted({c["m"] for c in self.cases})
        self.shapes = sorted({(c["n"], c["k"]) for c in self.cases}, key=lambda s: (s[0] * s[1], s))

    # Lookups.
    def select(self, **kw):
        return [c for c in self.cases if all(c.get(k) == v for k, v in kw.items())]

    def best_fused(self, fmt, n, k, m, t):
        """Fastest of our kernels for (format, shape, batch, threads), or None."""
        cs = self.select(kind="fused", format=fmt, n=n, k=k, m=m, threads=t)
        return min(cs, key=lambda c: c["median_s"]) if cs else None

    def one(self, kind, fmt, n, k, m, t):
        cs = self.select(kind=kind, format=fmt, n=n, k=k, m=m, threads=t)
        return min(cs, key=lambda c: c["median_s"]) if cs else None

    def dram(self, t):
        return self.machine.get("dram_read_gbps", {}).get(str(t))

    def dram_trusted(self, t):
        """Whether a DRAM probe with t threads was taken on a quiet machine (runs from before
        the sweep recorded it: assumed)."""
        return bool(self.machine.get("dram_read_trusted", {}).get(str(t), True))

    def likwid(self, t):
        """likwid-bench's streaming-load figure with t threads in GB/s, or None."""
        return (self.machine.get("likwid_bench") or {}).get("gbps", {}).get(str(t))

    def likwid_test(self):
        for r in (self.machine.get("likwid_bench") or {}).get("runs", []):
            parts = r.get("command", "").split()
            if "-t" in parts and parts.index("-t") + 1 < len(parts):
                return parts[parts.index("-t") + 1]
        return "load"

    def dram_text(self, digits=0):
        """'1T 14, 2T 28 GB/s' (a '≥' where no probe was quiet), with likwid-bench's beside."""
        m = self.machine
        ts = sorted(int(t) for t in m.get("dram_read_gbps", {}))
        if not ts:
            return "DRAM read not measured"
        ours = ", ".join(f"{t}T {'' if self.dram_trusted(t) else '≥'}{self.dram(t):.{digits}f}"
                         for t in ts)
        text = f"DRAM read {ours} GB/s"
        lk = [(t, self.likwid(t)) for t in ts if self.likwid(t)]
        if lk:
            text += (f" (likwid-bench {self.likwid_test()}: "
                     + ", ".join(f"{t}T {v:.{digits}f}" for t, v in lk) + ")")
        elif m.get("likwid_bench"):
            text += " (likwid-bench: no figure)"
        return text

    def gemv_shape(self):
        """The largest shape with batch-1 cases (weights far larger than the caches)."""
        shapes = [s for s in self.shapes if self.select(n=s[0], k=s[1], m=1)]
        return shapes[-1] if shapes else None

    def batch_shape(self):
        """The largest shape measured at the most batch sizes."""
        if not self.shapes:
            return None
        return max(self.shapes, key=lambda s: (len({c["m"] for c in self.select(n=s[0], k=s[1])}),
                                               s[0] * s[1]))

    def subtitle(self):
        m = self.machine
        isa = [f for f in m.get("isa_flags", []) if f in ("avx2", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16",
                                                             "avx512_fp16", "amx_int8")]
        return (f"{m['cpu_model']}, {m['logical_cores']} cores ({' '.join(isa)}), {self.dram_text()}; "
                f"commit {m.get('git_commit', '?')}, {self.run.get('started_utc', '?')[:10]}")


def above_roofline(c):
    """Whether a case measured more than its roofline (the sweep's flag; computed for runs
    from before the sweep recorded it)."""
    if "above_roofline" in c:
        return bool(c["above_roofline"])
    roof = c.get("roofline_value") or 0
    rate = c.get("weight_gbps" if c.get("roofline") == "dram_read" else "gflops") or 0
    return roof > 0 and rate > roof


def share_text(c):
    """A case's share of its roofline for the tables: '87 %', 'above (115 %)' (flagged, never a
    plain share), or '– (no quiet probe)'."""
    pct = c.get("pct_of_roofline")
    if c.get("roofline") == "none":
        return "– (no measured peak)"
    if c.get("roofline_trusted") is False or pct is None:
        return "above (no quiet probe)" if above_roofline(c) else "– (no quiet probe)"
    if above_roofline(c):
        return f"**above** ({pct:.1f} %)" if round(pct) == 100 else f"**above** ({pct:.0f} %)"
    return f"{pct:.0f} %"


def geomean(values):
    values = [v for v in values if v and v > 0]
    if not values:
        return None
    return math.exp(sum(math.log(v) for v in values) / len(values))


def speedups(run, t, against):
    """{format: {batch: geomean over shapes of time(baseline) / time(best fused)}}."""
    out = defaultdict(dict)
    for fmt in run.formats:
        if against == "f32" and fmt == "F32":
            continue
        for m in run.batches:
            ratios = []
            for n, k in run.shapes:
                ours = run.best_fused(fmt, n, k, m, t)
                if ours is None:
                    continue
                if against == "f32":
                    base = run.best_fused("F32", n, k, m, t)
                elif against == "dequant":
                    base = run.one("dequant_then_matmul", fmt, n, k, m, t)
                else:
                    base = run.one("ggml", fmt, n, k, m, t)
                if base is not None:
                    ratios.append(base["median_s"] / ours["median_s"])
            g = geomean(ratios)
            if g is not None:
                out[fmt][m] = (g, len(ratios))
    return out


OTHER_WORK_CORES = 0.25  # the sweep's quiet line (harness/machine.h: RooflinePolicy)


def suspects(run, field, badness):
    """(cases of ours with `field` recorded, those with badness(case) > 0, worst first), or
    None for a run from before the sweep recorded the field."""
    measured = [c for c in run.cases if c["kind"] != "ggml" and c.get(field) is not None]
    if not measured:
        return None
    return len(measured), sorted((c for c in measured if badness(c) > 0), key=lambda c: -badness(c))


def other_work(run):
    """Our cases that ran beside more than OTHER_WORK_CORES of other work (suspects)."""
    return suspects(run, "other_cores", lambda c: c["other_cores"] - OTHER_WORK_CORES)


def lone_callers(run):
    """Our cases with 2+ threads whose workers ran under half their due share of the tasks,
    100 (t - 1) / t, lowest first (suspects)."""
    return suspects(run, "worker_task_pct", lambda c: 50 * (c["threads"] - 1) / c["threads"] - c["worker_task_pct"])


def shared_cpus(run):
    """Our cases with 2+ threads whose threads used fewer than t - 0.5 CPUs (`own_cores`):
    they took turns on shared CPUs, so the time is closer to one thread's (suspects)."""
    return suspects(run, "own_cores", lambda c: c["threads"] - 0.5 - c["own_cores"])


def vs_one_thread(run):
    """A function of our fused case: its median time over that of the same kernel, shape and
    batch at 1 thread; None when there is no such 1-thread case."""
    key = lambda c: (c["kernel"], c["n"], c["k"], c["m"])
    one = {key(c): c["median_s"] for c in run.cases
           if c["kind"] == "fused" and c["threads"] == 1 and c.get("median_s")}
    return lambda c: c["median_s"] / one[key(c)] if c.get("median_s") and key(c) in one else None


def no_speedup(run):
    """Our fused cases with 2+ threads no faster than the same kernel, shape and batch at 1 thread
    (on a healthy machine t threads take well under the 1-thread time), slowest first
    (suspects; None when no case has a 1-thread twin). Such cases have been seen on a shared
    host with both threads on CPUs of their own and doing their shares (own_cores,
    worker_task_pct), i.e. held back from outside the guest; a kernel that does not split a
    shape would show the same."""
    ratio = vs_one_thread(run)
    measured = [c for c in run.cases
                if c["kind"] == "fused" and c["threads"] >= 2 and ratio(c) is not None]
    if not measured:
        return None
    return len(measured), sorted((c for c in measured if ratio(c) >= 1), key=lambda c: -ratio(c))


def case_list(cases, what, limit=8):
    shown = ", ".join(f"{c['kernel']} {c['n']}x{c['k']} m={c['m']} t={c['threads']} ({what(c)}, "
                      f"±{c['spread_pct']:.0f} %)" for c in cases[:limit])
    return shown + (" …" if len(cases) > limit else "")


def passes_text(run):
    """' Each case the fastest of its N passes (...).' for a run with --passes > 1, else ''."""
    n = run.run.get("options", {}).get("passes", 1)
    if n <= 1:
        return ""
    kept = Counter(c["pass_kept"] for c in run.cases if "pass_kept" in c)
    spread = ", ".join(f"pass {p}: {kept[p]}" for p in sorted(kept))
    return (f" Each batch-1 case is the fastest of its {n} passes (sweep --passes; cases kept "
            f"from {spread}).")


def stream_shares(run):
    """Batch 1 across formats: per thread count, ({format: (share, shapes)}, Counter of the
    fastest format per shape), share = geometric mean over the shapes where at least two
    formats ran. From the run's interleaved shares (sweep --share_rounds) when it has them:
    per shape, the median over rounds of the format's GB/s over the best of the same round.
    Otherwise from the cases: the format's weight GB/s (its fastest kernel) over the highest
    GB/s any format reached at the same shape and threads, a case no faster with its threads
    than with 1 (no_speedup) left out (its format has that shape missing at that thread
    count)."""
    inter = interleaved_shares(run)
    if inter is not None:
        out = {}
        for t, shapes in inter.items():
            per, tops = defaultdict(list), Counter()
            for _, fs in sorted(shapes.items()):
                tops[max(fs, key=lambda f: fs[f])] += 1
                for f, v in fs.items():
                    per[f].append(v)
            out[t] = ({f: (geomean(v), len(v)) for f, v in per.items()}, tops)
        return out
    found = no_speedup(run)
    held_back = {id(c) for c in found[1]} if found else set()
    out = {}
    for t in run.threads:
        per, tops = defaultdict(list), Counter()
        for n, k in run.shapes:
            best = {f: run.best_fused(f, n, k, 1, t) for f in run.formats}
            best = {f: c for f, c in best.items()
                    if c is not None and c.get("weight_gbps") and id(c) not in held_back}
            if len(best) < 2:
                continue
            top = max(best, key=lambda f: best[f]["weight_gbps"])
            tops[top] += 1
            for f, c in best.items():
                per[f].append(c["weight_gbps"] / best[top]["weight_gbps"])
        if per:
            out[t] = ({f: (geomean(v), len(v)) for f, v in per.items()}, tops)
    return out


def round_best(run, t):
    """{(n, k): median over the interleaved rounds of the round's best GB/s} at t threads."""
    out = {}
    for g in (run.interleaved or {}).get("groups") or []:
        best = [b for b in g.get("best_gbps") or [] if b]
        if g["threads"] == t and best:
            out[(g["n"], g["k"])] = statistics.median(best)
    return out


def interleaved_shares(run):
    """{threads: {(n, k): {format: median share}}} from the run's interleaved shares, or None
    when it has none (an older run, --share_rounds=0, or no shape with two formats)."""
    groups = (run.interleaved or {}).get("groups") or []
    out = defaultdict(dict)
    for g in groups:
        fs = {f["format"]: f["share"] for f in g.get("formats", []) if f.get("share") is not None}
        if len(fs) >= 2:
            out[g["threads"]][(g["n"], g["k"])] = fs
    return dict(out) or None


def fmt_num(v, digits=1):
    if v is None:
        return "–"
    if isinstance(v, float) and math.isnan(v):
        return "NaN"
    return f"{v:.{digits}f}"


# ---- plots -------------------------------------------------------------------------------


def finish(fig, run, title, path):
    fig.suptitle(title, fontsize=13, fontweight="bold", y=0.995)
    fig.text(0.5, 0.955, run.subtitle(), ha="center", va="top", fontsize=8.5, color="#444444")
    fig.tight_layout(rect=(0, 0, 1, 0.935))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_gemv(run, path):
    shape = run.gemv_shape()
    fig, axes = plt.subplots(len(run.threads), 1, figsize=(14, 5.0 * len(run.threads) + 0.6), squeeze=False)
    if shape is None:
        axes[0][0].text(0.5, 0.5, "no batch-1 cases in this run", ha="center")
        finish(fig, run, "Batch-1 weight bandwidth", path)
        return
    n, k = shape
    for ax, t in zip(axes[:, 0], run.threads):
        x = 0.0
        ticks, labels = [], []
        legend = {}
        for fmt in run.formats:
            bars = []
            fused = sorted(run.select(kind="fused", format=fmt, n=n, k=k, m=1, threads=t),
                           key=lambda c: (c["path"], VARIANT_ORDER.index(c["variant"])
                                          if c["variant"] in VARIANT_ORDER else 9))
            for c in fused:
                bars.append((c["weight_gbps"], VARIANT_COLORS.get(c["variant"], "#333333"),
                             {"int8": "//", "bf16": "..", "f16": "xx"}.get(c["path"], ""), f"{c['variant']} {c['path']}", c))
            g = run.one("ggml", fmt, n, k, 1, t)
            if g is not None:
                bars.append((g["weight_gbps"], VARIANT_COLORS["ggml"], "", "ggml", g))
            d = run.one("dequant_then_matmul", fmt, n, k, 1, t)
            if d is not None:
                bars.append((d["weight_gbps"], VARIANT_COLORS["dequant"], "", "dequantize-then-matmul", d))
            start = x
            for v, color, hatch, label, c in bars:
                b = ax.bar(x, v, width=0.8, color=color, hatch=hatch, edgecolor="white" if not hatch else "black",
                           linewidth=0.3)
                legend.setdefault(label, b)
                text = f"{v:.0f}" if v >= 10 else f"{v:.1f}"
                if above_roofline(c):
                    # Above the roofline: a flag, not a result (red outline, "!").
                    flag = ax.bar(x, v, width=0.8, fill=False, edgecolor="#d62728", linewidth=1.6,
                                  zorder=4)
                    legend.setdefault("above the roofline (flagged !)", flag)
                    text += "!"
                ax.text(x, v, text, ha="center", va="bottom", fontsize=6,
                        color="#d62728" if above_roofline(c) else "black",
                        fontweight="bold" if above_roofline(c) else "normal")
                x += 1
            if bars:
                ticks.append((start + x - 1) / 2)
                labels.append(fmt)
            x += 1.2
        dram = run.dram(t)
        if dram:
            trusted = run.dram_trusted(t)
            line = ax.axhline(dram, color="#d62728", linestyle="--" if trusted else ":", linewidth=1.3)
            legend[f"DRAM read {dram:.1f} GB/s" +
                   ("" if trusted else " (no quiet probe: a lower bound)")] = line
        lk = run.likwid(t)
        if lk:
            line = ax.axhline(lk, color="#9467bd", linestyle="-.", linewidth=1.1)
            legend[f"likwid-bench {run.likwid_test()} {lk:.1f} GB/s"] = line
        ax.set_xticks(ticks)
        ax.set_xticklabels(labels)
        ax.set_ylabel("weight bytes read / s  [GB/s]")
        ax.set_title(f"{n}x{k} weights, batch 1, {t} thread{'s' if t > 1 else ''} "
                     "(hatched //: int8 activation path, ..: bf16)", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        order = ([f"{v} f32" for v in VARIANT_ORDER] + [f"{v} int8" for v in VARIANT_ORDER] +
                 [f"{v} bf16" for v in VARIANT_ORDER] +
                 ["ggml", "dequantize-then-matmul", "above the roofline (flagged !)"])
        labels_sorted = sorted(legend, key=lambda l: order.index(l) if l in order else len(order))
        ax.legend([legend[l] for l in labels_sorted], labels_sorted, fontsize=7.5, ncol=6,
                  loc="upper center", bbox_to_anchor=(0.5, -0.09), frameon=False)
        ax.set_xlim(-1, x)
        ax.set_ylim(0, ax.get_ylim()[1] * 1.08)
    finish(fig, run, "Batch-1 (GEMV) weight bandwidth per format and kernel vs the measured DRAM roofline",
           path)


def speedup_bars(ax, run, sp, digits):
    """Grouped bars: per format (x) one bar per batch size of the geomean speedup in `sp`
    (from speedups()), each labelled with `digits` decimals. Returns the formats drawn."""
    fmts = [f for f in run.formats if f in sp]
    width = 0.8 / max(1, len(run.batches))
    cmap = plt.get_cmap("viridis")
    for i, m in enumerate(run.batches):
        xs, ys = [], []
        for j, f in enumerate(fmts):
            if m in sp[f]:
                xs.append(j + (i - (len(run.batches) - 1) / 2) * width)
                ys.append(sp[f][m][0])
        if xs:
            ax.bar(xs, ys, width=width, color=cmap(i / max(1, len(run.batches) - 1) * 0.85),
                   label=f"batch {m}")
            for xx, yy in zip(xs, ys):
                ax.text(xx, yy, f"{yy:.{digits}f}", ha="center", va="bottom", fontsize=6.5,
                        rotation=90)
    return fmts


def plot_speedup(run, path):
    t = run.tmax
    fig, axes = plt.subplots(1, 2, figsize=(14, 4.8))
    for ax, against, title in ((axes[0], "f32", "over F32 weights (best F32 kernel, same run)"),
                               (axes[1], "dequant", "over dequantize-then-matmul")):
        fmts = speedup_bars(ax, run, speedups(run, t, against), 1)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_ylim(0, ax.get_ylim()[1] * 1.12)
        ax.set_xticks(range(len(fmts)))
        ax.set_xticklabels(fmts)
        ax.set_ylabel("speedup  [x, time ratio]")
        ax.set_title(f"{title}; {t} threads; geomean over shapes", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8)
        if not fmts:
            ax.text(0.5, 0.5, "no baseline cases in this run", ha="center", transform=ax.transAxes)
    finish(fig, run, "Speedup of the best fused kernel per format", path)


def plot_memory(run, path):
    shape = run.gemv_shape() or (run.shapes[-1] if run.shapes else None)
    fig, ax = plt.subplots(figsize=(11, 4.6))
    if shape is None:
        finish(fig, run, "Weight memory", path)
        return
    n, k = shape
    f32_mib = n * k * 4 / 2**20
    xs, ys, labels = [], [], []
    for i, f in enumerate(run.formats):
        cs = run.select(format=f, n=n, k=k)
        if not cs:
            continue
        xs.append(i)
        ys.append(cs[0]["weight_bytes"] / 2**20)
        labels.append(f)
    ax.bar(xs, [f32_mib] * len(xs), width=0.8, color="#dddddd", label="the same matrix in F32")
    bars = ax.bar(xs, ys, width=0.5, color="#1f77b4", label="in the format (memory_bytes())")
    for x, y in zip(xs, ys):
        ax.text(x, y, f"{y:.1f} MiB\n{f32_mib / y:.2f}x smaller" if y < f32_mib else f"{y:.0f} MiB",
                ha="center", va="bottom", fontsize=7.5)
    ax.set_xticks(xs)
    ax.set_xticklabels(labels)
    ax.set_ylabel("weight memory  [MiB]")
    ax.set_title(f"one {n}x{k} matrix; peak RSS of the sweep process: "
                 f"{max(c.get('rss_peak_bytes', 0) for c in run.cases) / 2**30:.2f} GiB "
                 "(all weight copies)", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    del bars
    finish(fig, run, "Weight memory per format against F32", path)


def plot_gflops(run, path):
    shape = run.batch_shape()
    t = run.tmax
    fmts = [f for f in run.formats]
    cols = 3
    rows = max(1, math.ceil(len(fmts) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(14, 3.4 * rows), squeeze=False)
    for ax in axes.flat:
        ax.set_visible(False)
    if shape is None:
        finish(fig, run, "GFLOP/s versus batch", path)
        return
    n, k = shape
    handles = {}
    styles = {"ours int8 (best variant)": ("#1f77b4", "o", "-"),
              "ours f32 (best variant)": ("#2ca02c", "s", "-"),
              "ours bf16 (best variant)": ("#9467bd", "P", "-"),
              "ours f16 (best variant)": ("#8c564b", "X", "-"),
              "dequantize-then-matmul": ("#ff7f0e", "v", "--"),
              "F32 weights": ("#7f7f7f", "^", ":"),
              "ggml": ("#d62728", "D", "-."),
              "above the roofline (flagged)": ("#d62728", "o", "")}
    for ax, f in zip(axes.flat, fmts):
        ax.set_visible(True)
        series = {}  # key -> {batch: the case drawn}
        for m in run.batches:
            for c in run.select(kind="fused", format=f, n=n, k=k, m=m, threads=t):
                key = f"ours {c['path']} (best variant)"
                prev = series.get(key, {}).get(m)
                if prev is None or c["gflops"] > prev["gflops"]:
                    series.setdefault(key, {})[m] = c
            d = run.one("dequant_then_matmul", f, n, k, m, t)
            if d:
                series.setdefault("dequantize-then-matmul", {})[m] = d
            if f != "F32":
                b = run.best_fused("F32", n, k, m, t)
                if b:
                    series.setdefault("F32 weights", {})[m] = b
            g = run.one("ggml", f, n, k, m, t)
            if g:
                series.setdefault("ggml", {})[m] = g
        for key, pts in series.items():
            ms = sorted(pts)
            color, marker, ls = styles.get(key, ("black", ".", "-"))
            ax.plot(ms, [pts[m]["gflops"] for m in ms], marker=marker, linestyle=ls, color=color,
                    label=key, markersize=4)
            flagged = [m for m in ms if above_roofline(pts[m])]
            if flagged:
                ax.scatter(flagged, [pts[m]["gflops"] for m in flagged], marker="o", s=70,
                           facecolors="none", edgecolors="#d62728", linewidths=1.5, zorder=5,
                           label="above the roofline (flagged)")
        ax.set_xscale("log", base=2)
        ax.set_xticks(run.batches)
        ax.set_xticklabels([str(b) for b in run.batches])
        ax.set_title(f, fontsize=10, fontweight="bold")
        ax.set_xlabel("batch m  [rows]")
        ax.set_ylabel("GFLOP/s  [2mnk / s / 1e9]")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    order = [k for k in styles if k in handles]
    fig.legend([handles[k] for k in order], order, loc="lower center", ncol=len(order), fontsize=9,
               frameon=False)
    fig.suptitle(f"GFLOP/s versus batch per format ({n}x{k} weights, {t} threads)", fontsize=13,
                 fontweight="bold", y=0.995)
    fig.text(0.5, 0.965, run.subtitle(), ha="center", va="top", fontsize=8.5, color="#444444")
    fig.tight_layout(rect=(0, 0.04, 1, 0.95))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def error_table(run):
    """{format: {series: max rel err over every case of it}} (None when a case had NaN)."""
    out = defaultdict(dict)
    for c in run.cases:
        if c["kind"] == "fused":
            key = f"ours {c['path']}"
        elif c["kind"] == "dequant_then_matmul":
            key = "dequantize-then-matmul"
        else:
            key = "ggml"
        e = c.get("max_rel_err")
        prev = out[c["format"]].get(key, 0.0)
        if e is None or prev is None:
            out[c["format"]][key] = None
        else:
            out[c["format"]][key] = max(prev, e)
    return out


def error_series(errs):
    """The error columns and their colours: "ours bf16" / "ours f16" only for a run that has that path."""
    series = [("ours f32", "#2ca02c"), ("ours int8", "#1f77b4"), ("ours bf16", "#9467bd"),
              ("ours f16", "#8c564b"), ("dequantize-then-matmul", "#ff7f0e"), ("ggml", "#d62728")]
    for opt in ("ours bf16", "ours f16"):
        if not any(opt in e for e in errs.values()):
            series = [sc for sc in series if sc[0] != opt]
    return [sc[0] for sc in series], [sc[1] for sc in series]


def plot_error(run, path):
    errs = error_table(run)
    series, colors = error_series(errs)
    fig, ax = plt.subplots(figsize=(13, 4.8))
    width = 0.16
    fmts = [f for f in run.formats if f in errs]
    for i, (s, color) in enumerate(zip(series, colors)):
        xs, ys, nan_x = [], [], []
        for j, f in enumerate(fmts):
            if s not in errs[f]:
                continue
            v = errs[f][s]
            x = j + (i - (len(series) - 1) / 2) * width
            if v is None:
                nan_x.append(x)
            else:
                xs.append(x)
                ys.append(max(v, 1e-12))
        ax.bar(xs, ys, width=width, color=color, label=s)
        for x in nan_x:
            ax.text(x, 1e-3, "NaN", color="red", ha="center", fontsize=8, rotation=90)
    ax.set_yscale("log")
    ax.set_xticks(range(len(fmts)))
    ax.set_xticklabels(fmts)
    ax.set_ylabel("max |y - ref| / max |ref|  (worst case)")
    ax.set_title("worst case over every shape, batch, thread count and variant; reference: float64 "
                 "sum over the dequantized weights (ggml: over its own)", fontsize=9.5)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    finish(fig, run, "Error versus the float64 dequantize-then-matmul reference, per format and path", path)


def plot_vs_ggml(run, path):
    fig, axes = plt.subplots(1, len(run.threads), figsize=(max(12, 7 * len(run.threads)), 4.8),
                             squeeze=False)
    for ax, t in zip(axes[0], run.threads):
        fmts = speedup_bars(ax, run, speedups(run, t, "ggml"), 2)
        ax.axhline(1.0, color="#d62728", linewidth=1.2, linestyle="--", label="as fast as ggml")
        ax.set_ylim(0, ax.get_ylim()[1] * 1.12)
        ax.set_xticks(range(len(fmts)))
        ax.set_xticklabels(fmts)
        ax.set_ylabel("ggml time / our time  [x]")
        ax.set_title(f"{t} thread{'s' if t > 1 else ''}; best of our kernels; geomean over shapes",
                     fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7.5)
        if not fmts:
            ax.text(0.5, 0.5, "no ggml cases in this run\n(" + run.run.get("ggml", {}).get("status", "") + ")",
                    ha="center", va="center", transform=ax.transAxes, fontsize=9)
    finish(fig, run, "This project versus ggml's MUL_MAT (above 1: we are faster)", path)


def plot_run(run):
    plot_gemv(run, os.path.join(run.dir, "gemv_bandwidth.png"))
    plot_speedup(run, os.path.join(run.dir, "speedup.png"))
    plot_memory(run, os.path.join(run.dir, "memory.png"))
    plot_gflops(run, os.path.join(run.dir, "gflops_vs_batch.png"))
    plot_error(run, os.path.join(run.dir, "error.png"))
    plot_vs_ggml(run, os.path.join(run.dir, "vs_ggml.png"))


# ---- README --------------------------------------------------------------------------------


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def gemv_rows(run):
    """Per format at the GEMV shape: best kernel, GB/s and % DRAM per thread count, ggml."""
    shape = run.gemv_shape()
    if shape is None:
        return None, []
    n, k = shape
    rows = []
    for f in run.formats:
        row = [f]
        for t in run.threads:
            b = run.best_fused(f, n, k, 1, t)
            g = run.one("ggml", f, n, k, 1, t)
            if b is None:
                row += ["–", "–", "–", "–"]
                continue
            row += [f"{b['weight_gbps']:.1f} ({b['variant']} {b['path']})", share_text(b),
                    fmt_num(g["weight_gbps"]) if g else "–",
                    f"{g['median_s'] / b['median_s']:.2f}x" if g else "–"]
        rows.append(row)
    return shape, rows


def run_section(run, readme_dir):
    m, r = run.machine, run.run
    rel = os.path.relpath(run.dir, readme_dir)
    replot = (f"reports/{run.name}" if os.path.basename(os.path.dirname(run.dir)) == "reports"
              else run.dir)
    out = []
    status = r.get("status", "?")
    out.append(f"## {run.name}")
    out.append("")
    out.append(f"Produced by `{r.get('command', '?')}` on {r.get('started_utc', '?')} "
               f"({status}, {r.get('cases_done', '?')} of {r.get('cases_planned', '?')} cases, "
               f"{fmt_num(r.get('wall_s', 0) / 60)} min), commit `{m.get('git_commit', '?')}`; "
               f"results: [`results.json`]({rel}/results.json), [`results.csv`]({rel}/results.csv). "
               f"Regenerate the plots and this file with `tools/bazel run //tools:plot -- {replot}`.")
    out.append("")
    def probes(t):
        ps = [p for p in m.get("dram_probes", []) if str(p.get("threads")) == t]
        if ps:
            quiet = [p for p in ps if p.get("quiet")]
            text = (f" (best of {len(ps)} probes: " +
                    ", ".join(f"{p['gbps']:.1f} {p.get('reason', '')}"
                              f"{'' if p.get('quiet') else ' under load'}" for p in ps) + ")")
            if not quiet:
                text += "; no probe was taken on a quiet machine, so this is a lower bound and no share is given"
            return text
        start = m.get("dram_read_gbps_start", {}).get(t)
        end = m.get("dram_read_gbps_end", {}).get(t)
        if start is None or end is None:
            return ""
        return f" (before the first case {start:.1f}, after the last {end:.1f})"
    dram = ", ".join(f"{t} thread{'s' if t != '1' else ''}: {v:.1f} GB/s{probes(t)}"
                     for t, v in sorted(m.get("dram_read_gbps", {}).items(), key=lambda kv: int(kv[0])))
    lk = m.get("likwid_bench")
    if lk:
        runs_lk = lk.get("runs", [])
        likwid = "; ".join(
            (f"{r['threads']} thread{'s' if r['threads'] != 1 else ''}: {r['gbps']:.1f} GB/s "
             f"(ours {run.dram(r['threads']) / r['gbps']:.2f}x it)" if r.get("gbps") and run.dram(r["threads"])
             else f"{r['threads']} thread{'s' if r['threads'] != 1 else ''}: no figure ({r.get('error', '?')})")
            + f", `{r.get('command', '?')}`" for r in runs_lk) or lk.get("status", "not run")
        if lk.get("version"):
            likwid = f"likwid {lk['version']}: " + likwid
    else:
        likwid = "not run (a run from before the cross-check)"
    pf = ", ".join(f"{t}T: {v:.0f}" for t, v in sorted(m.get("peak_f32_gflops", {}).items(), key=lambda kv: int(kv[0])))
    pi = ", ".join(f"{t}T: {v:.0f}" for t, v in sorted(m.get("peak_int8_gops", {}).items(), key=lambda kv: int(kv[0])))
    out.append(table(["machine", ""], [
        ["CPU", f"{m['cpu_model']}, {m['logical_cores']} logical cores, last-level cache "
                f"{m.get('last_level_cache_bytes', 0) >> 20} MiB"],
        ["ISA", " ".join(m.get("isa_flags", []))],
        ["DRAM read (measured; the batch-1 roofline)", dram],
        ["likwid-bench streaming load (cross-check)", likwid],
        ["arithmetic peak (measured)", f"f32 FMA GFLOP/s {pf}; int8 dot Gop/s {pi}"],
        ["compiler, Bazel, OS", f"{m.get('compiler')}; {m.get('bazel')}; {m.get('os_kernel')}"],
        ["ggml peer", r.get("ggml", {}).get("status", "–")],
        ["load average (1, 5, 15 min) at start / end; highest 1-min load during the cases",
         f"{r.get('loadavg_start', '–')} / {r.get('loadavg_end', '–')}; "
         f"{fmt_num(max((c.get('loadavg_1m', 0) for c in run.cases), default=None), 2)}"],
    ]))
    out.append("")

    # Cases whose times are suspect (runs since the sweep recorded the fields).
    vs_one = vs_one_thread(run)
    for found, intro, flagged, fine, what in (
            (other_work(run),
             "Other work on the machine during our {n} cases (`other_cores`, /proc/stat less the sweep): ",
             f"{{k}} ran beside more than {OTHER_WORK_CORES} cores of it, their times suspect: {{cases}}.",
             f"none ran beside more than {OTHER_WORK_CORES} cores of it.",
             lambda c: "%.2f cores" % c["other_cores"]),
            (lone_callers(run),
             "Threads that took part (`worker_task_pct`, the share of the pool's tasks its workers ran) "
             "in our {n} cases with 2 or more threads: ",
             "in {k} the workers ran under half their share, so the time is closer to one thread's: {cases}.",
             "every one had its workers run at least half their share.",
             lambda c: "%.0f %% of the tasks" % c["worker_task_pct"]),
            (no_speedup(run),
             "Our {n} fused cases with 2 or more threads against the same kernel, shape and batch "
             "at 1 thread: ",
             "{k} ran no faster with their threads than alone (the machine held them back, on a "
             "shared host possibly from outside the guest, or the kernel does not split there; left "
             "out of the batch-1 share table): {cases}.",
             "every one was faster with its threads.",
             lambda c: "%.2fx the 1-thread time" % vs_one(c)),
            (shared_cpus(run),
             "CPUs our threads used (`own_cores`, the sweep's CPU time over the calls' wall time) "
             "in our {n} cases with 2 or more threads: ",
             "in {k} the t threads used under t - 0.5 CPUs: they took turns on shared CPUs, so the "
             "time is closer to one thread's: {cases}.",
             "each case's t threads used at least t - 0.5 CPUs.",
             lambda c: "%.2f CPUs" % c["own_cores"])):
        if found is None:
            continue
        n, cases = found
        out.append(intro.format(n=n) + (flagged.format(k=len(cases), cases=case_list(cases, what))
                                         if cases else fine))
        out.append("")

    # GEMV.
    shape, rows = gemv_rows(run)
    if shape:
        header = ["format"]
        for t in run.threads:
            header += [f"ours GB/s {t}T (best kernel)", f"% DRAM {t}T", f"ggml GB/s {t}T", f"ours vs ggml {t}T"]
        out.append(f"### Batch 1 (GEMV), {shape[0]}x{shape[1]} weights")
        out.append("")
        out.append("Weight bytes read per second by the fastest of our kernels, against the DRAM read "
                   "bandwidth measured in the same run (the best probe); ggml's MUL_MAT on the same type, "
                   "shape and threads. \"ours vs ggml\" = ggml's time / ours (above 1: we are faster). "
                   "A case faster than the roofline is marked **above**: the probe was low or the case "
                   "is not what it claims, so its share is a flag, not a result.")
        out.append("")
        out.append(table(header, rows))
        out.append("")
        out.append(f"![gemv]({rel}/gemv_bandwidth.png)")
        out.append("")

    # Batch 1 across formats.
    shares = stream_shares(run)
    if shares:
        ts = sorted(shares)
        out.append("### Batch 1 across formats: GB/s as a share of the fastest-streaming format")
        out.append("")
        fastest = "; ".join(
            f"{t}T " + ", ".join(f"{f} ({c} of {sum(shares[t][1].values())})" for f, c in shares[t][1].most_common())
            for t in ts)
        inter = interleaved_shares(run)
        if inter is not None:
            iv = run.interleaved
            out.append(f"Interleaved (sweep --share_rounds): after the cases, per shape and thread count, "
                       f"{iv.get('rounds')} rounds in which every format's fastest batch-1 kernel ran a burst "
                       f"of about {1e3 * iv.get('burst_s', 0):.0f} ms in turn; a format's share at a shape is "
                       "the median over rounds of its GB/s over the best GB/s of the same round, so every "
                       "format is compared with the others in the same state of a shared machine's memory. "
                       "Geometric mean over the shapes (how many in brackets). A format whose decode is "
                       f"compute-bound streams below the others. Fastest per shape: {fastest}.")
        else:
            out.append("Each format's weight bytes per second at batch 1 (its fastest kernel) over the highest "
                       "any format reached at the same shape and thread count, geometric mean over the shapes "
                       "(how many in brackets). A format whose decode is compute-bound streams below the others; "
                       "a few % either way is within the run-to-run noise of a shared machine; a case no faster "
                       "with 2 or more threads than with 1 is left out (above)."
                       f"{passes_text(run)} Fastest per shape: {fastest}.")
        out.append("")
        rows = []
        for f in run.formats:
            if not any(f in shares[t][0] for t in ts):
                continue
            rows.append([f] + [f"{100 * shares[t][0][f][0]:.0f} % ({shares[t][0][f][1]})" if f in shares[t][0] else "–"
                               for t in ts])
        out.append(table(["format"] + [f"{t} thread{'s' if t > 1 else ''}" for t in ts], rows))
        out.append("")
        if inter is not None:
            for t in sorted(inter):
                shapes = sorted(inter[t], key=lambda s: (s[0] * s[1], s))
                out.append(f"Per shape, {t} thread{'s' if t > 1 else ''} (median share over rounds):")
                out.append("")
                rows = [[f] + [f"{100 * inter[t][s][f]:.0f} %" if f in inter[t][s] else "–" for s in shapes]
                        for f in run.formats if any(f in inter[t][s] for s in shapes)]
                best = round_best(run, t)
                if any(s in best for s in shapes):
                    rows.append(["best GB/s (median of the rounds' best)"] +
                                [fmt_num(best.get(s)) if s in best else "–" for s in shapes])
                out.append(table(["format"] + [f"{n}x{k}" for n, k in shapes], rows))
                out.append("")

    # Speedups.
    t = run.tmax
    for against, title, png in (("f32", "over F32 weights", "speedup.png"),
                                ("dequant", "over dequantize-then-matmul", None),
                                ("ggml", "over ggml (ggml time / ours)", "vs_ggml.png")):
        sp = speedups(run, t, against)
        if not sp:
            continue
        out.append(f"### Speedup {title}, {t} threads (geometric mean over the shapes measured)")
        out.append("")
        rows = []
        for f in run.formats:
            if f not in sp:
                continue
            rows.append([f] + [f"{sp[f][b][0]:.2f}x ({sp[f][b][1]})" if b in sp[f] else "–"
                               for b in run.batches])
        out.append(table(["format"] + [f"batch {b} (shapes)" for b in run.batches], rows))
        out.append("")
        if png:
            out.append(f"![{against}]({rel}/{png})")
            out.append("")

    # GFLOP/s vs batch.
    bshape = run.batch_shape()
    if bshape:
        n, k = bshape
        out.append(f"### GFLOP/s versus batch, {n}x{k} weights, {t} threads")
        out.append("")
        rows = []
        for f in run.formats:
            row = [f]
            for b in run.batches:
                ours = run.best_fused(f, n, k, b, t)
                g = run.one("ggml", f, n, k, b, t)
                d = run.one("dequant_then_matmul", f, n, k, b, t)
                cell = fmt_num(ours["gflops"]) if ours else "–"
                cell += " / " + (fmt_num(g["gflops"]) if g else "–")
                cell += " / " + (fmt_num(d["gflops"]) if d else "–")
                row.append(cell)
            rows.append(row)
        out.append("Each cell: ours (best kernel) / ggml / dequantize-then-matmul, GFLOP/s.")
        out.append("")
        out.append(table(["format"] + [f"batch {b}" for b in run.batches], rows))
        out.append("")
        out.append(f"![gflops]({rel}/gflops_vs_batch.png)")
        out.append("")

    # Memory.
    mshape = run.gemv_shape() or bshape
    if mshape:
        n, k = mshape
        rows = []
        for f in run.formats:
            cs = run.select(format=f, n=n, k=k)
            if cs:
                wb = cs[0]["weight_bytes"]
                rows.append([f, f"{cs[0]['bits_per_weight']:.4g}", f"{wb / 2**20:.1f}",
                             f"{n * k * 4 / wb:.2f}x"])
        out.append(f"### Memory, one {n}x{k} matrix")
        out.append("")
        out.append(table(["format", "bits/weight", "MiB", "smaller than F32"], rows))
        out.append("")
        out.append(f"![memory]({rel}/memory.png)")
        out.append("")

    # Errors.
    errs = error_table(run)
    series, _ = error_series(errs)
    rows = [[f] + [("NaN" if errs[f][s] is None else f"{errs[f][s]:.1e}") if s in errs[f] else "–"
                   for s in series] for f in run.formats if f in errs]
    out.append("### Error versus the float64 reference (worst case of every shape, batch, threads, variant)")
    out.append("")
    out.append("max |y - ref| / max |ref| over the checked outputs; the int8 paths (and ggml) quantize the "
               "activations to 8 bits, so their error is that of the activation quantization; the bf16 path "
               "rounds them to bf16 (8-bit significand: relative error at most 2^-9 per element); the f16 path "
               "rounds them to fp16 (11-bit significand, 2^-11) and sums products in fp16 chains of 16.")
    out.append("")
    out.append(table(["format"] + series, rows))
    out.append("")
    out.append(f"![error]({rel}/error.png)")
    out.append("")

    # Method.
    out.append("### How it was measured")
    out.append("")
    out.append(f"- Grid: {r.get('grid_rule', '?')}")
    for key, text in r.get("method", {}).items():
        out.append(f"- {key.replace('_', ' ')}: {text}")
    out.append(f"- DRAM: {m.get('dram_method', '?')}")
    out.append(f"- f32 peak: {m.get('peak_f32_method', '?')}")
    out.append(f"- int8 peak: {m.get('peak_int8_method', '?')}")
    flagged = [c for c in run.cases if above_roofline(c)]
    if flagged:
        unit = lambda c: "GB/s" if c.get("roofline") == "dram_read" else "GFLOP/s"
        rate = lambda c: c["weight_gbps"] if c.get("roofline") == "dram_read" else c["gflops"]
        out.append(f"- {len(flagged)} case(s) above their roofline (flagged, not results): " + "; ".join(
            f"{c['kernel']} {c['n']}x{c['k']} m={c['m']} t={c['threads']}: {rate(c):.1f} > "
            f"{c['roofline_value']:.1f} {unit(c)} ({c['roofline']})" for c in flagged[:8])
            + (f"; and {len(flagged) - 8} more" if len(flagged) > 8 else ""))
    failed = [c for c in run.all_cases if "error" in c]
    if failed:
        out.append(f"- {len(failed)} case(s) failed: " + "; ".join(
            f"{c['kernel']} {c['n']}x{c['k']} m={c['m']} t={c['threads']}: {c['error']}" for c in failed[:5]))
    out.append("")
    return "\n".join(out)


def is_sweep_run(d):
    """A directory written by //harness:sweep (not, e.g., a //harness:model_sweep run)."""
    try:
        with open(os.path.join(d, "results.json")) as f:
            return str(json.load(f).get("schema", "")).startswith("fused-kernels-sweep")
    except (OSError, ValueError):
        return False


E2E_CLAIMS = "### Does keeping weights quantized"


def e2e_sections(readme_dir):
    """The claims section of the newest //harness:model_sweep run of each machine
    (reports/e2e-*/README.md, written by tools/plot_e2e.py), with its links made relative to
    this README; the full tables stay in the run's own README."""
    runs = []
    for name in sorted(os.listdir(readme_dir)):
        d = os.path.join(readme_dir, name)
        try:
            with open(os.path.join(d, "results.json")) as f:
                doc = json.load(f)
        except (OSError, ValueError):
            continue
        if doc.get("kind") == "model_sweep" and os.path.isfile(os.path.join(d, "README.md")):
            cpu = (doc.get("machine") or {}).get("cpu_model", name)
            measured = {(r.get("model"), r.get("format")) for r in doc.get("records", [])}
            runs.append((doc.get("created", ""), cpu, name, d, measured))
    # Newest first; a run is shown unless a newer one of the same machine measured every
    # (model, format) it did (a run of a few formats stands beside the machine's full run).
    kept = []
    for created, cpu, name, d, measured in sorted(runs, reverse=True):
        if not any(k[1] == cpu and measured <= k[4] for k in kept):
            kept.append((created, cpu, name, d, measured))
    parts = []
    for created, cpu, name, d, measured in kept:
        with open(os.path.join(d, "README.md")) as f:
            text = f.read()
        i = text.find(E2E_CLAIMS)
        if i < 0:
            continue
        j = text.find("\n## ", i)
        claims = text[i:j if j >= 0 else len(text)].strip()
        claims = claims.replace(E2E_CLAIMS, "## End to end: does keeping weights quantized", 1)
        # Links inside the run's README are relative to its directory.
        claims = re.sub(r"\]\((?!https?:|/|#)([^)]+)\)", lambda m: "](%s/%s)" % (name, m.group(1)), claims)
        claims = claims.replace("(tables below)", f"(tables in [{name}/README.md]({name}/README.md))")
        parts += [claims, "",
                  f"From `tools/bazel run //harness:model_sweep` ({created}); full tables, "
                  f"plots and method: [{name}/README.md]({name}/README.md).", ""]
    return parts


def machines_section(latest):
    """The newest run of each machine side by side: per format, ours vs ggml (geometric mean
    over the shapes of ggml's time / ours) at batch 1 and at the largest batch, 1 thread and
    the most threads, and the best batch-1 GB/s on the largest shape."""
    names = [r.name for r in latest]
    parts = ["## Machines side by side", "",
             "The newest run of each machine (" + ", ".join(f"[{n}](#{n.lower()})" for n in names)
             + "). \"ours vs ggml\" = ggml's time / ours, geometric mean over the shapes measured "
             "(above 1: we are faster); \"–\": not measured (an older grid ran batches ≥ 64 only "
             "at the highest thread count; ggml has no Q8_K; a format newer than the run). "
             "GB/s: the fastest of our kernels at batch 1 on the largest shape, 2 threads.", ""]
    rows = [["CPU"] + [f"{r.machine.get('cpu_model', '?')}, {r.machine.get('logical_cores', '?')} cores"
                       for r in latest],
            ["memory"] + [r.dram_text() for r in latest]]
    parts += [table(["", *names], rows), ""]
    formats = []
    for r in latest:
        formats += [f for f in r.formats if f not in formats]
    cols, header = [], ["format"]
    for r in latest:
        big = max(r.batches) if r.batches else None
        for t in sorted({1, r.tmax}):
            sp_t = speedups(r, t, "ggml")
            for m in sorted({1, big} - {None}):
                if any(m in v for v in sp_t.values()):  # a column with at least one figure
                    cols.append((r, t, m))
                    header.append(f"{r.name}: batch {m}, {t}T")
        header.append(f"{r.name}: GB/s b1 {r.tmax}T")
    sp = {(id(r), t): speedups(r, t, "ggml") for r in latest for t in sorted({1, r.tmax})}
    body = []
    for fmt in formats:
        row = [fmt]
        for r in latest:
            for (rr, t, m) in cols:
                if rr is not r:
                    continue
                v = sp[(id(r), t)].get(fmt, {}).get(m)
                row.append(f"{v[0]:.2f}x" if v else "–")
            shape = r.gemv_shape()
            best = r.best_fused(fmt, shape[0], shape[1], 1, r.tmax) if shape else None
            row.append(fmt_num(best.get("weight_gbps")) if best else "–")
        body.append(row)
    parts += [table(header, body), ""]
    return "\n".join(parts)


def write_readme(path, runs):
    readme_dir = os.path.dirname(os.path.abspath(path))
    runs = sorted(runs, key=lambda r: r.run.get("started_utc", ""), reverse=True)
    parts = ["# Sweep reports", "",
             "Generated by `tools/plot.py` from the `results.json` of each run below (newest first); "
             "do not edit by hand. A run is made with `tools/bazel run //harness:sweep` (see "
             "`--help`), which writes `reports/<date>-<cpu>/` and regenerates this file. Timings "
             "come from a shared 2-vCPU virtual machine: compare ratios within one run.", ""]
    # The newest run of each machine in full; older runs only listed (their files stay). A
    # newer run supersedes an older one only if it measured every format the older one did:
    # a run of a few formats (--formats) stands beside the machine's full run.
    latest, older = [], []
    for r in runs:
        mid = r.machine.get("machine_id", r.machine.get("cpu_model"))
        covered = any(l.machine.get("machine_id", l.machine.get("cpu_model")) == mid and
                      set(r.formats) <= set(l.formats) for l in latest)
        (older if covered else latest).append(r)
    if len(latest) > 1:
        parts.append("Machines: " + ", ".join(f"[{r.name}](#{r.name.lower()})" for r in latest))
        parts.append("")
    if older:
        parts.append("Older runs (superseded by a newer run on the same machine; delete their "
                     "directories when no longer wanted): " + ", ".join(
                         f"[{r.name}]({os.path.relpath(r.dir, readme_dir)}/results.json)" for r in older))
        parts.append("")
    if len(latest) > 1:
        parts.append(machines_section(latest))
    for r in latest:
        parts.append(run_section(r, readme_dir))
    parts += e2e_sections(readme_dir)
    with open(path + ".tmp", "w") as f:
        f.write("\n".join(parts).rstrip() + "\n")
    os.replace(path + ".tmp", path)


def refresh_readme(reports_dir):
    """Regenerates <reports_dir>/README.md from every sweep run (and model sweep run) in it;
    tools/plot_e2e.py calls this after a model sweep. Returns the path, or None when the
    directory holds no sweep run."""
    runs = [Run(os.path.join(reports_dir, n)) for n in sorted(os.listdir(reports_dir))
            if is_sweep_run(os.path.join(reports_dir, n))]
    if not runs:
        return None
    path = os.path.join(reports_dir, "README.md")
    write_readme(path, runs)
    return path


def resolve(p):
    """Relative paths are taken from where the user ran `bazel run`."""
    if os.path.isabs(p):
        return p
    base = os.environ.get("BUILD_WORKING_DIRECTORY") or os.getcwd()
    return os.path.join(base, p)


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="tools/bazel run //tools:plot --",
        description="Plots of //harness:sweep results (PNGs next to results.json) and the "
                    "reports README with the tables behind them.")
    ap.add_argument("runs", nargs="+", help="run directories holding results.json")
    ap.add_argument("--readme", help="README to (re)generate (default: <reports>/README.md when the "
                                     "run directories are inside a directory named 'reports'; "
                                     "all runs found there are summarized)")
    ap.add_argument("--no-readme", action="store_true", help="only the PNGs")
    ap.add_argument("--no-png", action="store_true", help="only the README")
    args = ap.parse_args(argv)
    runs = []
    for d in args.runs:
        d = resolve(d)
        if not os.path.isfile(os.path.join(d, "results.json")):
            print(f"plot: {d} has no results.json (give a run directory written by //harness:sweep)",
                  file=sys.stderr)
            return 2
        run = Run(d)
        if not args.no_png:
            plot_run(run)
            print(f"plot: {len(PNGS)} PNGs in {run.dir}")
        runs.append(run)
    if args.no_readme:
        return 0
    readme = resolve(args.readme) if args.readme else None
    if readme is None:
        parents = {os.path.dirname(r.dir) for r in runs}
        if len(parents) == 1 and os.path.basename(next(iter(parents))) == "reports":
            readme = os.path.join(next(iter(parents)), "README.md")
    if readme is None:
        return 0
    # Every run in the README's directory, plus the ones given.
    rdir = os.path.dirname(os.path.abspath(readme))
    by_dir = {r.dir: r for r in runs}
    for name in sorted(os.listdir(rdir)):
        d = os.path.join(rdir, name)
        if d not in by_dir and is_sweep_run(d):
            by_dir[d] = Run(d)
    write_readme(readme, list(by_dir.values()))
    print(f"plot: {readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
