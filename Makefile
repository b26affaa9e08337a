# eventrelay — the two commands a newcomer needs are `make run` and `make test`.
# Everything here needs only Go.

GO        ?= go
DATA      ?= .data
# make run drives the source at twice the target's limit so that a backlog
# builds and drains visibly.
TARGET_RATE ?= 10
SOURCE_RATE ?= $(shell echo $$(( $(TARGET_RATE) * 2 )))
BENCH_OUT ?= bench-results

.PHONY: run test vet bench bench-micro bench-stack generate check-generated build fmt fmt-check clean

## run: the whole pipeline on this machine (ingest, queue, dispatcher, targetmock, sourcemock)
run:
	$(GO) run ./relayctl dev --data $(DATA) --target-rate $(TARGET_RATE) --source-rate $(SOURCE_RATE)

# The end-to-end packages drive the whole stack at production-like rates; the
# race detector slows the pure-Go SQLite engine ~20x, which would turn them
# into a test of the detector. They run without it, alone, after every
# other package has passed with it.
E2E_PKGS = ./internal/devstack/...

## test: vet, gofmt, every unit test with the race detector, then the end-to-end tests
test: vet fmt-check
	$(GO) test -race -count=1 -timeout 20m $$($(GO) list ./... | grep -v '/internal/devstack')
	$(GO) test -count=1 -timeout 20m $(E2E_PKGS)

vet:
	$(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

## bench: micro-benchmarks and the load benchmarks against the local stack
bench: bench-micro bench-stack

bench-micro:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 2s ./...

bench-stack:
	$(GO) run ./relayctl bench --out $(BENCH_OUT)

## generate: regenerate the gqlgen server and the genqlient client
generate:
	$(GO) generate ./...

## check-generated: fail when generated code is not what `make generate` produces
check-generated: generate
	@git diff --exit-code -- internal/targetmock/graph internal/dispatcher/target || (echo "generated code is stale: run make generate and commit"; exit 1)

build:
	mkdir -p bin
	for cmd in ingest dispatcher targetmock sourcemock relayctl; do \
		CGO_ENABLED=0 $(GO) build -trimpath -o bin/$$cmd ./$$cmd || exit 1; \
	done

clean:
	rm -rf bin $(BENCH_OUT)
