#!/usr/bin/env bash
# A real system manager for tests: systemd booted as PID 1 in a container (systemd-nspawn)
# from a cached Debian 12 root file system, with the system bus, so cerberus can run as a
# system service under it. Needs root, debootstrap and systemd-container.
#
#   sysmgr.sh rootfs                         -> builds the cached root if needed, prints its path
#   sysmgr.sh start STATEDIR [NSPAWN_ARG...] -> boots it, prints shell assignments (SM_*) to eval
#   sysmgr.sh stop STATEDIR                  -> stops the container it started, by PID
#
# The root file system is built once into $CERBERUS_ROOTFS_CACHE (default
# /var/cache/cerberus-test) and reused: it is built in a temporary directory and renamed
# into place only when complete, and the container runs with --volatile=overlay, so the
# cached tree never changes. Building it downloads from Debian's archive and takes a few
# minutes (about 250 MB, one to three minutes here); a cached boot takes a second.
set -euo pipefail

die() { echo "sysmgr: $*" >&2; exit 1; }
# shellcheck source-path=SCRIPTDIR source=stop_pid.sh
. "$(dirname "${BASH_SOURCE[0]}")/stop_pid.sh"

cache=${CERBERUS_ROOTFS_CACHE:-/var/cache/cerberus-test}
suite=bookworm
mirror=${CERBERUS_DEBIAN_MIRROR:-http://deb.debian.org/debian}
rootfs=$cache/rootfs-$suite
# systemd and its bus, then the run-time libraries of cerberus (ldd build/src/cli/cerberus,
# dpkg -S): the binary built on the host is bound into the container and runs there.
# sqlite3 reads the history inside the container; procps has the kill of the unit's ExecReload
# (the package depends on it) and ps.
packages=systemd,systemd-sysv,dbus,procps,libsdbus-c++1,libsystemd0,libsqlite3-0,libcurl4,libfmt9,libcpp-httplib0.11,libssl3,libstdc++6,sqlite3
# The marker names what the tree holds: a cache built with another package list is rebuilt.
stamp="cerberus-test rootfs $suite: $packages"
marker=.cerberus-rootfs

need_root() { [ "$(id -u)" = 0 ] || die "must run as root to $1"; }

# Removes a tree debootstrap may have left with /proc or /sys mounted in it (a build that
# was killed): unmount what is inside, then delete without crossing into any mount.
discard() {
    local mounts
    mounts=$(findmnt -rn -o TARGET | grep -F "$1/" | sort -r || true)
    [ -z "$mounts" ] || echo "$mounts" | xargs -r -d '\n' umount -l
    rm -rf --one-file-system "$1"
}

build_rootfs() {
    need_root "build a root file system"
    if [ -f "$rootfs/$marker" ] && [ "$(cat "$rootfs/$marker")" = "$stamp" ]; then
        return
    fi
    command -v debootstrap >/dev/null || die "debootstrap is not installed (apt-get install debootstrap)"
    mkdir -p "$cache"
    # One builder at a time; a second waits, then finds the tree complete.
    exec 9>"$cache/.lock"
    flock -w 1800 9 || die "timed out waiting for another build of $rootfs"
    if [ -f "$rootfs/$marker" ] && [ "$(cat "$rootfs/$marker")" = "$stamp" ]; then
        return
    fi
    # Holding the lock, any other build tree is one that was killed.
    for stale in "$cache"/.build-* "$cache"/.old-*; do
        if [ -e "$stale" ]; then discard "$stale"; fi
    done
    tmp=$(mktemp -d "$cache/.build-$suite.XXXXXX")
    trap 'discard "$tmp"' EXIT
    trap 'exit 1' TERM INT HUP
    echo "sysmgr: building $rootfs with debootstrap (a few minutes, once)" >&2
    if ! debootstrap --variant=minbase --include="$packages" "$suite" "$tmp" "$mirror" \
        > "$cache/debootstrap.log" 2>&1; then
        die "debootstrap failed; see $cache/debootstrap.log"
    fi
    # An empty machine-id: each boot gets its own instead of the one made at install time.
    rm -f "$tmp/etc/machine-id"; : > "$tmp/etc/machine-id"
    printf '%s\n' "$stamp" > "$tmp/$marker"
    if [ -e "$rootfs" ]; then
        old=$(mktemp -d "$cache/.old-$suite.XXXXXX")
        mv "$rootfs" "$old/"
        discard "$old"
    fi
    mv "$tmp" "$rootfs"
    trap - EXIT TERM INT HUP
}

case "${1:-}" in
rootfs)
    build_rootfs
    echo "$rootfs"
    ;;
start)
    state=${2:?state dir}; shift 2
    need_root "boot a container"
    command -v systemd-nspawn >/dev/null || die "systemd-nspawn is not installed (apt-get install systemd-container)"
    build_rootfs
    mkdir -p "$state"
    # A machine name is a host name: no label may end in '-' (mktemp's suffix can end in
    # '_', which would leave one and make systemd-nspawn refuse to start).
    name=cerberus-$(basename "$state" | tr -c 'A-Za-z0-9\n' '-' | cut -c1-40 | sed 's/-*$//')
    # --volatile=overlay: every change lives in a tmpfs and vanishes at exit, so the cache
    # stays clean. --private-network: only a loopback, nothing shared with the host's ports.
    # --register=no --keep-unit: no systemd-machined on the host is needed.
    systemd-nspawn -q -D "$rootfs" --boot --register=no --keep-unit --volatile=overlay \
        --private-network --machine="$name" "$@" > "$state/nspawn.log" 2>&1 < /dev/null &
    nspawn=$!
    echo "$nspawn" > "$state/nspawn.pid"
    init=
    for _ in $(seq 200); do
        init=$(pgrep -P "$nspawn" | head -n1 || true)
        [ -n "$init" ] && break
        kill -0 "$nspawn" 2>/dev/null || die "systemd-nspawn exited; see $state/nspawn.log"
        sleep 0.05
    done
    [ -n "$init" ] || die "systemd-nspawn $nspawn started no init; see $state/nspawn.log"
    st=
    # Bounded: about 60 s for the boot, each question at most 5 s.
    for _ in $(seq 300); do
        kill -0 "$nspawn" 2>/dev/null || die "the container stopped while booting; see $state/nspawn.log"
        # The first child seen may be nspawn's short-lived helper, not the container's PID 1
        # (asking it gives no state): look again each time.
        init=$(pgrep -P "$nspawn" | tail -n1 || true)
        [ -n "$init" ] || continue
        st=$(timeout 5 nsenter --target "$init" --all systemctl is-system-running 2>/dev/null || true)
        case "$st" in running|degraded) break ;; esac
        sleep 0.2
    done
    case "$st" in running|degraded) ;; *) die "the container did not boot (state '$st'); see $state/nspawn.log" ;; esac
    cat <<OUT
SM_NSPAWN_PID=$nspawn
SM_INIT_PID=$init
SM_ROOT=/proc/$init/root
SM_STATE=$st
OUT
    ;;
stop)
    state=${2:?state dir}
    [ -f "$state/nspawn.pid" ] || exit 0
    # systemd-nspawn turns SIGTERM into an orderly shutdown of the container's PID 1.
    stop_pid "$(cat "$state/nspawn.pid")" 300 0.1
    rm -f "$state/nspawn.pid"
    ;;
*) echo "usage: sysmgr.sh rootfs | start STATEDIR [NSPAWN_ARG...] | stop STATEDIR" >&2; exit 2 ;;
esac
