# tests/bench/build_dir.sh - sourced by the benchmark scripts: the one convention for the build
# they run. ENSFLOW_BUILD_DIR names the build directory (default build/ at the top of the
# tree); its bin/ holds the services and the CLI, its bench/ the benchmark programs. The names
# the scripts used before are still read, with a line saying so: BUILD_DIR (asha), ENSFLOW_BIN
# and --bin DIR (a bin/ directory: nn, quality, serving).

# The build directory; $1 = the top of the source tree.
ens_bench_build_dir() {
    if [ -n "${ENSFLOW_BUILD_DIR:-}" ]; then
        echo "$ENSFLOW_BUILD_DIR"
    elif [ -n "${BUILD_DIR:-}" ]; then
        echo "bench: BUILD_DIR is deprecated, use ENSFLOW_BUILD_DIR" >&2
        echo "$BUILD_DIR"
    elif [ -n "${ENSFLOW_BIN:-}" ]; then
        echo "bench: ENSFLOW_BIN is deprecated, use ENSFLOW_BUILD_DIR (the directory above bin/)" >&2
        dirname "$ENSFLOW_BIN"
    else
        echo "$1/build"
    fi
}

# The build directory of a --bin DIR argument (deprecated); $1 = DIR.
ens_bench_bin_arg() {
    echo "bench: --bin is deprecated, use ENSFLOW_BUILD_DIR (the directory above bin/)" >&2
    dirname "$1"
}
