//! Graph IR: ONNX-shaped dataflow graphs and the builder to write them in Rust.

mod builder;
mod ir;

pub use builder::*;
pub use ir::*;
