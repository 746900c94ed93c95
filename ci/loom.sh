#!/usr/bin/env bash
# Loom model checks. Settings are fixed here so every run explores the same
# space: release build with debug assertions, preemption bound 2.
#
# 1. Every model must pass.
# 2. Every deliberately broken protocol variant (cfg nodeflow_loom_broken)
#    must be caught: its model run must FAIL. A broken variant that passes
#    means the model is vacuous, and this script fails.
#
# Models live in nodeflow-engine (`loom_*` unit tests beside the primitive
# they check) and in nodeflow-loom-tests (`tests/loom_*.rs`, protocols that
# span crates, e.g. tests/loom_actor_park.rs: the actor's park/unpark with
# its broken twins loom_broken_actor_sleeps_without_recheck and
# loom_broken_actor_mail_skips_fence; tests/loom_actor_restart.rs: mail and
# completions during a supervised restart; tests/loom_actor_shutdown.rs: a
# drain waiting for parked work). Broken twins are found by name
# (`loom_broken_*`) in the test list of the broken build. A twin caught by a
# loom deadlock may abort its test process instead of failing it (the
# actor's catch_unwind catches loom's teardown of the deadlocked run); any
# non-zero exit counts as caught.
set -euo pipefail
cd "$(dirname "$0")/.."
export LOOM_MAX_PREEMPTIONS=2
export CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS=true
export CARGO_TARGET_DIR=target/loom
mkdir -p target
start=$(date +%s)

echo "loom: models (expected to pass)"
# Output shown, so the cross-crate models print the iterations loom
# explored and their time; the log keeps everything, the console the
# summary lines (model results, iterations, test totals).
RUSTFLAGS="--cfg loom" cargo test --release --locked -p nodeflow-engine -p nodeflow-loom-tests --lib --tests -- loom_ --nocapture > target/loom-pass.log 2>&1 || { tail -50 target/loom-pass.log; echo "loom: a model failed"; exit 1; }
grep -E 'iterations in|^test result: ok\. [1-9]' target/loom-pass.log || true
passed=$(grep -E '^test result:' target/loom-pass.log | awk '{s+=$4} END {print s+0}')

echo "loom: broken variants (each expected to fail)"
broken_caught=0
broken_missed=0
mapfile -t broken < <(RUSTFLAGS="--cfg loom --cfg nodeflow_loom_broken" cargo test --release --locked -p nodeflow-engine -p nodeflow-loom-tests --lib --tests -- --list 2>/dev/null | grep -E 'loom_broken_[a-z0-9_]*: test$' | sed 's/: test$//' | sort -u)
if [ "${#broken[@]}" -eq 0 ]; then
  # An empty list means the broken build failed to compile or lost its models:
  # treat it as a failure rather than as "nothing to catch".
  echo "loom: no loom_broken_* models found under --cfg nodeflow_loom_broken"; exit 1
fi
for t in "${broken[@]}"; do
  if RUSTFLAGS="--cfg loom --cfg nodeflow_loom_broken" cargo test --release --locked -p nodeflow-engine -p nodeflow-loom-tests --lib --tests -- --exact "$t" >/tmp/loom-broken.log 2>&1; then
    echo "loom: NOT CAUGHT: $t (the model passed against a broken protocol)"; broken_missed=$((broken_missed+1))
  else
    echo "loom: caught: $t"; broken_caught=$((broken_caught+1))
  fi
done
elapsed=$(( $(date +%s) - start ))
echo "loom: ${passed} models passed, ${broken_caught} broken variants caught, ${broken_missed} missed, ${elapsed}s"
if [ "$broken_missed" -ne 0 ]; then echo "loom: $passed passed, $broken_missed failed"; exit 1; fi
echo "loom: $passed passed, 0 failed"
