#!/usr/bin/env bash
# Lints for every target of every crate, warnings are errors; then the
# engine, the actor host and the loom models again under --cfg loom, so the
# loom-only code paths stay clean too.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo clippy --workspace --all-targets --locked -- -D warnings
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
  cargo clippy -p nodeflow-engine -p nodeflow-actors -p nodeflow-loom-tests --all-targets --release --locked -- -D warnings
echo "clippy: 1 passed, 0 failed"
