"""Plots and README for a //harness:model_sweep run.

    tools/bazel run //tools:plot_e2e -- reports/e2e-<date>-<cpu>

Reads results.json in that directory and writes next to it: memory.png, decode.png,
prefill.png, speedup_vs_bytes.png, quality.png and README.md (tables behind the plots and
the answer to the seed's claims, with the bandwidth arithmetic). //harness:model_sweep calls
it at the end of a run.
"""

import json
import os
import statistics
import sys

# Format order and bits per weight come from the run's own format table (results.json
# "format_table", written by the model sweep from kernels/formats.inc): most bits first,
# among equals the later row of the table first. A file that mixes formats as a llama.cpp
# preset does (Gemma 3 270M's published Q4_K_M) comes after them, its bits per weight taken
# from its weights: 32 x (native weight bytes) / (weight bytes with --weights=f32).
FORMAT_ORDER = []
BPW = {}
# A model whose files are named after llama.cpp presets: a preset's name can be a format of
# the table (its Q2_K preset is mostly Q4_0 / Q3_K), so its bits per weight are the file's own
# (the record's bits_per_weight), never the table's.
PRESET_MODELS = ("smollm2-135m-presets",)
BPW_OF_FILE = {}  # (model, format) -> bits per weight of that file's matrices


def bpw(model, f):
    return BPW_OF_FILE.get((model, f), BPW.get(f))


def use_format_table(doc, path="results.json"):
    table = doc.get("format_table")
    if not isinstance(table, list) or not table:
        raise SystemExit("plot_e2e: %s has no format_table (written by //harness:model_sweep)" % path)
    order = sorted(range(len(table)), key=lambda i: (-table[i]["bits_per_weight"], -i))
    FORMAT_ORDER[:] = [table[i]["name"] for i in order]
    BPW.clear()
    BPW.update({f["name"]: f["bits_per_weight"] for f in table})
    BPW_OF_FILE.clear()
    for r in doc.get("records", []):
        if r.get("model") in PRESET_MODELS and r.get("bits_per_weight"):
            BPW_OF_FILE[(r["model"], r.get("format"))] = r["bits_per_weight"]
    for r in doc.get("records", []):
        f = r.get("format")
        if f in BPW or r.get("engine") != "ours" or r.get("weights") != "native":
            continue
        f32 = [x for x in doc["records"] if x.get("model") == r.get("model") and
               x.get("format") == f and x.get("weights") == "f32" and x.get("weight_bytes")]
        if r.get("weight_bytes") and f32:
            BPW[f] = 32.0 * r["weight_bytes"] / f32[0]["weight_bytes"]
            FORMAT_ORDER.append(f)
        elif r.get("bits_per_weight"):  # the sweep's count over the file's matrices
            BPW[f] = r["bits_per_weight"]
            FORMAT_ORDER.append(f)
MODEL_TITLE = {"smollm2-135m": "SmolLM2-135M (requantized)",
               "smollm2-135m-presets": "SmolLM2-135M (llama.cpp's own preset files)",
               "gemma3-270m": "Gemma 3 270M (llama.cpp's Q4_K_M file)",
               "synthetic-1.1b": "synthetic TinyLlama-1.1B shape (random weights)",
               "synthetic-tiny": "synthetic tiny llama (random weights)"}
SERIES = [("ours", "native", "ours, quantized weights (fused kernels)", "#1f77b4"),
          ("ours", "f32", "ours, --weights=f32 (dequantized at load)", "#ff7f0e"),
          ("llama.cpp", None, "llama.cpp, same file", "#2ca02c")]


def load(run_dir):
    path = os.path.join(run_dir, "results.json")
    if not os.path.isfile(path):
        raise SystemExit("plot_e2e: %s not found (run //harness:model_sweep first)" % path)
    with open(path) as f:
        doc = json.load(f)
    if doc.get("kind") != "model_sweep":
        raise SystemExit("plot_e2e: %s is not a model_sweep result" % path)
    use_format_table(doc, path)
    return doc


def ok(doc):
    return [r for r in doc["records"] if r.get("status") == "ok"]


def models_of(recs):
    seen = []
    for r in recs:
        if r["model"] not in seen:
            seen.append(r["model"])
    return seen


def formats_of(recs, model):
    fs = {r["format"] for r in recs if r["model"] == model}
    return [f for f in FORMAT_ORDER if f in fs]


def threads_of(recs):
    return sorted({r["threads"] for r in recs})


def pick(recs, model, fmt, engine, weights, threads=None):
    for r in recs:
        if (r["model"] == model and r["format"] == fmt and r["engine"] == engine and
                (engine != "ours" or r["weights"] == weights) and
                (threads is None or r["threads"] == threads)):
            return r
    return None


def val(r, key):
    return None if r is None else r.get(key)


def share_bw(machine, t):
    """The DRAM roofline a share may be given against at t threads: the run's best probe, but
    only when one of its probes was taken on a quiet machine (harness/machine.h; runs from
    before the model sweep recorded that: assumed)."""
    if not (machine.get("dram_read_trusted") or {}).get(str(t), True):
        return None
    return (machine.get("dram_read_gbs") or {}).get(str(t))


def share_cell(gbs, bw):
    """'26.4 (83%)'; above the roofline a flag, not a plain share: '26.4 (above DRAM! 104%)'."""
    if not (gbs and bw):
        return fmt_num(gbs)
    pct = 100 * gbs / bw
    return "%s (%s%s%%)" % (fmt_num(gbs), "above DRAM! " if pct > 100 else "", fmt_num(pct, 0))


def share_cells(gbs, adjacent, best):
    """With a DRAM probe beside the run (model_sweep_worker --adjacent_probe): '28.1 (92% / 85%)',
    the share of that probe, then of the run's best; without: share_cell."""
    if not adjacent:
        return share_cell(gbs, best)
    if not gbs:
        return fmt_num(gbs)
    pcts = [100 * gbs / b for b in (adjacent, best) if b]
    return "%s (%s%s)" % (fmt_num(gbs), "above DRAM! " if max(pcts) > 100 else "",
                          " / ".join(fmt_num(p, 0) + "%" for p in pcts))


def subtitle(doc):
    m = doc["machine"]
    bw = m.get("dram_read_gbs") or {}
    bws = ", ".join("%s thread%s %.0f GB/s" % (t, "" if t == "1" else "s", v)
                    for t, v in sorted(bw.items(), key=lambda kv: int(kv[0])))
    return "%s, %s cores; DRAM read %s; %s, commit %s" % (
        m.get("cpu_model", "?"), m.get("logical_cores", "?"), bws or "not measured",
        doc.get("created", "")[:10], m.get("git_commit", "?"))


def fmt_num(x, digits=1):
    if x is None:
        return "–"
    return ("%%.%df" % digits) % x


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


# ---- Plots -------------------------------------------------------------------------------

def plot_memory(doc, recs, plt, out):
    models = models_of(recs)
    fig, axes = plt.subplots(1, len(models), figsize=(7 * len(models), 5.2), squeeze=False)
    tmax = max(threads_of(recs))
    for ax, model in zip(axes[0], models):
        fmts = formats_of(recs, model)
        unit = 1e9 if model == "synthetic-1.1b" else 1e6
        uname = "GB" if unit == 1e9 else "MB"
        bars = [("file size", lambda f: val(pick(recs, model, f, "ours", "native", tmax), "file_bytes"), "#7f7f7f"),
                ("resident weights, ours native", lambda f: val(pick(recs, model, f, "ours", "native", tmax), "weight_bytes"), "#1f77b4"),
                ("peak RSS, ours native", lambda f: val(pick(recs, model, f, "ours", "native", tmax), "peak_rss_bytes"), "#aec7e8"),
                ("peak RSS, ours --weights=f32", lambda f: val(pick(recs, model, f, "ours", "f32", tmax), "peak_rss_bytes"), "#ff7f0e"),
                ("peak RSS, llama.cpp", lambda f: val(pick(recs, model, f, "llama.cpp", None, tmax), "peak_rss_bytes"), "#2ca02c")]
        width = 0.8 / len(bars)
        for i, (label, get, color) in enumerate(bars):
            xs, ys = [], []
            for j, f in enumerate(fmts):
                v = get(f)
                if v is not None:
                    xs.append(j + (i - (len(bars) - 1) / 2) * width)
                    ys.append(v / unit)
            if ys:
                ax.bar(xs, ys, width, label=label, color=color)
        f32w = val(pick(recs, model, "F32", "ours", "native", tmax), "weight_bytes") or \
            val(pick(recs, model, fmts[0], "ours", "f32", tmax), "weight_bytes")
        if f32w:
            ax.axhline(f32w / unit, color="k", ls="--", lw=1)
            ax.text(len(fmts) - 0.5, f32w / unit, " F32 weights", va="bottom", ha="right", fontsize=8)
            for j, f in enumerate(fmts):
                n = pick(recs, model, f, "ours", "native", tmax)
                w = val(n, "weight_bytes")
                if w and f != "F32":
                    top = max(w, val(n, "file_bytes") or 0, val(n, "peak_rss_bytes") or 0)
                    ax.text(j - 0.24, top / unit, "%.1fx\nless" % (f32w / w), ha="center",
                            va="bottom", fontsize=7, color="#1f77b4")
        ax.set_xticks(range(len(fmts)))
        ax.set_xticklabels(["%s\n%.2g bpw" % (f, bpw(model, f)) for f in fmts], fontsize=8)
        ax.set_ylabel(uname)
        ax.set_title(MODEL_TITLE.get(model, model), fontsize=10)
        ax.legend(fontsize=7, loc="upper right")
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("Memory per weight format vs F32 (%d threads)\n%s" % (tmax, subtitle(doc)), fontsize=10)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "memory.png"), dpi=110)
    plt.close(fig)


def plot_speed(doc, recs, plt, out, kind):
    models = models_of(recs)
    threads = threads_of(recs)
    fig, axes = plt.subplots(len(models), len(threads),
                             figsize=(max(10, 6.5 * len(threads)), 4.4 * len(models) + 0.6),
                             squeeze=False)
    for row, model in enumerate(models):
        fmts = formats_of(recs, model)
        for col, t in enumerate(threads):
            ax = axes[row][col]
            width = 0.8 / len(SERIES)
            for i, (engine, weights, label, color) in enumerate(SERIES):
                xs, ys, lo, hi = [], [], [], []
                for j, f in enumerate(fmts):
                    r = pick(recs, model, f, engine, weights, t)
                    v = val(r, kind + "_tok_s")
                    if v is None:
                        continue
                    xs.append(j + (i - 1) * width)
                    ys.append(v)
                    lo.append(v - (val(r, kind + "_tok_s_min") or v))
                    hi.append((val(r, kind + "_tok_s_max") or v) - v)
                if ys:
                    ax.bar(xs, ys, width, yerr=[lo, hi], capsize=2, label=label, color=color)
            ax.set_xticks(range(len(fmts)))
            ax.set_xticklabels(fmts, fontsize=8)
            ax.set_ylabel("%s tokens/s" % kind)
            ax.set_title("%s, %d thread%s" % (MODEL_TITLE.get(model, model), t, "" if t == 1 else "s"),
                         fontsize=9)
            ax.grid(axis="y", alpha=0.3)
            if row == 0 and col == 0:
                ax.legend(fontsize=7)
    what = ("decode (batch 1, %s tokens after a %s-token prompt)" if kind == "decode"
            else "prefill (one batch of %s prompt tokens)")
    s = doc["settings"]
    what = what % ((s["decode_tokens"], s["prompt_tokens"]) if kind == "decode" else (s["prompt_tokens"],))
    fig.suptitle("%s speed per format\nmedian of %d reps, error bars = min..max; %s" % (
        what[0].upper() + what[1:], s["reps"], subtitle(doc)), fontsize=10)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "%s.png" % kind), dpi=110)
    plt.close(fig)


def f32_baseline(recs, model, kind, t):
    """Our tok/s with F32 weights: the median over every run with F32 weights of this model
    and thread count (the F32 file, and each file with --weights=f32). All of them run the
    same F32 matmuls of the same shapes, so pooling them makes the baseline of every speedup
    the same, and less noisy than any single run on a shared machine."""
    xs = [r.get(kind + "_tok_s") for r in recs
          if r["model"] == model and r["engine"] == "ours" and r["threads"] == t and
          (r["weights"] == "f32" or r["format"] == "F32") and r.get(kind + "_tok_s")]
    return statistics.median(xs) if xs else None


def f32_bytes_of(recs, model):
    for r in recs:
        if r["model"] == model and r["engine"] == "ours" and (
                r["weights"] == "f32" or r["format"] == "F32") and r.get("weight_bytes"):
            return r["weight_bytes"]
    return None


def speedup_points(recs, model, kind, t):
    """(format, bytes ratio, speedup ours, bytes ratio llama, speedup llama) per quantized
    format; ours against f32_baseline(), llama.cpp against llama.cpp on the F32 file."""
    pts = []
    base = f32_baseline(recs, model, kind, t)
    for f in formats_of(recs, model):
        if f == "F32":
            continue
        nat = pick(recs, model, f, "ours", "native", t)
        br = ratio(f32_bytes_of(recs, model), val(nat, "weight_bytes"))
        sp = ratio(val(nat, kind + "_tok_s"), base)
        lf = pick(recs, model, f, "llama.cpp", None, t)
        l32 = pick(recs, model, "F32", "llama.cpp", None, t)
        lsp = ratio(val(lf, kind + "_tok_s"), val(l32, kind + "_tok_s"))
        lbr = ratio(val(l32, "weight_bytes"), val(lf, "weight_bytes"))
        pts.append((f, br, sp, lbr, lsp))
    return pts


def plot_speedup(doc, recs, plt, out):
    models = models_of(recs)
    threads = threads_of(recs)
    fig, axes = plt.subplots(len(models), 2, figsize=(13, 4.6 * len(models) + 0.8), squeeze=False)
    markers = {1: "o", 2: "s", 4: "^", 8: "D"}
    colors = {1: "#1f77b4", 2: "#d62728", 4: "#2ca02c", 8: "#9467bd"}
    for row, model in enumerate(models):
        pts_all = {(k, t): speedup_points(recs, model, k, t) for k in ("decode", "prefill")
                   for t in threads}
        brs = [p[1] for v in pts_all.values() for p in v if p[1]] + \
              [p[3] for v in pts_all.values() for p in v if p[3]]
        lim = 1.2 * max(brs + [2.0])

        def clip(y):
            return min(y, lim * 0.97)

        for col, kind in enumerate(("decode", "prefill")):
            ax = axes[row][col]
            for t in threads:
                pts = pts_all[(kind, t)]
                ours = [p for p in pts if p[1] and p[2]]
                if ours:
                    ax.scatter([p[1] for p in ours], [clip(p[2]) for p in ours],
                               marker=markers.get(t, "o"), color=colors.get(t, "k"),
                               label="ours, %d thread%s" % (t, "" if t == 1 else "s"), zorder=3)
                    for p in ours:
                        txt = p[0] if p[2] < lim * 0.97 else "%s (%.0fx)" % (p[0], p[2])
                        ax.annotate(txt, (p[1], clip(p[2])), fontsize=6, xytext=(4, 2),
                                    textcoords="offset points", color=colors.get(t, "k"))
                theirs = [p for p in pts if p[3] and p[4]]
                if theirs:
                    ax.scatter([p[3] for p in theirs], [clip(p[4]) for p in theirs],
                               marker=markers.get(t, "o"), facecolors="none",
                               edgecolors=colors.get(t, "k"),
                               label="llama.cpp, %d thread%s" % (t, "" if t == 1 else "s"),
                               zorder=2)
                    for p in theirs:
                        txt = p[0] if p[4] < lim * 0.97 else "%s (%.0fx)" % (p[0], p[4])
                        ax.annotate(txt, (p[3], clip(p[4])), fontsize=6, xytext=(4, -8),
                                    textcoords="offset points", color="gray")
            ax.plot([0, lim], [0, lim], "k--", lw=1, label="speedup = bytes ratio")
            ax.axhline(1, color="gray", lw=0.8)
            ax.set_xlim(0, lim)
            ax.set_ylim(0, lim)
            ax.set_xlabel("bytes ratio: F32 weight bytes / format weight bytes")
            ax.set_ylabel("%s speedup over F32 weights" % kind)
            ax.set_title("%s: %s" % (MODEL_TITLE.get(model, model), kind), fontsize=9)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=6, loc="upper left")
    fig.suptitle("Speedup over F32 against the bytes ratio (filled: ours over our median F32-weight "
                 "run; hollow: llama.cpp over llama.cpp on the F32 file)\n%s" % subtitle(doc),
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "speedup_vs_bytes.png"), dpi=110)
    plt.close(fig)


def quality_models(recs):
    """The models with a log-likelihood, SmolLM2 requantized first."""
    ms = [m for m in models_of(recs) if any(r["model"] == m and r.get("mean_loglik") is not None
                                           for r in recs)]
    return sorted(ms, key=lambda m: m != "smollm2-135m")


def quality_rows(recs, model="smollm2-135m"):
    rows = []
    for f in formats_of(recs, model):
        vals = {}
        for engine, weights, _, _ in SERIES:
            for r in recs:
                if (r["model"] == model and r["format"] == f and r["engine"] == engine and
                        (engine != "ours" or r["weights"] == weights) and
                        r.get("mean_loglik") is not None):
                    vals[(engine, weights)] = r["mean_loglik"]
                    break
        rows.append((f, vals))
    return rows


def plot_quality(doc, recs, plt, out):
    rows = quality_rows(recs)
    if not rows or not any(v for _, v in rows):
        return False
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    fmts = [f for f, _ in rows]
    width = 0.8 / len(SERIES)
    for i, (engine, weights, label, color) in enumerate(SERIES):
        xs, ys, dx, ds = [], [], [], []
        ref_e = dict(rows).get("F32", {}).get((engine, weights))
        for j, (f, vals) in enumerate(rows):
            v = vals.get((engine, weights))
            if v is None:
                continue
            xs.append(j + (i - 1) * 0.12)
            ys.append(-v)
            if ref_e is not None and f != "F32":
                dx.append(j + (i - 1) * width)
                ds.append(ref_e - v)
        if ys:
            axes[0].plot(xs, ys, "o", ms=7, label=label, color=color)
        if ds:
            axes[1].bar(dx, ds, width, label=label, color=color)
    ref = dict(rows).get("F32", {}).get(("ours", "native"))
    if ref is not None:
        axes[0].axhline(-ref, color="k", ls="--", lw=1)
        axes[0].text(len(fmts) - 0.5, -ref, "F32 ", ha="right", va="bottom", fontsize=8)
    axes[1].axhline(0, color="k", lw=0.8)
    for ax in axes:
        ax.set_xticks(range(len(fmts)))
        ax.set_xticklabels(["%s\n%.3g bpw" % (f, BPW[f]) for f in fmts], fontsize=8)
        ax.set_xlim(-0.6, len(fmts) - 0.4)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("negative log-likelihood per token (nats; lower is better)")
    axes[0].set_title("SmolLM2-135M on harness/model_sweep_heldout.txt (%s tokens)" %
                      next((r.get("loglik_tokens") for r in recs if r.get("loglik_tokens")), "?"),
                      fontsize=9)
    axes[1].set_ylabel("increase over the F32 file, same engine (nats/token)")
    axes[1].set_title("What each format costs (source file is Q4_1: F32 = its exact dequantization)",
                      fontsize=9)
    axes[0].legend(fontsize=7)
    fig.suptitle("Quality per format\n%s" % subtitle(doc), fontsize=10)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "quality.png"), dpi=110)
    plt.close(fig)
    return True


# ---- README ------------------------------------------------------------------------------

def table(recs, model, t, bw):
    fmts = formats_of(recs, model)
    base = f32_baseline(recs, model, "decode", t)
    f32w = None
    for f in fmts:
        f32w = f32w or val(pick(recs, model, f, "ours", "f32", t), "weight_bytes")
    lines = [
        "| format | file MB | weights MB (ours) | less memory than F32 | peak RSS MB ours / f32-mode / llama.cpp | load s ours / f32-mode | prefill tok/s ours / f32-mode / llama.cpp | decode tok/s ours / f32-mode / llama.cpp | decode speedup over F32 (median F32 run) | weight GB/s in decode (% of DRAM) |",
        "|---|---|---|---|---|---|---|---|---|---|"]
    if any(val(pick(recs, model, f, "ours", "native", t), "dram_adjacent_gbs") for f in fmts):
        lines[0] = lines[0].replace(
            "(% of DRAM)", "(% of the DRAM probe beside it / of the run's best probe)")
    for f in fmts:
        n = pick(recs, model, f, "ours", "native", t)
        w = pick(recs, model, f, "ours", "f32", t)
        l = pick(recs, model, f, "llama.cpp", None, t)
        wb = val(n, "weight_bytes")
        dec = val(n, "decode_tok_s")
        gbs = dec * wb / 1e9 if dec and wb else None
        lines.append("| %s | %s | %s | %s | %s / %s / %s | %s / %s | %s / %s / %s | %s / %s / %s | %s | %s |" % (
            f, fmt_num(val(n, "file_bytes") and val(n, "file_bytes") / 1e6),
            fmt_num(wb and wb / 1e6), fmt_num(ratio(f32w, wb), 2) + "x" if ratio(f32w, wb) else "–",
            fmt_num(val(n, "peak_rss_bytes") and val(n, "peak_rss_bytes") / 1e6, 0),
            fmt_num(val(w, "peak_rss_bytes") and val(w, "peak_rss_bytes") / 1e6, 0),
            fmt_num(val(l, "peak_rss_bytes") and val(l, "peak_rss_bytes") / 1e6, 0),
            fmt_num(val(n, "load_s"), 2), fmt_num(val(w, "load_s"), 2),
            fmt_num(val(n, "prefill_tok_s")), fmt_num(val(w, "prefill_tok_s")), fmt_num(val(l, "prefill_tok_s")),
            fmt_num(dec, 2), fmt_num(val(w, "decode_tok_s"), 2), fmt_num(val(l, "decode_tok_s"), 2),
            (fmt_num(ratio(dec, base), 2) + "x") if ratio(dec, base) else "–",
            share_cells(gbs, val(n, "dram_adjacent_gbs"), bw)))
    return "\n".join(lines)


# attn_qkv / ffn_gate_up: one pass over Q, K, V / gate, up (results before that name them apart).
PROFILE_MATMULS = ("attn_qkv", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate_up",
                   "ffn_gate", "ffn_up", "ffn_down", "lm_head")


def breakdown_table(recs, model, t):
    """Where one decoded token's time goes (ours, native weights; the worker's profiled run,
    runtime/profile.h): the matmuls (and the largest of them), attention, the rest, and the
    weight GB/s of the matmuls alone and of the whole token. None without profiles."""
    lines = ["| format | ms / token | matmuls | largest matmul | attention | other | "
             "matmul weight GB/s | whole-token weight GB/s |",
             "|---|---|---|---|---|---|---|---|"]
    any_row = False
    for f in formats_of(recs, model):
        prof = val(pick(recs, model, f, "ours", "native", t), "profile_decode")
        if not prof or not prof.get("evals") or not prof.get("seconds"):
            continue
        any_row = True
        parts, total, evals = prof["parts"], prof["seconds"], prof["evals"]
        mm = [(parts[k]["seconds"], k) for k in PROFILE_MATMULS if k in parts]
        mm_s = sum(x for x, _ in mm)
        mm_b = sum(parts[k]["weight_bytes"] for k in PROFILE_MATMULS if k in parts)
        big_s, big = max(mm) if mm else (0, "–")
        lines.append("| %s | %.3f | %.1f%% | %s %.1f%% | %.1f%% | %.1f%% | %s | %s |" % (
            f, 1e3 * total / evals, 100 * mm_s / total, big, 100 * big_s / total,
            100 * parts["attention"]["seconds"] / total, 100 * parts["other"]["seconds"] / total,
            fmt_num(mm_b / mm_s / 1e9 if mm_s else None, 2), fmt_num(mm_b / total / 1e9, 2)))
    return "\n".join(lines) if any_row else None


def size_str(b):
    return "%.2f GB" % (b / 1e9) if b >= 1e9 else "%.1f MB" % (b / 1e6)


def claims(doc, recs):
    """The section answering the seed's claims, from the numbers of this run."""
    out = []
    big = "synthetic-1.1b" if any(r["model"] == "synthetic-1.1b" for r in recs) else None
    model = big or ("synthetic-tiny" if any(r["model"] == "synthetic-tiny" for r in recs) else "smollm2-135m")
    if not any(r["model"] == model for r in recs) and recs:
        model = recs[0]["model"]  # a run of one other model (e.g. --models=presets)
    t = max(threads_of(recs))
    bw = share_bw(doc["machine"], t)
    n32 = pick(recs, model, "F32", "ours", "native", t)
    f32_bytes = val(n32, "weight_bytes")
    if f32_bytes is None:
        for f in formats_of(recs, model):
            f32_bytes = f32_bytes or val(pick(recs, model, f, "ours", "f32", t), "weight_bytes")
    out.append("### Does keeping weights quantized give \"8GB → 1GB\" and \"2-4x faster\"?")
    out.append("")
    out.append("Measured on the %s model at %d threads in this run (tables below). Speedups "
               "are over our runtime with F32 weights: the median of every F32-weight run of "
               "that model and thread count (the F32 file, and every file with "
               "`--weights=f32`, which dequantizes at load), %.2f decode and %.1f prefill "
               "tok/s here." % (MODEL_TITLE.get(model, model), t,
                               f32_baseline(recs, model, "decode", t) or 0,
                               f32_baseline(recs, model, "prefill", t) or 0))
    out.append("")
    # Memory.
    mem = []
    for f in formats_of(recs, model):
        if f == "F32":
            continue
        wb = val(pick(recs, model, f, "ours", "native", t), "weight_bytes")
        if wb and f32_bytes:
            mem.append((f, f32_bytes / wb, wb))
    if mem and f32_bytes:
        best = max(mem, key=lambda m: m[1])
        rss = []
        doubled = []
        for f, r, wb in mem:
            n = val(pick(recs, model, f, "ours", "native", t), "peak_rss_bytes")
            l = val(pick(recs, model, f, "llama.cpp", None, t), "peak_rss_bytes")
            if n:
                rss.append("%s %s" % (f, size_str(n)))
            if l and l > 1.6 * wb:
                doubled.append(f)
        text = ("**Memory: up to %.1fx less, not 8x.** F32 weights take %s; kept quantized "
                "they take %s. \"8GB → 1GB\" is 8x, which needs 4.0 bits per weight; the "
                "4-bit formats store 4.5 (Q4_0: a 16-bit scale per 32 weights; Q4_K: 6-bit "
                "scales and mins per 32 plus two 16-bit scales per 256), so they reach "
                "32/4.5 = 7.1x; Q8_0 reaches 3.8x. Our peak RSS follows the weights (%s; the "
                "file is memory-mapped, and of the embedding only the rows of tokens seen are "
                "paged in, which about offsets the KV cache and buffers), while "
                "`--weights=f32` on a quantized file costs the F32 size plus the mapped file "
                "(%s for the Q4_K file)." % (
                    best[1], size_str(f32_bytes),
                    ", ".join("%s %s (%.1fx less)" % (f, size_str(wb), r) for f, r, wb in mem),
                    ", ".join(rss),
                    size_str(val(pick(recs, model, "Q4_K", "ours", "f32", t), "peak_rss_bytes") or 0)))
        if doubled:
            text += (" llama.cpp's peak RSS is about twice the weights for %s: it repacks those "
                     "types into an interleaved copy at load (its CPU_REPACK buffer) while the "
                     "mapped file stays resident." % ", ".join(doubled))
        out.append(text)
        out.append("")
    # Decode.
    dec = [(p[0], p[1], p[2]) for p in speedup_points(recs, model, "decode", t) if p[1] and p[2]]
    pre = [(p[0], p[1], p[2]) for p in speedup_points(recs, model, "prefill", t) if p[1] and p[2]]
    if dec:
        holds = [f for f, br, sp in dec if 2 <= sp <= 4]
        beats = [f for f, br, sp in dec if sp > 4]
        short = [f for f, br, sp in dec if sp < 2]
        verdict = []
        if beats:
            verdict.append("is beaten (over 4x) by %s" % ", ".join(beats))
        if holds:
            verdict.append("holds for %s" % ", ".join(holds))
        if short:
            verdict.append("falls short (under 2x) for %s" % ", ".join(short))
        out.append("**Decode (batch 1): the 2-4x claim %s.** Speedup over F32: %s." % (
            "; ".join(verdict),
            ", ".join("%s %.2fx (bytes ratio %.1fx)" % (f, sp, br) for f, br, sp in dec)))
        out.append("")
    d32 = f32_baseline(recs, model, "decode", t)
    if bw and f32_bytes and d32:
        text = ("**Why: bandwidth arithmetic.** Decoding one token reads every weight once, so "
                "tok/s ≤ DRAM bandwidth / weight bytes. This run measured %.1f GB/s DRAM read "
                "bandwidth at %d threads. F32: %s per token → at most %.1f tok/s; measured "
                "%.2f tok/s, i.e. %.1f GB/s of weights (%.0f%% of DRAM)." % (
                    bw, t, size_str(f32_bytes), bw * 1e9 / f32_bytes, d32, d32 * f32_bytes / 1e9,
                    100 * d32 * f32_bytes / 1e9 / bw))
        parts = []
        for f, r, wb in mem:
            d = val(pick(recs, model, f, "ours", "native", t), "decode_tok_s")
            if d:
                parts.append("%s: %s → at most %.1f tok/s, measured %.2f (%.1f GB/s, %.0f%%)" % (
                    f, size_str(wb), bw * 1e9 / wb, d, d * wb / 1e9, 100 * d * wb / 1e9 / bw))
        if parts:
            text += " " + "; ".join(parts) + "."
        shares = [d32 * f32_bytes / 1e9 / bw] + [
            (val(pick(recs, model, f, "ours", "native", t), "decode_tok_s") or 0) * wb / 1e9 / bw
            for f, r, wb in mem]
        if max(shares) > 1.0:
            text += (" (Shares above 100% mean the bandwidth probe, the better of one run at "
                     "the start and one at the end of the sweep, caught the shared host at a "
                     "busier moment than some of the decode runs: the probe is one more noisy "
                     "measurement; the ratios between formats are the robust part.)")
        text += (" If a format streamed its bytes at the same share of DRAM as F32, its decode "
                 "speedup would equal its bytes ratio (the dashed line in speedup_vs_bytes.png). "
                 "It falls below that line when unpacking the blocks costs more instructions "
                 "than the saved bandwidth leaves time for (the kernel turns compute-bound), and "
                 "because the per-token work that is not weight streaming (attention over the KV "
                 "cache, norms, RoPE, the embedding row, argmax over the vocabulary) does not "
                 "shrink at all.")
        out.append(text)
        out.append("")
    if pre:
        out.append("**Prefill (%d tokens in one batch)** is compute-bound: each weight byte "
                   "feeds %d multiply-adds, so reading fewer bytes hardly matters and the "
                   "speedup reflects the kernels' arithmetic throughput (the quantized formats "
                   "run int8 dot products on quantized activations, F32 runs f32 FMAs). "
                   "Speedup over F32: %s." % (
                       doc["settings"]["prompt_tokens"], doc["settings"]["prompt_tokens"],
                       ", ".join("%s %.2fx" % (f, sp) for f, br, sp in pre)))
        out.append("")
    # llama.cpp.
    lp = []
    for f in formats_of(recs, model):
        n = val(pick(recs, model, f, "ours", "native", t), "decode_tok_s")
        l = val(pick(recs, model, f, "llama.cpp", None, t), "decode_tok_s")
        if n and l:
            lp.append("%s %.2f vs %.2f (%.2fx)" % (f, n, l, n / l))
    if lp:
        out.append("**Against llama.cpp** on the same files and threads, decode tok/s ours vs "
                   "llama.cpp: %s." % ", ".join(lp))
        out.append("")
    # Quality.
    q = quality_rows(recs)
    qd = dict(q)
    ref = qd.get("F32", {}).get(("ours", "native"))
    lref = qd.get("F32", {}).get(("llama.cpp", None))
    if ref is not None:
        items = []
        for f, v in q:
            if f == "F32" or ("ours", "native") not in v:
                continue
            item = "%s %+.4f" % (f, v[("ours", "native")] - ref)
            if lref is not None and ("llama.cpp", None) in v:
                item += " (llama.cpp %+.4f)" % (v[("llama.cpp", None)] - lref)
            items.append(item)
        out.append("**Quality** (SmolLM2-135M; change of the mean log-likelihood per token of "
                   "the held-out text against the F32 file, nats, negative = worse; the source "
                   "file is Q4_1, so F32 is its exact dequantization and every format a "
                   "requantization of Q4_1 weights; every 2-D tensor is requantized, including "
                   "the token embedding that is also the LM head, which llama.cpp's own "
                   "mixtures keep at higher precision): %s." % ", ".join(items))
        out.append("")
    return "\n".join(out)


def readme(doc, recs, run_dir, have_quality):
    s = doc["settings"]
    m = doc["machine"]
    lines = ["# End-to-end per format: memory, speed and quality (`//harness:model_sweep`)", ""]
    lines.append("Produced by `%s` on %s (%s logical cores; ISA: %s), compiler %s, commit %s, "
                 "%s%s. Each configuration ran in its own process: load, a warm-up (16-token "
                 "prompt, 4 decode steps), then %d timed repetitions of a %d-token prompt "
                 "(one batch) and %d greedy decode steps; tok/s are medians. llama.cpp: "
                 "llama-cpp-python %s from PyPI, built locally (oracle venv), default settings "
                 "(mmap, its own thread pool), timed around `llama_decode` only. The machine is "
                 "a shared 2-vCPU VM: compare ratios within this run, not absolute numbers "
                 "across runs (the load average before each configuration is in results.csv)." % (
                     doc.get("command", "tools/bazel run //harness:model_sweep"),
                     m.get("cpu_model"), m.get("logical_cores"),
                     " ".join(f for f in m.get("isa_flags", []) if f.startswith("avx")),
                     m.get("compiler"), m.get("git_commit"), doc.get("created", ""),
                     "" if doc.get("complete", True) else " (interrupted: partial results)",
                     s["reps"], s["prompt_tokens"], s["decode_tokens"],
                     m.get("llama_cpp_version", "(absent)")))
    bw = m.get("dram_read_gbs") or {}
    if bw:
        lines.append("")
        probes = m.get("dram_probes") or []
        lines.append("DRAM read bandwidth measured in this run (the best probe%s): %s." % (
            " of %d, each after a bounded wait for a quiet machine" % len(probes) if probes else "",
            ", ".join("%.1f GB/s at %s thread%s%s" % (
                v, t, "" if t == "1" else "s",
                "" if share_bw(m, t) else " (no probe on a quiet machine: a lower bound, no "
                "share of it given)")
                for t, v in sorted(bw.items(), key=lambda kv: int(kv[0])))))
    failed = [r for r in doc["records"] if r.get("status") != "ok"]
    if failed:
        lines.append("")
        lines.append("Configurations that did not run:")
        lines.append("")
        for r in failed:
            lines.append("- %s %s %s%s, %d thread(s): %s" % (
                r["model"], r["format"], r["engine"], (" " + r["weights"]) if r.get("weights") else "",
                r["threads"], r["status"]))
    if any(r["model"] != "gemma3-270m" for r in recs):  # the claims are about those models
        lines.append("")
        lines.append(claims(doc, recs))
    lines.append("")
    lines.append("## Tables")
    for model in models_of(recs):
        types = {}
        for r in recs:
            if r["model"] == model:
                types[r["format"]] = r.get("tensor_types", {})
        for t in threads_of(recs):
            lines.append("")
            lines.append("### %s, %d thread%s" % (MODEL_TITLE.get(model, model), t, "" if t == 1 else "s"))
            lines.append("")
            lines.append(table(recs, model, t, share_bw(m, t)))
            bd = breakdown_table(recs, model, t)
            if bd:
                lines.append("")
                lines.append("Where a decoded token's time goes (ours, native weights; one "
                             "profiled run, `generate --profile` prints the same per matmul):")
                lines.append("")
                lines.append(bd)
        lines.append("")
        lines.append("Tensor types per file: " + "; ".join(
            "%s = %s" % (f, ", ".join("%s×%d" % kv for kv in sorted(types[f].items())))
            for f in formats_of(recs, model) if isinstance(types.get(f), dict)) + ".")
    for model in quality_models(recs):
        lines.append("")
        lines.append("### Quality: %s, mean log-likelihood per token of harness/model_sweep_heldout.txt"
                     % MODEL_TITLE.get(model, model))
        lines.append("")
        chunk = next((r.get("loglik_chunk") for r in recs
                      if r["model"] == model and r.get("loglik_chunk")), None)
        ntok = next((r.get("loglik_tokens") for r in recs
                     if r["model"] == model and r.get("loglik_tokens")), None)
        if chunk:
            lines.append("%s tokens, scored in chunks of %d from an empty cache by both engines; "
                         "ours − llama.cpp is the mean of the per-token differences ± its "
                         "standard error (paired: the same tokens in the same contexts)." %
                         (ntok or "?", chunk))
            lines.append("")
        lines.append("| format | bpw | ours (quantized) | ours --weights=f32 | llama.cpp | "
                     "ours − llama.cpp |")
        lines.append("|---|---|---|---|---|---|")
        for f, vals in quality_rows(recs, model):
            ours, llama = vals.get(("ours", "native")), vals.get(("llama.cpp", None))
            gap = ("%+.4f" % (ours - llama)) if ours is not None and llama is not None else "–"
            pair = next((r.get("loglik_vs_llama") for r in recs
                         if r["model"] == model and r["format"] == f and r["engine"] == "ours"
                         and r.get("weights") == "native" and r.get("loglik_vs_llama")), None)
            if pair:
                gap = "%+.4f ± %.4f" % (pair["diff"], pair["se"])
            lines.append("| %s | %.2f | %s | %s | %s | %s |" % (
                f, bpw(model, f), fmt_num(ours, 4), fmt_num(vals.get(("ours", "f32")), 4),
                fmt_num(llama, 4), gap))
    lines.append("")
    lines.append("## Plots")
    for name, what in [("memory.png", "memory per format vs F32"),
                       ("decode.png", "decode tok/s per format: ours quantized, ours F32, llama.cpp"),
                       ("prefill.png", "prefill tok/s per format"),
                       ("speedup_vs_bytes.png", "speedup over F32 against the bytes ratio"),
                       ("quality.png", "quality per format")]:
        if os.path.isfile(os.path.join(run_dir, name)):
            lines.append("")
            lines.append("![%s](%s)" % (what, name))
    if os.path.isfile(os.path.join(run_dir, "llama_loads.md")):
        lines.append("")
        lines.append("What llama.cpp does with each of our quantized files: [llama_loads.md](llama_loads.md).")
    lines.append("")
    with open(os.path.join(run_dir, "README.md"), "w") as f:
        f.write("\n".join(lines))


def main(argv):
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    from tools import plot as kernel_plot
    run_dir = kernel_plot.resolve(argv[0])
    doc = load(run_dir)
    recs = ok(doc)
    if not recs:
        raise SystemExit("plot_e2e: no successful configurations in %s" % run_dir)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    plot_memory(doc, recs, plt, run_dir)
    plot_speed(doc, recs, plt, run_dir, "decode")
    plot_speed(doc, recs, plt, run_dir, "prefill")
    plot_speedup(doc, recs, plt, run_dir)
    have_quality = plot_quality(doc, recs, plt, run_dir)
    readme(doc, recs, run_dir, have_quality)
    print("plot_e2e: wrote plots and README.md in %s" % run_dir, file=sys.stderr)
    # reports/README.md carries the claims section of the newest model sweep next to the
    # kernel sweep's tables; it is regenerated by tools/plot.py's refresh_readme.
    parent = os.path.dirname(os.path.abspath(run_dir))
    if os.path.basename(parent) == "reports":
        path = kernel_plot.refresh_readme(parent)
        if path:
            print("plot_e2e: regenerated %s" % path, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
