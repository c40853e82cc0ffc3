#!/bin/bash
# version.sh - every binary answers --version with one line, "<name> <version>[ (commit <hash>)]",
# and exits 0; the CLI also from its subcommands. Usage: version.sh VERSION BINARY...
set -u
want_version=$1
shift
fail=0
# check NAME COMMAND...: the command's exit status and its whole output
check() {
    local name=$1 out rc
    shift
    out=$("$@" 2>&1)
    rc=$?
    local re="^${name} ${want_version//./\\.}( \\(commit [0-9a-f]{12}(-dirty)?\\))?\$"
    if [ "$rc" -ne 0 ]; then
        echo "FAIL: $* exited $rc: $out"
        fail=1
    elif [ "$(printf '%s\n' "$out" | wc -l)" -ne 1 ] || ! [[ $out =~ $re ]]; then
        echo "FAIL: $* printed '$out', expected /$re/"
        fail=1
    else
        echo "ok: $* -> $out"
    fi
}
for bin in "$@"; do
    name=$(basename "$bin")
    if [ "$name" = ensflow-inference-mpi ]; then
        # MPI_Init runs before the arguments are read, and Open MPI's own allocations are not
        # ours to chase: LeakSanitizer would fail a sanitized build here (as with mpi_group)
        ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 check "$name" "$bin" --version
        continue
    fi
    check "$name" "$bin" --version
    if [ "$name" = ensflow ]; then
        for sub in study front plan predict deploy up down demo; do
            check ensflow "$bin" "$sub" --version
        done
    fi
done
exit $fail
