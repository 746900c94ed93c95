#!/usr/bin/env bash
# Rustdoc for the workspace with warnings as errors (broken links, missing docs).
set -euo pipefail
cd "$(dirname "$0")/.."
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked
echo "doc: 1 passed, 0 failed"
