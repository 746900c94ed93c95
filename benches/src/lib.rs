//! Benchmarks for nodeflow, run side by side with raw crossbeam-channel and
//! raw rayon baselines. Criterion benches live in `benches/`, the load-test
//! binary `nodeflow-bench` in `src/bin/` once the engine can execute graphs.
