#!/usr/bin/env bash
# make demo: the whole job end to end with no configuration. Starts a
# throwaway PostgreSQL and a local SMTP catcher (unless DATABASE_URL /
# SMTP_URL are set), applies the migrations, loads sample subscribers and the
# demo edition, sends it over real SMTP, and prints where to look.
# `make demo-stop` stops what it left running.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
state="$root/.demo"
mkdir -p "$state"

stop_all() {
	for p in serve catcher mailpit; do
		if [ -f "$state/$p.pid" ]; then
			kill "$(cat "$state/$p.pid")" 2>/dev/null || true
			rm -f "$state/$p.pid"
		fi
	done
	if [ -f "$state/pgdir" ]; then
		pgdir=$(cat "$state/pgdir")
		if [ -d "$pgdir/data" ]; then
			as_pg "$(cat "$state/pgbin")/pg_ctl" -D "$pgdir/data" -m fast -w stop >/dev/null 2>&1 || true
		fi
		rm -rf "$pgdir" "$state/pgdir"
	fi
}

as_pg() {
	if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
		echo $((20000 + RANDOM % 20000))
}

wait_port() { # host port seconds
	for _ in $(seq 1 $(($3 * 10))); do
		(exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

if [ "${1:-}" = stop ]; then
	stop_all
	echo "demo stopped"
	exit 0
fi
stop_all

echo "==> building"
go build -o bin/newsletter ./cmd/newsletter
go build -o bin/mailcatcher ./internal/cmd/mailcatcher
nl="$root/bin/newsletter"

if [ -z "${DATABASE_URL:-}" ]; then
	echo "==> starting a throwaway PostgreSQL"
	bindir=$(pg_config --bindir 2>/dev/null || true)
	[ -x "$bindir/initdb" ] || bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
	if [ ! -x "${bindir:-}/initdb" ]; then
		if [ "$(id -u)" = 0 ]; then
			apt-get update -q && apt-get install -y -q --no-install-recommends postgresql
			bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
		else
			echo "PostgreSQL's server binaries are missing: run 'sudo apt-get install postgresql', or set DATABASE_URL" >&2
			exit 1
		fi
	fi
	pgdir=$(mktemp -d /tmp/newsletter-demo-pg.XXXXXX)
	echo "$pgdir" >"$state/pgdir"
	echo "$bindir" >"$state/pgbin"
	[ "$(id -u)" = 0 ] && chown postgres: "$pgdir"
	as_pg "$bindir/initdb" -D "$pgdir/data" -U postgres -A trust -E UTF8 >"$state/initdb.log"
	port=$(free_port)
	as_pg "$bindir/pg_ctl" -D "$pgdir/data" -l "$pgdir/log" -w \
		-o "-h 127.0.0.1 -p $port -k $pgdir" start >/dev/null
	export DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
fi

mailpit_url=""
if [ -z "${SMTP_URL:-}" ]; then
	echo "==> starting the local SMTP catcher"
	mailpit=$(command -v mailpit || true)
	[ -n "$mailpit" ] || [ ! -x "$(go env GOPATH)/bin/mailpit" ] || mailpit="$(go env GOPATH)/bin/mailpit"
	if [ -z "$mailpit" ]; then
		echo "    installing Mailpit for a web inbox (go install github.com/axllent/mailpit@v1.33.1; a minute or two, once)"
		if timeout 600 go install github.com/axllent/mailpit@v1.33.1 >"$state/mailpit-install.log" 2>&1; then
			mailpit="$(go env GOPATH)/bin/mailpit"
		else
			echo "    Mailpit did not install (see $state/mailpit-install.log); going on with the .eml folder only"
		fi
	fi
	relay=()
	if [ -n "$mailpit" ]; then
		mp_smtp=$(free_port)
		mp_http=8025
		wait_port 127.0.0.1 $mp_http 0 && mp_http=$(free_port)
		setsid "$mailpit" --smtp "127.0.0.1:$mp_smtp" --listen "127.0.0.1:$mp_http" --database "$state/mailpit.db" \
			>"$state/mailpit.log" 2>&1 </dev/null &
		echo $! >"$state/mailpit.pid"
		wait_port 127.0.0.1 "$mp_smtp" 20 || { echo "Mailpit did not start: see $state/mailpit.log" >&2; exit 1; }
		relay=(-relay "127.0.0.1:$mp_smtp")
		mailpit_url="http://127.0.0.1:$mp_http"
	fi
	rm -rf "$state/mail"
	smtp_port=$(free_port)
	setsid "$root/bin/mailcatcher" -listen "127.0.0.1:$smtp_port" -dir "$state/mail" "${relay[@]}" \
		>"$state/catcher.log" 2>&1 </dev/null &
	echo $! >"$state/catcher.pid"
	wait_port 127.0.0.1 "$smtp_port" 20 || { echo "the SMTP catcher did not start: see $state/catcher.log" >&2; exit 1; }
	export SMTP_URL="smtp://127.0.0.1:$smtp_port?tls=none"
fi

[ -s "$state/secret" ] || "$nl" secret >"$state/secret"
NEWSLETTER_SECRET=$(cat "$state/secret")
export NEWSLETTER_SECRET
export NEWSLETTER_FROM="${NEWSLETTER_FROM:-London Daily <newsletter@london-daily.example>}"
listen_port=8080
wait_port 127.0.0.1 $listen_port 0 && listen_port=$(free_port)
export NEWSLETTER_LISTEN="${NEWSLETTER_LISTEN:-127.0.0.1:$listen_port}"
export NEWSLETTER_BASE_URL="${NEWSLETTER_BASE_URL:-http://$NEWSLETTER_LISTEN}"

echo "==> newsletter migrate"
"$nl" migrate
echo "==> newsletter subscribers import demo/subscribers.csv"
"$nl" subscribers import demo/subscribers.csv
echo "==> newsletter edition import demo/london-daily-2025-11-13.txt"
"$nl" edition import --site-url https://london-daily.example demo/london-daily-2025-11-13.txt
echo "==> newsletter preview --date 2025-11-13 --out $state/preview.html"
"$nl" preview --date 2025-11-13 --format html --out "$state/preview.html"
echo "==> newsletter send --date 2025-11-13"
"$nl" send --date 2025-11-13

echo "==> newsletter serve (so the unsubscribe links in the demo emails work)"
setsid "$nl" serve >"$state/serve.log" 2>&1 </dev/null &
echo $! >"$state/serve.pid"
wait_port 127.0.0.1 "${NEWSLETTER_LISTEN##*:}" 20 || echo "    serve did not start: see $state/serve.log"

echo
echo "Done. Where to look:"
if [ -d "$state/mail" ]; then
	echo "  the messages as sent, one .eml file each:  $state/mail/ ($(ls "$state/mail" | wc -l) files)"
fi
[ -n "$mailpit_url" ] && echo "  a web inbox (Mailpit):                      $mailpit_url"
echo "  the rendered edition:                       $state/preview.html"
echo "  the reader pages:                           $NEWSLETTER_BASE_URL/subscribe, $NEWSLETTER_BASE_URL/editions"
echo "                                              (the unsubscribe links in the emails work too)"
echo "  the delivery record, per recipient:         DATABASE_URL='$DATABASE_URL' $nl status --date 2025-11-13"
echo "  (psql \"$DATABASE_URL\" -c 'select status, count(*) from deliveries group by 1')"
echo "Stop what the demo left running with: make demo-stop"
