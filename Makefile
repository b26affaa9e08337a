# eventrelay — the two commands a newcomer needs are `make run` and `make test`.
# Everything here needs only Go.

GO        ?= go
DATA      ?= .data
# make run drives the source at twice the target's limit so that a backlog
# builds and drains visibly.
TARGET_RATE ?= 10
SOURCE_RATE ?= $(shell echo $$(( $(TARGET_RATE) * 2 )))
BENCH_OUT ?= bench-results

.PHONY: run test vet bench bench-micro bench-stack generate check-generated build fmt fmt-check clean fuzz

## run: the whole pipeline on this machine (ingest, queue, dispatcher, targetmock, sourcemock)
run:
	$(GO) run ./relayctl dev --data $(DATA) --target-rate $(TARGET_RATE) --source-rate $(SOURCE_RATE)

# The end-to-end packages drive the whole stack at production-like rates; the
# race detector slows the pure-Go SQLite engine ~20x, which would turn them
# into a test of the detector. They run without it, alone, after every
# other package has passed with it, one package at a time (-p 1): the fault
# tests' load would otherwise eat the CPU the end-to-end tests' latency
# checks need. internal/chaos runs its reduced set here (about 3 minutes).
E2E_PKGS = ./internal/devstack/... ./internal/chaos/...

## test: vet, gofmt, terraform fmt, validate and test, every unit test with the race detector, then the end-to-end tests
test: vet fmt-check tf-fmt-check tf-test tf-scan
	$(GO) test -race -count=1 -timeout 20m $$($(GO) list ./... | grep -v -e '/internal/devstack' -e '/internal/chaos')
	$(GO) test -p 1 -count=1 -timeout 20m $(E2E_PKGS)

# The full fault-test set (docs/reliability.md): 5,000-event kill -9 bursts,
# a 30 s outage, 60 s of overload, on the embedded engine and, with the
# emulators running, on the GCP engines. Writes a table and JSON into
# CHAOS_OUT. CHAOS_ONLY=kill9 runs the scenarios whose name contains it;
# CHAOS_SEED=N repeats a run's random choices (the seed is in the log).
CHAOS_OUT ?= chaos-results

.PHONY: chaos

## chaos: the full fault-test set (about 45 minutes on 2 cores with the emulators); the reduced set runs in make test
chaos:
	CHAOS_OUT=$(CHAOS_OUT) $(GO) test -tags chaos -count=1 -timeout 90m -v -run '^TestScenarios$$' ./internal/chaos

vet:
	$(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

## bench: micro-benchmarks, then the load benchmarks against the local stack: ingest at 1,000/s
## beside a no-op handler in the same rounds (p50/p99 and their ratio), the saturation point
## (highest rate with p99 < 500 ms and no 503), drain and latency. BENCH_FLAGS go to relayctl bench.
bench: bench-micro bench-stack

bench-micro:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 2s ./...

bench-stack:
	$(GO) run ./relayctl bench --out $(BENCH_OUT) $(BENCH_FLAGS)

# Fuzz targets' seed corpora run with every `make test`; .ci/run adds a short
# fuzzing pass (FUZZTIME=3s per target) and longer runs are made by hand.
FUZZTIME ?= 30s

## fuzz: run every FuzzXxx target for FUZZTIME each (default 30s), one after the other
fuzz:
	@set -e; for f in $$(git grep -l '^func Fuzz' -- '*_test.go'); do \
		pkg=./$$(dirname $$f); \
		for fn in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$f); do \
			echo "== $$fn ($$pkg, $(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

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
	rm -rf bin $(BENCH_OUT) $(CHAOS_OUT)

# ---------------------------------------------------------------- delivery
# Cloud delivery (docs/deployment.md). cloudbuild.yaml's steps call these
# targets; the release targets do nothing unless DEPLOY=true.

TERRAFORM    ?= terraform
TF_ENVS      ?= dev prod
IMAGES       ?= ingest dispatcher targetmock
TAG          ?= $(shell git rev-parse HEAD 2>/dev/null || echo dev)
REPOSITORY   ?= eventrelay
PUSH         ?= false
# Terraform warns on every command without a CLI config file; give it an
# empty one unless the user has their own.
TF_ENV       = $$( [ -f "$${TF_CLI_CONFIG_FILE:-$$HOME/.terraformrc}" ] || echo TF_CLI_CONFIG_FILE=/dev/null )
RELEASE_ENV  = DEPLOY=$(DEPLOY) PROJECT=$(PROJECT) ENV=$(ENV) REGION=$(REGION) REGIONS=$(REGIONS) \
	TAG=$(TAG) REPOSITORY=$(REPOSITORY) SOURCES_BUCKET=$(SOURCES_BUCKET) TF_SA=$(TF_SA) \
	TF_STATE_BUCKET=$(TF_STATE_BUCKET) SMOKE_SA=$(SMOKE_SA) INGEST_AUDIENCE=$(INGEST_AUDIENCE) \
	FIRESTORE_DATABASE='$(FIRESTORE_DATABASE)' TARGETMOCK=$(TARGETMOCK) SOURCEMOCK=$(SOURCEMOCK) \
	SOURCEMOCK_RUNTIME=$(SOURCEMOCK_RUNTIME) SMOKE_MODE=$(SMOKE_MODE) SMOKE_ROLLBACK='$(SMOKE_ROLLBACK)'

.PHONY: ci images tf-fmt tf-fmt-check tf-check tf-test tf-scan function-zip tf-plan tf-apply deploy smoke promote rollback function-upload function-deploy

## ci: what CI runs (.ci/run): modules, generated code, emulators, make test
ci:
	bash .ci/run

## images: build (PUSH=true: and push) one image per service, tagged TAG (the commit)
images:
	@set -e; for s in $(IMAGES); do \
		echo "== $(REPOSITORY)/$$s:$(TAG)"; \
		docker build --build-arg SERVICE=$$s --build-arg VERSION=$(TAG) -t $(REPOSITORY)/$$s:$(TAG) .; \
		if [ "$(PUSH)" = true ]; then docker push $(REPOSITORY)/$$s:$(TAG); fi; \
	done

## tf-fmt: format the Terraform
tf-fmt:
	env $(TF_ENV) $(TERRAFORM) fmt -recursive terraform

# Part of make test: skipped with a message when terraform is not installed,
# a failure under REQUIRE_TERRAFORM=1 (CI).
tf-fmt-check:
	@if ! command -v $(TERRAFORM) >/dev/null 2>&1; then \
		if [ "$$REQUIRE_TERRAFORM" = 1 ]; then echo "tf-fmt-check: $(TERRAFORM) not found and REQUIRE_TERRAFORM=1"; exit 1; fi; \
		echo "tf-fmt-check: SKIPPED, $(TERRAFORM) not found (install Terraform 1.11 to check formatting)"; \
	else \
		env $(TF_ENV) $(TERRAFORM) fmt -check -recursive -diff terraform || { echo "terraform fmt needed: run make tf-fmt"; exit 1; }; \
	fi

## tf-check: fmt, then init (no backend) and validate every environment; needs the provider (network)
tf-check: tf-fmt-check
	@set -e; for e in $(TF_ENVS); do \
		echo "== terraform/environments/$$e"; \
		env $(TF_ENV) $(TERRAFORM) -chdir=terraform/environments/$$e init -backend=false -input=false -no-color >/dev/null; \
		env $(TF_ENV) $(TERRAFORM) -chdir=terraform/environments/$$e validate -no-color; \
	done

# Where `terraform init` finds a provider without a network: the implicit
# local mirror directories (../shared/tools/tf-google-provider installs
# there). A machine that can reach the Terraform registry runs the tests
# with REQUIRE_TERRAFORM_PROVIDER=1, and init downloads the provider.
TF_PROVIDER_DIRS = $$HOME/.terraform.d/plugins $$HOME/.local/share/terraform/plugins /usr/local/share/terraform/plugins /usr/share/terraform/plugins
# Every directory with Terraform tests (tests/*.tftest.hcl or *.tftest.hcl).
TF_TEST_DIRS = $$(git ls-files 'terraform/*.tftest.hcl' | xargs -r -n1 dirname | sed 's,/tests$$,,' | sort -u)

## tf-test: validate both environments and run terraform test (mocked google provider, real schema) in every directory that has tests
tf-test:
	@if ! command -v $(TERRAFORM) >/dev/null 2>&1; then \
		if [ "$$REQUIRE_TERRAFORM_PROVIDER" = 1 ]; then echo "tf-test: $(TERRAFORM) not found and REQUIRE_TERRAFORM_PROVIDER=1"; exit 1; fi; \
		echo "tf-test: SKIPPED, $(TERRAFORM) not found"; exit 0; \
	fi; \
	found=; for d in $(TF_PROVIDER_DIRS); do \
		ls -d "$$d"/registry.terraform.io/hashicorp/google/*/* >/dev/null 2>&1 && found=$$d; \
	done; \
	if [ -z "$$found" ] && [ "$$REQUIRE_TERRAFORM_PROVIDER" != 1 ]; then \
		echo "tf-test: SKIPPED terraform validate and terraform test: the hashicorp/google provider is not installed in a local plugin directory."; \
		echo "tf-test: build it with ../shared/tools/tf-google-provider, or set REQUIRE_TERRAFORM_PROVIDER=1 where init can download it."; \
		exit 0; \
	fi; \
	set -e; \
	for e in $(TF_ENVS); do \
		echo "== terraform validate terraform/environments/$$e"; \
		env $(TF_ENV) $(TERRAFORM) -chdir=terraform/environments/$$e init -backend=false -input=false -no-color >/dev/null; \
		env $(TF_ENV) $(TERRAFORM) -chdir=terraform/environments/$$e validate -no-color; \
	done; \
	for d in $(TF_TEST_DIRS); do \
		echo "== terraform test $$d"; \
		env $(TF_ENV) $(TERRAFORM) -chdir=$$d init -backend=false -input=false -no-color >/dev/null; \
		env $(TF_ENV) $(TERRAFORM) -chdir=$$d test -no-color; \
	done

# The IaC scanner, offline with the checks built into the binary. .ci/run
# installs it (TRIVY_VERSION) and sets REQUIRE_TRIVY=1; elsewhere a missing
# trivy is a plain skip. A finding is fixed, or justified where it stands
# with a trivy:ignore comment and its reason.
TRIVY         ?= trivy
TRIVY_VERSION ?= v0.74.0

## tf-scan: trivy config on terraform/; fails on any MEDIUM or higher finding not justified inline
tf-scan:
	@if ! command -v $(TRIVY) >/dev/null 2>&1; then \
		if [ "$$REQUIRE_TRIVY" = 1 ]; then echo "tf-scan: $(TRIVY) not found and REQUIRE_TRIVY=1"; exit 1; fi; \
		echo "tf-scan: SKIPPED, $(TRIVY) not found (GOEXPERIMENT=jsonv2 go install github.com/aquasecurity/trivy/cmd/trivy@$(TRIVY_VERSION))"; exit 0; \
	fi; \
	$(TRIVY) config --quiet --skip-check-update --severity MEDIUM,HIGH,CRITICAL --exit-code 1 terraform

## function-zip: the sourcemock Cloud Function's source (wrapper module, ADR 0007)
function-zip:
	scripts/function-source.sh bin/sourcemock-function.zip

tf-plan tf-apply deploy smoke rollback function-upload function-deploy:
	env $(TF_ENV) $(RELEASE_ENV) scripts/release.sh $@

## promote: shift traffic to the new revisions (SERVICES: default all)
promote:
	env $(RELEASE_ENV) scripts/release.sh promote $(SERVICES)
