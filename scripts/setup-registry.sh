#!/usr/bin/env bash
# Prepare a private image registry with basic auth, for the container runtime's pull tests.
#
# Idempotent: every step checks first and does only what is missing. On a fresh Debian machine
# with no image registry it:
#   1. installs the distribution registry (Debian package docker-registry) and htpasswd
#      (apache2-utils), with apt-get update only when a package is unknown;
#   2. makes a test user with a random password once (kept in $DIR/credentials as user:password,
#      readable by the tests) and its bcrypt entry in $DIR/htpasswd;
#   3. makes a self-signed certificate for 127.0.0.1 ($DIR/tls) and has podman and docker trust
#      it (certs.d/127.0.0.1:$PORT/ca.crt). TLS rather than an `insecure` entry in
#      registries.conf: a running podman service does not reread registries.conf, but it reads
#      certs.d at every pull, so no engine has to be restarted;
#   4. writes the registry's own config ($DIR/config.yml: https on 127.0.0.1:$PORT, htpasswd
#      auth, storage in $DIR/data) and starts `docker-registry serve` on it as a background
#      process, restarting that process only when the config changed. The Debian service
#      (/etc/docker/registry, port 5000) is left as the package made it.
#
# Environment: TREADLE_REGISTRY_PORT (default 5799), TREADLE_REGISTRY_DIR
# (default /var/lib/treadle-registry).
# Exit status is non-zero when the registry cannot be made to answer with the test credentials.
set -euo pipefail

PORT="${TREADLE_REGISTRY_PORT:-5799}"
DIR="${TREADLE_REGISTRY_DIR:-/var/lib/treadle-registry}"
ADDR="127.0.0.1:$PORT"
# Not a word that turns up in logs: tests keep the user name in a secret too, and the worker masks
# a secret's value wherever it appears.
USER_NAME="ci-puller"
CONFIG="$DIR/config.yml"
CREDENTIALS="$DIR/credentials"
HTPASSWD="$DIR/htpasswd"
PIDFILE="$DIR/registry.pid"
LOG="$DIR/registry.log"
CERT="$DIR/tls/registry.crt"
KEY="$DIR/tls/registry.key"
# Where podman (containers/image) and docker look for a registry's CA, per host:port.
TRUST_DIRS=("/etc/containers/certs.d/$ADDR" "/etc/docker/certs.d/$ADDR")
MARKER="# managed by treadle scripts/setup-registry.sh"

SETUP_NAME=setup-registry
# shellcheck source=setup-common.sh
source "$(dirname "$0")/setup-common.sh"

# --- 1. packages --------------------------------------------------------------------------------
need=()
command -v docker-registry >/dev/null || need+=(docker-registry)
command -v htpasswd >/dev/null || need+=(apache2-utils)
command -v curl >/dev/null || need+=(curl)
command -v openssl >/dev/null || need+=(openssl)
if [ "${#need[@]}" -gt 0 ]; then
    # The package's own service may not start here (no init system); ours is started below.
    install_packages "${need[@]}"
else
    say "docker-registry, htpasswd, curl and openssl are installed"
fi

# --- 2. credentials ------------------------------------------------------------------------------
$SUDO mkdir -p "$DIR/data"
changed=0  # whether a running registry must restart to see a new file
if ! $SUDO grep -q "^$USER_NAME:." "$CREDENTIALS" 2>/dev/null; then
    say "making the test user '$USER_NAME' with a random password ($CREDENTIALS)"
    password="$(head -c 24 /dev/urandom | base64 | tr -d '/+=' | head -c 24)"
    # Readable by the tests; it guards only a throwaway registry on the loopback interface.
    printf '%s:%s\n' "$USER_NAME" "$password" | $SUDO tee "$CREDENTIALS" >/dev/null
    $SUDO chmod 0644 "$CREDENTIALS"
fi
IFS=: read -r user password < <($SUDO cat "$CREDENTIALS")
[ -n "$user" ] && [ -n "$password" ] || die "$CREDENTIALS does not hold user:password"
if $SUDO test -s "$HTPASSWD" && $SUDO htpasswd -vb "$HTPASSWD" "$user" "$password" >/dev/null 2>&1
then
    say "$HTPASSWD holds the test user"
else
    say "writing $HTPASSWD (bcrypt)"
    htpasswd -nbB "$user" "$password" | $SUDO tee "$HTPASSWD" >/dev/null
    changed=1  # restart a running registry so that it surely reads the new file
fi

# --- 3. TLS certificate, trusted by the engines ---------------------------------------------------
$SUDO mkdir -p "$DIR/tls"
if $SUDO test -s "$CERT" && $SUDO test -s "$KEY" \
    && $SUDO openssl x509 -in "$CERT" -noout -checkend 86400 >/dev/null 2>&1; then
    say "$CERT is valid"
else
    say "making a self-signed certificate for 127.0.0.1 ($CERT)"
    $SUDO openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=treadle test registry" \
        -addext "subjectAltName=IP:127.0.0.1" -keyout "$KEY" -out "$CERT" >/dev/null 2>&1 \
        || die "openssl could not make a certificate"
    $SUDO chmod 0600 "$KEY"
fi
for trust in "${TRUST_DIRS[@]}"; do
    if $SUDO cmp -s "$CERT" "$trust/ca.crt"; then
        say "$trust/ca.crt is in place"
    else
        say "trusting the certificate in $trust/ca.crt"
        $SUDO mkdir -p "$trust"
        $SUDO cp "$CERT" "$trust/ca.crt"
    fi
done

# --- 4. the registry process ---------------------------------------------------------------------
wanted="$(mktemp)"
trap 'rm -f "$wanted"' EXIT
cat >"$wanted" <<EOF
$MARKER
version: 0.1
log:
  level: info
  fields:
    service: treadle-registry
storage:
  filesystem:
    rootdirectory: $DIR/data
  delete:
    enabled: true
http:
  addr: $ADDR
  tls:
    certificate: $CERT
    key: $KEY
auth:
  htpasswd:
    realm: treadle-registry
    path: $HTPASSWD
EOF
if ! $SUDO cmp -s "$wanted" "$CONFIG"; then
    say "writing $CONFIG (listening on $ADDR)"
    $SUDO cp "$wanted" "$CONFIG"
    changed=1
fi

status() {
    curl -s -o /dev/null -w '%{http_code}' --max-time 3 --cacert "$CERT" "$@" "https://$ADDR/v2/" \
        || true
}
ours_running() {
    local pid
    pid="$($SUDO cat "$PIDFILE" 2>/dev/null)" || return 1
    [ -n "$pid" ] && $SUDO grep -qF "$CONFIG" "/proc/$pid/cmdline" 2>/dev/null
}

if ours_running && [ "$changed" -eq 1 ]; then
    say "configuration changed: stopping the registry (pid $($SUDO cat "$PIDFILE"))"
    $SUDO kill "$($SUDO cat "$PIDFILE")"
    for _ in $(seq 1 50); do ours_running || break; sleep 0.1; done
fi
if ours_running; then
    say "registry runs (pid $($SUDO cat "$PIDFILE"))"
else
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
        die "something else listens on $ADDR; set TREADLE_REGISTRY_PORT to a free port"
    fi
    say "starting docker-registry on $ADDR (log: $LOG)"
    # setsid + closed stdio: the registry outlives this script and does not hold the caller's
    # output pipe open.
    $SUDO setsid nohup docker-registry serve "$CONFIG" </dev/null >"$LOG" 2>&1 &
    echo $! | $SUDO tee "$PIDFILE" >/dev/null
    for _ in $(seq 1 100); do
        [ "$(status)" != 000 ] && break
        sleep 0.2
    done
fi
anonymous="$(status)"
authorized="$(status -u "$user:$password")"
if [ "$anonymous" != 401 ] || [ "$authorized" != 200 ]; then
    tail -20 "$LOG" >&2 || true
    die "registry on $ADDR answers $anonymous without and $authorized with credentials" \
        "(wanted 401 and 200)"
fi
say "registry on $ADDR requires auth (401) and accepts the test user (200)"

say "ready: push and pull $ADDR/<name> over TLS as $user (password in $CREDENTIALS)"
