#!/usr/bin/env bash
# The generate binary itself (not just RunGenerate): --help exits 0, bad input exits 2
# with one "generate: ..." line on stderr naming what was wrong; the README's Paris command
# answers "Paris" (greedy, default path) on every variant this CPU runs.
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

model="${FK_CACHE:-$HOME/.cache/fused-kernels}/models/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ ! -s "$model" ]; then
  echo "FAIL: $model is missing (tools/bazel fetches it; or run tools/fetch_model)"
  exit 1
fi
for variant in scalar avx2 avx512 avx512_vnni; do
  out="$("$bin" --model="$model" --chat --prompt="What is the capital of France?" \
          --max_tokens=12 --threads=2 --variant="$variant" 2>/tmp/generate_test_err.$$)"
  code=$?
  err="$(cat /tmp/generate_test_err.$$)"; rm -f /tmp/generate_test_err.$$
  if [ "$code" = 2 ] && grep -q "which this CPU lacks" <<<"$err"; then
    echo "SKIPPED: Paris on $variant: $(tail -n 1 <<<"$err")"
  elif [ "$code" != 0 ]; then
    echo "FAIL: Paris on $variant exited $code: $err"; fail=1
  elif ! grep -q "Paris" <<<"$out"; then
    echo "FAIL: Paris on $variant answered: $out"; fail=1
  else
    echo "ok: Paris on $variant: $out"
  fi
done
exit "$fail"
