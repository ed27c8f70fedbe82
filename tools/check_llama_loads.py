"""Does llama.cpp load and run the GGUF files our tools write? (tools/check_llama_loads)

Runs with the oracle venv's Python; each file is tried in its own process
(harness/model_sweep_llama.py), so a crash inside llama.cpp is reported, not fatal. A file on
which llama.cpp is killed by a signal is tried again with llama.cpp's extra buffer types off
(tools/llama_peer.py: ggml 0.25.3's AMX path faults on Xeons with AMX); its row says so.
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys

import llama_peer  # tools/llama_peer.py, next to this file

FORMATS = ["F32", "Q4_0", "Q4_1", "Q5_0", "Q8_0", "Q4_K", "Q5_K", "Q6_K", "Q8_K"]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(ROOT, "harness", "model_sweep_llama.py")
HELDOUT = os.path.join(ROOT, "harness", "model_sweep_heldout.txt")
CHAT = ("<|im_start|>user\nWhat is the capital of France?<|im_end|>\n"
        "<|im_start|>assistant\n")


def say(msg):
    print(msg, file=sys.stderr, flush=True)


def run_worker(args, timeout=900):
    """(result JSON or None, error text, note on llama.cpp's fallback or "")."""
    cmd = [sys.executable, WORKER] + args
    try:
        p = llama_peer.run(cmd, timeout=timeout)  # no gdb backtrace; rerun after a crash
    except subprocess.TimeoutExpired:
        return None, "timed out after %d s" % timeout, ""
    note = ("extra buffer types off: with them on, llama.cpp was %s" % p.crash) if p.crash else ""
    err = [l for l in p.stderr.decode("utf-8", "replace").splitlines() if l.strip()]
    phases = [l.split(": ", 1)[1] for l in err if l.startswith("model_sweep_llama: ")]
    if p.returncode != 0:
        what = ("killed by %s" % signal.Signals(-p.returncode).name if p.returncode < 0
                else "exit code %d" % p.returncode)
        last = phases[-1] if phases else (err[-1] if err else "")
        ggml = [l for l in err if "GGML_ASSERT" in l or "fatal error" in l]
        if ggml:  # "<path>/ggml/src/ggml-cpu/ops.cpp:5422: fatal error" -> from ggml/src
            what += ", " + re.sub(r"^.*/(ggml/src/)", r"\1", ggml[-1])
        return None, "%s (last step: %s)%s" % (what, last, ("; " + note) if note else ""), note
    return json.loads(p.stdout.decode().strip().splitlines()[-1]), "", note


def tensor_types(path):
    import gguf
    counts = {}
    for t in gguf.GGUFReader(path).tensors:
        counts[t.tensor_type.name] = counts.get(t.tensor_type.name, 0) + 1
    return " ".join("%s:%d" % kv for kv in sorted(counts.items()))


def res_ok(row):
    return not row["status"].startswith("FAILED")


def common_prefix(a, b):
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quantize", required=True)
    ap.add_argument("--make_synthetic", required=True)
    ap.add_argument("--cache", required=True)
    ap.add_argument("--formats", default=",".join(FORMATS))
    ap.add_argument("--synthetic_1b", action="store_true",
                    help="also the 1.1B synthetic files (generated if missing: minutes)")
    ap.add_argument("--out", default="", help="directory for llama_loads.md / .json")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    formats = [f.strip().upper() for f in a.formats.split(",") if f.strip()]
    src = os.path.join(a.cache, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
    work = os.path.join(a.cache, "e2e", "check")
    os.makedirs(work, exist_ok=True)
    rows = []

    # SmolLM2 requantized by our tool.
    ref_ids, ref_ll = None, None
    for f in ["F32"] + [x for x in formats if x != "F32"]:
        out = os.path.join(work, "SmolLM2-135M-Instruct.%s.gguf" % f)
        say("check_llama_loads: quantizing SmolLM2 to %s" % f)
        subprocess.run([a.quantize, "--quiet", "--in=" + src, "--out=" + out, "--type=" + f],
                       check=True)
        say("check_llama_loads: llama.cpp on %s" % out)
        res, err, note = run_worker(["--model=" + out, "--threads=%d" % a.threads, "--reps=0",
                                     "--generate_text=" + CHAT, "--generate_tokens=16",
                                     "--ll_text=" + HELDOUT])
        row = {"model": "SmolLM2-135M", "format": f, "file": out,
               "file_mb": round(os.path.getsize(out) / 1e6, 2), "types": tensor_types(out),
               "llama_fallback": note}
        if res is None:
            row.update(status="FAILED: " + err)
        else:
            ids = res["generated_ids"]
            if f == "F32":
                ref_ids, ref_ll = ids, res["mean_loglik"]
            text = res["generated_text"]
            row.update(
                status="ok" if "Paris" in text else "loads, but no 'Paris'",
                text=text.split("<|im_end|>")[0].strip(),
                same_tokens_as_f32=common_prefix(ids, ref_ids) if ref_ids else None,
                mean_loglik=round(res["mean_loglik"], 4),
                loglik_vs_f32=round(res["mean_loglik"] - ref_ll, 4) if ref_ll is not None else None,
                llama_weight_mb=round(res["weight_bytes"] / 1e6, 2))
        rows.append(row)
        say("    " + row["status"] + ((" (" + note + ")") if note else ""))

    # Synthetic llama models (SentencePiece-style tokenizer section, random weights).
    shapes = [("tiny", 1024)] + ([("1.1b", 32000)] if a.synthetic_1b else [])
    for shape, vocab in shapes:
        fmts = formats if shape == "tiny" else ["F32", "Q8_0", "Q6_K", "Q5_K", "Q4_K", "Q4_0"]
        p = subprocess.run([a.make_synthetic, "--shape=" + shape, "--formats=" + ",".join(fmts)],
                           stdout=subprocess.PIPE, check=True)
        files = dict(l.split()[:2] for l in p.stdout.decode().splitlines() if l.strip())
        ref_ids = None
        for f in fmts:
            path = files[f]
            say("check_llama_loads: llama.cpp on %s" % path)
            prompt = [1] + [300 + (i * 37) % (vocab - 300) for i in range(15)]
            res, err, note = run_worker(["--model=" + path, "--threads=%d" % a.threads,
                                         "--reps=1", "--prompt_ids=" + ",".join(map(str, prompt)),
                                         "--decode_tokens=8", "--warmup_prompt=4",
                                         "--warmup_decode=2", "--generate_text=Hello world",
                                         "--generate_tokens=4"])
            row = {"model": "synthetic-" + shape, "format": f, "file": path,
                   "file_mb": round(os.path.getsize(path) / 1e6, 2), "types": tensor_types(path),
                   "llama_fallback": note}
            if res is None:
                row.update(status="FAILED: " + err)
            else:
                ids = res["generated_ids"]
                if f == "F32":
                    ref_ids = ids
                row.update(status="ok" if all(0 <= t < vocab for t in ids) else "bad token ids",
                           text="(random weights) " + json.dumps(res["generated_text"]),
                           same_tokens_as_f32=common_prefix(ids, ref_ids) if ref_ids else None,
                           llama_weight_mb=round(res["weight_bytes"] / 1e6, 2))
            rows.append(row)
            say("    " + row["status"] + ((" (" + note + ")") if note else ""))

    lines = ["| model | format | tensor types written | file MB | llama.cpp | greedy output | "
             "same first tokens as F32 (of 16 / 4) | mean log-lik (vs F32) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ll = ""
        if r.get("mean_loglik") is not None:
            ll = "%.4f (%+.4f)" % (r["mean_loglik"], r["loglik_vs_f32"] or 0)
        status = r["status"]
        if r.get("llama_fallback") and res_ok(r):
            status += " (%s)" % r["llama_fallback"]
        lines.append("| %s | %s | %s | %.1f | %s | %s | %s | %s |" % (
            r["model"], r["format"], r["types"], r["file_mb"], status.replace("|", "\\|"),
            (r.get("text") or "").replace("\n", " ").replace("|", "\\|")[:60],
            "" if r.get("same_tokens_as_f32") is None else r["same_tokens_as_f32"], ll))
    table = "\n".join(lines)
    print(table)
    if a.out:
        os.makedirs(a.out, exist_ok=True)
        import llama_cpp
        with open(os.path.join(a.out, "llama_loads.md"), "w") as f:
            f.write("# llama.cpp on our GGUF files\n\nMade by `tools/check_llama_loads` with "
                    "llama-cpp-python %s (greedy, %d threads). SmolLM2: our `//runtime:quantize` "
                    "output from the Q4_1 file of `tools/fetch_model`, prompt \"What is the capital "
                    "of France?\" in ChatML; log-likelihood over harness/model_sweep_heldout.txt "
                    "(tokenized by llama.cpp). Synthetic: `//runtime:make_synthetic_model` files.\n\n"
                    % (llama_cpp.__version__, a.threads))
            f.write(table + "\n")
        with open(os.path.join(a.out, "llama_loads.json"), "w") as f:
            json.dump(rows, f, indent=1)
    failed = [r for r in rows if r["status"] != "ok"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
