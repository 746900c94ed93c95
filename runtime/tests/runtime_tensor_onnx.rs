//! ONNX's backend node tests on the CPU backend: every case of the fixture
//! `onnx/node_cases.json` (see `onnx/README.md`) goes through
//! [`CpuBackend::eval_with_outputs`] (with the node's declared output
//! count) and each output is compared with what ONNX expects.
//!
//! The run never stops at a failing case: every case runs, a table of
//! results per op is printed (run with `--nocapture` to see it), and only
//! then does the test fail, naming each failing case with its error or its
//! first mismatching element.
//!
//! Float tolerance: an f32 output element `a` matches the expected `b` when
//! `|a - b| <= ATOL + RTOL * |b|`, NaN matches NaN and an infinity matches
//! only the same infinity. ONNX's own runner uses rtol 1e-3 and atol 1e-7.
//! Here the relative bound is tighter (1e-4, still some 800 f32 ulps): a
//! CPU f32 kernel has no reason to be further off than that, and 1e-3
//! would hide a wrong formula that is merely close. The absolute bound is
//! looser (1e-5): results near zero that come out of sums (reductions,
//! matrix products, losses) carry a rounding error proportional to the
//! terms, not to the result. A case that sets its own `rtol`/`atol` in the
//! fixture (none does today) widens the bounds to those. Each float
//! mismatch also says whether ONNX's own bounds would have accepted it.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};

use nodeflow::engine::{Attribute, AttributeValue, TensorProto};
use nodeflow::{CpuBackend, DType, Tensor};
use serde::Deserialize;
use serde_json::{Map, Value};

/// The fixture, compiled into the test binary.
const FIXTURE: &str = include_str!("onnx/node_cases.json");

/// Relative tolerance for f32 outputs (see the module docs).
const RTOL: f64 = 1e-4;
/// Absolute tolerance for f32 outputs (see the module docs).
const ATOL: f64 = 1e-5;
/// ONNX's backend test runner defaults, reported next to a float mismatch.
const ONNX_RTOL: f64 = 1e-3;
const ONNX_ATOL: f64 = 1e-7;

/// The ops the fixture must cover, in the order the table lists them.
const OPS: &[&str] = &[
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Neg",
    "Abs",
    "Sqrt",
    "Pow",
    "Exp",
    "Log",
    "Reciprocal",
    "Clip",
    "Max",
    "Min",
    "Relu",
    "LeakyRelu",
    "Sigmoid",
    "Tanh",
    "Softmax",
    "LogSoftmax",
    "Gelu",
    "MatMul",
    "Gemm",
    "ReduceSum",
    "ReduceMean",
    "ReduceMax",
    "ReduceMin",
    "ReduceProd",
    "ArgMax",
    "ArgMin",
    "Reshape",
    "Transpose",
    "Concat",
    "Split",
    "Slice",
    "Squeeze",
    "Unsqueeze",
    "Flatten",
    "Expand",
    "Gather",
    "Identity",
    "Cast",
    "Shape",
    "ConstantOfShape",
    "Equal",
    "Greater",
    "Less",
    "Where",
    "Not",
    "And",
    "Or",
    "Constant",
    "SoftmaxCrossEntropyLoss",
];

/// Ops whose every ONNX node case uses an element type the backend lacks
/// (onnx 1.23.2 tests Cast only from/to float16, double, bfloat16, string
/// and the narrow float/int types, and Equal only on int8..uint64 and
/// strings). They count as covered when the fixture lists them as skipped
/// for their dtype; once ONNX gains a case they can run, it is kept and
/// counts like any other.
const ONLY_OTHER_DTYPES: &[&str] = &["Cast", "Equal"];

#[derive(Deserialize)]
struct Fixture {
    generator: String,
    onnx_version: String,
    numpy_version: String,
    cases: Vec<Case>,
    skipped: Vec<Skipped>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    op_type: String,
    opset: i64,
    attributes: Vec<Map<String, Value>>,
    inputs: Vec<Option<FixtureTensor>>,
    outputs: Vec<FixtureTensor>,
    #[serde(default)]
    rtol: Option<f64>,
    #[serde(default)]
    atol: Option<f64>,
}

#[derive(Deserialize)]
struct FixtureTensor {
    dtype: String,
    dims: Vec<usize>,
    data: Vec<Value>,
}

#[derive(Deserialize)]
struct Skipped {
    name: String,
    op_type: String,
    reason: String,
}

fn load() -> Fixture {
    serde_json::from_str(FIXTURE).expect("onnx/node_cases.json is not a valid fixture")
}

/// One f32 of the fixture: a JSON number, or "nan" / "inf" / "-inf".
fn f32_of(v: &Value) -> Result<f32, String> {
    match v {
        // The fixture writes each f32 so that its f64 reading narrows back
        // to the same f32.
        Value::Number(n) => n
            .as_f64()
            .map(|x| x as f32)
            .ok_or_else(|| format!("{n} is not a float")),
        Value::String(s) => match s.as_str() {
            "nan" => Ok(f32::NAN),
            "inf" => Ok(f32::INFINITY),
            "-inf" => Ok(f32::NEG_INFINITY),
            _ => Err(format!("{s:?} is not a float")),
        },
        _ => Err(format!("{v} is not a float")),
    }
}

fn i64_of(v: &Value) -> Result<i64, String> {
    v.as_i64().ok_or_else(|| format!("{v} is not an i64"))
}

fn bool_of(v: &Value) -> Result<bool, String> {
    v.as_bool().ok_or_else(|| format!("{v} is not a bool"))
}

fn all<T>(values: &[Value], one: fn(&Value) -> Result<T, String>) -> Result<Vec<T>, String> {
    values.iter().map(one).collect()
}

fn tensor_of(t: &FixtureTensor) -> Result<Tensor, String> {
    let shape = t.dims.clone();
    let made = match t.dtype.as_str() {
        "float32" => Tensor::from_f32(shape, all(&t.data, f32_of)?),
        "int64" => Tensor::from_i64(shape, all(&t.data, i64_of)?),
        "bool" => Tensor::from_bool(shape, all(&t.data, bool_of)?),
        other => return Err(format!("fixture dtype {other:?} is not float32/int64/bool")),
    };
    made.map_err(|e| format!("fixture tensor refused by Tensor: {e}"))
}

fn tensor_proto_of(t: &FixtureTensor) -> Result<TensorProto, String> {
    let dims = t.dims.iter().map(|&d| d as i64).collect();
    Ok(match t.dtype.as_str() {
        "float32" => TensorProto::new(dims, all(&t.data, f32_of)?),
        "int64" => TensorProto::int64(dims, all(&t.data, i64_of)?),
        "bool" => TensorProto::boolean(dims, &all(&t.data, bool_of)?),
        other => return Err(format!("fixture dtype {other:?} is not float32/int64/bool")),
    })
}

/// `{"name": ..., KIND: value}` → an engine attribute.
fn attribute_of(a: &Map<String, Value>) -> Result<Attribute, String> {
    let name = a
        .get("name")
        .and_then(Value::as_str)
        .ok_or("attribute without a name")?
        .to_owned();
    let (kind, v) = a
        .iter()
        .find(|(k, _)| k.as_str() != "name")
        .ok_or_else(|| format!("attribute {name} has no value"))?;
    let list = || {
        v.as_array()
            .ok_or_else(|| format!("attribute {name}: {kind} is not a list"))
    };
    let string = |v: &Value| {
        v.as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("{v} is not a string"))
    };
    let value = match kind.as_str() {
        "int" => AttributeValue::Int(i64_of(v)?),
        "float" => AttributeValue::Float(f32_of(v)?),
        "string" => AttributeValue::String(string(v)?),
        "ints" => AttributeValue::Ints(all(list()?, i64_of)?),
        "floats" => AttributeValue::Floats(all(list()?, f32_of)?),
        "strings" => AttributeValue::Strings(list()?.iter().map(string).collect::<Result<_, _>>()?),
        "tensor" => {
            let t: FixtureTensor = serde_json::from_value(v.clone())
                .map_err(|e| format!("attribute {name}: bad tensor: {e}"))?;
            AttributeValue::Tensor(tensor_proto_of(&t)?)
        }
        other => return Err(format!("attribute {name}: unknown kind {other:?}")),
    };
    Ok(Attribute { name, value })
}

fn dtype_name(d: DType) -> &'static str {
    match d {
        DType::F32 => "float32",
        DType::I64 => "int64",
        DType::Bool => "bool",
        #[allow(unreachable_patterns)] // DType may gain element types.
        _ => "another dtype",
    }
}

/// The row-major index `flat` as a multi-index of `shape`.
fn multi_index(shape: &[usize], mut flat: usize) -> Vec<usize> {
    let mut index = vec![0; shape.len()];
    for (axis, &extent) in shape.iter().enumerate().rev() {
        if extent > 0 {
            index[axis] = flat % extent;
            flat /= extent;
        }
    }
    index
}

fn within(a: f32, b: f32, rtol: f64, atol: f64) -> bool {
    if b.is_nan() {
        return a.is_nan();
    }
    if b.is_infinite() {
        return a == b;
    }
    let (a, b) = (f64::from(a), f64::from(b));
    (a - b).abs() <= atol + rtol * b.abs()
}

/// Compares one output; `Err` describes the first difference.
fn compare(actual: &Tensor, expected: &FixtureTensor, rtol: f64, atol: f64) -> Result<(), String> {
    let dtype = dtype_name(actual.dtype());
    if dtype != expected.dtype {
        return Err(format!("dtype {dtype}, expected {}", expected.dtype));
    }
    if actual.shape() != expected.dims.as_slice() {
        return Err(format!(
            "shape {:?}, expected {:?}",
            actual.shape(),
            expected.dims
        ));
    }
    let shape = &expected.dims;
    let at = |i: usize| format!("element {i} {:?}", multi_index(shape, i));
    let length = |n: usize| {
        if n == expected.data.len() {
            Ok(())
        } else {
            Err(format!(
                "{n} elements for shape {shape:?}, fixture has {}",
                expected.data.len()
            ))
        }
    };
    match expected.dtype.as_str() {
        "float32" => {
            let got = actual.to_f32_vec().ok_or("to_f32_vec gave None")?;
            let want = all(&expected.data, f32_of)?;
            length(got.len())?;
            for (i, (&a, &b)) in got.iter().zip(&want).enumerate() {
                if !within(a, b, rtol, atol) {
                    let onnx = if within(a, b, ONNX_RTOL, ONNX_ATOL) {
                        "within"
                    } else {
                        "outside"
                    };
                    return Err(format!(
                        "{}: {a:e}, expected {b:e} (|diff| {:e}; {onnx} ONNX's rtol 1e-3/atol 1e-7)",
                        at(i),
                        (f64::from(a) - f64::from(b)).abs()
                    ));
                }
            }
        }
        "int64" => {
            let got = actual.to_i64_vec().ok_or("to_i64_vec gave None")?;
            let want = all(&expected.data, i64_of)?;
            length(got.len())?;
            if let Some(i) = (0..got.len()).find(|&i| got[i] != want[i]) {
                return Err(format!("{}: {}, expected {}", at(i), got[i], want[i]));
            }
        }
        "bool" => {
            let got = actual.to_bool_vec().ok_or("to_bool_vec gave None")?;
            let want = all(&expected.data, bool_of)?;
            length(got.len())?;
            if let Some(i) = (0..got.len()).find(|&i| got[i] != want[i]) {
                return Err(format!("{}: {}, expected {}", at(i), got[i], want[i]));
            }
        }
        other => return Err(format!("fixture dtype {other:?} is not float32/int64/bool")),
    }
    Ok(())
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-string panic payload".to_owned()
    }
}

/// Runs one case; `Err` says why it failed.
fn run_case(case: &Case) -> Result<(), String> {
    let attributes = case
        .attributes
        .iter()
        .map(attribute_of)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("fixture: {e}"))?;
    let inputs = case
        .inputs
        .iter()
        .map(|t| t.as_ref().map(tensor_of).transpose())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("fixture: {e}"))?;
    // An ONNX node always declares its outputs; Split without sizes divides
    // into as many parts as it declares.
    let declared = case.outputs.len();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        CpuBackend::eval_with_outputs(&case.op_type, &attributes, &inputs, declared)
    }));
    let outputs = match outcome {
        Err(payload) => return Err(format!("panicked: {}", panic_message(&*payload))),
        Ok(Err(e)) => return Err(format!("error: {e}")),
        Ok(Ok(outputs)) => outputs,
    };
    if outputs.len() != case.outputs.len() {
        return Err(format!(
            "{} outputs, expected {}",
            outputs.len(),
            case.outputs.len()
        ));
    }
    let rtol = case.rtol.map_or(RTOL, |r| r.max(RTOL));
    let atol = case.atol.map_or(ATOL, |a| a.max(ATOL));
    for (k, (actual, expected)) in outputs.iter().zip(&case.outputs).enumerate() {
        compare(actual, expected, rtol, atol).map_err(|e| format!("output {k}: {e}"))?;
    }
    Ok(())
}

#[derive(Default)]
struct Tally {
    run: usize,
    passed: usize,
}

#[test]
fn onnx_node_cases_pass_on_the_cpu_backend() {
    let fixture = load();
    let mut per_op: BTreeMap<&str, Tally> = BTreeMap::new();
    let mut failures: Vec<(&str, &str, i64, String)> = Vec::new();
    for case in &fixture.cases {
        let tally = per_op.entry(case.op_type.as_str()).or_default();
        tally.run += 1;
        match run_case(case) {
            Ok(()) => tally.passed += 1,
            Err(why) => failures.push((&case.op_type, &case.name, case.opset, why)),
        }
    }

    let mut report = String::new();
    let _ = writeln!(
        report,
        "ONNX node cases ({} from onnx {}, numpy {}):",
        fixture.generator, fixture.onnx_version, fixture.numpy_version
    );
    let _ = writeln!(
        report,
        "{:<26} {:>5} {:>7} {:>7}",
        "op", "run", "passed", "failed"
    );
    // The listed ops first, in list order, then any other op of the fixture.
    let order = OPS
        .iter()
        .copied()
        .chain(per_op.keys().copied().filter(|op| !OPS.contains(op)))
        .collect::<Vec<_>>();
    let (mut run, mut passed) = (0, 0);
    for op in order {
        let (r, p) = per_op.get(op).map_or((0, 0), |t| (t.run, t.passed));
        run += r;
        passed += p;
        let _ = writeln!(report, "{op:<26} {r:>5} {p:>7} {:>7}", r - p);
    }
    let _ = writeln!(
        report,
        "{:<26} {run:>5} {passed:>7} {:>7}",
        "total",
        run - passed
    );
    let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
    for s in &fixture.skipped {
        *reasons.entry(s.reason.as_str()).or_default() += 1;
    }
    let mut reasons = reasons.into_iter().collect::<Vec<_>>();
    reasons.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let _ = writeln!(
        report,
        "skipped by the fixture: {} cases",
        fixture.skipped.len()
    );
    for (reason, n) in reasons {
        let _ = writeln!(report, "  {n:>4}  {reason}");
    }
    println!("{report}");

    let mut listing = String::new();
    failures.sort_by(|a, b| a.0.cmp(b.0).then(a.1.cmp(b.1)));
    for (op, name, opset, why) in &failures {
        let _ = writeln!(listing, "  {op} {name} (opset {opset}): {why}");
    }
    assert!(
        failures.is_empty(),
        "{} of {run} ONNX node cases failed:\n{listing}",
        failures.len()
    );
}

#[test]
fn the_fixture_covers_every_listed_op() {
    let fixture = load();
    assert_eq!(fixture.generator, "runtime/tests/onnx/gen_fixture.py");
    let mut missing = Vec::new();
    for &op in OPS {
        if fixture.cases.iter().any(|c| c.op_type == op) {
            continue;
        }
        let skipped_for_dtype = fixture
            .skipped
            .iter()
            .any(|s| s.op_type == op && s.reason.starts_with("dtype "));
        if !(ONLY_OTHER_DTYPES.contains(&op) && skipped_for_dtype) {
            missing.push(op);
        }
    }
    assert!(
        missing.is_empty(),
        "the fixture has no case of {missing:?}; regenerate it with \
         runtime/tests/onnx/gen_fixture.py or fix the generator"
    );
    let strays = fixture
        .cases
        .iter()
        .map(|c| c.op_type.as_str())
        .chain(fixture.skipped.iter().map(|s| s.op_type.as_str()))
        .filter(|op| !OPS.contains(op))
        .collect::<Vec<_>>();
    assert!(strays.is_empty(), "ops outside the list: {strays:?}");
    let mut names = fixture
        .cases
        .iter()
        .map(|c| c.name.as_str())
        .chain(fixture.skipped.iter().map(|s| s.name.as_str()))
        .collect::<Vec<_>>();
    let count = names.len();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), count, "a case name appears twice");
}
