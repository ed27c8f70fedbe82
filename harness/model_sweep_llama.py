"""llama.cpp's side of the model sweep: one GGUF file, one thread count, through the C API of
llama-cpp-python (run with the oracle venv's Python, $FK_CACHE/oracle-venv; see tools/setup_ggml).

    python harness/model_sweep_llama.py --model=F.gguf --threads=2 --prompt_ids=1,2,3 \
        --decode_tokens=64 --reps=3 [--ll_ids=...] [--warmup_prompt=16 --warmup_decode=4]

Prints one JSON object on stdout: load time, llama_model_size (llama.cpp's weight bytes),
peak RSS, prefill and decode tok/s of every repetition, and (with --ll_ids) the mean
log-likelihood per token of that token sequence. Timings are of llama_decode alone (greedy
argmax between decode steps is numpy on the logits row). Exit code 2 on failure, with a
message on stderr; a crash inside llama.cpp shows as a signal to the caller, which runs it
again with FK_LLAMA_EXTRA_BUFTS=off (llama.cpp's extra buffer types off; tools/llama_peer.py).
The weight buffers llama.cpp chose are reported on stderr ("llama_peer: weights in ...").
"""

import argparse
import ctypes
import json
import os
import sys
import time

# tools/llama_peer.py, next to this file's directory in the source tree and in the runfiles.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "tools"))
import llama_peer  # noqa: E402


def fail(msg):
    print("model_sweep_llama: " + msg, file=sys.stderr)
    sys.exit(2)


def peak_rss():
    # VmHWM of this process (not ru_maxrss, which Linux carries over exec() from the parent).
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return None


def ids(text):
    return [int(x) for x in text.split(",") if x.strip()] if text else []


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--prompt_ids", default="", help="comma-separated prompt token ids")
    ap.add_argument("--decode_tokens", type=int, default=64)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--warmup_prompt", type=int, default=16)
    ap.add_argument("--warmup_decode", type=int, default=4)
    ap.add_argument("--ll_ids", default="", help="token ids whose mean log-likelihood to report")
    ap.add_argument("--ll_chunk", type=int, default=512,
                    help="score --ll_ids in chunks of this many, each from an empty cache "
                         "(as model_sweep_worker)")
    ap.add_argument("--ll_text", default="",
                    help="file whose text (tokenized by llama.cpp) gives --ll_ids")
    ap.add_argument("--generate_text", default="",
                    help="also greedy-generate from this text (tokenized by llama.cpp)")
    ap.add_argument("--generate_tokens", type=int, default=16)
    ap.add_argument("--verbose", action="store_true")
    a = ap.parse_args()

    try:
        import numpy as np
        import llama_cpp as L
    except ImportError as e:
        fail("llama-cpp-python is not importable (%s); run tools/setup_ggml" % e)
    if not os.path.isfile(a.model):
        fail("%s: no such file" % a.model)

    # llama.cpp's log: errors only (all with --verbose), and the weight buffers it chose;
    # FK_LLAMA_EXTRA_BUFTS=off loads the model with use_extra_bufts = false.
    extra_bufts = llama_peer.configure(L, verbose=a.verbose)
    L.llama_backend_init()

    def phase(name):
        # The last phase reached shows in the caller's error message if llama.cpp crashes.
        sys.stderr.write("model_sweep_llama: %s\n" % name)
        sys.stderr.flush()

    prompt = ids(a.prompt_ids)
    ll = ids(a.ll_ids)
    if a.ll_chunk < 2:
        fail("--ll_chunk=%d: expected at least 2" % a.ll_chunk)
    n_ctx = max(len(prompt) + a.decode_tokens, min(len(ll), a.ll_chunk),
                a.warmup_prompt + a.warmup_decode, 64) + 16
    if a.ll_text:
        n_ctx = max(n_ctx, 1024)
    phase("loading %s" % a.model)
    t0 = time.perf_counter()
    mparams = L.llama_model_default_params()
    mparams.use_mmap = True
    if not a.verbose:
        @L.llama_progress_callback
        def _no_dots(progress, user_data):
            return True
        mparams.progress_callback = _no_dots
        main._keep_progress = _no_dots
    model = L.llama_model_load_from_file(a.model.encode(), mparams)
    if not model:
        fail("%s: llama.cpp could not load the model" % a.model)
    cparams = L.llama_context_default_params()
    cparams.n_ctx = n_ctx
    cparams.n_batch = n_ctx
    cparams.n_ubatch = n_ctx
    cparams.n_threads = a.threads
    cparams.n_threads_batch = a.threads
    ctx = L.llama_init_from_model(model, cparams)
    if not ctx:
        fail("%s: llama.cpp could not create a context" % a.model)
    load_s = time.perf_counter() - t0
    phase("loaded in %.2f s; first llama_decode" % load_s)
    vocab = L.llama_model_get_vocab(model)
    n_vocab = L.llama_vocab_n_tokens(vocab)
    mem = L.llama_get_memory(ctx)

    def tokenize(text, add_special):
        data = text.encode()
        buf = (L.llama_token * (len(data) + 16))()
        n = L.llama_tokenize(vocab, data, len(data), buf, len(buf), add_special, True)
        if n < 0:
            fail("tokenizing failed (%d)" % n)
        return list(buf[:n])

    if a.ll_text:
        with open(a.ll_text, encoding="utf-8") as f:
            ll = tokenize(f.read(), True)
        if min(len(ll), a.ll_chunk) > n_ctx:
            fail("--ll_text: a chunk of %d tokens is more than the context of %d" %
                 (min(len(ll), a.ll_chunk), n_ctx))
    for t in prompt + ll:
        if not 0 <= t < n_vocab:
            fail("token id %d outside the vocabulary of %d" % (t, n_vocab))

    batch = L.llama_batch_init(n_ctx, 0, 1)

    def decode(tokens, pos0, all_logits=False):
        batch.n_tokens = len(tokens)
        for i, t in enumerate(tokens):
            batch.token[i] = t
            batch.pos[i] = pos0 + i
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = 0
            batch.logits[i] = 1 if (all_logits or i == len(tokens) - 1) else 0
        rc = L.llama_decode(ctx, batch)
        if rc != 0:
            fail("llama_decode returned %d" % rc)

    def row(i):
        p = L.llama_get_logits_ith(ctx, i)
        return np.ctypeslib.as_array(p, shape=(n_vocab,))

    def run(prompt_ids, n_decode):
        L.llama_memory_clear(mem, True)
        t = time.perf_counter()
        decode(prompt_ids, 0)
        t_prefill = time.perf_counter() - t
        tok = int(np.argmax(row(-1)))
        out = [tok]
        t_decode = 0.0
        for j in range(n_decode - 1):
            t = time.perf_counter()
            decode([tok], len(prompt_ids) + j)
            t_decode += time.perf_counter() - t
            tok = int(np.argmax(row(-1)))
            out.append(tok)
        return t_prefill, t_decode, out

    result = {
        "engine": "llama.cpp",
        "llama_cpp_version": getattr(L, "__version__", "?"),
        "model": a.model,
        "threads": a.threads,
        "extra_bufts": extra_bufts,
        "load_s": load_s,
        "weight_bytes": int(L.llama_model_size(model)),
        "n_params": int(L.llama_model_n_params(model)),
        "system_info": L.llama_print_system_info().decode("utf-8", "replace"),
    }
    if prompt:
        warm = (prompt * (1 + a.warmup_prompt // max(1, len(prompt))))[: a.warmup_prompt]
        run(warm, a.warmup_decode)
        phase("warm-up decoded")
        prefill, dec, out = [], [], None
        for _ in range(a.reps):
            tp, td, out = run(prompt, a.decode_tokens)
            prefill.append(len(prompt) / tp)
            if a.decode_tokens > 1:
                dec.append((a.decode_tokens - 1) / td)
        result.update({
            "prompt_tokens": len(prompt),
            "decode_tokens": a.decode_tokens,
            "prefill_tok_s_all": prefill,
            "decode_tok_s_all": dec,
            "generated_ids": out,
        })
    if ll:
        per_token = []
        for c0 in range(0, len(ll) - 1, a.ll_chunk):
            chunk = ll[c0:c0 + a.ll_chunk]
            if len(chunk) < 2:
                break
            L.llama_memory_clear(mem, True)
            decode(chunk, 0, all_logits=True)
            for i in range(len(chunk) - 1):
                x = row(i).astype(np.float64)
                m = x.max()
                per_token.append(float(x[chunk[i + 1]] - (m + np.log(np.exp(x - m).sum()))))
        result["mean_loglik"] = sum(per_token) / len(per_token)
        result["loglik_chunk"] = a.ll_chunk
        result["loglik_all"] = per_token
        result["loglik_tokens"] = len(per_token)
    if a.generate_text:
        _, _, out = run(tokenize(a.generate_text, True), a.generate_tokens)
        phase("generated %d tokens" % len(out))
        text = b""
        piece = ctypes.create_string_buffer(256)
        for t in out:
            k = L.llama_token_to_piece(vocab, t, piece, 256, 0, False)
            text += piece.raw[: max(k, 0)]
        result["generated_text"] = text.decode("utf-8", "replace")
        result["generated_ids"] = out
    result["peak_rss_bytes"] = peak_rss()
    L.llama_batch_free(batch)
    L.llama_free(ctx)
    L.llama_model_free(model)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
