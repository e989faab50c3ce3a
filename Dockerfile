# The paved-operator image: a static (musl) binary on distroless, running as non-root.
#   docker build -t ghcr.io/paved-dev/paved-operator:dev .
FROM rust:1.95-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends musl-tools cmake && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY . .
# Release profile, no test-only features: the crash points do not exist in this binary.
RUN cargo build --release --locked --target x86_64-unknown-linux-musl -p paved-operator -p paved-cli \
 && cp target/x86_64-unknown-linux-musl/release/paved-operator target/x86_64-unknown-linux-musl/release/paved /

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /paved-operator /paved /usr/local/bin/
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/paved-operator"]
