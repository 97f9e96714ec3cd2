# Framehouse as one image for every role (`--roles api|worker|scheduler`).
# Build:  docker build -t framehouse .
# Run:    docker run -p 8080:8080 -v fh-data:/data framehouse
#
# Stage 1 builds the release binary against libvips' headers (and npm's copy of the web
# UI's browser libraries); stage 2 carries only the
# runtime libraries (libvips, ffmpeg for video, fonts for watermarks) and runs as an
# unprivileged user.
FROM rust:1-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends pkg-config libvips-dev nodejs npm \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The web UI's browser libraries, from its lockfile (read by crates/server/build.rs).
ENV FRAMEHOUSE_UI_NODE_MODULES=/src/crates/server/ui/node_modules
RUN cd crates/server/ui && npm ci --no-audit --no-fund
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p framehouse \
 && install -D target/release/framehouse /out/framehouse

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libvips42 ffmpeg fonts-dejavu-core ca-certificates tini \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin framehouse \
 && install -d -o framehouse -g framehouse /data
COPY --from=build /out/framehouse /usr/local/bin/framehouse
USER 10001:10001
ENV FRAMEHOUSE_LISTEN=0.0.0.0:8080 \
    FRAMEHOUSE_DATA_DIR=/data
VOLUME /data
EXPOSE 8080
# tini forwards SIGTERM to framehouse, which drains (shutdown_grace_secs) and exits 0.
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/framehouse"]
CMD ["serve"]
