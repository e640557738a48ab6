"""The run directory's files: written with orjson (rundir.json_line and the indented documents), read back as the
json module wrote them before (`json_module_reference`, the oracle), and continued by a resumed run."""

import json
import math

import numpy as np
from hypothesis import given, strategies as st

from backupsgd.rundir import RunWriter, _json_document, json_line


def json_module_reference(value):
    """What the run directory's writer gave before orjson: json.dumps of the value with NaN and infinities as null,
    numpy scalars as Python numbers, keys as strings, tuples as lists."""
    def clean(v):
        if isinstance(v, np.generic):
            return clean(v.item())
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {str(k): clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v
    return json.dumps(clean(value))

# what a record holds: Python and numpy numbers (non-finite ones included), strings, None, and nests of them
numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-2**63, max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True, width=32).map(np.float32),
    st.floats(allow_nan=True, allow_infinity=True).map(np.float64),
    st.integers(min_value=-2**31, max_value=2**31).map(np.int64),
    st.booleans().map(np.bool_),
)
leaves = st.one_of(numbers, st.text(max_size=8), st.none(), st.booleans())
values = st.recursive(leaves, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.lists(inner, max_size=4).map(tuple),
    st.dictionaries(st.one_of(st.text(max_size=6), st.integers(0, 99)), inner, max_size=4)), max_leaves=20)


@given(st.dictionaries(st.one_of(st.text(max_size=6), st.integers(0, 99)), values, max_size=6))
def test_a_record_reads_back_as_the_json_module_wrote_it(record):
    line = json_line(record)
    assert line.endswith(b"\n") and b"\n" not in line[:-1]
    assert json.loads(line) == json.loads(json_module_reference(record))
    document = _json_document(record)  # config.json and summary.json: the same values, indented
    assert document.endswith(b"\n") and json.loads(document) == json.loads(json_module_reference(record))


def test_a_float32_is_written_as_the_float64_it_is_so_a_replay_reads_the_same_bits():
    value = np.float32(0.1)
    assert json.loads(json_line({"noise_scale": value}))["noise_scale"] == float(value) != 0.1


def test_steps_and_evaluations_read_back_and_a_resumed_run_drops_the_steps_past_its_checkpoint(tmp_path):
    writer = RunWriter(tmp_path, {"seed": 1})
    for step in range(5):
        writer.step({"step": step, "loss": float("nan") if step == 2 else step / 10, "arrivals": {3: np.float64(0.5)}})
    writer.evaluation({"step": 4, "test_accuracy": np.float32(0.75)})
    writer.close()
    steps = [json.loads(line) for line in (tmp_path / "steps.jsonl").read_text().splitlines()]
    assert [s["loss"] for s in steps] == [0.0, 0.1, None, 0.3, 0.4]
    assert steps[0]["arrivals"] == {"3": 0.5}
    assert json.loads((tmp_path / "evals.jsonl").read_text()) == {"step": 4, "test_accuracy": 0.75}

    resumed = RunWriter(tmp_path, {"seed": 1}, resume_step=3)
    resumed.step({"step": 3, "loss": 0.35})
    resumed.close()
    steps = [json.loads(line) for line in (tmp_path / "steps.jsonl").read_text().splitlines()]
    assert [(s["step"], s["loss"]) for s in steps] == [(0, 0.0), (1, 0.1), (2, None), (3, 0.35)]
    assert resumed.last_eval == 0  # the evaluation at step 4 was past the checkpoint: dropped
    assert (tmp_path / "evals.jsonl").read_text() == ""
