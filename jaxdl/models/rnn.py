"""Recurrent network: stacked simple-RNN, LSTM or GRU layers (optionally bidirectional) and a readout.

Axis 1 of the input is time; the other axes of a step are flattened into its features, so an
8x8x1 digit is read row by row as 8 steps of 8 features, and a 1-D signal (batch, length) as
`length` steps of 1 feature. With `vocab_size > 0` the input is
(batch, time) token ids instead, embedded before the first layer.

Padding: with `mask_padding`, the steps after the last step that has any nonzero value (for
tokens: after the last nonzero token) are padding. Lengths are derived from the input itself,
so a padded batch needs no side channel; the recurrence stops at each sequence's length
(`flax.linen.RNN(seq_lengths=...)`), the backward direction starts at its last real step, and
the readout ignores padded steps. Padding never changes the result.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxdl.data import DataInfo
from jaxdl.errors import InputError, check_choice, check_range
from jaxdl.models.activations import get_activation
from jaxdl.models.dtypes import compute_dtype
from jaxdl.models.flat_random import Dense, Dropout
from jaxdl.models.layers import check_sizes, dense_layers


class SimpleCell(nn.SimpleCell):
    """Flax's SimpleCell, tanh(W x + U h + b), whose carry keeps its dtype (float32) when the cell
    computes in a lower one, as the LSTM and GRU cells' carries do (and as a scan over steps needs)."""

    def __call__(self, carry: jax.Array, inputs: jax.Array) -> tuple[jax.Array, jax.Array]:
        new_carry, _ = super().__call__(carry, inputs)
        new_carry = new_carry.astype(carry.dtype)
        return new_carry, new_carry


CELLS: dict[str, type[nn.RNNCellBase]] = {
    "simple": SimpleCell,  # tanh(W x + U h + b)
    "lstm": nn.OptimizedLSTMCell,  # the LSTM with its four gates' matmuls fused
    "gru": nn.GRUCell,
}
# last: the state after the last real step (forward) and after the first (backward);
# mean / max: pooled over the real steps; per_step: one output per step (sequence regression).
READOUTS = ("last", "mean", "max", "per_step")


def sequence_lengths(x: jax.Array) -> jax.Array:
    """(batch, time, ...) -> (batch,) int32: 1 + the index of the last step with any nonzero value.

    A sequence that is all padding gets length 1, so every sequence has a step to read.
    """
    steps = x.reshape((x.shape[0], x.shape[1], -1))
    real = jnp.any(steps != 0, axis=-1)
    positions = jnp.arange(1, x.shape[1] + 1, dtype=jnp.int32)
    return jnp.maximum(jnp.max(jnp.where(real, positions[None, :], 0), axis=1), 1)


def step_mask(lengths: jax.Array | None, batch: int, time: int) -> jax.Array:
    """(batch, time) bool: True for real steps."""
    if lengths is None:
        return jnp.ones((batch, time), bool)
    return jnp.arange(time, dtype=jnp.int32)[None, :] < lengths[:, None]


def read_out(outputs: jax.Array, lengths: jax.Array | None, readout: str, bidirectional: bool) -> jax.Array:
    """(batch, time, d) layer outputs -> (batch, d) for last / mean / max."""
    batch, time, width = outputs.shape
    mask = step_mask(lengths, batch, time)[:, :, None]
    if readout == "mean":
        total = jnp.sum(jnp.where(mask, outputs, 0.0), axis=1)
        return total / jnp.sum(mask, axis=1).astype(outputs.dtype)
    if readout == "max":
        return jnp.max(jnp.where(mask, outputs, -jnp.inf), axis=1)
    last_index = jnp.full((batch,), time - 1, jnp.int32) if lengths is None else lengths - 1
    last = outputs[jnp.arange(batch), last_index]
    if not bidirectional:
        return last
    half = width // 2
    return jnp.concatenate([last[:, :half], outputs[:, 0, half:]], axis=-1)


class RNN(nn.Module):
    """(batch, time, ...) -> (batch, num_outputs), or (batch, time, num_outputs) with readout "per_step".

    Layer i is `forward_<i>` (and `backward_<i>` when bidirectional, concatenated); its outputs
    (batch, time, hidden_size * directions) are sown into `intermediates` as `layer_<i>_out`, the
    readout (batch, d) as `readout`. Dense layers `dense_<i>` (sown as `dense_<i>_out`) and the
    `head` follow.
    `num_outputs=0` returns the readout features with no head (the hybrid model's use).
    Call with `lengths` (batch,) to give the sequence lengths explicitly.
    The layers compute in `dtype` (the cells' matrix products; their carries, the parameters and
    the head's outputs stay float32).
    """

    num_outputs: int
    cell: str = "lstm"
    hidden_size: int = 128
    num_layers: int = 1
    bidirectional: bool = False
    readout: str = "last"
    mask_padding: bool = False
    dropout: float = 0.0
    dense_sizes: tuple[int, ...] = ()
    vocab_size: int = 0
    embed_size: int = 32
    activation: str = "relu"
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False, lengths: jax.Array | None = None) -> jax.Array:
        batch, time = x.shape[:2]
        if lengths is None and self.mask_padding:
            lengths = sequence_lengths(x)
        if self.vocab_size:
            x = nn.Embed(self.vocab_size, self.embed_size, dtype=self.dtype, name="embed")(x.astype(jnp.int32))
        else:
            x = x.reshape((batch, time, -1))
        cell = CELLS[self.cell]
        for i in range(self.num_layers):
            # The cells carry the names: a cell made here belongs to this module, not to nn.RNN.
            outputs = nn.RNN(cell(self.hidden_size, dtype=self.dtype, name=f"forward_{i}"))(x, seq_lengths=lengths)
            if self.bidirectional:
                backward = nn.RNN(cell(self.hidden_size, dtype=self.dtype, name=f"backward_{i}"), reverse=True,
                                  keep_order=True)
                outputs = jnp.concatenate([outputs, backward(x, seq_lengths=lengths)], axis=-1)
            self.sow("intermediates", f"layer_{i}_out", outputs)
            x = Dropout(self.dropout, deterministic=not train)(outputs) if self.dropout > 0 else outputs
        act = get_activation(self.activation)
        if self.readout == "per_step":
            x = dense_layers(self, x, sizes=self.dense_sizes, activation=act, dropout=self.dropout, train=train,
                             dtype=self.dtype)
            if self.num_outputs == 0:
                return x
            y = Dense(self.num_outputs, dtype=self.dtype, name="head")(x).astype(jnp.float32)
            return jnp.where(step_mask(lengths, batch, time)[:, :, None], y, 0.0)
        x = read_out(x, lengths, self.readout, self.bidirectional)
        self.sow("intermediates", "readout", x)
        x = dense_layers(self, x, sizes=self.dense_sizes, activation=act, dropout=self.dropout, train=train,
                         dtype=self.dtype)
        if self.num_outputs == 0:
            return x
        return Dense(self.num_outputs, dtype=self.dtype, name="head")(x).astype(jnp.float32)


def options(config: ml_collections.ConfigDict, where: str = "config.model") -> dict:
    """The RNN's constructor arguments (all but `num_outputs`) from a config section, checked on the host.

    Keys: `cell` (simple | lstm | gru), `hidden_size`, `num_layers`, `bidirectional`, `readout`
    (last | mean | max | per_step), `mask_padding`, `dropout`, `dense_sizes`, `activation`
    (of the dense layers), and optionally `vocab_size` / `embed_size` for token inputs.
    """
    check_choice(f"{where}.cell", config.cell, CELLS)
    check_range(f"{where}.hidden_size", config.hidden_size, low=1, integer=True)
    check_range(f"{where}.num_layers", config.num_layers, low=1, integer=True)
    check_choice(f"{where}.readout", config.readout, READOUTS)
    check_range(f"{where}.dropout", config.dropout, low=0, high=1, high_inclusive=False)
    get_activation(config.activation, f"{where}.activation")
    vocab_size = config.get("vocab_size", 0)
    check_range(f"{where}.vocab_size", vocab_size, low=0, integer=True)
    embed_size = config.get("embed_size", 32)
    check_range(f"{where}.embed_size", embed_size, low=1, integer=True)
    return {"cell": config.cell, "hidden_size": config.hidden_size, "num_layers": config.num_layers,
            "bidirectional": bool(config.bidirectional), "readout": config.readout,
            "mask_padding": bool(config.mask_padding), "dropout": config.dropout,
            "dense_sizes": check_sizes(f"{where}.dense_sizes", config.dense_sizes), "vocab_size": vocab_size,
            "embed_size": embed_size, "activation": config.activation}


def from_config(config: ml_collections.ConfigDict, info: DataInfo) -> RNN:
    """An RNN for sequences of `info.input_shape` (time first); a 1-D signal (time,) is read as (time, 1),
    computing in `model.dtype`.

    With readout "per_step" the task must be regression with targets (time, ...) : the head
    then predicts the prod(target_shape[1:]) values of each step.
    """
    kwargs = options(config)
    shape = info.input_shape
    if not shape:
        raise InputError("config.data.name", "the rnn model needs sequences (time, features...)", got=shape,
                         expected="(time, features...), a 1-D signal (time,), or (time,) token ids with "
                         "config.model.vocab_size > 0")
    if kwargs["vocab_size"] and len(shape) != 1:
        raise InputError("config.model.vocab_size", "token inputs must be (time,) ids", got=shape,
                         expected="config.model.vocab_size=0 for feature sequences")
    num_outputs = info.num_outputs
    if kwargs["readout"] == "per_step":
        target = info.target_shape
        if info.task != "regression" or not target or target[0] != shape[0]:
            raise InputError("config.model.readout", "per_step needs a regression target per step", got=target,
                             expected=f"target shape ({shape[0]}, ...) for inputs {shape}")
        num_outputs = int(np.prod(target[1:]))
    return RNN(num_outputs=num_outputs, **kwargs, dtype=compute_dtype(config))
