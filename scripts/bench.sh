#!/usr/bin/env bash
# The end-to-end half of `make bench` (issue 5): builds and runs
# internal/cmd/sendbench, which sends the demo edition with `newsletter send`
# to N confirmed subscribers through Postfix's smtp-sink on loopback, with a
# real PostgreSQL, and a minimal pipelined SMTP client to the same sink as
# the baseline, interleaved and repeated. Prints msgs/s, CPU µs per message
# (newsletter, PostgreSQL, both, the sink) and peak RSS per size, a BENCH
# line of JSON per run, a summary, and the issue's targets.
#
# Settings (environment):
#   BENCH_SIZES   subscriber counts (default 10000,100000,1000000)
#   BENCH_CONNS   NEWSLETTER_SMTP_CONNS values to compare (default 2)
#   BENCH_LIMIT   longest a single run may take; a run stopped there is rated
#                 on what it sent, and says so (default 100s, which keeps
#                 `make bench` near 30 minutes, DKIM runs included, however slow)
#   BENCH_REPEAT  rounds per size up to 100k (default 2; 1M runs one)
#   BENCH_DELAY_N      subscriber counts of the far-relay runs, behind a proxy
#                      delaying each reply by 20 ms (default 10000,100000)
#   BENCH_DELAY_CONNS  connections of the far-relay runs (default 8,32,64)
#   BENCH_DELAY_LIMIT  longest a far-relay run may take, rated on what it sent
#                      (default 20s: the twelve far-relay runs, the baseline
#                      beside each, add about four minutes)
#   BENCH_ARGS    more sendbench flags (default -dkim: each newsletter run also signed
#                 with DKIM, RSA-2048), e.g. "-variant batch100:NEWSLETTER_BATCH=100 -perf"
#   DATABASE_URL  use this server (databases sendbench_<n> are created on it)
#                 instead of a throwaway cluster
# `go run ./internal/cmd/sendbench -h` lists every flag.
#
# Comparing with listmonk (issue 11), by hand, not part of `make bench`:
# build listmonk yourself (it is not vendored here) and pass the binary with
# -listmonk. Each far-relay newsletter run is then followed by listmonk
# sending the same edition (its HTML and text, through a template that adds
# nothing) to the same readers on one confirmed list, through the same
# delaying proxy, with app.concurrency and the SMTP max_conns set to the run's
# connections; its own database listmonk_<n> on the same PostgreSQL, set up
# with `listmonk --install`. Its row is timed from listmonk's start to its
# campaign finished (enq_s: until it began sending, its campaign scan runs
# every 5 s), CPU is listmonk's plus PostgreSQL's. To build it:
#   git clone https://github.com/knadh/listmonk && cd listmonk
#   mkdir -p frontend/dist && echo '<!doctype html>' > frontend/dist/index.html
#   go build -o listmonk ./cmd && go install github.com/knadh/stuffbin/stuffbin
#   stuffbin -a stuff -in listmonk -out listmonk config.toml.sample schema.sql \
#     queries:/queries permissions.json static/public:/public \
#     static/email-templates frontend/dist:/admin i18n:/i18n
# (the stub admin UI is enough: the bench uses the API only), then e.g.
#   BENCH_SIZES=1000 BENCH_REPEAT=1 BENCH_DELAY_CONNS=32 BENCH_DELAY_LIMIT=0 \
#   BENCH_ARGS="-delay-repeat 2 -listmonk /path/to/listmonk" scripts/bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/sbin/smtp-sink ]; then
	if [ "$(id -u)" = 0 ]; then
		echo "==> installing Postfix for smtp-sink (the bench's SMTP server)"
		echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postfix >/dev/null
	else
		echo "bench: /usr/sbin/smtp-sink is missing: sudo apt-get install --no-install-recommends postfix" >&2
		exit 1
	fi
fi

bin=$(mktemp -d /tmp/sendbench-bin.XXXXXX)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/sendbench" ./internal/cmd/sendbench

# shellcheck disable=SC2086 # BENCH_ARGS is split on purpose
exec_args=(-n "${BENCH_SIZES:-10000,100000,1000000}"
	-conns "${BENCH_CONNS:-2}"
	-limit "${BENCH_LIMIT:-100s}"
	-repeat "${BENCH_REPEAT:-2}"
	-delay-n "${BENCH_DELAY_N:-10000,100000}"
	-delay-conns "${BENCH_DELAY_CONNS:-8,32,64}"
	-delay-limit "${BENCH_DELAY_LIMIT:-20s}"
	${BENCH_ARGS--dkim})
"$bin/sendbench" "${exec_args[@]}"
