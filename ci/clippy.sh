#!/usr/bin/env bash
# Lints for every target of every crate, warnings are errors.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "clippy: 1 passed, 0 failed"
