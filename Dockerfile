# osmo's container image: a static binary on an empty base, run as a non-root user.
# Build: docker build --build-arg VERSION=$(git describe --always) --build-arg COMMIT=$(git rev-parse HEAD) -t osmo .

FROM rust:1.95-bookworm AS build
# hadolint ignore=DL3008
RUN apt-get update && apt-get install -y --no-install-recommends musl-tools && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# Cargo.toml names the tests, the benches and the workspace's simulator: cargo refuses a manifest
# whose targets or members are missing.
COPY tests ./tests
COPY benches ./benches
COPY sim ./sim
RUN cargo build --release --locked --target x86_64-unknown-linux-musl --bin osmo

FROM scratch
ARG VERSION=dev
ARG COMMIT=unknown
LABEL org.opencontainers.image.title="osmo" \
      org.opencontainers.image.description="OpenStack Migration Operator" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}"
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /src/target/x86_64-unknown-linux-musl/release/osmo /osmo
USER 65532:65532
ENTRYPOINT ["/osmo"]
CMD ["run"]
