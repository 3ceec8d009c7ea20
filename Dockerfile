# The firedrill image that `firedrill schedule export --format cronjob` runs:
#   docker build -t firedrill:0.1.0 .
# It holds the binary (kube-rs and the AWS SDK are built in: no kubectl or aws CLI needed) and
# this repository's playbooks, experiments and environments under /firedrill (the working directory), so
# `gameday run playbooks/quarterly-dr-game-day.yaml` works as exported. Build your own on top
# of it with your playbooks:  FROM firedrill:0.1.0  /  COPY playbooks/ /firedrill/playbooks/
FROM rust:1.89-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src/ src/
COPY benches/ benches/
COPY environments/ environments/
RUN cargo build --profile dist --locked --bin firedrill

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 65532 firedrill \
 && useradd --uid 65532 --gid 65532 --home-dir /var/lib/firedrill --create-home firedrill
COPY --from=build /src/target/dist/firedrill /usr/local/bin/firedrill
COPY playbooks/ /firedrill/playbooks/
COPY experiments/ /firedrill/experiments/
COPY environments/ /firedrill/environments/
WORKDIR /firedrill
USER 65532:65532
ENV FIREDRILL_RUNS_DIR=/var/lib/firedrill/runs FIREDRILL_LESSONS_DIR=/var/lib/firedrill/lessons
ENTRYPOINT ["/usr/local/bin/firedrill"]
CMD ["--help"]
