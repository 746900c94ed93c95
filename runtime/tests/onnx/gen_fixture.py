#!/usr/bin/env python3
"""Regenerate ``runtime/tests/onnx/node_cases.json`` from the ONNX node tests.

Run by hand from the repository root (CI never runs it):

    pip install onnx numpy
    python3 runtime/tests/onnx/gen_fixture.py

The ONNX Python package builds its backend node test cases in memory
(``onnx.backend.test.case.node.collect_testcases``). This script keeps the
single-node cases of the ops the CPU backend implements, writes each one's
attributes, input tensors and expected output tensors as JSON, and lists
every case of those ops it could not carry, with the reason, under
``skipped``. The Rust test ``runtime/tests/runtime_tensor_onnx.rs`` reads
the result.

Layout choices (also described in README.md next to this file):

* One JSON object per line inside ``cases`` and ``skipped`` so a
  regeneration diffs line by line.
* Every data set of a case becomes its own entry. Today every case has
  exactly one data set and keeps its ONNX name; a case with several would
  get ``_ds0``, ``_ds1``, ... appended.
* ``inputs`` follows the node's input list: an empty input name (an absent
  optional input) is ``null``; data arrays are matched to the graph's
  inputs by name, which ONNX declares in the order of the node's present
  (non-empty) inputs.
* ``outputs`` follows the node's output list with empty names dropped (the
  expected data only exists for present outputs); none of the kept cases
  has an empty output name today.
* f32 values are written as the shortest decimal that comes back to the
  same f32 even through an f64 parse that is off by one f64 ulp (what a
  best-effort JSON float parser may do); failing that, the exact decimal of
  the value. NaN and infinities are the strings "nan", "inf", "-inf".
"""

from __future__ import annotations

import json
import re
import sys
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
from onnx import AttributeProto, TensorProto, numpy_helper
from onnx.backend.test.case.node import collect_testcases

OPS = [
    "Add", "Sub", "Mul", "Div", "Neg", "Abs", "Sqrt", "Pow", "Exp", "Log",
    "Reciprocal", "Clip", "Max", "Min", "Relu", "LeakyRelu", "Sigmoid", "Tanh",
    "Softmax", "LogSoftmax", "Gelu", "MatMul", "Gemm", "ReduceSum", "ReduceMean",
    "ReduceMax", "ReduceMin", "ReduceProd", "ArgMax", "ArgMin", "Reshape",
    "Transpose", "Concat", "Split", "Slice", "Squeeze", "Unsqueeze", "Flatten",
    "Expand", "Gather", "Identity", "Cast", "Shape", "ConstantOfShape", "Equal",
    "Greater", "Less", "Where", "Not", "And", "Or", "Constant",
    "SoftmaxCrossEntropyLoss",
]  # fmt: skip

# ONNX element type -> fixture dtype name, for the dtypes the backend has.
SUPPORTED = {
    TensorProto.FLOAT: "float32",
    TensorProto.INT64: "int64",
    TensorProto.BOOL: "bool",
}

# A case with any tensor larger than this many elements is skipped, a guard
# against a future ONNX case bloating the fixture. None is today: the
# largest tensors, 32,400 elements in the four 5-D SoftmaxCrossEntropyLoss
# cases, are kept (they make up most of the fixture's ~2.8 MB).
MAX_ELEMENTS = 40_000

# The tolerances ONNX's backend test runner uses unless a case sets its own.
DEFAULT_RTOL = 1e-3
DEFAULT_ATOL = 1e-7

EXPANDED = re.compile(r"_expanded(_ver\d+)?$")

HERE = Path(__file__).resolve().parent
OUT = HERE / "node_cases.json"


class Skip(Exception):
    """Raised while converting a case that the fixture cannot carry."""


def type_name(elem_type: int) -> str:
    """ONNX's own lower-case name of an element type (float16, double, ...)."""
    return TensorProto.DataType.Name(elem_type).lower()


def check_dtype(elem_type: int) -> str:
    if elem_type not in SUPPORTED:
        raise Skip(f"dtype {type_name(elem_type)} not supported")
    return SUPPORTED[elem_type]


def f32_token(x: np.float32) -> str:
    """A JSON token for one f32: a number text, or a string for non-finite."""
    if np.isnan(x):
        return "nan"
    if np.isinf(x):
        return "inf" if x > 0 else "-inf"
    # numpy prints an f32 as the shortest decimal that parses back to it.
    short = str(x)
    as_f64 = float(short)
    safe = all(
        np.float32(v) == x
        for v in (as_f64, np.nextafter(as_f64, np.inf), np.nextafter(as_f64, -np.inf))
    )
    if safe and np.float32(as_f64).tobytes() == x.tobytes():
        return short
    # repr of the f64 holding the f32 value exactly: parses back exactly.
    return repr(float(x))


class Raw(str):
    """A string written to JSON verbatim (a number token)."""


NON_FINITE = ("nan", "inf", "-inf")


def number(x: np.float32) -> str:
    """One f32 for ``dump``: a bare number, or a JSON string if non-finite."""
    tok = f32_token(x)
    return tok if tok in NON_FINITE else Raw(tok)


def tensor(value) -> dict:
    """Convert a numpy array, numpy scalar or TensorProto to a TENSOR."""
    if isinstance(value, TensorProto):
        check_dtype(value.data_type)
        arr = numpy_helper.to_array(value)
    elif isinstance(value, (list, tuple)):
        raise Skip("sequence input/output not supported")
    elif value is None:
        raise Skip("optional (None) input/output not supported")
    else:
        arr = np.asarray(value)
        if arr.dtype == object or arr.dtype.kind in "US":
            raise Skip("dtype string not supported")
        try:
            elem = onnx.helper.np_dtype_to_tensor_dtype(arr.dtype)
        except (KeyError, ValueError, TypeError) as err:
            raise Skip(f"dtype {arr.dtype.name} not supported") from err
        check_dtype(elem)
    if arr.size > MAX_ELEMENTS:
        raise Skip(f"tensor too large for the fixture ({arr.size} elements)")
    flat = arr.reshape(-1)
    if arr.dtype == np.float32:
        dtype = "float32"
        data = [number(x) for x in flat]
    elif arr.dtype == np.int64:
        dtype = "int64"
        data = [int(x) for x in flat]
    elif arr.dtype == np.bool_:
        dtype = "bool"
        data = [bool(x) for x in flat]
    else:  # pragma: no cover - check_dtype let an unexpected dtype through
        raise Skip(f"dtype {arr.dtype.name} not supported")
    out = {"dtype": dtype, "dims": [int(d) for d in arr.shape], "data": data}
    check_round_trip(out, arr)
    return out


def check_round_trip(t: dict, arr: np.ndarray) -> None:
    """Assert that reading the TENSOR back gives the array bit for bit."""
    np_type = {"float32": np.float32, "int64": np.int64, "bool": np.bool_}[t["dtype"]]
    if t["dtype"] == "float32":
        back = np.array([float(v) for v in t["data"]], dtype=np.float32)
    else:
        back = np.array(t["data"], dtype=np_type)
    back = back.reshape(t["dims"])
    same = back.shape == arr.shape and back.tobytes() == arr.astype(np_type).tobytes()
    if not same and t["dtype"] == "float32":
        # NaN payloads are not kept; any NaN reads back as the default NaN.
        a, b = back.reshape(-1), arr.reshape(-1)
        same = bool(np.all((a.view(np.uint32) == b.view(np.uint32)) | (np.isnan(a) & np.isnan(b))))
    assert same, "fixture tensor does not read back exactly"


def attribute(attr: AttributeProto) -> dict:
    name = attr.name
    kind = attr.type
    if attr.ref_attr_name:
        raise Skip(f"attribute {name} refers to a function attribute")
    if kind == AttributeProto.INT:
        return {"name": name, "int": int(attr.i)}
    if kind == AttributeProto.FLOAT:
        return {"name": name, "float": number(np.float32(attr.f))}
    if kind == AttributeProto.STRING:
        return {"name": name, "string": attr.s.decode("utf-8")}
    if kind == AttributeProto.INTS:
        return {"name": name, "ints": [int(v) for v in attr.ints]}
    if kind == AttributeProto.FLOATS:
        return {"name": name, "floats": [number(np.float32(v)) for v in attr.floats]}
    if kind == AttributeProto.STRINGS:
        return {"name": name, "strings": [s.decode("utf-8") for s in attr.strings]}
    if kind == AttributeProto.TENSOR:
        return {"name": name, "tensor": tensor(attr.t)}
    kind_name = AttributeProto.AttributeType.Name(kind).lower()
    raise Skip(f"attribute {name} of kind {kind_name} not supported")


def opset_of(model: onnx.ModelProto) -> int:
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return int(imp.version)
    raise Skip("model imports no ai.onnx opset")


def convert(case) -> list[dict]:
    """The fixture entries of one single-node case (one per data set)."""
    graph = case.model.graph
    node = graph.node[0]
    if node.domain not in ("", "ai.onnx"):
        raise Skip(f"node domain {node.domain!r} is not ai.onnx")
    if len(graph.initializer) or len(graph.sparse_initializer):
        raise Skip("graph has initializers")
    for vi in list(graph.input) + list(graph.output):
        which = vi.type.WhichOneof("value")
        if which == "sequence_type":
            raise Skip("sequence input/output not supported")
        if which == "optional_type":
            raise Skip("optional-typed input/output not supported")
        if which != "tensor_type":
            raise Skip(f"{which} input/output not supported")
        check_dtype(vi.type.tensor_type.elem_type)
    if node.op_type == "Cast":
        to = next((a.i for a in node.attribute if a.name == "to"), None)
        if to is None:
            raise Skip("Cast without a `to` attribute")
        check_dtype(to)
    attributes = [attribute(a) for a in node.attribute]

    graph_inputs = [vi.name for vi in graph.input]
    present = [n for n in node.input if n]
    if present != graph_inputs:
        raise Skip("graph inputs differ from the node's present inputs")
    graph_outputs = [vi.name for vi in graph.output]
    present_out = [n for n in node.output if n]
    if present_out != graph_outputs:
        raise Skip("graph outputs differ from the node's present outputs")

    entries = []
    many = len(case.data_sets) > 1
    for index, (ins, outs) in enumerate(case.data_sets):
        if len(ins) != len(graph_inputs):
            raise Skip(f"data set has {len(ins)} inputs, graph has {len(graph_inputs)}")
        if len(outs) != len(graph_outputs):
            raise Skip(f"data set has {len(outs)} outputs, graph has {len(graph_outputs)}")
        by_name = {name: tensor(v) for name, v in zip(graph_inputs, ins)}
        inputs = [by_name[n] if n else None for n in node.input]
        outputs = [tensor(v) for v in outs]
        entry = {
            "name": f"{case.name}_ds{index}" if many else case.name,
            "op_type": node.op_type,
            "opset": opset_of(case.model),
            "attributes": attributes,
            "inputs": inputs,
            "outputs": outputs,
        }
        # ONNX's runner compares with the case's own rtol/atol (1e-3/1e-7
        # unless the case says otherwise); carry only the exceptions.
        if case.rtol != DEFAULT_RTOL:
            entry["rtol"] = case.rtol
        if case.atol != DEFAULT_ATOL:
            entry["atol"] = case.atol
        entries.append(entry)
    return entries


def dump(value) -> str:
    """Compact JSON, with Raw strings written as bare number tokens."""
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{dump(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(dump(v) for v in value) + "]"
    return json.dumps(value)


def main() -> int:
    with warnings.catch_warnings():
        # Building ONNX's cast cases warns about overflows it means to test.
        warnings.simplefilter("ignore")
        all_cases = collect_testcases(None)
    by_name = {c.name: c for c in all_cases}

    def op_of(case) -> tuple[str, bool]:
        """The op a case tests, and whether it is an expanded function body."""
        base = EXPANDED.sub("", case.name)
        if base != case.name:
            twin = by_name.get(base)
            op = twin.model.graph.node[0].op_type if twin else "?"
            return op, True
        if len(case.model.graph.node) != 1:
            return "?", True
        return case.model.graph.node[0].op_type, False

    kept: list[dict] = []
    skipped: list[dict] = []
    for case in sorted(all_cases, key=lambda c: c.name):
        op, expanded = op_of(case)
        if op not in OPS:
            continue
        if expanded:
            reason = (
                "expanded function body (multi-node)"
                if len(case.model.graph.node) > 1
                else "expanded function body (single-node expansion)"
            )
            skipped.append({"name": case.name, "op_type": op, "reason": reason})
            continue
        try:
            kept.extend(convert(case))
        except Skip as why:
            skipped.append({"name": case.name, "op_type": op, "reason": str(why)})

    header = {
        "generator": "runtime/tests/onnx/gen_fixture.py",
        "onnx_version": onnx.__version__,
        "numpy_version": np.__version__,
    }
    lines = ["{" + ",".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in header.items()) + ","]
    lines.append('"cases":[')
    lines.append(",\n".join(dump(c) for c in kept))
    lines.append("],")
    lines.append('"skipped":[')
    lines.append(",\n".join(dump(s) for s in skipped))
    lines.append("]}")
    text = "\n".join(lines) + "\n"
    json.loads(text)  # the output must be valid JSON
    OUT.write_text(text)

    per_op = Counter(c["op_type"] for c in kept)
    per_reason = Counter(s["reason"] for s in skipped)
    print(f"wrote {OUT} ({len(text)} bytes): {len(kept)} cases, {len(skipped)} skipped")
    print(f"onnx {onnx.__version__}, numpy {np.__version__}")
    print("cases per op:")
    for op in OPS:
        print(f"  {op}: {per_op.get(op, 0)}")
    print("skipped per reason:")
    for reason, n in per_reason.most_common():
        print(f"  {n:4}  {reason}")
    # An op whose every ONNX case is skipped (today Cast and Equal: ONNX
    # only tests them on other dtypes) is worth a note; an op that ONNX no
    # longer tests at all means the op list or the package is wrong.
    only_skipped = [op for op in OPS if per_op.get(op, 0) == 0]
    seen = {s["op_type"] for s in skipped}
    absent = [op for op in only_skipped if op not in seen]
    if only_skipped:
        print(f"ops whose every case is skipped: {only_skipped}")
    if absent:
        print(f"ops with no ONNX node case at all: {absent}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
