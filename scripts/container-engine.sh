# shellcheck shell=bash
# Container engine helpers, sourced INSIDE the toolbox (by scripts/build-image through
# in_toolbox) -- never on the host. They start a private dockerd, or give podman's
# flags, for this machine: no registry, no systemd, a hybrid cgroup hierarchy and
# no CAP_SYS_RESOURCE for root (so ulimits may not exceed the hard limits).
#
# The engine's state lives in the toolbox under $ENGINE_DATA (images and the build
# cache persist between runs); its sockets and run-time state on a tmpfs of this
# mount namespace, so nothing of a run is left behind when it ends.

ENGINE_DATA=${ENGINE_DATA:-/var/lib/scx_pyland-engine}
ENGINE_RUN=${ENGINE_RUN:-/run/scx_pyland-engine}
export DOCKER_HOST=unix://$ENGINE_RUN/docker.sock
# This host has a hybrid cgroup hierarchy: podman 5 warns about it on every command.
export PODMAN_IGNORE_CGROUPSV1_WARNING=1
dockerd_pid=""

engine_log() { printf '    %s\n' "$*" >&2; }

# Mount the run-time tmpfs and take the engine lock (one engine per data root).
engine_prepare() {
    mkdir -p "$ENGINE_DATA" "$ENGINE_RUN"
    mountpoint -q "$ENGINE_RUN" || mount -t tmpfs -o mode=711,size=64m scx_pyland-engine "$ENGINE_RUN"
    exec 9> "$ENGINE_DATA/lock"
    if ! flock -n 9; then
        engine_log "another build-image holds the engine lock; waiting"
        flock 9
    fi
}

docker_start() {
    local hard log=$ENGINE_DATA/dockerd.log i
    hard=$(ulimit -Hn)
    ulimit -n "$hard"
    # No NAT rules, no docker0 bridge: builds and containers use --network=host.
    dockerd --data-root "$ENGINE_DATA/docker" --exec-root "$ENGINE_RUN/docker" \
        --pidfile "$ENGINE_RUN/docker.pid" -H "$DOCKER_HOST" \
        --storage-driver overlay2 --exec-opt native.cgroupdriver=cgroupfs \
        --iptables=false --ip6tables=false --bridge=none --ip-forward=false --ip-masq=false \
        --userland-proxy=false --default-ulimit "nofile=$hard:$hard" \
        > "$log" 2>&1 < /dev/null &
    dockerd_pid=$!
    for i in $(seq 1 600); do
        docker version >/dev/null 2>&1 && { engine_log "dockerd $(docker version -f '{{.Server.Version}}') started (pid $dockerd_pid)"; return 0; }
        kill -0 "$dockerd_pid" 2>/dev/null || break
        sleep 0.2
    done
    tail -n 20 "$log" >&2
    echo "dockerd did not start; see $log in the toolbox" >&2
    return 1
}

docker_stop() {
    [ -n "$dockerd_pid" ] || return 0
    kill -TERM "$dockerd_pid" 2>/dev/null || true
    local i
    for i in $(seq 1 300); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.1; done
    wait "$dockerd_pid" 2>/dev/null || true
    dockerd_pid=""
}

# podman with its storage in the toolbox; runc, since crun refuses hybrid cgroups.
podman_cmd() {
    podman --root "$ENGINE_DATA/podman" --runroot "$ENGINE_RUN/podman" --tmpdir "$ENGINE_RUN/libpod" \
        --storage-driver overlay --cgroup-manager cgroupfs --events-backend file --runtime runc "$@"
}

# engine CMD...: the engine's CLI with the right flags ($ENGINE: docker or podman).
engine() {
    if [ "$ENGINE" = podman ]; then podman_cmd "$@"; else docker "$@"; fi
}
engine_start() { [ "$ENGINE" = podman ] || docker_start; }
engine_stop() { [ "$ENGINE" = podman ] || docker_stop; }
