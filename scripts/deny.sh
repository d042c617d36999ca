#!/usr/bin/env bash
# Dependency hygiene (deny.toml): licences, bans and sources always; RustSec
# advisories when the advisory database can be fetched (it is a git
# repository on github.com: a machine that reaches only the package
# registries cannot fetch it, and this says so instead of passing quietly).
# Installs cargo-deny from crates.io when it is missing (a few minutes).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo deny --version >/dev/null 2>&1; then
    echo "deny.sh: installing cargo-deny (cargo install --locked)" >&2
    cargo install --locked cargo-deny@0.20.2
fi

cargo deny check licenses bans sources

if cargo deny fetch db >/dev/null 2>&1; then
    cargo deny check --disable-fetch advisories
else
    echo "deny.sh: WARNING: the RustSec advisory database (github.com/RustSec/advisory-db)" >&2
    echo "deny.sh: could not be fetched from here; advisories were NOT checked." >&2
    echo "deny.sh: run 'cargo deny check advisories' on a machine that reaches github.com." >&2
fi
