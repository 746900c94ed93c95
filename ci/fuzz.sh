#!/usr/bin/env bash
# The fuzz step: every decoder a peer's bytes reach (tensor encodings,
# envelopes of tensors into a Node running backend ops, IDX files, Node
# snapshots) under seeded mutations, in release, many iterations per target.
# Nothing may panic; a Node's byte budget must return to zero.
set -euo pipefail
cd "$(dirname "$0")/.."
NODEFLOW_FUZZ_ITERS="${NODEFLOW_FUZZ_ITERS:-200000}" \
  cargo test --release --locked -p nodeflow --test runtime_fuzz
