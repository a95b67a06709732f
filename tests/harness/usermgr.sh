#!/usr/bin/env bash
# Starts or stops a real systemd user manager (with its socket-activated session bus and,
# optionally, a journald) for a dedicated user, so tests and the demo run against the real
# thing on a machine whose PID 1 is not systemd. Needs root.
#
#   usermgr.sh start NAME STATEDIR   -> prints shell assignments (UM_*) to eval
#   usermgr.sh stop STATEDIR         -> stops everything it started, by PID
set -euo pipefail

die() { echo "usermgr: $*" >&2; exit 1; }

# One journald serves every manager started here at once (tests run in parallel): the first
# that wants one starts it, the last that stops stops it. A journald this script did not
# start (the host's own) is left alone.
JOURNALD_DIR=/run/cerberus-test-journald
# True when a journald takes entries on its socket: not just a process by that name (one may
# linger as a zombie) or a socket file (a stopped journald's stays behind).
journal_listens() {
    printf 'MESSAGE=cerberus test harness: is journald listening?\nPRIORITY=7\n' |
        logger --journald 2>/dev/null
}
journal_ref() {
    mkdir -p "$JOURNALD_DIR/refs"
    # Under the lock until it listens: the next manager must not start a second one. The
    # manager picks its log target when it starts: journald must listen by then.
    (
        flock 9
        if ! journal_listens; then
            rm -f /run/systemd/journal/socket
            /usr/lib/systemd/systemd-journald >/dev/null 2>&1 9>&- &
            echo $! > "$JOURNALD_DIR/pid"
            for _ in $(seq 100); do
                journal_listens && break
                sleep 0.05
            done
        fi
        touch "$JOURNALD_DIR/refs/$(basename "$1")"
    ) 9>"$JOURNALD_DIR/lock"
    journal_listens || die "journald does not take entries on /run/systemd/journal/socket"
}
journal_unref() {
    [ -e "$JOURNALD_DIR/refs/$(basename "$1")" ] || return 0
    (
        flock 9
        rm -f "$JOURNALD_DIR/refs/$(basename "$1")"
        if [ -z "$(ls -A "$JOURNALD_DIR/refs")" ] && [ -f "$JOURNALD_DIR/pid" ]; then
            stop_pid "$(cat "$JOURNALD_DIR/pid")" 200 0.05
            rm -f "$JOURNALD_DIR/pid"
        fi
    ) 9>"$JOURNALD_DIR/lock"
}
# shellcheck source-path=SCRIPTDIR source=stop_pid.sh
. "$(dirname "${BASH_SOURCE[0]}")/stop_pid.sh"

cmd=${1:-}
case "$cmd" in
start)
    name=${2:?user name}; state=${3:?state dir}
    [ "$(id -u)" = 0 ] || die "must run as root to start a user manager"
    mkdir -p "$state"; chmod 0755 "$state"
    # Users this script creates say so in their GECOS field; no other user's files or
    # processes are touched.
    marker="cerberus test harness"
    if id -u "$name" >/dev/null 2>&1; then
        [ "$(getent passwd "$name" | cut -d: -f5)" = "$marker" ] ||
            die "user '$name' exists and was not created by this harness; use another user name"
    else
        useradd -m -s /bin/bash -c "$marker" "$name"
    fi
    uid=$(id -u "$name"); home=$(getent passwd "$name" | cut -d: -f6)
    rt=/run/user/$uid
    # The user is the harness's alone: a manager left by a run that was killed would fight
    # the new one for the bus, so it goes first.
    if pgrep -u "$name" -x systemd >/dev/null; then
        pkill -KILL -u "$name" || true
        for _ in $(seq 100); do pgrep -u "$name" >/dev/null || break; sleep 0.05; done
        rm -rf "$rt"
    fi
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
    unitdir=$home/.config/systemd/user
    mkdir -p "$unitdir/sockets.target.wants"

    # The manager exposes its API only on a bus it runs itself (dbus.socket + dbus.service
    # active), so give it one. The bus admits root as well as its owner: tests and the demo
    # run cerberus as root against it.
    cat > "$state/session.conf" <<'CONF'
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <include>/usr/share/dbus-1/session.conf</include>
  <policy context="default"><allow user="root"/></policy>
</busconfig>
CONF
    chmod 0644 "$state/session.conf"
    cat > "$unitdir/dbus.socket" <<UNIT
[Unit]
Description=D-Bus User Message Bus Socket (test harness)

[Socket]
ListenStream=%t/bus
UNIT
    cat > "$unitdir/dbus.service" <<UNIT
[Unit]
Description=D-Bus User Message Bus (test harness)
Requires=dbus.socket

[Service]
ExecStart=/usr/bin/dbus-daemon --config-file=$state/session.conf --address=systemd: --nofork --nopidfile --systemd-activation
UNIT
    ln -sfn ../dbus.socket "$unitdir/sockets.target.wants/dbus.socket"
    chown -R "$name:" "$home/.config"

    env_line="XDG_RUNTIME_DIR=$rt DBUS_SESSION_BUS_ADDRESS=unix:path=$rt/bus"
    if [ "${UM_JOURNAL:-1}" = 1 ] && [ -x /usr/lib/systemd/systemd-journald ]; then
        journal_ref "$state"
        # As under user@.service, whose stderr is the journal: the manager's own messages (a
        # unit's result, each scheduled restart) go to the journal, as on a real host.
        env_line="$env_line SYSTEMD_LOG_TARGET=journal"
    fi
    bash -c '
        for h in unified systemd; do
            f=/sys/fs/cgroup/$h/'"$cg"'/cgroup.procs
            [ -e "$f" ] && echo $$ > "$f"
        done
        exec su '"$name"' -c "'"$env_line"' exec /usr/lib/systemd/systemd --user"
    ' > "$state/systemd.log" 2>&1 < /dev/null &
    supid=$!
    echo "$supid" > "$state/systemd.pid"
    st=
    for _ in $(seq 200); do
        st=$(timeout 5 su "$name" -c "$env_line systemctl --user is-system-running" 2>/dev/null || true)
        case "$st" in running|degraded) break ;; esac
        sleep 0.05
    done
    case "$st" in running|degraded) ;; *) die "the user manager did not start (state '$st'); see $state/systemd.log" ;; esac
    # The PID written is su's; the manager itself is its child.
    smpid=$(pgrep -P "$supid" -x systemd | head -n1)
    [ -n "$smpid" ] || die "the user manager is running but not as the child of su $supid"
    echo "$smpid" > "$state/systemd.pid"
    # The first client activates the bus; the manager joins it once dbus.service runs.
    owner=
    for _ in $(seq 200); do
        # Bounded: a client that connects while the bus is being activated can wait forever.
        owner=$(timeout 2 dbus-send --bus="unix:path=$rt/bus" --print-reply --dest=org.freedesktop.DBus \
            /org/freedesktop/DBus org.freedesktop.DBus.GetNameOwner string:org.freedesktop.systemd1 \
            2>/dev/null | sed -n 's/.*string "\(.*\)"/\1/p' || true)
        [ -n "$owner" ] && break
        sleep 0.05
    done
    [ -n "$owner" ] || die "the user manager did not join its bus at $rt/bus; see $state/systemd.log"
    cat <<OUT
UM_USER=$name
UM_UID=$uid
UM_HOME=$home
UM_RUNTIME=$rt
UM_BUS=unix:path=$rt/bus
UM_UNITDIR=$unitdir
UM_SYSTEMD_PID=$smpid
OUT
    ;;
stop)
    state=${2:?state dir}
    if [ -f "$state/systemd.pid" ]; then
        # The manager stops its units (and the bus) on SIGTERM before it exits.
        stop_pid "$(cat "$state/systemd.pid")" 200 0.05
        rm -f "$state/systemd.pid"
    fi
    journal_unref "$state"
    ;;
*) echo "usage: usermgr.sh start NAME STATEDIR | stop STATEDIR" >&2; exit 2 ;;
esac
