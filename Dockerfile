# syntax=docker/dockerfile:1
# ensflow: one image holding every service binary; the service is chosen by the command,
# e.g. `docker run ensflow ensflow-trainer` or `command: ["ensflow-trainer"]` (no ENTRYPOINT).
#
# CPU only, and no ssh: multi-device inference groups over MPI (run by the MPI Operator's
# launcher over ssh: k8s/overlays/gpu/mpijob-inference.yaml) use their own image,
# Dockerfile.mpi (CUDA + cuDNN, Open MPI, sshd). Open MPI's libraries stay here because
# ensflow-inference-mpi is built and shipped in both.

# --- build stage ---------------------------------------------------------------------------
FROM debian:12 AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        build-essential cmake pkg-config \
        librdkafka-dev libavro-dev libhiredis-dev libjansson-dev libopenblas-dev zlib1g-dev \
        libmicrohttpd-dev libopenmpi-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Every service serves /metrics and /healthz on ENSFLOW_METRICS_PORT (compose and k8s: 9100).
# Only the binaries are built here; the test suite needs Redis and the broker (run it in CI).
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release \
 && cmake --build /build -j"$(nproc)" \
        --target ensflow-broker ensflow-proposer ensflow-trainer ensflow-evaluator \
                 ensflow-selector ensflow-placer ensflow-inference ensflow-cli \
                 ensflow-inference-mpi \
 && install -m 0755 -t /out/bin -D /build/bin/*

# --- runtime stage -------------------------------------------------------------------------
FROM debian:12-slim
# Runtime libraries only (Debian 12 names) plus the Fashion-MNIST files that trainers and
# evaluators read from /usr/share/datasets/fashion-mnist. ca-certificates for SASL_SSL.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        librdkafka1 libavro23 libhiredis0.14 libjansson4 libopenblas0 zlib1g libmicrohttpd12 \
        openmpi-bin libopenmpi3 \
        ca-certificates dataset-fashion-mnist \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 ensflow \
 && useradd --system --uid 10001 --gid ensflow --home-dir /home/ensflow --create-home \
        --shell /usr/sbin/nologin ensflow \
 && install -d -o 10001 -g 10001 -m 0755 /models
COPY --from=build /out/bin/ /usr/local/bin/
# OpenBLAS starts its own thread pool, which fights the service's threads for the same cores
# (see DESIGN.md "Running it"): one owner per core unless overridden.
ENV OPENBLAS_NUM_THREADS=1
USER 10001:10001
WORKDIR /home/ensflow
# No ENTRYPOINT on purpose; the default command only prints the CLI's help.
CMD ["ensflow", "--help"]
