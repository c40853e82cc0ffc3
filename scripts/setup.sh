#!/usr/bin/env bash
# setup.sh - install what ensflow needs on Debian 12, build it, then run the demo or the tests.
#
#   bash scripts/setup.sh demo   install, build, run `ensflow demo` (Fashion-MNIST, a 10-minute budget)
#   bash scripts/setup.sh test   install, build, run every test (unit tests also under
#                                AddressSanitizer + UBSan)
#   bash scripts/setup.sh deps   install only
#   bash scripts/setup.sh bench  also install python3-torch (large; not in the default set),
#                                build, run tests/bench/nn --quick (ensflow vs PyTorch)
#
# Idempotent: packages already installed and builds already made are reused.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-demo}
case "$mode" in demo|test|deps|bench) ;; *) echo "usage: $0 demo|test|deps|bench" >&2; exit 2 ;; esac

SUDO=
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
PACKAGES=(build-essential cmake pkg-config
          librdkafka-dev libavro-dev libhiredis-dev libjansson-dev libopenblas-dev zlib1g-dev
          libmicrohttpd-dev
          libopenmpi-dev openmpi-bin
          redis-server redis-tools dataset-fashion-mnist
          python3 python3-avro python3-confluent-kafka)
if [ "$mode" = test ]; then PACKAGES+=(docker-compose yamllint clang python3-onnx); fi
# node and npm run ONNX Runtime in the ONNX export test; a node installed otherwise is kept
if [ "$mode" = test ] && ! command -v npm >/dev/null; then PACKAGES+=(nodejs npm); fi
if [ "$mode" = bench ]; then PACKAGES+=(python3-torch); fi # PyTorch side of tests/bench/nn
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
fi
# ONNX Runtime for the ONNX export test, into tests/node_modules (git-ignored): the npm package
# onnxruntime-node carries its CPU runtime; its install script only fetches GPU extras from
# outside, hence --ignore-scripts. The test skips without it, so a failed install stops setup
# here rather than letting the test run skip unnoticed (two tries: the registry is remote).
if [ "$mode" = test ] && [ ! -d tests/node_modules/onnxruntime-node ]; then
    echo "setup: installing onnxruntime-node into tests/node_modules"
    for try in 1 2; do
        npm install --ignore-scripts --no-save --no-audit --no-fund --prefix tests \
            onnxruntime-node@1 >/dev/null && break
        [ "$try" = 2 ] && { echo "setup: npm install onnxruntime-node failed" >&2; exit 1; }
        sleep 5
    done
fi
# The services must not find a system redis-server on the default port in their way; the
# local stack and the tests start their own on free ports.
if command -v systemctl >/dev/null && systemctl is-active --quiet redis-server 2>/dev/null; then
    echo "setup: note: a system redis-server is running on 6379; ensflow does not use it"
fi
[ "$mode" = deps ] && exit 0

jobs=$(nproc)
echo "setup: building (Release) in build/"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$jobs" >/dev/null

if [ "$mode" = demo ]; then
    mkdir -p build/demo
    exec build/bin/ensflow demo --run-dir build/demo/stack --json build/demo/demo.json
fi
if [ "$mode" = bench ]; then
    ENSFLOW_BUILD_DIR=build exec tests/bench/nn --quick --json build/nn_bench.json
fi

echo "setup: building with AddressSanitizer + UBSan in build-asan/"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DENSFLOW_SANITIZE=ON >/dev/null
cmake --build build-asan -j "$jobs" >/dev/null
status=0
# The integration tests run the services themselves under ASan too: a use-after-free in the
# selector showed only there (it crash-looped; the Release build went on silently). The MPI
# group is left out: Open MPI's own allocations are not ours to chase.
echo "== unit and integration tests under ASan/UBSan"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --output-on-failure -L "unit|integration" -E mpi_group) || status=1
echo "== every test (unit, integration, interoperability, manifests, fault, fuzz) on the Release build"
(cd build && ctest --output-on-failure) || status=1
exit $status
