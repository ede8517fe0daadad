# Sourced by the legs that install Debian packages (ci/cross-test.sh, ci/go-peers.sh,
# ci/lib/ensure-valgrind.bash). .ci/run runs two lanes of legs at once, so two legs may want
# apt-get at the same moment on a fresh machine: apt-get fails at once when another one holds
# dpkg's lock, so every call here takes one lock file first and waits for it.
# Runs as root, or through sudo.
ci_apt_get() {
    local sudo=()
    ((EUID == 0)) || sudo=(sudo)
    flock "${TMPDIR:-/tmp}/microthread-ci-apt.lock" \
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "$@"
}
