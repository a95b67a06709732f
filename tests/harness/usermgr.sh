#!/usr/bin/env bash
# Starts or stops a real systemd user manager (plus its session bus and, optionally, a
# journald) for a dedicated user, so tests and the demo run against the real thing on a
# machine whose PID 1 is not systemd. Needs root.
#
#   usermgr.sh start NAME STATEDIR   -> prints shell assignments (UM_*) to eval
#   usermgr.sh stop STATEDIR         -> stops everything it started, by PID
set -euo pipefail

die() { echo "usermgr: $*" >&2; exit 1; }

cmd=${1:-}
case "$cmd" in
start)
    name=${2:?user name}; state=${3:?state dir}
    [ "$(id -u)" = 0 ] || die "must run as root to start a user manager"
    mkdir -p "$state"
    id -u "$name" >/dev/null 2>&1 || useradd -m -s /bin/bash "$name"
    uid=$(id -u "$name"); home=$(getent passwd "$name" | cut -d: -f6)
    rt=/run/user/$uid
    mkdir -p "$rt" /run/systemd/system
    chown "$name:" "$rt"; chmod 0700 "$rt"
    cg=user.slice/user-$uid.slice/user@$uid.service
    for h in unified systemd; do
        if [ -d /sys/fs/cgroup/$h ]; then
            mkdir -p "/sys/fs/cgroup/$h/$cg"
            chown -R "$name:" "/sys/fs/cgroup/$h/$cg"
        fi
    done
    if [ ! -d /sys/fs/cgroup/unified ] && [ ! -d /sys/fs/cgroup/systemd ]; then
        mkdir -p "/sys/fs/cgroup/$cg" && chown -R "$name:" "/sys/fs/cgroup/$cg"
    fi
    mkdir -p "$home/.config/systemd/user"
    chown -R "$name:" "$home/.config"

    if [ "${UM_JOURNAL:-1}" = 1 ] && [ -x /usr/lib/systemd/systemd-journald ] \
        && ! pgrep -x systemd-journal >/dev/null; then
        /usr/lib/systemd/systemd-journald >/dev/null 2>&1 &
        echo $! > "$state/journald.pid"
    fi

    rm -f "$rt/bus"
    su "$name" -c "dbus-daemon --session --address=unix:path=$rt/bus --fork --print-pid" \
        > "$state/dbus.pid"
    for _ in $(seq 100); do [ -S "$rt/bus" ] && break; sleep 0.05; done
    [ -S "$rt/bus" ] || die "the session bus did not come up at $rt/bus"

    env_line="XDG_RUNTIME_DIR=$rt DBUS_SESSION_BUS_ADDRESS=unix:path=$rt/bus"
    bash -c '
        for h in unified systemd; do
            f=/sys/fs/cgroup/$h/'"$cg"'/cgroup.procs
            [ -e "$f" ] && echo $$ > "$f"
        done
        exec su '"$name"' -c "'"$env_line"' exec /usr/lib/systemd/systemd --user"
    ' > "$state/systemd.log" 2>&1 < /dev/null &
    echo $! > "$state/systemd.pid"
    for _ in $(seq 200); do
        st=$(su "$name" -c "$env_line systemctl --user is-system-running" 2>/dev/null || true)
        case "$st" in running|degraded) break ;; esac
        sleep 0.05
    done
    case "$st" in running|degraded) ;; *) die "the user manager did not start (state '$st'); see $state/systemd.log" ;; esac
    # the PID written is su's until exec; find the manager itself
    smpid=$(pgrep -u "$name" -x systemd | head -n1)
    echo "$smpid" > "$state/systemd.pid"
    cat <<OUT
UM_USER=$name
UM_UID=$uid
UM_HOME=$home
UM_RUNTIME=$rt
UM_BUS=unix:path=$rt/bus
UM_UNITDIR=$home/.config/systemd/user
UM_SYSTEMD_PID=$smpid
OUT
    ;;
stop)
    state=${2:?state dir}
    for f in systemd dbus journald; do
        [ -f "$state/$f.pid" ] || continue
        pid=$(cat "$state/$f.pid")
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
            kill -9 "$pid" 2>/dev/null || true
        fi
        rm -f "$state/$f.pid"
    done
    ;;
*) echo "usage: usermgr.sh start NAME STATEDIR | stop STATEDIR" >&2; exit 2 ;;
esac
