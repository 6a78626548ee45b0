# Shared by the setup-*.sh scripts (sourced, not run): messages, root or sudo, and installing
# missing Debian packages. The sourcing script sets SETUP_NAME first.

say() { printf '[%s] %s\n' "$SETUP_NAME" "$*"; }
die() { printf '[%s] ERROR: %s\n' "$SETUP_NAME" "$*" >&2; exit 1; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "must run as root (or with sudo available)"
    SUDO="sudo"
fi

# install_packages PKG...: apt-get install them, refreshing the package lists only when one of
# them is not known to apt yet. apt's output is shown only when the install fails (a package's
# own service may fail to start where there is no init system; that is not a failure).
install_packages() {
    [ "$#" -gt 0 ] || return 0
    local pkg
    for pkg in "$@"; do
        if ! apt-cache show "$pkg" >/dev/null 2>&1; then
            say "package lists do not know $pkg: running apt-get update"
            $SUDO apt-get update -q
            break
        fi
    done
    say "installing $*"
    local log
    log="$(mktemp)"
    if ! $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        "$@" >"$log" 2>&1; then
        tail -20 "$log" >&2
        rm -f "$log"
        die "apt-get install $* failed"
    fi
    rm -f "$log"
}
