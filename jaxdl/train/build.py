"""A fresh train state from a run's config: what the pipeline trains, and what a saved run is restored into."""

from __future__ import annotations

import flax.linen as nn
import ml_collections
import optax

from jaxdl import data as data_lib
from jaxdl.errors import InputError
from jaxdl.models import build_model
from jaxdl.models.augment import augmenter
from jaxdl.train import sweep as sweep_lib
from jaxdl.train.losses import MetricsFn, metrics_for_task
from jaxdl.train.optimizer import build_optimizer
from jaxdl.train.state import TrainState, create_state


def metrics_for(config: ml_collections.ConfigDict, info: data_lib.DataInfo, per_step: bool) -> MetricsFn:
    """The task's metrics function; per step with the model's padding mask for a per-step model."""
    return metrics_for_task(info.task, per_step=per_step, mask_padding=bool(config.model.get("mask_padding", False)))


def build_state(config: ml_collections.ConfigDict, info: data_lib.DataInfo, steps_per_epoch: int,
                model: nn.Module | None = None, members: list[sweep_lib.Member] | None = None,
                *, per_step: bool = False, tx: optax.GradientTransformation | None = None,
                metrics_fn: MetricsFn | None = None) -> TrainState:
    """Model and optimizer from the config, initialised from `config.seed`; a stack for sweep `members`.
    `per_step`: the model predicts every step of a sequence (see `jaxdl.run.pipeline.check_model_fits_data`).
    `model`, `tx`, `metrics_fn`: the caller's own, instead of those the config describes."""
    model = model if model is not None else build_model(config.model, info)
    if tx is None:
        tx = build_optimizer(config.optimizer, steps_per_epoch=steps_per_epoch, epochs=config.train.epochs,
                             ema=config.train.get("ema", 0.0))
    metrics_fn = metrics_fn if metrics_fn is not None else metrics_for(config, info, per_step)
    if members:
        state = sweep_lib.create_states(model, tx, info.input_shape, members, metrics_fn)
    else:
        state = create_state(model, tx, info.input_shape, config.seed, metrics_fn)
    return with_step_options(state, config.train, info.input_shape)


def with_step_options(state: TrainState, train: ml_collections.ConfigDict, input_shape: tuple[int, ...]) -> TrainState:
    """`state` with what the `train` section asks of each step: `accumulate_steps` and `augment` (static fields)."""
    accumulate = train.get("accumulate_steps", 1)
    if accumulate > 1 and state.loss_scale is not None:
        raise InputError("config.train.accumulate_steps", "gradient accumulation is not available for a float16 "
                         "model (its loss scale)", got=accumulate, expected="1, or model.dtype float32 or bfloat16")
    return state.replace(accumulate_steps=accumulate, augment=augmenter(train.get("augment"), tuple(input_shape)))
