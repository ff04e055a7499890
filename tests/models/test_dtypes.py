"""`model.dtype`: every family computes in the dtype it is given, with float32 parameters, batch-norm
statistics and outputs. Traced only (jax.make_jaxpr), never compiled."""

from __future__ import annotations

import os

import jax
import jax.extend.core as jax_core
import jax.numpy as jnp
import ml_collections
import pytest
from conftest import REPO

from jaxdl import InputError
from jaxdl.data import DataInfo
from jaxdl.models import build_model
from jaxdl.run.config import load_config

IMAGES = DataInfo(name="digits", task="classification", input_shape=(8, 8, 1), num_classes=10)
SEQUENCES = DataInfo(name="seq", task="classification", input_shape=(6, 5), num_classes=4)
TOKENS = DataInfo(name="text", task="classification", input_shape=(7,), num_classes=2)
PER_STEP = DataInfo(name="adding", task="regression", input_shape=(6, 2), target_shape=(6,))
FRAMES = DataInfo(name="digit_sequences", task="classification", input_shape=(3, 8, 8, 1), num_classes=28)
POINTS = DataInfo(name="circle", task="classification", input_shape=(2,), num_classes=2)
RGB = DataInfo(name="photos", task="classification", input_shape=(32, 32, 3), num_classes=5)

# (id, config file[:variant], model overrides, data)
FAMILIES = [
    ("mlp", "mlp.py", {}, IMAGES),
    ("cnn", "cnn.py", {}, IMAGES),
    ("resnet", "cnn.py:cifar10", {"channels": (4, 8), "blocks_per_stage": 1}, IMAGES),
    ("resnet18", "cnn.py:resnet18", {}, RGB),
    ("rnn_lstm_bidirectional", "rnn.py", {"hidden_size": 8, "bidirectional": True, "dense_sizes": (4,)}, SEQUENCES),
    ("rnn_gru_max", "rnn.py", {"cell": "gru", "hidden_size": 8, "readout": "max", "mask_padding": True}, SEQUENCES),
    ("rnn_simple_mean", "rnn.py", {"cell": "simple", "hidden_size": 8, "readout": "mean"}, SEQUENCES),
    ("rnn_tokens", "rnn.py", {"cell": "gru", "hidden_size": 8, "vocab_size": 20, "embed_size": 4}, TOKENS),
    ("rnn_per_step", "rnn.py", {"cell": "simple", "hidden_size": 8, "readout": "per_step"}, PER_STEP),
    ("hybrid", "hybrid.py", {}, FRAMES),
    ("playground", "playground.py", {}, POINTS),
]
MATRIX_PRODUCTS = ("dot_general", "conv_general_dilated")


def model_config(spec: str, overrides: dict, dtype: str | None) -> ml_collections.ConfigDict:
    model = load_config(os.path.join(REPO, "configs", spec)).model
    with model.unlocked():
        model.update(overrides)
        if dtype is None:
            del model["dtype"]  # a config saved before model.dtype existed
        else:
            model.dtype = dtype
    return model


def equations(jaxpr):
    """Every equation of `jaxpr` and of the jaxprs nested in it (scans, conds, custom derivatives)."""
    for eqn in jaxpr.eqns:
        yield eqn
        for param in eqn.params.values():
            for sub in param if isinstance(param, (list, tuple)) else (param,):
                if isinstance(sub, jax_core.ClosedJaxpr):
                    yield from equations(sub.jaxpr)
                elif isinstance(sub, jax_core.Jaxpr):
                    yield from equations(sub)


def training_call(config: ml_collections.ConfigDict, info: DataInfo):
    """(variables' dtypes, the jaxpr of a training-mode call, its outputs' abstract values)."""
    model = build_model(config, info)
    x = jnp.zeros((2, *info.input_shape), jnp.float32)
    keys = {"params": jax.random.PRNGKey(0), "dropout": jax.random.PRNGKey(1)}
    variables = jax.eval_shape(lambda: model.init(keys, x, train=False))

    def call(variables, x):
        return model.apply(variables, x, train=True, rngs={"dropout": keys["dropout"]}, mutable=["batch_stats"])

    closed, outputs = jax.make_jaxpr(call, return_shape=True)(variables, x)
    return variables, closed.jaxpr, outputs


@pytest.mark.parametrize(("spec", "overrides", "info"), [case[1:] for case in FAMILIES],
                         ids=[case[0] for case in FAMILIES])
def test_bfloat16_computes_in_bfloat16_and_keeps_float32_state_and_outputs(spec, overrides, info):
    variables, jaxpr, (outputs, updates) = training_call(model_config(spec, overrides, "bfloat16"), info)
    assert {leaf.dtype for leaf in jax.tree.leaves(variables)} == {jnp.dtype(jnp.float32)}
    products = [eqn for eqn in equations(jaxpr) if eqn.primitive.name in MATRIX_PRODUCTS]
    assert products
    operand_dtypes = {var.aval.dtype for eqn in products for var in eqn.invars}
    assert operand_dtypes == {jnp.dtype(jnp.bfloat16)}, [str(eqn) for eqn in products]
    assert outputs.dtype == jnp.float32
    assert {leaf.dtype for leaf in jax.tree.leaves(updates)} <= {jnp.dtype(jnp.float32)}  # batch-norm statistics


@pytest.mark.parametrize(("spec", "overrides", "info"), [case[1:] for case in FAMILIES],
                         ids=[case[0] for case in FAMILIES])
def test_float32_and_a_config_without_dtype_compute_in_float32_only(spec, overrides, info):
    for dtype in ("float32", None):
        _, jaxpr, (outputs, _) = training_call(model_config(spec, overrides, dtype), info)
        dtypes = {var.aval.dtype for eqn in equations(jaxpr) for var in (*eqn.invars, *eqn.outvars)
                  if hasattr(var.aval, "dtype")}
        assert not dtypes & {jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16)}
        assert outputs.dtype == jnp.float32


@pytest.mark.parametrize("family", ["mlp", "cnn"])
def test_float16_computes_in_float16(family):
    spec, overrides, info = next(case[1:] for case in FAMILIES if case[0] == family)
    variables, jaxpr, (outputs, _) = training_call(model_config(spec, overrides, "float16"), info)
    products = [eqn for eqn in equations(jaxpr) if eqn.primitive.name in MATRIX_PRODUCTS]
    assert {var.aval.dtype for eqn in products for var in eqn.invars} == {jnp.dtype(jnp.float16)}
    assert {leaf.dtype for leaf in jax.tree.leaves(variables)} == {jnp.dtype(jnp.float32)}
    assert outputs.dtype == jnp.float32


def test_an_unknown_dtype_names_the_config_key():
    with pytest.raises(InputError, match=r"config\.model\.dtype: unknown name .*got 'float64'.*bfloat16, float16"):
        build_model(model_config("mlp.py", {}, "float64"), IMAGES)
