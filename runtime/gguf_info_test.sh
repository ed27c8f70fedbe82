#!/usr/bin/env bash
# gguf_info CLI: output on the real model, --help, and one message + exit 2 on bad input.
set -uo pipefail
bin="$PWD/$1"
model="${FK_CACHE:-$HOME/.cache/fused-kernels}/models/SmolLM2-135M-Instruct.Q4_1.gguf"
fail=0
check() {  # check NAME CONDITION...
  local name="$1"; shift
  if "$@"; then echo "ok   $name"; else echo "FAIL $name"; fail=1; fi
}

if [ ! -f "$model" ]; then
  echo "FAIL: $model is missing; run tools/fetch_model (tools/bazel runs it for you)"
  exit 1
fi
out="$("$bin" "$model")"; rc=$?
check "model: exit 0" test "$rc" = 0
check "model: version" grep -q '^version: *3$' <<<"$out"
check "model: 272 tensors" grep -q '^tensors: *272$' <<<"$out"
check "model: abbreviated token array" grep -q 'tokenizer.ggml.tokens .*array\[string\].*\.\.\. (49152 elements)\]' <<<"$out"
check "model: tensor row" grep -Eq '^0 +token_embd.weight +Q8_0 +\[576, 49152\] +30081024 +0$' <<<"$out"
check "model: Q4_1 summary" grep -Eq '^Q4_1 +210 ' <<<"$out"
check "model: F32 summary" grep -Eq '^F32 +61 ' <<<"$out"
check "model: Q8_0 summary" grep -Eq '^Q8_0 +1 ' <<<"$out"

out="$("$bin" --help)"; rc=$?
check "--help: exit 0" test "$rc" = 0
check "--help: usage" grep -q '^usage: gguf_info FILE' <<<"$out"

bad() {  # bad NAME EXPECTED_SUBSTRING ARGS...
  local name="$1" want="$2"; shift 2
  local err rc
  err="$("$bin" "$@" 2>&1 >/dev/null)"; rc=$?
  check "$name: exit 2" test "$rc" = 2
  check "$name: one line" test "$(wc -l <<<"$err")" = 1
  check "$name: message" grep -qF "$want" <<<"$err"
}
bad "no file" "no FILE given" 
bad "missing" "cannot open '/no/such/file.gguf': No such file or directory" /no/such/file.gguf
bad "directory" "is a directory, not a GGUF file" "${TEST_TMPDIR:-/tmp}"
bad "not gguf" "not a GGUF file" runtime/testdata/not_gguf.txt
bad "unsupported type" "unknown or unsupported tensor type id 4" runtime/testdata/q4_2_tensor.gguf
bad "unknown flag" "unknown flag '--frobnicate'" --frobnicate
bad "two files" "more than one FILE" a.gguf b.gguf
# Relative paths are resolved against BUILD_WORKING_DIRECTORY (what `bazel run` sets).
testdata="$PWD/runtime/testdata"
err="$(cd / && BUILD_WORKING_DIRECTORY="$testdata" "$bin" overlapping_tensors.gguf 2>&1)"
check "BUILD_WORKING_DIRECTORY" grep -qF "$testdata/overlapping_tensors.gguf: tensors 'a'" <<<"$err"
exit $fail
