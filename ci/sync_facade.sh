#!/usr/bin/env bash
# All synchronisation goes through nodeflow_engine::sync (CONVENTIONS 5): outside
# engine/src/sync/ no source file may name std::sync, parking_lot,
# crossbeam_channel or loom directly. (clippy's disallowed-types cannot check
# this: it sees through the facade's re-exports.) Benches are exempt: they
# measure raw crossbeam-channel / rayon baselines on purpose. Two exceptions:
# `loom::model` (the model runner, not a sync type) and lines that carry a
# `// sync-facade: allow (<why>)` comment, such as std::task::Wake impls,
# which std defines on its own Arc.
set -euo pipefail
cd "$(dirname "$0")/.."
hits=$(grep -rnE '\b(std::sync|parking_lot|crossbeam_channel|loom)::' \
         --include='*.rs' engine actors runtime loom-tests \
       | grep -v '^engine/src/sync/' \
       | grep -vE '^\S+:[0-9]+:\s*(//|///|//!)' \
       | grep -v 'sync-facade: allow' \
       | grep -vE '\bloom::model\b' || true)
if [ -n "$hits" ]; then
  echo "$hits"
  echo "sync-facade: direct synchronisation imports outside engine/src/sync (use the facade)"
  echo "sync-facade: 0 passed, 1 failed"; exit 1
fi
echo "sync-facade: 1 passed, 0 failed"
