#!/usr/bin/env bash
# `make demo`: three example services run under a real systemd user manager (one
# crash-loops, one respawns after clean exits, one stays up) while cerberus records
# every transition; then the history is shown, as a person would query it.
#
#   tools/demo.sh CERBERUS_BINARY
#
# Uses the invoking user's own user manager when there is one; otherwise, as root, starts
# a throwaway one for the user 'cerberus-demo' (tests/harness/usermgr.sh). Everything the
# demo starts is stopped, by PID, when it exits.
set -euo pipefail

DEMO_USER=cerberus-demo
RUN_SECONDS=6
UNITS=(demo-crashloop.service demo-respawn.service demo-healthy.service)

root=$(cd "$(dirname "$0")/.." && pwd)
if [ $# -ne 1 ]; then echo "usage: tools/demo.sh CERBERUS_BINARY" >&2; exit 2; fi
bin=$1
[ -x "$bin" ] || { echo "demo: '$bin' is not an executable; build it with 'make build'." >&2; exit 1; }
bin=$(realpath "$bin")

say() { printf '\n== %s\n' "$*"; }

work=
state=
manager_started=0
units_installed=0
cerberus_pid=
unit_dir=
bus=
run_as=()     # empty: systemctl --user and cerberus run as the invoking user
as_user=()    # prefix that runs a command as the manager's user

cleanup() {
    local status=$?
    set +e
    if [ -n "$cerberus_pid" ] && kill -0 "$cerberus_pid" 2>/dev/null; then
        kill -TERM "$cerberus_pid" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$cerberus_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$cerberus_pid" 2>/dev/null
        wait "$cerberus_pid" 2>/dev/null
    fi
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
trap 'exit 130' INT
trap 'exit 143' TERM

sysctl_user() {
    "${as_user[@]}" systemctl --user "$@"
}

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
    eval "$("$root/tests/harness/usermgr.sh" start "$DEMO_USER" "$state")"
    uid=$UM_UID
    unit_dir=$UM_UNITDIR
    bus=$UM_BUS
    as_user=(runuser -u "$UM_USER" -- env "XDG_RUNTIME_DIR=$UM_RUNTIME" "DBUS_SESSION_BUS_ADDRESS=$UM_BUS")
    echo "systemd --user is PID $UM_SYSTEMD_PID; bus $bus"
    ;;
esac

work=$(mktemp -d /tmp/cerberus-demo.XXXXXX)
db=$work/demo.db

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

# cerberus connects to the manager's bus as root when the bus admits it (the harness's
# does); otherwise it runs as the bus's owner, with its database in a directory it owns.
if [ "$manager_started" = 1 ] \
    && ! busctl --address="$bus" get-property org.freedesktop.systemd1 /org/freedesktop/systemd1 \
        org.freedesktop.systemd1.Manager Version >/dev/null 2>&1; then
    chown "$UM_USER:" "$work"
    # setpriv execs, so the PID recorded below is cerberus itself.
    run_as=(setpriv "--reuid=$UM_USER" "--regid=$UM_USER" --init-groups)
    echo "(the bus refuses root: cerberus runs as '$UM_USER')"
fi

say "Running 'cerberus run' for $RUN_SECONDS seconds while the services loop"
echo "\$ cerberus run --bus $bus --db $db"
"${run_as[@]}" "$bin" run --bus "$bus" --db "$db" >"$work/cerberus.log" 2>&1 &
cerberus_pid=$!
for _ in $(seq $((RUN_SECONDS * 10))); do
    kill -0 "$cerberus_pid" 2>/dev/null || break
    sleep 0.1
done
run_status=0
if kill -0 "$cerberus_pid" 2>/dev/null; then
    kill -TERM "$cerberus_pid"
    wait "$cerberus_pid" || run_status=$?
    cerberus_pid=
    echo "stopped it with SIGTERM; it exited with status $run_status"
else
    wait "$cerberus_pid" || run_status=$?
    cerberus_pid=
    echo "demo: cerberus run exited by itself before the $RUN_SECONDS seconds were up, with status $run_status" >&2
    if [ "$run_status" = 0 ]; then run_status=1; fi
fi
if [ -s "$work/cerberus.log" ]; then
    echo "its output:"
    sed 's/^/  | /' "$work/cerberus.log"
fi
restarts=$(sysctl_user show -p NRestarts --value demo-crashloop.service || echo '?')
echo "meanwhile systemd restarted demo-crashloop.service $restarts times in all"

if [ ! -f "$db" ]; then
    echo "demo: cerberus wrote no database at $db." >&2
    exit 1
fi

say "The most recent transitions cerberus recorded, up to 30 (cerberus history --limit 30)"
history_status=0
"$bin" history --db "$db" --limit 30 || history_status=$?

say "Restarts and crashes per demo service, and how its last run ended (sqlite3)"
query="WITH demo(unit) AS (VALUES $(printf "('%s'), " "${UNITS[@]}" | sed 's/, $//'))
SELECT demo.unit,
       COALESCE(SUM(t.event = 'restart'), 0) AS restarts,
       COALESCE(SUM(t.event = 'crash'), 0)   AS crashes,
       COALESCE((SELECT l.exit_code || ' ' || l.exit_status FROM transitions l
                  WHERE l.unit = demo.unit AND l.exit_code != ''
                  ORDER BY l.ts_usec DESC, l.id DESC LIMIT 1), '-') AS last_exit
FROM demo LEFT JOIN transitions t ON t.unit = demo.unit
GROUP BY demo.unit
ORDER BY restarts DESC, demo.unit;"
echo "\$ sqlite3 $db"
echo "$query" | sed 's/^/  /'
echo
query_status=0
sqlite3 -readonly -header -column "$db" "$query" || query_status=$?

[ "$run_status" = 0 ] && [ "$history_status" = 0 ] && [ "$query_status" = 0 ]
