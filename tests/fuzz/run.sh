#!/usr/bin/env bash
# run.sh - build the libFuzzer targets with clang (own build dir, ENSFLOW_FUZZ=ON) and run each
# against its seed corpus for a bounded time; fail on any crash, leak or sanitizer report.
#   usage: run.sh [SECONDS_PER_TARGET]   (default 30; ENSFLOW_FUZZ_SECONDS also works)
#   exit 77 (skipped) when clang is missing.
# Crashing inputs are kept in $BUILD/artifacts/<target>/; turn each into a regression test
# (tests/unit/test_fuzz_regressions.c) before fixing it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
secs=${1:-${ENSFLOW_FUZZ_SECONDS:-30}}
build=${ENSFLOW_FUZZ_BUILD:-${TMPDIR:-/tmp}/ensflow-fuzz-build}
cc=$(command -v clang || command -v clang-14 || true)
if [ -z "$cc" ]; then
    echo "run.sh: clang not found (Debian package clang); fuzzing skipped"
    exit 77
fi
echo "run.sh: building the fuzz targets with $cc in $build"
CC=$cc cmake -S "$src" -B "$build" -DENSFLOW_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j "$(nproc)" --target fuzz_event_decode fuzz_inference fuzz_model_load \
    fuzz_space >/dev/null
status=0
for t in event_decode inference model_load space; do
    work="$build/corpus/$t" art="$build/artifacts/$t"
    mkdir -p "$work" "$art"
    # the committed seeds are read only; what the fuzzer finds goes to the work corpus
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:allocator_may_return_null=1
    export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
    if OPENBLAS_NUM_THREADS=1 "$build/fuzz/fuzz_$t" -max_total_time="$secs" -rss_limit_mb=2048 \
        -malloc_limit_mb=1024 -timeout=10 -max_len=65536 -print_final_stats=1 \
        -artifact_prefix="$art/" "$work" "$here/corpus/$t" >"$build/$t.log" 2>&1; then
        echo "PASS fuzz_$t: $(grep -E '^stat::number_of_executed_units' "$build/$t.log" |
            awk '{print $2}') runs in ${secs}s, no crash"
    else
        echo "FAIL fuzz_$t: see $build/$t.log; inputs in $art/"
        grep -E 'ERROR|runtime error|SUMMARY|Test unit written' "$build/$t.log" | head -n 8
        status=1
    fi
done
exit $status
