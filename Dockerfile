# The llmgw/llmgw image the Helm chart runs: llmgw-controller, llmgw-worker
# and llmgw-register on Debian 12, as a non-root user. Build from the
# repository root:  docker build -t llmgw/llmgw:0.1.0 .
# e2e/cases/container_image.sh checks that the runtime packages below cover
# every library the installed programs link, and that the chart's user and
# commands match.

FROM debian:12 AS build
# llmgw:build-packages
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential ca-certificates cmake pkg-config \
      libnng-dev libmsgpack-dev libmicrohttpd-dev libcurl4-openssl-dev libjansson-dev \
      libyaml-dev libhiredis-dev libxxhash-dev libssl-dev \
 && rm -rf /var/lib/apt/lists/*
COPY . /src
RUN cmake -S /src -B /build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGW_WERROR=ON \
 && cmake --build /build -j"$(nproc)" --target llmgw-controller llmgw-worker llmgw-register \
 && cmake --install /build --prefix /usr/local

FROM debian:12-slim
# llmgw:runtime-packages
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates libnng1 libmsgpackc2 libmicrohttpd12 libcurl4 libjansson4 \
      libyaml-0-2 libhiredis0.14 libxxhash0 libssl3 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/bin/ /usr/local/bin/
# Numeric, so the chart's runAsNonRoot can verify it; nothing is written to
# the filesystem (the chart mounts it read-only).
USER 65532:65532
EXPOSE 8080
CMD ["llmgw-worker"]
