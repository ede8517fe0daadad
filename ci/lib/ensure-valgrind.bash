# Sourced by ci/valgrind.sh and ci/instruction-counts.sh: installs valgrind with apt-get if it
# is missing (as root, or through sudo). $1 names the caller in the message.
ensure_valgrind() {
    command -v valgrind >/dev/null 2>&1 && return 0
    echo "$1: installing valgrind"
    local sudo=()
    ((EUID == 0)) || sudo=(sudo)
    "${sudo[@]}" apt-get update
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends valgrind
}
