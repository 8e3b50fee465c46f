# Multi-stage Debian 12 (bookworm) build of solad (and the sola CLI).
#   build:   docker build -t solad:dev .
#   run:     docker run -d --name solad -p 8080:8080 -v solad-data:/data solad:dev
#   flags:   anything after the image name is appended to the entrypoint, e.g.
#            docker run ... solad:dev --workers 2 --threads 1 --token-file /run/secrets/token
# See docs/deploy.md. The runtime stage carries only the shared libraries solad links
# against, curl for the HEALTHCHECK, and runs as an unprivileged numeric user so that
# Kubernetes' runAsNonRoot can verify it.
# No `# syntax=` directive: it makes BuildKit pull a frontend image first, which
# breaks offline and air-gapped builds; the built-in frontend reads this file.

ARG DEBIAN_TAG=bookworm-slim

############################################################ build stage
FROM debian:${DEBIAN_TAG} AS build

# check + libcurl are needed only by the test executables (RUN_TESTS=1 below turns
# on SOLA_BUILD_TESTS); without them the build needs neither.
# libdnnl-dev: oneDNN, the default GEMM backend (core/model/gemm_onednn.c; OpenMP threads).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config \
      libdnnl-dev libmicrohttpd-dev libjansson-dev libuv1-dev \
      libpng-dev zlib1g-dev libhdf5-dev libsystemd-dev check libcurl4-openssl-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . .

# RUN_TESTS=1 also builds and runs the unit tests in the build stage (slower; the
# integration tests that need curl/python/nginx are skipped or fail here, so the
# default is off and CI runs scripts/test.sh on a full machine instead).
ARG RUN_TESTS=0
RUN tests=OFF && if [ "$RUN_TESTS" = 1 ]; then tests=ON; fi \
 && cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DSOLA_BUILD_TESTS=$tests \
 && if [ "$RUN_TESTS" = 1 ]; then \
      cmake --build /build -j"$(nproc)" && (cd /build && ctest --output-on-failure); \
    else \
      cmake --build /build -j"$(nproc)" --target solad sola; \
    fi \
 && install -D -m 0755 /build/solad /out/usr/local/bin/solad \
 && install -D -m 0755 /build/sola /out/usr/local/bin/sola

############################################################ runtime stage
FROM debian:${DEBIAN_TAG}

# Runtime shared libraries only (Debian 12 names; checked with apt-cache policy):
#   libdnnl2, libgomp1    oneDNN's matmul/sgemm and its OpenMP runtime
#   libmicrohttpd12       HTTP server
#   libjansson4           JSON
#   libuv1                event loop + worker pool
#   libpng16-16, zlib1g   PNG heatmaps, .npz
#   libhdf5-103-1         HDF5 feature files (TSP, G-TAD layouts)
#   libsystemd0           sd_notify (systemd Type=notify readiness; inert in a container)
#   curl                  HEALTHCHECK only
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libdnnl2 libgomp1 libmicrohttpd12 libjansson4 libuv1 libpng16-16 zlib1g \
      libhdf5-103-1 libsystemd0 curl \
 && rm -rf /var/lib/apt/lists/*

# Fixed numeric uid/gid 10001: the same ids as deploy/k8s (runAsUser/fsGroup), so a
# shared volume written by one replica is readable by the others.
RUN groupadd --system --gid 10001 solad \
 && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home \
      --shell /usr/sbin/nologin solad \
 && mkdir -p /data \
 && chown 10001:10001 /data \
 && chmod 0750 /data

COPY --from=build /out/ /

# Fail fast at build time if a runtime library is missing (ldd prints "not found").
RUN ! ldd /usr/local/bin/solad | grep -q 'not found' \
 && ! ldd /usr/local/bin/sola | grep -q 'not found'

# solad sets each compute thread's GEMM threads from --threads; this default only
# stops OpenMP from starting one thread per host core before the flag is applied.
ENV OMP_NUM_THREADS=1

VOLUME ["/data"]
WORKDIR /data
USER 10001:10001
EXPOSE 8080

# Liveness only: /readyz would mark the container unhealthy while it drains or loads.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD curl -fsS -o /dev/null http://127.0.0.1:8080/livez || exit 1

# solad handles SIGTERM itself: readiness 503, in-flight requests finish, a running
# training job checkpoints, exit 0 within --drain-timeout. Give `docker stop` a
# matching timeout: docker stop -t 40 (default drain timeout 30 s + margin).
STOPSIGNAL SIGTERM

ENTRYPOINT ["/usr/local/bin/solad", "--listen", "0.0.0.0:8080", "--data", "/data"]
CMD []
