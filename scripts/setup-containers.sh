#!/usr/bin/env bash
# Prepare a container engine for treadle's container runtime and its tests.
#
# Idempotent: every step checks first and does only what is missing. On a fresh Debian machine
# with no Docker daemon and no image registry it:
#   1. installs podman, runc and busybox-static (apt-get update only when a package is unknown);
#   2. configures podman to use runc (crun fails on cgroup v1 hosts like these) and caps the
#      default nofile/nproc ulimits at 1024 (podman's defaults exceed the hard limits here);
#   3. starts `podman system service` on the Docker-compatible socket if it does not answer;
#   4. builds the test image offline from busybox-static and tags it under the names the Tork
#      examples use (ubuntu:mantic, alpine:3.18.3), so they run verbatim without a registry.
#
# Environment: TREADLE_PODMAN_SOCKET (default /run/podman/podman.sock).
# Exit status is non-zero when the engine cannot be made to answer.
set -euo pipefail

SOCKET="${TREADLE_PODMAN_SOCKET:-/run/podman/podman.sock}"
SERVICE_LOG="${TREADLE_PODMAN_LOG:-/tmp/treadle-podman-service.log}"
TEST_IMAGE="treadle-test/busybox:latest"
# repo:tag aliases of the test image; tagged through the Docker API so the engine applies its own
# default-registry naming, exactly as a `docker pull ubuntu:mantic` would have named it.
ALIASES=("ubuntu:mantic" "alpine:3.18.3")
CONF=/etc/containers/containers.conf
CONF_MARKER="# managed by treadle scripts/setup-containers.sh"

SETUP_NAME=setup-containers
# shellcheck source=setup-common.sh
source "$(dirname "$0")/setup-common.sh"

# --- 1. packages --------------------------------------------------------------------------------
need=()
command -v podman >/dev/null || need+=(podman)
command -v runc >/dev/null || need+=(runc)
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q "ok installed" || need+=(busybox-static)
command -v curl >/dev/null || need+=(curl)
if [ "${#need[@]}" -gt 0 ]; then
    install_packages "${need[@]}"
else
    say "podman, runc, busybox-static and curl are installed"
fi
file /bin/busybox 2>/dev/null | grep -q "statically linked" \
    || ldd /bin/busybox 2>&1 | grep -q "not a dynamic" \
    || die "/bin/busybox is not statically linked; install busybox-static"

# --- 2. podman configuration ---------------------------------------------------------------------
write_conf() {
    $SUDO mkdir -p "$(dirname "$CONF")"
    $SUDO tee "$CONF" >/dev/null <<EOF
$CONF_MARKER
# runc: crun cannot set up cgroups on this kind of host. ulimits: podman's defaults (1048576)
# exceed the hard limits a sandboxed root has, and runc refuses to start the container.
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]

[engine]
runtime = "runc"
EOF
}
if [ ! -f "$CONF" ]; then
    say "writing $CONF (runtime runc, nofile/nproc 1024)"
    write_conf
elif grep -qF "$CONF_MARKER" "$CONF"; then
    say "$CONF is already configured"
else
    say "WARNING: $CONF exists and is not managed by treadle; leaving it alone." \
        "It must set [engine] runtime=\"runc\" and default_ulimits if containers fail to start."
fi

# --- 3. the API service --------------------------------------------------------------------------
ping() { curl -sf --max-time 3 --unix-socket "$SOCKET" http://d/_ping >/dev/null 2>&1; }
api() { curl -sf --max-time 30 --unix-socket "$SOCKET" "$@"; }

if ping; then
    say "engine answers on unix://$SOCKET"
else
    $SUDO mkdir -p "$(dirname "$SOCKET")"
    if [ -S "$SOCKET" ]; then
        say "removing stale socket $SOCKET (nothing answers on it)"
        $SUDO rm -f "$SOCKET"
    fi
    say "starting podman system service on unix://$SOCKET (log: $SERVICE_LOG)"
    # setsid + closed stdio: the service must outlive this script and must not hold the caller's
    # output pipe open (CI waits for that pipe to close). Started from / : it writes files (an
    # `oom` marker) into its working directory, which must not be the checkout.
    $SUDO env -C / setsid nohup podman --runtime runc system service --time=0 "unix://$SOCKET" \
        </dev/null >"$SERVICE_LOG" 2>&1 &
    for _ in $(seq 1 100); do
        ping && break
        sleep 0.2
    done
    ping || { tail -20 "$SERVICE_LOG" >&2 || true; die "podman service did not answer within 20 s"; }
    say "engine answers on unix://$SOCKET"
fi

# --- 4. the offline test image -------------------------------------------------------------------
if api "http://d/images/$TEST_IMAGE/json" >/dev/null; then
    say "image $TEST_IMAGE exists"
else
    say "building $TEST_IMAGE from busybox-static (offline)"
    rootfs="$(mktemp -d)"
    trap 'rm -rf "$rootfs"' EXIT
    mkdir -p "$rootfs"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,root,proc,sys,dev,treadle}
    chmod 1777 "$rootfs/tmp"
    cp /bin/busybox "$rootfs/bin/busybox"
    for applet in $(/bin/busybox --list); do
        [ "$applet" = busybox ] || ln -s busybox "$rootfs/bin/$applet"
    done
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' \
        >"$rootfs/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
    tar -C "$rootfs" -cf - . | $SUDO podman import \
        --change 'CMD ["/bin/sh"]' \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        - "$TEST_IMAGE" >/dev/null 2>"$rootfs.log" || { cat "$rootfs.log" >&2; die "podman import failed"; }
    rm -f "$rootfs.log"
    api "http://d/images/$TEST_IMAGE/json" >/dev/null || die "import of $TEST_IMAGE failed"
fi
for alias in "${ALIASES[@]}"; do
    if api "http://d/images/$alias/json" >/dev/null; then
        say "image $alias exists"
    else
        say "tagging $TEST_IMAGE as $alias"
        api -X POST "http://d/images/$TEST_IMAGE/tag?repo=${alias%%:*}&tag=${alias##*:}" >/dev/null \
            || die "could not tag $TEST_IMAGE as $alias"
    fi
done

# --- 5. smoke test -------------------------------------------------------------------------------
out="$($SUDO podman run --rm --network none "$TEST_IMAGE" echo ok 2>&1)" \
    || die "a test container does not run: $out"
[ "$out" = ok ] || die "a test container printed '$out' instead of 'ok'"
say "ready: DOCKER_HOST=unix://$SOCKET runs containers"
