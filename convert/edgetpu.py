"""Edge TPU: a compatibility report that needs no compiler, and the compiler when it is installed.

The report reads the .tflite flatbuffer and checks each op against the Edge TPU's published
requirements (coral.ai/docs/edgetpu/models-intro): int8/uint8 tensors, sizes fixed at compile time,
at most 3 dimensions larger than 1 (the innermost), a supported op with its constraints. The
compiler maps ops up to the first one it cannot run; that op and every op after it run on the CPU.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

COMPILER = "edgetpu_compiler"
COMPILER_HELP = ("edgetpu_compiler is not on PATH, so the model was prepared but not compiled. It runs on "
                 "x86-64 Debian/Ubuntu: add Coral's package repository and `apt-get install "
                 "edgetpu-compiler` (https://coral.ai/docs/edgetpu/compiler/), then run "
                 "`edgetpu_compiler -s -o DIR MODEL.edgetpu-ready.tflite` or convert again")

# op -> constraint checker name ("" when the op has no extra constraint we can check)
SUPPORTED = {
    "ADD": "", "AVERAGE_POOL_2D": "no_fused_activation", "CONCATENATION": "no_fused_activation",
    "CONV_2D": "same_dilation", "DEPTHWISE_CONV_2D": "same_dilation", "EXPAND_DIMS": "",
    "FULLY_CONNECTED": "", "L2_NORMALIZATION": "", "LOGISTIC": "", "MAXIMUM": "",
    "MAX_POOL_2D": "no_fused_activation", "MEAN": "", "MINIMUM": "", "MUL": "", "PACK": "", "PAD": "",
    "PRELU": "", "QUANTIZE": "", "REDUCE_MAX": "", "REDUCE_MIN": "", "RELU": "", "RELU6": "",
    "RELU_N1_TO_1": "", "RESHAPE": "", "RESIZE_BILINEAR": "", "RESIZE_NEAREST_NEIGHBOR": "", "RSQRT": "",
    "SLICE": "", "SOFTMAX": "", "SPACE_TO_DEPTH": "", "SPLIT": "", "SQUARED_DIFFERENCE": "",
    "SQUEEZE": "", "STRIDED_SLICE": "", "SUB": "", "SUM": "", "TANH": "", "TRANSPOSE": "",
    "TRANSPOSE_CONV": "",
}
QUANTIZED = (np.int8, np.uint8, np.int32)  # int32 for biases


@dataclass
class OpCheck:
    index: int
    op: str
    ok: bool
    reason: str = ""


@dataclass
class EdgeTPUReport:
    model: str
    ops: list[OpCheck] = field(default_factory=list)
    first_cpu_op: int | None = None  # index of the first op the Edge TPU cannot run
    compiled: bool = False
    compiler: dict = field(default_factory=dict)  # parsed compiler log when it ran
    note: str = ""

    @property
    def maps_fully(self) -> bool:
        return self.first_cpu_op is None

    def summary(self) -> dict:
        """The manifest's `details`. The op counts are this module's estimate (our op-by-op check), named
        apart from the compiler's own `ops_on_edgetpu`, which only `compiler` holds, when it ran."""
        d = asdict(self)
        d["ops"] = [asdict(o) for o in self.ops]
        d["maps_fully"] = self.maps_fully
        d["estimated_ops_on_edgetpu"] = len(self.ops) if self.maps_fully else self.first_cpu_op
        d["estimated_ops_on_cpu"] = 0 if self.maps_fully else len(self.ops) - self.first_cpu_op
        return d

    def text(self) -> str:
        lines = [f"Edge TPU compatibility of {self.model}"]
        for o in self.ops:
            where = "Edge TPU" if self.first_cpu_op is None or o.index < self.first_cpu_op else "CPU"
            lines.append(f"  {o.index:3d} {o.op:<22} {where:<8} {'' if o.ok else o.reason}")
        if self.maps_fully:
            lines.append(f"estimate (edgedigits' op check, not the compiler): all {len(self.ops)} ops can run "
                         f"on the Edge TPU")
        else:
            bad = self.ops[self.first_cpu_op]
            lines.append(f"estimate (edgedigits' op check, not the compiler): op {bad.index} ({bad.op}) cannot run "
                         f"on the Edge TPU: {bad.reason}; it and the {len(self.ops) - self.first_cpu_op - 1} ops "
                         f"after it would run on the CPU")
        if self.compiler:
            lines.append("compiler: " + ", ".join(f"{k} {v}" for k, v in self.compiler.items() if k != "op_status"))
            lines += [f"  {r['op']} x{r['count']}: {r['status']}" for r in self.compiler.get("op_status", [])
                      if r["status"] != "Mapped to Edge TPU"]
        if self.note:
            lines.append(self.note)
        return "\n".join(lines)


def _schema():
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:
        from tensorflow.lite.python import schema_py_generated as schema
    return schema


def check_model(path: Path) -> EdgeTPUReport:
    """Check every op of a .tflite file against the Edge TPU's requirements."""
    schema = _schema()
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(Path(path).read_bytes(), 0))
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    dtypes = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    report = EdgeTPUReport(Path(path).name)  # the file name: the folder it is written in is temporary
    if len(model.subgraphs) != 1:
        report.note = f"{len(model.subgraphs)} subgraphs: the Edge TPU compiler supports one"
    graph = model.subgraphs[0]
    for i, op in enumerate(graph.operators):
        code = model.operatorCodes[op.opcodeIndex]
        name = names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM")
        reasons = []
        if name not in SUPPORTED:
            reasons.append("op not supported by the Edge TPU")
        for j in [j for j in list(op.inputs) + list(op.outputs) if j >= 0]:
            t = graph.tensors[j]
            tname = (t.name.decode() if isinstance(t.name, bytes) else t.name).split(";")[0]
            dtype = dtypes.get(t.type, "?")
            if dtype not in ("INT8", "UINT8", "INT32"):
                reasons.append(f"tensor '{tname}' is {dtype}, not int8/uint8")
            if t.buffer and model.buffers[t.buffer].data is not None:
                continue  # constant weights: laid out by the compiler, no shape rule
            sig = [int(d) for d in (t.shapeSignature if t.shapeSignature is not None else t.shape)]
            if any(d < 0 for d in sig):
                reasons.append(f"tensor '{tname}' has a dynamic size {sig}")
            shape = [int(d) for d in (t.shape if t.shape is not None else [])]
            if len(shape) > 3 and any(d > 1 for d in shape[:-3]):
                reasons.append(f"tensor '{tname}' {shape}: only the 3 innermost dimensions may exceed 1")
        rule = SUPPORTED.get(name)
        opts = op.builtinOptions
        if rule == "no_fused_activation" and getattr(opts, "fusedActivationFunction", 0):
            reasons.append("fused activation not supported here")
        if rule == "same_dilation" and getattr(opts, "dilationWFactor", 1) != getattr(opts, "dilationHFactor", 1):
            reasons.append("dilation differs between x and y")
        report.ops.append(OpCheck(i, name, not reasons, "; ".join(dict.fromkeys(reasons))))
        if reasons and report.first_cpu_op is None:
            report.first_cpu_op = i
    return report


# The summary edgetpu_compiler (versions 15 and 16) prints with -s, after "Model compiled successfully";
# then, with -s, a table of "Operator  Count  Status" rows, one per op type and status.
COMPILER_FIGURES = {
    "ops_on_edgetpu": r"Number of operations that will run on Edge TPU:\s*(\d+)",
    "ops_on_cpu": r"Number of operations that will run on CPU:\s*(\d+)",
    "total_ops": r"Total number of operations:\s*(\d+)",
    "subgraphs": r"Number of Edge TPU subgraphs:\s*(\d+)",
    "on_chip_memory": r"On-chip memory used for caching model parameters:\s*([\d.]+\s*\w+)",
    "off_chip_memory": r"Off-chip memory used for streaming uncached model parameters:\s*([\d.]+\s*\w+)",
}
OP_ROW = re.compile(r"^([A-Z][A-Z0-9_]*)\s+(\d+)\s+(\S.*?)\s*$")


def parse_compiler_log(log: str) -> dict:
    """The figures edgetpu_compiler prints with -s, and its per-op table as `op_status` rows."""
    out = {}
    for key, pat in COMPILER_FIGURES.items():
        m = re.search(pat, log)
        if m:
            out[key] = int(m.group(1)) if m.group(1).isdigit() else m.group(1)
    table = re.split(r"^Operator\s+Count\s+Status\s*$", log, maxsplit=1, flags=re.M)
    rows = [OP_ROW.match(line) for line in table[1].splitlines()] if len(table) == 2 else []
    if any(rows):
        out["op_status"] = [{"op": r[1], "count": int(r[2]), "status": r[3]} for r in rows if r]
    return out


def report(ready: Path, out: Path) -> EdgeTPUReport:
    """Check `ready` (the batch-1 int8 model); compile it to `out` when the compiler is installed."""
    rep = check_model(ready)
    exe = shutil.which(COMPILER)
    if not exe:
        rep.note = COMPILER_HELP
        return rep
    proc = subprocess.run([exe, "-s", "-o", str(out.parent), str(ready)], capture_output=True, text=True)
    rep.compiler = parse_compiler_log(proc.stdout + proc.stderr)
    produced = out.parent / (ready.stem + "_edgetpu.tflite")
    if proc.returncode != 0 or not produced.is_file():
        rep.note = f"edgetpu_compiler failed (exit {proc.returncode}): {(proc.stderr or proc.stdout).strip()[-400:]}"
        return rep
    produced.replace(out)
    rep.compiled = True
    return rep
