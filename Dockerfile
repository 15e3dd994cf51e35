# Debian 12, two stages. The package lists are the same files the README's
# commands use (scripts/packages/*.txt).
#   docker build -t orchestrator .
#   docker run -e DATABASE_URI=postgresql://user:pass@db/orchestrator \
#     -e OAUTH2_ACTIVE=true -e OIDC_CONF_URL=https://idp/.well-known/openid-configuration \
#     -e OAUTH2_RESOURCE_SERVER_ID=orchestrator -p 8080:8080 orchestrator
# It listens on 0.0.0.0 (ORCH_HTTP_HOST below; the container's port is only
# reachable through -p). `serve` refuses a non-loopback address with
# authentication off (exit 2, docs/security.md): run it with OAUTH2_ACTIVE=true as
# above, or, for a demo without authentication, say so explicitly with
#   docker run -e DATABASE_URI=... -p 127.0.0.1:8080:8080 orchestrator --insecure-public
# (or -e ORCH_INSECURE_PUBLIC=true); anyone who reaches the port then controls the
# orchestrator. A browser UI on another origin also needs ORCH_UI_ORIGIN.
# JWTs are checked with libcjose (scripts/packages/*.txt).
FROM debian:12 AS build
COPY scripts/packages/build.txt /tmp/build.txt
RUN apt-get update \
 && grep -v '^#' /tmp/build.txt | grep -v '^postgresql' | xargs apt-get install -y --no-install-recommends \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY host host
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DORCH_TESTS=OFF \
      -DORCH_DATA_DIR=/usr/share/orchestrator \
 && cmake --build /build -j "$(nproc)"

FROM debian:12
COPY scripts/packages/runtime.txt /tmp/runtime.txt
RUN apt-get update \
 && grep -v '^#' /tmp/runtime.txt | xargs apt-get install -y --no-install-recommends \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /usr/share/orchestrator orchestrator
COPY --from=build /build/orchestrator /usr/bin/orchestrator
COPY lua /usr/share/orchestrator/lua
COPY products /usr/share/orchestrator/products
COPY migrations /usr/share/orchestrator/migrations
ENV ORCH_LUA_DIR=/usr/share/orchestrator/lua \
    ORCH_PRODUCTS_DIR=/usr/share/orchestrator/products \
    ORCH_MIGRATIONS_DIR=/usr/share/orchestrator/migrations \
    ORCH_HTTP_HOST=0.0.0.0 \
    ORCH_HTTP_PORT=8080
USER orchestrator
EXPOSE 8080
ENTRYPOINT ["/usr/bin/orchestrator", "serve"]
