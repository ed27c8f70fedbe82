#!/usr/bin/env bash
# The generate binary itself (not just RunGenerate): --help exits 0, bad input exits 2
# with one "generate: ..." line on stderr naming what was wrong; the README's Paris command
# (SmolLM2) and a Gemma 3 270M prompt answer "Paris" (greedy, default path) on every
# variant this CPU runs, each ending with the stats line.
set -uo pipefail
bin="$1"
fail=0
check() {  # check WANT_CODE NEEDLE ARGS...
  local want="$1" needle="$2"
  shift 2
  local err code
  err="$("$bin" "$@" 2>&1 >/dev/null)"
  code=$?
  if [ "$code" != "$want" ]; then
    echo "FAIL: generate $* exited $code, expected $want; stderr: $err"
    fail=1
  elif [ -n "$needle" ] && ! grep -qF -- "$needle" <<<"$err"; then
    echo "FAIL: generate $* stderr lacks '$needle': $err"
    fail=1
  else
    echo "ok: generate $* -> $code"
  fi
}
check 0 "" --help
check 2 "--threads=0" --model=/nonexistent.gguf --prompt=hi --threads=0
check 2 "/nonexistent.gguf" --model=/nonexistent.gguf --prompt=hi
check 2 "--model is required" --prompt=hi
check 2 "unknown variant" --model=/nonexistent.gguf --prompt=hi --variant=nope

models="${FK_CACHE:-$HOME/.cache/fused-kernels}/models"
# run_variants NAME MODEL NEEDLE ARGS...: greedy generation on every kernel variant this CPU
# runs must print NEEDLE on stdout and end stderr with the stats line.
run_variants() {
  local name="$1" model="$2" needle="$3"
  shift 3
  if [ ! -s "$model" ]; then
    echo "FAIL: $model is missing (tools/bazel fetches it; or run tools/fetch_model --all)"
    fail=1
    return
  fi
  for variant in scalar avx2 avx512 avx512_vnni; do
    out="$("$bin" --model="$model" "$@" --threads=2 --variant="$variant" \
            2>/tmp/generate_test_err.$$)"
    code=$?
    err="$(cat /tmp/generate_test_err.$$)"; rm -f /tmp/generate_test_err.$$
    if [ "$code" = 2 ] && grep -q "which this CPU lacks" <<<"$err"; then
      echo "SKIPPED: $name on $variant: $(tail -n 1 <<<"$err")"
    elif [ "$code" != 0 ]; then
      echo "FAIL: $name on $variant exited $code: $err"; fail=1
    elif ! grep -q "$needle" <<<"$out"; then
      echo "FAIL: $name on $variant answered: $out"; fail=1
    elif ! tail -n 1 <<<"$err" | grep -q "^stats: prompt [0-9]* tokens, prefill .* tok/s; decode .* tok/s; weights .*; peak RSS"; then
      echo "FAIL: $name on $variant: no stats line at the end of stderr: $err"; fail=1
    else
      echo "ok: $name on $variant: $out"
      echo "    $(tail -n 1 <<<"$err")"
    fi
  done
}
run_variants Paris "$models/SmolLM2-135M-Instruct.Q4_1.gguf" Paris \
  --chat --prompt="What is the capital of France?" --max_tokens=12
# Gemma 3 270M Q4_K_M (a base model: plain text, no chat template).
run_variants "Gemma 3" "$models/gemma-3-270m-q4_k_m.gguf" Paris \
  --prompt="The Eiffel Tower is located in the city of" --max_tokens=2
exit "$fail"
