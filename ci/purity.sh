#!/usr/bin/env bash
# The engine is sans-IO: no rayon, no tokio, no loom (outside cfg(loom)) in
# its dependency tree, and no clock read, thread spawn or socket in its source.
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0
tree=$(cargo tree -p nodeflow-engine --edges normal --prefix none --locked)
for banned in rayon tokio loom async-std mio; do
  if grep -qE "^${banned} v" <<<"$tree"; then
    echo "purity: nodeflow-engine depends on ${banned}"; fail=1
  fi
done
# Source scan of non-test code (belt and braces next to clippy's
# disallowed-methods, which also runs on tests). Test modules sit at the end
# of each file by convention, so the scan stops at the first test cfg.
# engine/src/sync/ is skipped: the facade re-exports threads (and their loom
# stand-ins) for the actor crate; the engine itself never calls them, which
# clippy's disallowed-methods checks on every engine call site.
# Test-only module files (`tests.rs`, `loom_*.rs`, each declared behind a
# `#[cfg(test)]` / `#[cfg(all(test, loom))]` `mod` line) are skipped whole.
hits=$(for f in $(find engine/src -name '*.rs' -not -path 'engine/src/sync/*' -not -name 'tests.rs' -not -name 'loom_*.rs'); do
  awk -v f="$f" '/^#\[cfg\((all\()?test/ {exit} {print f ":" NR ": " $0}' "$f"
done | grep -E 'Instant::now|SystemTime::now|thread::spawn|std::net::|TcpStream|UdpSocket' \
     | grep -vE '^\S+:[0-9]+:\s*//' || true)
if [ -n "$hits" ]; then
  echo "$hits"
  echo "purity: clock read, thread spawn or socket in engine/src (non-test code)"; fail=1
fi
if [ "$fail" -ne 0 ]; then echo "purity: 0 passed, 1 failed"; exit 1; fi
echo "purity: 1 passed, 0 failed"
