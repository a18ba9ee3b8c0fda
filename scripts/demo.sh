#!/usr/bin/env bash
# The demo: handoff serves a small HTTP server on 127.0.0.1 (port $PORT,
# default 8080) under continuous load, reloads it three times, tries one
# reload whose new generation fails to start (rolled back: the old one keeps
# serving), and stops. The load client's count of failed requests comes last.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh demo
bash scripts/build.sh
B=${BUILD_DIR:-build}
PORT=${PORT:-8080}
tmp=$(mktemp -d)
# On failure the log stays, and its end is shown: an error is never hidden.
cleanup() {
        local status=$?
        kill $(jobs -p) 2>/dev/null || true
        if [ $status -ne 0 ] && [ -s "$tmp/handoff.log" ]; then
                echo "--- the end of handoff's log ($tmp/handoff.log, kept) ---" >&2
                tail -n 20 "$tmp/handoff.log" >&2
        else
                rm -rf "$tmp"
        fi
}
trap cleanup EXIT
port_hint() {
        echo "demo: port $PORT on 127.0.0.1 is in use; run the demo on another one, e.g.: PORT=$((PORT + 1)) bash scripts/demo.sh" >&2
}

# The server reads its arguments from a file at every start, as a server
# reads its configuration: the demo edits it to make one reload fail.
echo "--init-delay 200" > "$tmp/args"
# Bold headings only on a terminal, and not when NO_COLOR is set (no-color.org).
if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then
        say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
else
        say() { printf '\n== %s\n' "$*"; }
fi
answer() { curl -s --max-time 5 "http://127.0.0.1:$PORT/" || echo "(no answer)"; }
# Waits (at most 10 s) until handoff's log has $2 lines matching $1.
wait_log() {
        for _ in $(seq 200); do
                [ "$(grep -c "$1" "$tmp/handoff.log")" -ge "$2" ] && return 0
                sleep 0.05
        done
        echo "timed out waiting for \"$1\" in the log" >&2
        return 1
}

# Something already answering there would be talked to instead of the demo.
if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
        port_hint
        exit 1
fi

say "handoff --listen 127.0.0.1:$PORT -- fixture-server (log: $tmp/handoff.log)"
"$B/src/handoff" --listen "127.0.0.1:$PORT" --drain-timeout 5s -- \
        /bin/sh -c "exec $B/tests/fixtures/fixture-server \$(cat $tmp/args)" >"$tmp/handoff.log" 2>&1 &
HANDOFF=$!
# Serving once the first generation is ready; handoff exits at once when it
# cannot listen (the port taken meanwhile, or not ours to bind).
for _ in $(seq 200); do
        grep -q "is ready" "$tmp/handoff.log" && break
        if ! kill -0 "$HANDOFF" 2>/dev/null; then
                wait "$HANDOFF" || true
                # The log itself is shown on the way out (cleanup).
                grep -qi "in use" "$tmp/handoff.log" && port_hint
                exit 1
        fi
        sleep 0.05
done
grep -q "is ready" "$tmp/handoff.log" || { echo "demo: handoff did not become ready within 10 s" >&2; exit 1; }
first=$(answer)
echo "serving: $first"

say "load: 4 clients, a new connection per request, until the demo ends"
"$B/tests/fixtures/loadgen" --connect "127.0.0.1:$PORT" --concurrency 4 --until-file "$tmp/stop" >"$tmp/load.json" &
LOAD=$!

for i in 1 2 3; do
        say "reload $i: kill -HUP $HANDOFF"
        kill -HUP "$HANDOFF"
        wait_log "serves; retiring" "$i"
        grep "serves; retiring" "$tmp/handoff.log" | tail -1
        wait_log "Retired generation" "$i"
        echo "answering now: $(answer)"
done

say "a reload whose new generation fails to start"
echo "--fail-at-start" > "$tmp/args"
before=$(answer)
kill -HUP "$HANDOFF"
wait_log "failed to start" 1
grep "failed to start" "$tmp/handoff.log"
echo "still answering: $(answer)   (before: $before)"

say "stop"
touch "$tmp/stop"
wait $LOAD || true
kill -TERM "$HANDOFF"
wait $HANDOFF && echo "handoff exited 0"

say "handoff's log"
grep '^handoff' "$tmp/handoff.log"
say "load over the whole demo"
cat "$tmp/load.json"; echo
python3 - "$tmp/load.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"{r['ok']} requests answered, {r['failed']} failed, served by {len(r['pids'])} generations")
sys.exit(r["failed"] != 0)
PY
