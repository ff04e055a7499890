"""The input door (`jaxdl.deploy.input_check`): new inputs and labels of any shape, dtype and value
either come out in the run's stored form or are refused with an InputError, never another error.

The properties call the checks and `read_inputs` in-process on generated arrays and files; the
issue's examples run through `load_run(...)(x)` and `python -m jaxdl.predict` / `jaxdl.drift`.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
from conftest import run_cli
from deploy_runs import finished_run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import jaxdl
from jaxdl.data import DataInfo
from jaxdl.deploy.input_check import FLOAT32_MAX, bad_rows, check_inputs, check_labels
from jaxdl.deploy.inputs import read_inputs
from jaxdl.errors import InputError

IMAGES = DataInfo("digits", "classification", (3, 2, 1), 4, (), ("a", "b", "c", "d"),
                  stored={"kind": "image", "dtype": "uint8"})
FLOATS = DataInfo("arrays", "regression", (3,), 0, (), stored={"kind": "array", "dtype": "float32"})
TABLE = DataInfo("table", "regression", (3,), 0, (2,), stored={"kind": "table", "dtype": "float32"})
INFOS = st.sampled_from([IMAGES, FLOATS, TABLE])
ODD_FLOATS = st.sampled_from([np.nan, np.inf, -np.inf, 1e39, -3e38, 1e300, 255.0, 256.0, -1.0, 0.5, 0.0, 7.0])
DTYPES = st.sampled_from([np.uint8, np.int8, np.int64, np.uint64, np.float16, np.float32, np.float64, np.bool_,
                          np.complex64, np.str_, np.object_])
# JAXDL_DOOR_EXAMPLES=500 explores further (a slow run); CI keeps 50 per property.
SETTINGS = settings(max_examples=int(os.environ.get("JAXDL_DOOR_EXAMPLES", "50")), deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@st.composite
def arrays(draw, near: tuple[int, ...] = (3,)):
    """Arrays of odd shapes (0-d, no rows, the right shape, extra or missing axes) and dtypes, with
    NaN, inf, values beyond float32 or a pixel's range where the dtype holds them."""
    shape = draw(st.sampled_from([(), (0, *near), (2, *near), (1, *near), (2, *near, 1), near, (2, 5), (4, 3, 2, 1)]))
    dtype = draw(DTYPES)
    if dtype in (np.str_, np.object_):
        return np.full(shape, draw(st.sampled_from(["a", "1", ""])), dtype=dtype)
    if dtype == np.complex64:
        return np.ones(shape, dtype)
    array = draw(hnp.arrays(np.float64, shape, elements=ODD_FLOATS))
    with np.errstate(invalid="ignore", over="ignore"):
        return array.astype(dtype) if np.dtype(dtype).kind == "f" else np.nan_to_num(array).clip(0, 200).astype(dtype)


@SETTINGS
@given(info=INFOS, data=st.data())
def test_any_array_is_taken_in_the_stored_form_or_refused(info, data):
    x = data.draw(arrays(near=info.input_shape))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # never a RuntimeWarning on the way
        try:
            out = check_inputs(x, info)
        except InputError as error:
            assert error.where == "x" and error.what
            return
    assert out.shape[1:] == tuple(info.input_shape) and len(out) >= 1
    assert out.dtype == (np.uint8 if info is IMAGES else np.float32)
    values = out[~np.isnan(out)] if info is TABLE else out  # a table's missing cell is NaN
    assert np.isfinite(values).all()
    if info is IMAGES:
        assert np.array_equal(out, np.asarray(x).astype(np.uint8))  # refused rather than wrapped around


@SETTINGS
@given(info=INFOS, rows=st.integers(1, 6), bad=st.sets(st.integers(0, 5)), value=ODD_FLOATS)
def test_the_refused_rows_are_exactly_the_bad_ones(info, rows, bad, value):
    x = np.full((rows, *info.input_shape), 3.0)
    bad = sorted(i for i in bad if i < rows)
    for i in bad:
        x.reshape(rows, -1)[i, -1] = value
    if info is IMAGES:
        expected_bad = bad if not (0 <= value <= 255 and float(value).is_integer()) else []
    else:
        expected_bad = bad if not (np.isfinite(value) and abs(value) <= FLOAT32_MAX or (info is TABLE
                                                                                   and np.isnan(value))) else []
    assert bad_rows(x, info).tolist() == expected_bad
    if expected_bad:
        with pytest.raises(InputError, match=f"row {expected_bad[0]}"):
            check_inputs(x, info)


@SETTINGS
@given(info=INFOS, y=arrays(near=()), n=st.integers(1, 3))
def test_any_labels_are_taken_or_refused(info, y, n):
    info = IMAGES if info is TABLE and n == 3 else info
    try:
        out = check_labels(y, info, n)
    except InputError as error:
        assert error.where == "y"
        return
    if info.task == "classification":
        assert out.shape == (n,) and out.dtype == np.int64 and ((out >= 0) & (out < info.num_classes)).all()
    else:
        assert out.shape == (n, *info.target_shape) and np.isfinite(out).all()


@SETTINGS
@given(x=arrays(near=(3, 2, 1)), y=st.none() | arrays(near=()), kind=st.sampled_from(["npy", "npz"]))
def test_any_array_file_is_read_or_refused(tmp_path, x, y, kind):
    path = tmp_path / f"inputs.{kind}"
    if x.dtype == object or (y is not None and y.dtype == object):
        return  # numpy writes these only with pickle, which the door never loads (tested in test_predict)
    if kind == "npy":
        np.save(path, x)
    else:
        np.savez(path, x=x, **({"y": y} if y is not None else {}))
    try:
        inputs = read_inputs([str(path)], IMAGES)
    except InputError as error:
        assert error.where.startswith("inputs")
        return
    assert inputs.x.dtype == np.uint8 and inputs.x.shape[1:] == IMAGES.input_shape
    assert len(inputs.names) == len(inputs.x) >= 1
    assert inputs.labels is None or inputs.labels.shape == (len(inputs.x),)


# --- the examples ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mlp_run(tmp_path_factory):
    return finished_run("mlp", tmp_path_factory)


@pytest.fixture(scope="module")
def regression_run(tmp_path_factory):
    return finished_run("regression", tmp_path_factory)


def one_error_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.mark.slow
def test_predict_refuses_scalars_empty_inputs_and_string_labels(mlp_run, tmp_path):
    x = np.zeros((4, 8, 8, 1), np.uint8)
    np.save(tmp_path / "scalar.npy", np.array(3.0))
    np.save(tmp_path / "no_rows.npy", np.zeros((0, 8, 8, 1), np.uint8))
    np.savez(tmp_path / "scalar_y.npz", x=x, y=np.array(3))
    np.savez(tmp_path / "string_y.npz", x=x, y=np.array(["a", "b", "c", "d"]))
    expected = {"scalar.npy": "wrong input shape (got ()", "no_rows.npy": "no inputs (got (0, 8, 8, 1)",
                "scalar_y.npz": "y: labels are not one class index per input (got ()",
                "string_y.npz": "y: not numeric"}
    predictor = jaxdl.load_run(mlp_run)
    for name, fragment in expected.items():
        with pytest.raises(InputError) as caught:
            read_inputs([str(tmp_path / name)], predictor.info)
        assert str(caught.value).startswith(f"inputs: {tmp_path / name}: ") and fragment in str(caught.value)
    for x in (np.array(3, np.uint8), np.zeros((0, 8, 8, 1), np.uint8), np.array("pixels")):
        with pytest.raises(InputError, match="^x: "):
            predictor(x)
    line = one_error_line(run_cli("jaxdl.predict", "--workdir", mlp_run, str(tmp_path / "scalar.npy")))
    assert line.startswith(f"error: inputs: {tmp_path / 'scalar.npy'}: wrong input shape (got ()")


@pytest.mark.slow
def test_a_regression_run_refuses_labels_of_another_shape(regression_run, tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 4)).astype(np.float32)
    y = x @ np.array([1.0, 2.0, -1.0, 0.5], np.float32)
    np.savez(tmp_path / "three_columns.npz", x=x, y=np.stack([y, y + 1, y + 2], axis=1))
    line = one_error_line(run_cli("jaxdl.predict", "--workdir", regression_run, str(tmp_path / "three_columns.npz")))
    assert "y: labels of the wrong shape (got (40, 3), expected 1 finite number per input, shape (40,))" in line
    predictor = jaxdl.load_run(regression_run)
    np.savez(tmp_path / "one_column.npz", x=x, y=y[:, None])  # (N, 1) for one output is the same labels
    result = run_cli("jaxdl.predict", "--workdir", regression_run, str(tmp_path / "one_column.npz"))
    mse = float(np.mean((predictor(x).reshape(-1) - y) ** 2))
    assert result.returncode == 0 and f"mean squared error {mse:.6g} over 40 inputs" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("value", [np.nan, np.inf, 1e39])
def test_a_float_run_refuses_a_non_finite_row_everywhere(regression_run, tmp_path, value):
    x = np.random.default_rng(2).normal(size=(40, 4))
    x[5, 1] = value
    predictor = jaxdl.load_run(regression_run)
    with pytest.raises(InputError, match=r"x: row 5 of 40 is not finite"):
        predictor(x)
    with pytest.raises(InputError, match=r"x: row 5 of 40 is not finite"):
        jaxdl.check_drift(predictor, x)
    if not np.isnan(value):  # the command line once, for NaN (one subprocess is enough)
        return
    np.save(tmp_path / "x.npy", x)
    line = one_error_line(run_cli("jaxdl.drift", "--workdir", regression_run, str(tmp_path / "x.npy"),
                                  "--output", str(tmp_path / "drift")))
    assert f"error: inputs: {tmp_path / 'x.npy'}: row 5 of 40 is not finite" in line
    assert not (tmp_path / "drift").exists()
