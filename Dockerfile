# outage-radar: build in the Rust image, run on a slim Debian.
#   docker build -t outage-radar .
# librdkafka is built with the system OpenSSL (TLS, SASL/SCRAM): the Rust
# image has libssl-dev; the runtime needs libssl3.
FROM rust:1.85-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin outage-radar \
 && cp target/release/outage-radar /usr/local/bin/outage-radar

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 outage-radar
COPY --from=build /usr/local/bin/outage-radar /usr/local/bin/outage-radar
USER outage-radar
EXPOSE 9898
ENTRYPOINT ["outage-radar"]
CMD ["run", "--config", "/etc/outage-radar/config.toml"]
