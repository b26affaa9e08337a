# One image per service, chosen by build argument:
#
#   docker build --build-arg SERVICE=ingest --build-arg VERSION=$COMMIT_SHA -t .../ingest:$COMMIT_SHA .
#
# `make images` builds ingest, dispatcher and targetmock this way. The
# binary is static (CGO_ENABLED=0; the SQLite driver is pure Go), built
# once with -trimpath and the commit stamped in, and runs as the nonroot
# user of a distroless image: no shell, no package manager.

ARG GO_VERSION=1.26.8

FROM golang:${GO_VERSION} AS build
ARG SERVICE
ARG VERSION=dev
WORKDIR /src

# Modules first, so a source change does not refetch them.
COPY go.mod go.sum ./
RUN go mod download

COPY . .
RUN case "${SERVICE}" in \
      ingest|dispatcher|targetmock|sourcemock|relayctl) ;; \
      *) echo "SERVICE must be ingest, dispatcher, targetmock, sourcemock or relayctl, got '${SERVICE}'" >&2; exit 1 ;; \
    esac
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath \
      -ldflags "-s -w -X eventrelay/internal/version.Version=${VERSION}" \
      -o /out/service "./${SERVICE}"

FROM gcr.io/distroless/static-debian12:nonroot
ARG SERVICE
ARG VERSION=dev
LABEL org.opencontainers.image.title="eventrelay-${SERVICE}" \
      org.opencontainers.image.revision="${VERSION}"
COPY --from=build /out/service /service
USER nonroot:nonroot
ENV PORT=8080
EXPOSE 8080
ENTRYPOINT ["/service"]
