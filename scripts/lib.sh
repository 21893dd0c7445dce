# shellcheck shell=bash
# Shared helpers for scx_pyland's scripts. Sourced, never run.
#
# Everything big lives outside the repository, under $SCX_PYLAND_CACHE
# (default /var/cache/scx_pyland):
#   apt/       a private apt configuration for trixie + trixie-backports; the host's
#              apt sources and package state are never read or changed
#   dl/        downloaded .deb files (debootstrap, kernels)
#   toolbox/   the Debian trixie chroot: compilers, libbpf, QEMU, virtme-ng,
#              workloads, the kernels, and the project's venv. It is also the
#              root file system of every test guest.

SCRIPTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$SCRIPTS_DIR")
CACHE=${SCX_PYLAND_CACHE:-/var/cache/scx_pyland}
TOOLBOX=$CACHE/toolbox
# Where the repository appears inside the toolbox (and so inside guests).
TOOLBOX_SRC=/src/scx_pyland
# The project's Python environment inside the toolbox. A second checkout can build
# into its own (SCX_PYLAND_VENV=/opt/other) without disturbing the first.
TOOLBOX_VENV=${SCX_PYLAND_VENV:-/opt/scx_pyland}
KERNELS_LIST=$SCRIPTS_DIR/kernels.list
# The container image scripts/build-image makes, and where scripts/vm-test saves it
# for the guests (inside the toolbox, one per venv so checkouts do not collide;
# not under /var/tmp or /var/cache, which are empty tmpfs mounts in a guest).
IMAGE_TAG=${SCX_PYLAND_IMAGE:-localhost/scx_pyland:latest}
TOOLBOX_IMAGE_ARCHIVE=/var/lib/scx_pyland-images/$(basename "$TOOLBOX_VENV").tar.zst
TOOLBOX_PATH=$TOOLBOX_VENV/bin:/opt/vng/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

_step="(start)"
step() { _step=$*; printf '[%(%H:%M:%S)T] %s: %s\n' -1 "$(basename "$0")" "$*" >&2; }
info() { printf '    %s\n' "$*" >&2; }
die() { printf '%s: error: %s\n' "$(basename "$0")" "$*" >&2; exit 1; }
# Any unexpected failure names the step it happened in.
_on_err() { printf '%s: step "%s" failed (exit %s, line %s)\n' "$(basename "$0")" "$_step" "$1" "$2" >&2; }
trap '_on_err $? $LINENO' ERR

need_root() { [ "$(id -u)" = 0 ] || die "must run as root (it builds a chroot and boots VMs)"; }

# kernels [ROLE]: the kernels of kernels.list (with that role); the first is the default.
kernels() { grep -vE '^\s*(#|$)' "$KERNELS_LIST" | awk -v role="${1:-}" 'role == "" || $3 == role {print $1}'; }
default_kernel() { kernels | head -n 1; }

# Run a command inside the toolbox. The chroot's mounts (proc, sys, dev and the
# repository) live in a private mount namespace: they vanish when the command
# ends, whatever way it ends, so nothing is ever left mounted on the host.
in_toolbox() {
    [ -x "$TOOLBOX/usr/bin/apt-get" ] || die "no toolbox at $TOOLBOX: run scripts/setup first"
    unshare --mount --propagation private -- /bin/bash -euc '
        R=$1; SRC=$2; REPO=$3; shift 3
        # The root a mount of its own: container runtimes (runc) pivot_root from it.
        mount --bind "$R" "$R"
        mount -t proc proc "$R/proc"
        mount --rbind /sys "$R/sys"
        mount --rbind /dev "$R/dev"
        mkdir -p "$R$SRC"
        mount --bind "$REPO" "$R$SRC"
        exec chroot "$R" "$@"
    ' in_toolbox "$TOOLBOX" "$TOOLBOX_SRC" "$REPO_DIR" \
        env -i HOME=/root TERM="${TERM:-dumb}" LANG=C.UTF-8 PATH="$TOOLBOX_PATH" \
        DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1 \
        CI="${CI:-}" "$@"
}

# The Debian mirror the host already uses, and its keyring.
MIRROR=${SCX_PYLAND_MIRROR:-$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

# private_apt: an apt configuration of our own under $CACHE/apt for trixie and
# trixie-backports. The host's sources, preferences and dpkg status are never read,
# so nothing here can upgrade the host. Sets APT_OPTS.
private_apt() {
    [ -r "$KEYRING" ] || die "missing $KEYRING (package debian-archive-keyring)"
    mkdir -p "$CACHE"/{apt/lists/partial,apt/cache/archives/partial,dl}
    cat > "$CACHE/apt/sources.list" <<EOS
deb [signed-by=$KEYRING] $MIRROR trixie main
deb [signed-by=$KEYRING] $MIRROR trixie-backports main
EOS
    APT_OPTS=(-o Dir::Etc::SourceList="$CACHE/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
              -o Dir::Etc::Preferences=/dev/null -o Dir::Etc::PreferencesParts=/dev/null
              -o Dir::State::Lists="$CACHE/apt/lists" -o Dir::Cache="$CACHE/apt/cache"
              -o Dir::State::status=/dev/null -o APT::Sandbox::User=root -q)
    # Refresh the lists at most once a day, so a warm run stays fast.
    if [ -z "$(find "$CACHE/apt/lists" -maxdepth 1 -name '*Packages*' -mtime -1 2>/dev/null | head -n 1)" ]; then
        info "apt-get update (trixie, trixie-backports)"
        apt-get "${APT_OPTS[@]}" update >/dev/null
    fi
}

# download PKG [apt-get download args]: fetch a .deb into $CACHE/dl once.
download() {
    local pkg=$1; shift
    if ! ls "$CACHE/dl/${pkg}"_*.deb >/dev/null 2>&1; then
        info "downloading $pkg"
        (cd "$CACHE/dl" && apt-get "${APT_OPTS[@]}" download "$pkg" "$@" >/dev/null) \
            || die "cannot download $pkg from $MIRROR (is it still in the archive?)"
    fi
}
