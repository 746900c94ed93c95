#!/usr/bin/env bash
# Formatting check for the whole workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
echo "fmt: 1 passed, 0 failed"
