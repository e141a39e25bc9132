# The README's two commands are `make demo` and `make test`.
GO ?= go

.PHONY: build test fuzz demo demo-stop bench lint

build:
	$(GO) build -o bin/newsletter ./cmd/newsletter

# The whole suite against real PostgreSQL and SMTP servers. Each test package
# starts a throwaway PostgreSQL unless DATABASE_URL names one.
# Then every fuzz target for FUZZTIME (20s) each (see fuzz).
test:
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 15m ./...
	$(MAKE) fuzz

# Every Fuzz* target of the module, found by scripts/fuzz.sh, FUZZTIME each;
# a failing input stays in the package's testdata/fuzz/ as a test case.
FUZZTIME ?= 20s
fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) bash scripts/fuzz.sh

# Migrations, sample subscribers, the demo edition, a real SMTP send to a
# local catcher; prints where to look. Uses DATABASE_URL / SMTP_URL if set.
demo:
	bash scripts/demo.sh

demo-stop:
	bash scripts/demo.sh stop

# The packages' benchmarks, then the end-to-end send (scripts/bench.sh: a
# real PostgreSQL, Postfix's smtp-sink, 10k/100k/1M subscribers, a pipelined
# baseline client in the same run, and far-relay runs behind a 20 ms reply
# delay at 8, 32 and 64 connections). BENCH_SIZES, BENCH_CONNS, BENCH_LIMIT,
# BENCH_REPEAT, BENCH_DELAY_* and BENCH_ARGS tune the second half (see the script).
bench:
	$(GO) test -run '^$$' -bench . -benchmem -count=1 ./...
	bash scripts/bench.sh

lint:
	test -z "$$(gofmt -l $$(git ls-files '*.go'))"
	$(GO) vet ./...
