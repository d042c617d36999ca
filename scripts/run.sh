#!/usr/bin/env bash
# The quick start's two commands: `scripts/run.sh demo` and `scripts/run.sh test`.
# Installs what the static Faiss build needs (cmake, a C++ compiler, BLAS and
# LAPACK) through apt-get when it is missing, then builds once in release mode
# (tests, demo and benches share that one build of Faiss).
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/deps.sh

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
        # The library's documentation: every public item documented
        # (missing_docs), every link resolving; its examples ran above.
        RUSTDOCFLAGS="-D warnings" cargo doc --release --no-deps -p emberdb
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
