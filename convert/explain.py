"""Where int8 loses accuracy: per-layer error between the float and the quantized model.

TensorFlow's QuantizationDebugger runs the float and the int8 model side by side on the calibration
digits and records, for each quantized tensor, the error of the quantized value. Dividing the RMSE
by the tensor's quantization scale makes layers comparable: about 0.29 (= 1/sqrt(12)) is the
rounding error every int8 tensor has; much more means that layer's range was calibrated badly.
"""

from __future__ import annotations

import csv
import io
import math
import warnings
from pathlib import Path


def explain_int8(ctx, out_csv: Path, top: int = 10) -> str:
    import tensorflow as tf

    from edgedigits.atomic import atomic_write
    from edgedigits.convert.export import int8_converter
    from edgedigits.quiet import filtered_stderr

    conv = int8_converter(ctx)
    # the debugger converts twice and runs tf.lite.Interpreter, whose deprecation warning is TensorFlow's
    with filtered_stderr(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"(?s).*tf\.lite\.Interpreter is deprecated")
        debugger = tf.lite.experimental.QuantizationDebugger(converter=conv, debug_dataset=ctx.representative())
        debugger.run()
    buf = io.StringIO()
    debugger.layer_statistics_dump(buf)
    rows = list(csv.DictReader(io.StringIO(buf.getvalue())))
    for r in rows:
        scale = float(r.get("scale") or 0)
        rmse = math.sqrt(float(r.get("mean_squared_error") or 0))
        r["rmse_over_scale"] = rmse / scale if scale else float("nan")
    atomic_write(out_csv, lambda tmp: _write_csv(tmp, rows))
    worst = sorted(rows, key=lambda r: -(r["rmse_over_scale"] if r["rmse_over_scale"] == r["rmse_over_scale"] else 0))
    lines = [f"per-layer int8 error (RMSE / scale; about 0.29 is plain rounding), worst {min(top, len(rows))} "
             f"of {len(rows)}; all in {out_csv}:",
             f"  {'rmse/scale':>10} {'max abs err':>11}  tensor"]
    for r in worst[:top]:
        lines.append(f"  {r['rmse_over_scale']:>10.3f} {float(r.get('max_abs_error') or 0):>11.4f}  "
                     f"{r.get('op_name', '')} {r.get('tensor_name', '').split(';')[0]}")
    return "\n".join(lines)


def _write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        if rows:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
