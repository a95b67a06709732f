#!/usr/bin/env bash
# `make demo`: the whole story in under a minute. Three example services run under a real
# systemd user manager (one stays up, one crash-loops, one exits 0 and is respawned
# forever) while cerberus follows them with the shipped rules plus a signed webhook to a
# local sink. The demo shows the alert as the sink received it (signature checked), the
# recorded history, a replay of the shipped rules over it and the alerts table; then it
# fixes the crash-looping service and shows the resolve arriving. It keeps the history
# (OUT_DIR/demo.db, default: a new /tmp/cerberus-demo-out.XXXXXX), writes its HTML report
# beside it (OUT_DIR/demo-report.html) and prints the commands to try next on it.
#
#   tools/demo.sh CERBERUS_BINARY [OUT_DIR]
#
# Uses the invoking user's own user manager when there is one; otherwise, as root, starts
# a throwaway one for the user 'cerberus-demo' (tests/harness/usermgr.sh). Everything the
# demo starts (cerberus, the sink, the manager) is stopped by PID when it exits, also on
# Ctrl-C or error.
set -euo pipefail

DEMO_USER=cerberus-demo
# The shipped rules resolve an alert once its unit has been up 10 minutes; the demo's copy
# waits only this long, so the resolve is seen.
RESOLVE_AFTER=5s
UNITS=(demo-healthy.service demo-crashloop.service demo-respawn.service)
FIXED_UNIT=demo-crashloop.service

root=$(cd "$(dirname "$0")/.." && pwd)
if [ $# -lt 1 ] || [ $# -gt 2 ]; then echo "usage: tools/demo.sh CERBERUS_BINARY [OUT_DIR]" >&2; exit 2; fi
bin=$1
out_dir=${2:-}
[ -x "$bin" ] || { echo "demo: '$bin' is not an executable; build it with 'make build'." >&2; exit 1; }
bin=$(realpath "$bin")
sink=$root/tools/demo_sink.py

say() { printf '\n== %s\n' "$*"; }
show() { printf '$ %s\n' "$*"; }
now_usec() { echo "${EPOCHREALTIME//[!0-9]/}"; }
# seconds_since USEC: the time since then, in seconds with one decimal.
seconds_since() {
    local tenths=$((($(now_usec) - $1) / 100000))
    echo "$((tenths / 10)).$((tenths % 10))"
}

work=
state=
manager_started=0
units_installed=0
cerberus_pid=
sink_pid=
unit_dir=
bus=
run_as=()     # empty: cerberus runs as the invoking user
as_user=()    # prefix that runs a command as the manager's user

# Stops a process the demo started: SIGTERM, up to 5 s, then SIGKILL.
stop_pid() {
    local pid=$1
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
}

cleanup() {
    local status=$?
    set +e
    # A second Ctrl-C must not cut the cleanup short; every step in it is bounded.
    trap '' HUP INT TERM
    [ -n "$cerberus_pid" ] && stop_pid "$cerberus_pid"
    [ -n "$sink_pid" ] && stop_pid "$sink_pid"
    if [ "$units_installed" = 1 ]; then
        sysctl_user stop "${UNITS[@]}" >/dev/null 2>&1
        for u in "${UNITS[@]}"; do rm -f "$unit_dir/$u"; done
        sysctl_user daemon-reload >/dev/null 2>&1
        sysctl_user reset-failed "${UNITS[@]}" >/dev/null 2>&1
    fi
    if [ "$manager_started" = 1 ]; then
        "$root/tests/harness/usermgr.sh" stop "$state"
        uid=${uid:-$(id -u "$DEMO_USER" 2>/dev/null)}
        # What logind would do when the user's last session ends.
        if [ -n "${uid:-}" ] && [ -z "$(pgrep -u "$uid" || true)" ]; then
            rm -rf "/run/user/$uid"
        elif [ -n "${uid:-}" ]; then
            echo "demo: processes of '$DEMO_USER' are still running: $(pgrep -u "$uid" | tr '\n' ' ')" >&2
        fi
    fi
    [ -n "$state" ] && rm -rf "$state"
    [ -n "$work" ] && rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

sysctl_user() {
    "${as_user[@]}" systemctl --user "$@"
}

# wait_until SECONDS WHAT COMMAND...: polls COMMAND until it succeeds; fails after SECONDS.
wait_until() {
    local timeout=$1 what=$2
    shift 2
    local deadline=$((SECONDS + timeout))
    until "$@"; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "demo: timed out after ${timeout} s waiting for $what" >&2
            return 1
        fi
        sleep 0.05
    done
}

cerberus_ready() {
    if ! kill -0 "$cerberus_pid" 2>/dev/null; then
        echo "demo: cerberus run exited before it was ready:" >&2
        sed 's/^/  | /' "$work/cerberus.log" >&2
        exit 1
    fi
    # cerberus logs this line once it has subscribed and read every unit (its READY=1).
    grep -q '^cerberus: following the ' "$work/cerberus.log"
}

echo "cerberus demo: three services under systemd, one healthy, one crash-looping, one exiting 0"
echo "and respawned forever. cerberus records every transition, alerts a signed webhook about"
echo "the two loops, and resolves the crash loop's alert once the service is fixed."

# Pick a user manager: the invoking user's own, else a throwaway one (root only).
own_state=$(systemctl --user is-system-running 2>/dev/null || true)
case "$own_state" in
running|degraded)
    unit_dir=${XDG_CONFIG_HOME:-$HOME/.config}/systemd/user
    bus=${DBUS_SESSION_BUS_ADDRESS:-unix:path=${XDG_RUNTIME_DIR:-/run/user/$(id -u)}/bus}
    as_user=(env)
    say "Using your systemd user manager ($own_state); bus $bus"
    ;;
*)
    if [ "$(id -u)" != 0 ]; then
        echo "demo: there is no systemd user manager for $(id -un) ('systemctl --user is-system-running' failed), and starting one needs root; run 'sudo make demo'." >&2
        exit 1
    fi
    if id -u "$DEMO_USER" >/dev/null 2>&1 && pgrep -u "$DEMO_USER" >/dev/null; then
        echo "demo: processes of '$DEMO_USER' are already running (PIDs $(pgrep -u "$DEMO_USER" | tr '\n' ' ')); is another demo running?" >&2
        exit 1
    fi
    say "Starting a systemd user manager for '$DEMO_USER' ($(id -un) has none here)"
    state=$(mktemp -d /tmp/cerberus-demo-state.XXXXXX)
    manager_started=1
    # Each daemon the demo starts runs in a session of its own (setsid), so a Ctrl-C reaches
    # only the demo, whose cleanup then stops them in order.
    if ! um_env=$(setsid "$root/tests/harness/usermgr.sh" start "$DEMO_USER" "$state"); then
        echo "demo: could not start a systemd user manager for '$DEMO_USER' (the reason is above)" >&2
        exit 1
    fi
    eval "$um_env"
    uid=$UM_UID
    unit_dir=$UM_UNITDIR
    bus=$UM_BUS
    as_user=(runuser -u "$UM_USER" -- env "XDG_RUNTIME_DIR=$UM_RUNTIME" "DBUS_SESSION_BUS_ADDRESS=$UM_BUS")
    echo "systemd --user is PID $UM_SYSTEMD_PID; bus $bus"
    ;;
esac

work=$(mktemp -d /tmp/cerberus-demo.XXXXXX)
chmod 0755 "$work"
db=$work/demo.db
rules=$work/rules.json

say "Starting a webhook receiver: a local HTTP sink that checks each request's signature"
mkdir "$work/sink"
# Standard Webhooks secret: 'whsec_' + base64 of the key. Only the environment of the sink
# and of cerberus holds it; the rules name the variable, never the value.
CERBERUS_DEMO_WEBHOOK_SECRET="whsec_$(head -c 32 /dev/urandom | base64 -w0)"
export CERBERUS_DEMO_WEBHOOK_SECRET
setsid python3 "$sink" serve "$work/sink" >"$work/sink.log" 2>&1 &
sink_pid=$!
sink_listening() {
    kill -0 "$sink_pid" 2>/dev/null || { echo "demo: the sink exited: $(cat "$work/sink.log")" >&2; exit 1; }
    [ -s "$work/sink/port" ]
}
wait_until 10 "the sink to listen" sink_listening
url="http://127.0.0.1:$(cat "$work/sink/port")/alerts"
echo "the sink is PID $sink_pid, listening on $url"
echo "signing secret: whsec_ + base64 of 32 random bytes, in \$CERBERUS_DEMO_WEBHOOK_SECRET"

say "Writing the demo's rules: the shipped rules/default.json plus that webhook"
python3 - "$root/rules/default.json" "$url" "$RESOLVE_AFTER" >"$rules" <<'PY'
import json, sys
shipped, url, resolve_after = sys.argv[1:]
with open(shipped) as f:
    rules = json.load(f)
rules.pop("$schema", None)
rules["receivers"]["demo-webhook"] = {
    "type": "webhook", "url": url, "secret": {"env": "CERBERUS_DEMO_WEBHOOK_SECRET"}}
for rule in rules["rules"]:
    rule["notify"].append("demo-webhook")
    rule["resolve_when_up_for"] = resolve_after
json.dump(rules, sys.stdout, indent=2)
PY
echo "every rule notifies [log, demo-webhook]; resolve_when_up_for is $RESOLVE_AFTER here instead"
echo "of the shipped 10m, so the resolve comes within the demo"
show "cerberus check --rules $rules"
"$bin" check --rules "$rules" | sed 's/^/  /'

# cerberus connects to the manager's bus as root when the bus admits it (the harness's
# does); otherwise it runs as the bus's owner, with its database in a directory it owns.
if [ "$manager_started" = 1 ] \
    && ! busctl --address="$bus" get-property org.freedesktop.systemd1 /org/freedesktop/systemd1 \
        org.freedesktop.systemd1.Manager Version >/dev/null 2>&1; then
    chown "$UM_USER:" "$work"
    run_as=(setpriv "--reuid=$UM_USER" "--regid=$UM_USER" --init-groups)
    echo "(the bus refuses root: cerberus runs as '$UM_USER')"
fi

say "Starting cerberus: it follows every unit on the bus and records each transition"
show "cerberus run --bus $bus --db $db --rules $rules"
# setsid and setpriv exec, so the PID recorded below is cerberus itself.
# No emit socket: the demo feeds nothing through it, and an installed cerberus may own the
# default path.
setsid "${run_as[@]}" "$bin" run --bus "$bus" --db "$db" --rules "$rules" --emit-socket none \
    >"$work/cerberus.log" 2>&1 &
cerberus_pid=$!
wait_until 20 "cerberus to be ready" cerberus_ready
echo "cerberus is PID $cerberus_pid and ready"

say "Starting the example services (examples/units/)"
mkdir -p "$unit_dir"
units_installed=1
for u in "${UNITS[@]}"; do
    install -m 0644 "$root/examples/units/$u" "$unit_dir/$u"
    [ "$manager_started" = 1 ] && chown "$UM_USER:" "$unit_dir/$u"
    printf '  %-24s %s\n' "$u" "$(sed -n 's/^Description=//p' "$unit_dir/$u")"
done
sysctl_user daemon-reload
sysctl_user start "${UNITS[@]}"
units_started_at=$(now_usec)

say "Waiting for the crash loop's alert at the sink (rule 'crashloop': 3 quick crashes in 5m)"
python3 "$sink" wait "$work/sink" --status firing --unit demo-crashloop.service --timeout 20
echo "(received $(seconds_since "$units_started_at") s after the services started)"

say "And the respawn loop's (rule 'respawn': 5 automatic restarts after clean exits in 5m)"
python3 "$sink" wait "$work/sink" --status firing --unit demo-respawn.service --timeout 20 --brief
echo "demo-healthy.service fired nothing: it just runs."

say "What cerberus recorded: the last transitions of the demo services (cerberus history)"
show "cerberus history --db $db --unit 'demo-*' --limit 16"
"$bin" history --db "$db" --unit 'demo-*' --limit 16

say "The same history is plain SQLite: restarts and crashes per service"
count_sql="SELECT unit, SUM(event = 'restart') AS restarts, SUM(event = 'crash') AS crashes
FROM transitions WHERE unit LIKE 'demo-%' GROUP BY unit ORDER BY unit;"
show "sqlite3 $db \"$count_sql\""
sqlite3 -readonly -header -column "$db" "$count_sql"

say "Backtest: what the shipped rules (10m resolve, log only) say about this history (cerberus replay)"
show "cerberus replay --db $db --rules rules/default.json"
"$bin" replay --db "$db" --rules "$root/rules/default.json"

say "The alerts firing now (cerberus alerts)"
show "cerberus alerts --db $db"
"$bin" alerts --db "$db"

say "Fixing $FIXED_UNIT: a healthy ExecStart, daemon-reload, restart"
sed -i 's|^ExecStart=.*|ExecStart=/bin/sleep infinity|' "$unit_dir/$FIXED_UNIT"
grep '^ExecStart=' "$unit_dir/$FIXED_UNIT" | sed 's/^/  /'
sysctl_user daemon-reload
sysctl_user restart "$FIXED_UNIT"
fixed_at=$(now_usec)

say "Waiting for the resolve at the sink (the unit must stay up $RESOLVE_AFTER)"
python3 "$sink" wait "$work/sink" --status resolved --unit "$FIXED_UNIT" --timeout 30
echo "(received $(seconds_since "$fixed_at") s after the fix)"

say "All alerts now: the crash loop resolved, the respawn loop still firing"
show "cerberus alerts --db $db --state all"
"$bin" alerts --db "$db" --state all

say "Stopping cerberus (SIGTERM) and showing its own log: the 'log' receiver's lines"
kill -TERM "$cerberus_pid"
run_status=0
wait "$cerberus_pid" || run_status=$?
cerberus_pid=
sed 's/^/  | /' "$work/cerberus.log"
if [ "$run_status" != 0 ]; then
    echo "demo: cerberus run exited with status $run_status on SIGTERM; expected 0" >&2
    exit 1
fi

say "Keeping the history and writing its report (cerberus report)"
# A copy made with SQLite's backup, so the kept file is whole whoever owned the original.
if [ -z "$out_dir" ]; then
    out_dir=$(mktemp -d /tmp/cerberus-demo-out.XXXXXX)
else
    mkdir -p "$out_dir"
fi
out_dir=$(realpath "$out_dir")
kept=$out_dir/demo.db
report=$out_dir/demo-report.html
rm -f "$kept" "$kept-wal" "$kept-shm"
sqlite3 -readonly "$db" ".backup '$kept'"
chmod 0600 "$kept"
show "cerberus report --db $kept --unit 'demo-*' --rules rules/default.json -o $report"
"$bin" report --db "$kept" --unit 'demo-*' --rules "$root/rules/default.json" -o "$report"
echo "history kept: $kept"
echo "report:       $report (open it in a browser; it fetches nothing)"

say "Try next, on the kept history"
printf '  %s\n' \
    "$bin history --db $kept --timeline" \
    "$bin history --db $kept --unit 'demo-crashloop*' --event crash" \
    "$bin replay --db $kept --rules $root/rules/default.json" \
    "$bin report --db $kept --unit 'demo-*' -o /tmp/cerberus-report.html"

say "Done in $SECONDS s; cleaning up everything the demo started"
