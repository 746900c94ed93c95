#!/usr/bin/env bash
# The learning step, in release: the learning tests #[ignore]d in the debug
# run. Today that is FedAvg on Fashion-MNIST (learning_fashion: needs Debian's
# dataset-fashion-mnist, which .ci/run installs; a missing dataset fails the
# test, it never skips). learning_faults runs whole in the debug run (ci/test.sh)
# and is listed here for any of its tests marked release-only later.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
log=$(mktemp)
status=0
cargo test --release --locked -p nodeflow --test learning_fashion --test learning_faults -- --ignored 2>&1 | tee "$log" || status=$?
passed=$(grep -E '^test result:' "$log" | awk '{s+=$4} END {print s+0}')
failed=$(grep -E '^test result:' "$log" | awk '{s+=$6} END {print s+0}')
rm -f "$log"
echo "learn: $passed passed, $failed failed, $(( $(date +%s) - start ))s"
exit $status
