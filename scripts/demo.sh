#!/usr/bin/env bash
# make demo: the whole job end to end with no configuration. Starts a
# throwaway PostgreSQL and a local SMTP catcher (unless DATABASE_URL /
# SMTP_URL are set), applies the migrations, loads sample subscribers and the
# demo edition, sends it over real SMTP, checks that every confirmed demo
# subscriber received it, and prints where to look. Exits non-zero, with the
# reason on one line, when that check or any step fails.
# `make demo-stop` (scripts/demo.sh stop) stops what it left running.
#
# Ports: each is the one named here if set (the demo stops if it is taken),
# else the readable default if it is free, else any free port.
#   DEMO_PG_PORT             the throwaway PostgreSQL (any free port)
#   DEMO_SMTP_PORT           the SMTP catcher (any free port)
#   DEMO_MAILPIT_SMTP_PORT   Mailpit's SMTP, the catcher's relay (any free port)
#   DEMO_MAILPIT_HTTP_PORT   Mailpit's web inbox (8025)
#   DEMO_HTTP_PORT           newsletter serve (8080); NEWSLETTER_LISTEN wins
# Other switches:
#   DEMO_MAILPIT=0           no Mailpit (no install, no web inbox): the .eml folder only
#   DEMO_SEND_TIMEOUT        seconds the send may take before the demo gives up (40)
#   DEMO_DIR                 where the demo keeps its state, mail and logs (.demo)
#   DEMO_BIN                 where it builds the binaries (bin)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
state=${DEMO_DIR:-$root/.demo}
bin=${DEMO_BIN:-$root/bin}
mkdir -p "$state" "$bin"
state=$(cd "$state" && pwd)

# Whatever fails says so on one line, and the exit status stays non-zero.
trap 'rc=$?; echo "demo failed: \`$BASH_COMMAND\` exited $rc (state and logs: $state)" >&2; exit $rc' ERR

die() {
	trap - ERR
	echo "demo failed: $*" >&2
	exit 1
}

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

# port_free PORT: nothing listens on 127.0.0.1:PORT (binding it is the test
# when Python is there: it also sees a listener on 0.0.0.0).
port_free() {
	if command -v python3 >/dev/null; then
		python3 -c 'import socket,sys; s=socket.socket(); s.bind(("127.0.0.1",int(sys.argv[1])))' "$1" 2>/dev/null
	else
		! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
	fi
}

taken_ports=" "
# pick_port VAR DEFAULT: sets picked to the port VAR names (which must be
# free), else DEFAULT if free, else a free one; never one already picked.
# (It sets a variable rather than printing, so that it runs in this shell
# and remembers what it picked.)
pick_port() {
	local want=${!1:-} p
	if [ -n "$want" ]; then
		port_free "$want" || die "$1=$want: something already listens on 127.0.0.1:$want"
		p=$want
	elif [ -n "$2" ] && port_free "$2" && [[ $taken_ports != *" $2 "* ]]; then
		p=$2
	else
		for _ in 1 2 3 4 5 6 7 8 9 10; do
			p=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
				echo $((20000 + RANDOM % 20000)))
			[[ $taken_ports == *" $p "* ]] || ! port_free "$p" || break
		done
	fi
	taken_ports+="$p "
	picked=$p
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
go build -o "$bin/newsletter" ./cmd/newsletter
go build -o "$bin/mailcatcher" ./internal/cmd/mailcatcher
nl="$bin/newsletter"

if [ -z "${DATABASE_URL:-}" ]; then
	bindir=$(pg_config --bindir 2>/dev/null || true)
	[ -x "$bindir/initdb" ] || bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
	if [ ! -x "${bindir:-}/initdb" ]; then
		if [ "$(id -u)" = 0 ]; then
			apt-get update -q && apt-get install -y -q --no-install-recommends postgresql
			bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
		else
			die "PostgreSQL's server binaries are missing: run 'sudo apt-get install postgresql', or set DATABASE_URL"
		fi
	fi
	pick_port DEMO_PG_PORT ""
	port=$picked
	echo "==> starting a throwaway PostgreSQL on 127.0.0.1:$port"
	pgdir=$(mktemp -d /tmp/newsletter-demo-pg.XXXXXX)
	echo "$pgdir" >"$state/pgdir"
	echo "$bindir" >"$state/pgbin"
	if [ "$(id -u)" = 0 ]; then chown postgres: "$pgdir"; fi
	as_pg "$bindir/initdb" -D "$pgdir/data" -U postgres -A trust -E UTF8 >"$state/initdb.log"
	as_pg "$bindir/pg_ctl" -D "$pgdir/data" -l "$pgdir/log" -w \
		-o "-h 127.0.0.1 -p $port -k $pgdir" start >/dev/null
	export DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
fi

# start_mailpit: a web inbox the catcher passes every message on to. Sets
# mp_smtp and mailpit_url; leaves them empty if Mailpit isn't there or did
# not start (the .eml folder is enough).
mp_smtp="" mailpit_url=""
start_mailpit() {
	local mailpit mp_http
	mailpit=$(command -v mailpit || true)
	[ -n "$mailpit" ] || [ ! -x "$(go env GOPATH)/bin/mailpit" ] || mailpit="$(go env GOPATH)/bin/mailpit"
	if [ -z "$mailpit" ]; then
		echo "    installing Mailpit for a web inbox (go install github.com/axllent/mailpit@v1.33.1; a minute or two, once; DEMO_MAILPIT=0 skips it)"
		if timeout 600 go install github.com/axllent/mailpit@v1.33.1 >"$state/mailpit-install.log" 2>&1; then
			mailpit="$(go env GOPATH)/bin/mailpit"
		else
			echo "    Mailpit did not install (see $state/mailpit-install.log); going on with the .eml folder only"
			return
		fi
	fi
	local smtp_port http_port
	pick_port DEMO_MAILPIT_SMTP_PORT ""
	smtp_port=$picked
	pick_port DEMO_MAILPIT_HTTP_PORT 8025
	http_port=$picked
	echo "    Mailpit: SMTP on 127.0.0.1:$smtp_port, web inbox on 127.0.0.1:$http_port"
	setsid "$mailpit" --smtp "127.0.0.1:$smtp_port" --listen "127.0.0.1:$http_port" --database "$state/mailpit.db" \
		>"$state/mailpit.log" 2>&1 </dev/null &
	echo $! >"$state/mailpit.pid"
	if wait_port 127.0.0.1 "$smtp_port" 20 && wait_port 127.0.0.1 "$http_port" 5; then
		mp_smtp="127.0.0.1:$smtp_port"
		mailpit_url="http://127.0.0.1:$http_port"
	else
		echo "    Mailpit did not start (see $state/mailpit.log); going on with the .eml folder only"
		kill "$(cat "$state/mailpit.pid")" 2>/dev/null || true
		rm -f "$state/mailpit.pid"
	fi
}

catcher=""
if [ -z "${SMTP_URL:-}" ]; then
	echo "==> starting the local SMTP catcher"
	[ "${DEMO_MAILPIT:-1}" = 0 ] || start_mailpit
	relay=()
	[ -z "$mp_smtp" ] || relay=(-relay "$mp_smtp")
	rm -rf "$state/mail"
	pick_port DEMO_SMTP_PORT ""
	smtp_port=$picked
	echo "    the catcher: SMTP on 127.0.0.1:$smtp_port, messages to $state/mail/"
	setsid "$bin/mailcatcher" -listen "127.0.0.1:$smtp_port" -dir "$state/mail" "${relay[@]}" \
		>"$state/catcher.log" 2>&1 </dev/null &
	echo $! >"$state/catcher.pid"
	wait_port 127.0.0.1 "$smtp_port" 20 || die "the SMTP catcher did not start: see $state/catcher.log"
	export SMTP_URL="smtp://127.0.0.1:$smtp_port?tls=none"
	catcher=1
fi

[ -s "$state/secret" ] || "$nl" secret >"$state/secret"
NEWSLETTER_SECRET=$(cat "$state/secret")
export NEWSLETTER_SECRET
export NEWSLETTER_FROM="${NEWSLETTER_FROM:-London Daily <newsletter@london-daily.example>}"
if [ -n "${NEWSLETTER_LISTEN:-}" ]; then
	port_free "${NEWSLETTER_LISTEN##*:}" || die "NEWSLETTER_LISTEN=$NEWSLETTER_LISTEN: something already listens on that port"
else
	pick_port DEMO_HTTP_PORT 8080
	NEWSLETTER_LISTEN="127.0.0.1:$picked"
fi
export NEWSLETTER_LISTEN
export NEWSLETTER_BASE_URL="${NEWSLETTER_BASE_URL:-http://$NEWSLETTER_LISTEN}"
# Retries a few seconds apart: the demo's relay is local, and a demo that
# waits minutes for one is a demo that looks hung.
export NEWSLETTER_MAX_ATTEMPTS="${NEWSLETTER_MAX_ATTEMPTS:-3}"
export NEWSLETTER_RETRY_BASE="${NEWSLETTER_RETRY_BASE:-2s}"

echo "==> newsletter migrate"
"$nl" migrate
echo "==> newsletter subscribers import demo/subscribers.csv"
"$nl" subscribers import demo/subscribers.csv
desk_user=editor@london-daily.example
if ! "$nl" editors list 2>/dev/null | grep -q "$desk_user"; then
	echo "==> newsletter editors add $desk_user --role admin (the desk's sign-in; password in $state/desk-password)"
	(umask 077; head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$state/desk-password")
	"$nl" editors add "$desk_user" --role admin <"$state/desk-password" >/dev/null
fi
echo "==> newsletter edition import demo/london-daily-2025-11-13.txt"
"$nl" edition import --site-url https://london-daily.example demo/london-daily-2025-11-13.txt
echo "==> newsletter preview --date 2025-11-13 --out $state/preview.html"
"$nl" preview --date 2025-11-13 --format html --out "$state/preview.html"
echo "==> newsletter send --date 2025-11-13"
send_timeout=${DEMO_SEND_TIMEOUT:-40}
send_rc=0
timeout -k 10 "$send_timeout" "$nl" send --date 2025-11-13 || send_rc=$?

# Every confirmed demo subscriber must have it: by the delivery record, and
# by the catcher's .eml files when the demo's own catcher took the mail.
want=$(awk -F, 'NR > 1 { sub(/\r$/, "") } NR > 1 && $NF == "confirmed" { n++ } END { print n + 0 }' demo/subscribers.csv)
status=$("$nl" status --date 2025-11-13 --json)
sent=$(sed -n 's/.*"counts":{[^}]*"sent":\([0-9]*\).*/\1/p' <<<"$status")
state_word=$(sed -n 's/^{"edition":"[^"]*","state":"\([^"]*\)".*/\1/p' <<<"$status")
reason=$(sed -n 's/.*"pause_reason":"\(\([^"\\]\|\\.\)*\)".*/\1/p' <<<"$status")
emls=$want
[ -z "$catcher" ] || emls=$(find "$state/mail" -name '*.eml' 2>/dev/null | wc -l)
if [ "${sent:-0}" -ne "$want" ] || [ "$emls" -ne "$want" ]; then
	count() { sed -n "s/.*\"counts\":{[^}]*\"$1\":\([0-9]*\).*/\1/p" <<<"$status"; }
	why="$(count failed_permanent) refused, $(count failed_temporary) failed temporarily, $(($(count queued) + $(count sending))) not finished; send exited $send_rc"
	[ "$send_rc" != 124 ] || why+=" (timed out after ${send_timeout}s)"
	[ -z "$reason" ] || why+=", edition ${state_word}: $reason"
	[ -z "$catcher" ] || why+=", the catcher stored $emls .eml files (log: $state/catcher.log)"
	die "${sent:-0} of $want demo subscribers received the edition ($why); \`DATABASE_URL='$DATABASE_URL' $nl status --date 2025-11-13 --undelivered\` says why; make demo-stop stops what is still running"
fi

echo "==> newsletter serve on $NEWSLETTER_LISTEN (so the unsubscribe links in the demo emails work)"
setsid "$nl" serve >"$state/serve.log" 2>&1 </dev/null &
echo $! >"$state/serve.pid"
wait_port 127.0.0.1 "${NEWSLETTER_LISTEN##*:}" 20 || echo "    serve did not start: see $state/serve.log"

echo
echo "Done: all $want demo subscribers received the edition. Where to look:"
if [ -n "$catcher" ]; then
	echo "  the messages as sent, one .eml file each:  $state/mail/ ($emls files)"
fi
[ -z "$mailpit_url" ] || echo "  a web inbox (Mailpit):                      $mailpit_url"
echo "  the rendered edition:                       $state/preview.html"
echo "  the reader pages:                           $NEWSLETTER_BASE_URL/subscribe, $NEWSLETTER_BASE_URL/editions"
echo "                                              (the unsubscribe links in the emails work too)"
[ ! -s "$state/desk-password" ] || echo "  the editors' desk:                          $NEWSLETTER_BASE_URL/desk/ (sign in as $desk_user, password in $state/desk-password)"
echo "  the delivery record, per recipient:         DATABASE_URL='$DATABASE_URL' $nl status --date 2025-11-13"
echo "  (psql \"$DATABASE_URL\" -c 'select status, count(*) from deliveries group by 1')"
echo "Stop what the demo left running with: make demo-stop"
