#!/usr/bin/env bash
# The quick start's two commands: `scripts/run.sh demo` and `scripts/run.sh test`.
# Installs what the static Faiss build needs (cmake, a C++ compiler, BLAS and
# LAPACK) through apt-get when it is missing, then builds once in release mode
# (tests, demo and benches share that one build of Faiss).
set -euo pipefail
cd "$(dirname "$0")/.."

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
        echo "run.sh: missing $missing and no apt-get here; install them by hand" >&2
        exit 1
    fi
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "run.sh: installing $missing" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing >/dev/null
}

check_rust() {
    if ! command -v cargo >/dev/null 2>&1; then
        echo "run.sh: cargo not found: install Rust 1.89 or newer (https://rustup.rs) and run again" >&2
        exit 1
    fi
}

cmd="${1:-}"
[ $# -gt 0 ] && shift
case "$cmd" in
    demo)
        install_deps; check_rust
        cargo run --release -p ember -- demo "$@"
        ;;
    test)
        install_deps; check_rust
        cargo test --release --workspace "$@"
        ;;
    bench)
        install_deps; check_rust
        cargo bench --workspace "$@"
        ;;
    *)
        echo "usage: scripts/run.sh demo [dir] | test | bench" >&2
        exit 2
        ;;
esac
