# Sourced by run.sh and host_crate.sh: installs what the static Faiss build
# needs (cmake, a C++ compiler, BLAS and LAPACK) through apt-get when it is
# missing, and checks for cargo.

need_packages() {
    local missing=()
    for pkg in cmake g++ libopenblas-dev liblapack-dev; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    echo "${missing[@]:-}"
}

install_deps() {
    local missing
    missing=$(need_packages)
    [ -z "$missing" ] && return 0
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "missing $missing and no apt-get here; install them by hand" >&2
        exit 1
    fi
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "installing $missing" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing >/dev/null
}

check_rust() {
    if ! command -v cargo >/dev/null 2>&1; then
        echo "cargo not found: install Rust 1.89 or newer (https://rustup.rs) and run again" >&2
        exit 1
    fi
}
