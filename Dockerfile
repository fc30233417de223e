# outage-radar: build in the Rust image, run on a slim Debian.
#   docker build -t outage-radar .
# librdkafka is built with the system OpenSSL (TLS, SASL/SCRAM): the Rust
# image has libssl-dev; the runtime needs libssl3.
#
# Dependencies are compiled in a layer of their own (cargo-chef): a change
# to outage-radar's sources rebuilds only outage-radar. Images are pinned:
# the Rust toolchain CI tests with, and a Debian point release.
FROM rust:1.95.0-bookworm AS chef
RUN cargo install cargo-chef --version 0.1.78 --locked
WORKDIR /src

# The recipe: every manifest and the lock file, nothing else.
FROM chef AS plan
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS build
COPY --from=plan /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json --bin outage-radar
COPY . .
RUN cargo build --release --locked --bin outage-radar \
 && cp target/release/outage-radar /usr/local/bin/outage-radar

FROM debian:12.9-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 outage-radar
COPY --from=build /usr/local/bin/outage-radar /usr/local/bin/outage-radar
USER outage-radar
EXPOSE 9898
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["outage-radar", "healthcheck"]
ENTRYPOINT ["outage-radar"]
CMD ["run", "--config", "/etc/outage-radar/config.toml"]
