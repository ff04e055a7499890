"""The pure functions that advance and evaluate a train state: a step, an epoch, an evaluation pass.

Everything here is a pure function of pytrees. Nothing is jitted where it is defined: the caller
decides on `jax.jit`, donation and shardings (see `jaxdl.train.fit`).

Shapes: a training dataset is {"x": (N, *input_shape), "y": (N, ...)}; a batch is the same with
N = batch size; evaluation batches carry a "mask" (B,) of 1.0 for real and 0.0 for padding rows.
How `fit` runs these steps, K per compiled call, in memory or streamed: `jaxdl.train.calls`.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxdl.train import loss_scale as loss_scale_lib
from jaxdl.train import nonfinite
from jaxdl.train.losses import batch_metrics
from jaxdl.train.state import TrainState, apply_model, stream_keys

PyTree = Any

# float32 value of each uint8 pixel, computed as `jaxdl.data.loader.to_arrays` computes it on the host
# (x / 255.0); the two pipelines must feed the model the same bits.
PIXEL_VALUES = np.arange(256, dtype=np.uint8).astype(np.float32) / 255.0
# 1/255 as a head of 12 significant bits plus a tail: p * HEAD is exact for p <= 255, so p * HEAD +
# p * TAIL has one rounding and gives PIXEL_VALUES[p] for every p (an FMA changes nothing; checked for
# all 256 in tests/train/test_device_inputs.py). Not a division: XLA turns a division by a constant
# into a multiplication by its reciprocal, which rounds differently for some pixels; not a lookup of
# PIXEL_VALUES: a gather per pixel cost XLA:CPU about 20% of a small MLP's step on 64x64x3 images.
PIXEL_HEAD = np.float32(np.uint32(np.float32(1 / 255).view(np.uint32) & 0xFFFFF000).view(np.float32))
PIXEL_TAIL = np.float32(1 / 255 - np.float64(PIXEL_HEAD))


def train_step(state: TrainState, batch: dict[str, jax.Array], *,
               skip_nonfinite: bool = False) -> tuple[TrainState, dict[str, jax.Array]]:
    """One gradient step on `batch` -> (new state, batch-mean metrics incl. "loss").

    The metrics also hold "nonfinite": () bool, the loss or a gradient was NaN or infinite. With
    `skip_nonfinite`, such a step changes nothing but the step counter (see jaxdl.train.nonfinite).
    A state with a `loss_scale` (a float16 model) scales the loss (`jaxdl.train.loss_scale`): its
    metrics add "overflow", () bool, the scaled gradients overflowed, so the step was skipped (the
    step counter and the scale change) and, unlike "nonfinite", it is no sign of divergence.
    """
    dropout_key = jax.random.fold_in(stream_keys(state)[0], state.step)
    if state.augment is not None:  # its own stream, so dropout draws the same bits with or without it
        batch = state.augment(jax.random.fold_in(dropout_key, AUGMENT_STREAM), batch)

    def loss_fn(params):
        outputs, batch_stats = apply_model(state, params, batch["x"], train=True, dropout_key=dropout_key)
        metrics = mixed_metrics(state.metrics_fn, outputs, batch)
        return jnp.mean(metrics["loss"]), (metrics, batch_stats)

    extra, advanced = {}, {"step": state.step + 1}
    if state.loss_scale is None:
        if state.accumulate_steps > 1:
            (loss, (metrics, batch_stats)), grads = accumulated_gradients(state, batch, dropout_key)
        else:
            (loss, (metrics, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        finite = nonfinite.all_finite((loss, grads))
        update = finite if skip_nonfinite else None
    else:
        scaled = loss_scale_lib.value_and_grad(state.loss_scale, loss_fn, state.params)
        (metrics, batch_stats), grads, finite = scaled.aux, scaled.grads, scaled.finite
        update = ~scaled.overflow & finite if skip_nonfinite else ~scaled.overflow
        advanced["loss_scale"] = scaled.loss_scale
        extra["overflow"] = scaled.overflow

    def apply(_):
        updates, opt_state = state.tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return state.replace(**advanced, params=params, opt_state=opt_state, batch_stats=batch_stats)

    if update is not None:  # a cond, not a select over the whole state: measured as fast as no guard on CPU
        new_state = jax.lax.cond(update, apply, lambda _: state.replace(**advanced), None)
    else:
        new_state = apply(None)
    return new_state, {**{name: jnp.mean(value) for name, value in metrics.items()}, "nonfinite": ~finite, **extra}


# Folded into a step's dropout key to make its augmentation key (`train.augment`).
AUGMENT_STREAM = 0x61756720


def mixed_metrics(metrics_fn, outputs: jax.Array, batch: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """Per-example metrics; for a batch mixed by mixup or cutmix (`jaxdl.models.augment`: "mix" (B,), the
    weight of the example's own label, and "y_mix", its partner's label) the weighted sum of the
    metrics against both labels, which for cross-entropy is the loss against the mixed soft label."""
    metrics = batch_metrics(metrics_fn, outputs, batch)
    if "mix" not in batch:
        return metrics
    partner = batch_metrics(metrics_fn, outputs, {**batch, "y": batch["y_mix"]})
    weight = batch["mix"]
    return {name: weight * value + (1.0 - weight) * partner[name] for name, value in metrics.items()}


def accumulated_gradients(state: TrainState, batch: dict[str, jax.Array], dropout_key: jax.Array):
    """`value_and_grad` of the batch-mean loss, computed over `state.accumulate_steps` micro-batches in turn
    (a `lax.scan`: the activations of one micro-batch at a time) -> ((loss, (per-example metrics (B,),
    batch_stats)), grads). Micro-batch i is rows [i * B/k, (i + 1) * B/k) and draws dropout from
    `dropout_key` folded with i; batch-norm statistics are updated micro-batch after micro-batch."""
    k = state.accumulate_steps

    def loss_fn(params, micro, key, batch_stats):
        outputs, new_stats = apply_model(state.replace(batch_stats=batch_stats), params, micro["x"], train=True,
                                         dropout_key=key)
        metrics = mixed_metrics(state.metrics_fn, outputs, micro)
        return jnp.mean(metrics["loss"]), (metrics, new_stats)

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    def body(carry, inputs):
        grad_sum, loss_sum, stats = carry
        index, micro = inputs
        (loss, (metrics, stats)), grads = grad_fn(state.params, micro, jax.random.fold_in(dropout_key, index), stats)
        return (jax.tree.map(jnp.add, grad_sum, grads), loss_sum + loss, stats), metrics

    micro = jax.tree.map(lambda a: a.reshape(k, a.shape[0] // k, *a.shape[1:]), batch)
    start = (jax.tree.map(jnp.zeros_like, state.params), jnp.zeros((), jnp.float32), state.batch_stats)
    (grads, loss, stats), metrics = jax.lax.scan(body, start, (jnp.arange(k), micro))
    metrics = jax.tree.map(lambda m: m.reshape(-1, *m.shape[2:]), metrics)
    return (loss / k, (metrics, stats)), jax.tree.map(lambda g: g / k, grads)


def masked_sum(value: jax.Array, mask: jax.Array) -> jax.Array:
    """Sum of `value` over the rows where `mask` is nonzero; mask (B,) or (B, T), value of that shape.

    A select, not `value * mask`: a padding row can compute NaN or infinity (an all-zero input
    through a log or a division), and NaN * 0 is NaN, which would poison the sum.
    """
    return jnp.sum(jnp.where(mask > 0, value, 0))


def eval_step(state: TrainState, batch: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """Metric sums over the real (mask = 1) rows of `batch`, plus "count"."""
    return eval_step_outputs(state, batch)[0]


def eval_step_outputs(state: TrainState, batch: dict[str, jax.Array]) -> tuple[dict[str, jax.Array], jax.Array]:
    """`eval_step` and the model's outputs (B, ...) float32 (padding rows too)."""
    outputs, _ = apply_model(state, state.params, batch["x"], train=False)
    metrics = batch_metrics(state.metrics_fn, outputs, batch)
    sums = {name: masked_sum(value, batch["mask"]) for name, value in metrics.items()}
    sums["count"] = jnp.sum(batch["mask"])
    return sums, outputs.astype(jnp.float32)


def constrain(batch: PyTree, sharding: jax.sharding.Sharding | None) -> PyTree:
    """Pins the batch dimension of every array in `batch` to `sharding` (None: leave it to XLA)."""
    if sharding is None:
        return batch
    return jax.tree.map(lambda a: jax.lax.with_sharding_constraint(a, sharding), batch)


def permutation(order_key: jax.Array, epoch: jax.Array | int, num_examples: int) -> jax.Array:
    """(num_examples,) the order of epoch `epoch` (0-based): a function of the run's data-order key
    (`stream_keys(state)[1]`) and the epoch only, the same bits on every backend."""
    return jax.random.permutation(jax.random.fold_in(order_key, epoch), num_examples)


def epoch_order(state: TrainState, num_examples: int, batch_size: int) -> jax.Array:
    """(steps, batch_size) example indices for the state's current epoch; the tail is dropped.

    The permutation's key is the run's data-order key folded with the epoch number, which is
    derived from the step, so a resumed run sees the same order as an uninterrupted one.
    """
    steps = num_examples // batch_size
    epoch = state.step // steps
    return permutation(stream_keys(state)[1], epoch, num_examples)[: steps * batch_size].reshape(steps, batch_size)


def host_epoch_order(order_key: np.ndarray, epoch: int, num_examples: int, batch_size: int) -> np.ndarray:
    """`epoch_order` computed on the host's CPU, for the streamed pipeline: (steps * batch_size,)
    example indices of epoch `epoch` (0-based), the tail dropped. `order_key`: `stream_keys(state)[1]`."""
    steps = num_examples // batch_size
    with jax.default_device(jax.local_devices(backend="cpu")[0]):  # this process's own: any process can draw it
        order = np.asarray(permutation(jnp.asarray(order_key), epoch, num_examples))
    return order[: steps * batch_size]


def device_inputs(x: jax.Array) -> jax.Array:
    """Inputs as stored (uint8 images) -> the model's float32, bit for bit what the memory pipeline
    computes on the host (`jaxdl.data.loader.to_arrays`); other dtypes are cast."""
    if x.dtype == jnp.uint8:
        pixels = x.astype(jnp.float32)
        return pixels * PIXEL_HEAD + pixels * PIXEL_TAIL
    return x.astype(jnp.float32)


def train_steps(state: TrainState, data: dict[str, jax.Array], batch_size: int,
                batch_sharding: jax.sharding.Sharding | None = None, *,
                skip_nonfinite: bool = False) -> tuple[TrainState, dict[str, jax.Array]]:
    """One pass over `data` (on device) as a single `lax.scan` -> (state, per-step metrics (steps,))."""
    order = epoch_order(state, data["x"].shape[0], batch_size)

    def body(state, index):
        batch = constrain(jax.tree.map(lambda a: a[index], data), batch_sharding)
        return train_step(state, batch, skip_nonfinite=skip_nonfinite)

    return jax.lax.scan(body, state, order)


def train_epoch(state: TrainState, data: dict[str, jax.Array], batch_size: int,
                batch_sharding: jax.sharding.Sharding | None = None, *,
                skip_nonfinite: bool = False) -> tuple[TrainState, dict[str, jax.Array]]:
    """One pass over `data` (on device) as a single `lax.scan` -> (state, epoch metrics).

    The epoch metrics are means over the steps whose loss and gradients were finite (NaN if none
    was), plus "nonfinite": (steps,) bool, which steps were not (see `train_step`), and for a state
    with a loss scale, "overflow_steps" and "loss_scale" (see `epoch_means`).
    """
    state, metrics = train_steps(state, data, batch_size, batch_sharding, skip_nonfinite=skip_nonfinite)
    return state, epoch_means(metrics, state)


def epoch_means(metrics: dict[str, jax.Array], state: TrainState) -> dict[str, jax.Array]:
    """(steps,) metrics of `train_step`s -> means over the steps that were finite (NaN if none was),
    "nonfinite" (steps,) bool as it is, and with a loss scale, "overflow_steps" () int32 (the steps
    skipped for an overflow: their losses count in the means) and "loss_scale" (), `state`'s scale
    after the steps."""
    metrics = dict(metrics)
    bad = metrics.pop("nonfinite")
    overflow = metrics.pop("overflow", None)
    finite_steps = jnp.sum(~bad)
    means = {name: jnp.sum(jnp.where(bad, 0.0, value)) / finite_steps for name, value in metrics.items()}
    if overflow is not None:
        means.update(overflow_steps=jnp.sum(overflow, dtype=jnp.int32), loss_scale=state.loss_scale.scale)
    return {**means, "nonfinite": bad}


def evaluate_batches(state: TrainState, batches: dict[str, jax.Array],
             batch_sharding: jax.sharding.Sharding | None = None) -> dict[str, jax.Array]:
    """Mean metrics over every real example of `batches` (from `eval_batches`), plus "count"."""

    def body(carry, batch):
        return carry, eval_step(state, constrain(batch, batch_sharding))

    _, sums = jax.lax.scan(body, None, batches)
    return batch_means(sums)


def evaluate_with_outputs(state: TrainState, batches: dict[str, jax.Array],
                          batch_sharding: jax.sharding.Sharding | None = None) -> tuple[dict, jax.Array]:
    """`evaluate_batches` and the outputs of every row, (num_batches, B, ...) float32, from the same pass
    (the scores of `jaxdl.train.scores` are computed from them on the host)."""

    def body(carry, batch):
        return carry, eval_step_outputs(state, constrain(batch, batch_sharding))

    _, (sums, outputs) = jax.lax.scan(body, None, batches)
    return batch_means(sums), outputs


def batch_means(sums: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """Per-batch sums {name: (num_batches,)} incl. "count" -> means over the examples, plus "count"."""
    totals = jax.tree.map(lambda s: jnp.sum(s, axis=0), sums)
    count = totals.pop("count")
    return {**{name: total / jnp.maximum(count, 1) for name, total in totals.items()}, "count": count}


def eval_batches(arrays: dict[str, np.ndarray], batch_size: int) -> dict[str, np.ndarray]:
    """Host-side: pads `arrays` to whole batches and adds a mask.

    Returns {"x": (num_batches, batch_size, ...), "y": ..., "mask": (num_batches, batch_size)}.
    """
    n = len(arrays["y"])
    num_batches = max(1, -(-n // batch_size))
    pad = num_batches * batch_size - n

    def padded(a):
        whole = np.concatenate([a, np.zeros((pad, *a.shape[1:]), a.dtype)])
        return whole.reshape(num_batches, batch_size, *a.shape[1:])

    batches = {key: padded(value) for key, value in arrays.items()}
    batches["mask"] = padded(np.ones((n,), np.float32))
    return batches
