# roster's container image: a static binary on an empty base, run as a
# non-root user (65532). Build it with
#
#   docker build --build-arg VERSION=v1.2.3 --build-arg COMMIT=$(git rev-parse HEAD) -t roster:v1.2.3 .
#
# (or without: -t roster:dev). Without Docker, `go run ./cmd/roster-image`
# writes the same image as an OCI archive; cmd/roster-image's tests keep
# the two in step (user, paths, environment, ports, labels, link flags).

ARG GO_VERSION=1.26.8

FROM golang:${GO_VERSION} AS build
ARG VERSION=dev
ARG COMMIT=unknown
ARG TARGETARCH
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 GOOS=linux GOARCH=${TARGETARCH} go build -trimpath -buildvcs=false \
      -ldflags "-s -w -X github.com/roster-io/roster/internal/buildinfo.version=${VERSION} -X github.com/roster-io/roster/internal/buildinfo.commit=${COMMIT}" \
      -o /out/usr/local/bin/roster ./cmd/roster
RUN mkdir -p /out/etc /out/tmp /out/data /out/usr/share/doc/roster \
 && printf 'root:x:0:0:root:/root:/sbin/nologin\nroster:x:65532:65532:roster:/data:/sbin/nologin\n' > /out/etc/passwd \
 && printf 'root:x:0:\nroster:x:65532:\n' > /out/etc/group \
 && cp LICENSE /out/usr/share/doc/roster/LICENSE \
 && chmod 1777 /out/tmp \
 && chmod 0700 /out/data

FROM scratch
ARG VERSION=dev
ARG COMMIT=unknown
COPY --from=build /out/etc/ /etc/
COPY --from=build /out/tmp/ /tmp/
COPY --from=build /out/usr/ /usr/
COPY --from=build --chown=65532:65532 /out/data/ /data/
USER 65532:65532
ENV PATH=/usr/local/bin:/usr/bin:/bin \
    ROSTER_HTTP_ADDR=0.0.0.0:8080 \
    ROSTER_GOSSIP_ADDR=0.0.0.0:7946 \
    ROSTER_DATA_DIR=/data
EXPOSE 7946/tcp 7946/udp 8080/tcp
VOLUME /data
LABEL org.opencontainers.image.title="roster" \
      org.opencontainers.image.description="An eventually consistent process-group registry (roster serve)" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}"
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/roster"]
CMD ["serve"]
