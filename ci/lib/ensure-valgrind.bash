# Sourced by ci/valgrind.sh and ci/instruction-counts.sh: installs valgrind with apt-get if it
# is missing (as root, or through sudo). $1 names the caller in the message.
source "$(dirname "${BASH_SOURCE[0]}")/apt.bash"
ensure_valgrind() {
    command -v valgrind >/dev/null 2>&1 && return 0
    echo "$1: installing valgrind"
    ci_apt_get update
    ci_apt_get install -y --no-install-recommends valgrind
}
