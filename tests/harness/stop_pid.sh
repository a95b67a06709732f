# shellcheck shell=bash
# Sourced by usermgr.sh and sysmgr.sh: stopping what they started, by PID.

# stop_pid PID TRIES INTERVAL: SIGTERM, then up to TRIES checks INTERVAL seconds apart for
# the process to exit, then SIGKILL. Nothing to do when PID is empty or already gone.
stop_pid() {
    local pid=$1 tries=$2 interval=$3
    if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then return 0; fi
    kill "$pid" 2>/dev/null || true
    for _ in $(seq "$tries"); do kill -0 "$pid" 2>/dev/null || break; sleep "$interval"; done
    kill -9 "$pid" 2>/dev/null || true
}
