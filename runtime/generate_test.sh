#!/usr/bin/env bash
# The generate binary itself (not just RunGenerate): --help exits 0, bad input exits 2
# with one "generate: ..." line on stderr naming what was wrong.
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
exit "$fail"
