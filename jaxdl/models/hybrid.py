"""CNN + RNN for sequences of images (video frames): one CNN encodes every frame, an RNN reads them.

The frame encoder is applied to all frames at once by folding time into the batch:
(batch, frames, h, w, c) -> (batch * frames, h, w, c) -> (batch * frames, d) -> (batch, frames, d).
Its batch-norm statistics are therefore taken over every frame of the (global) batch.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from jaxdl.data import DataInfo
from jaxdl.errors import InputError
from jaxdl.models import cnn, rnn
from jaxdl.models.dtypes import compute_dtype
from jaxdl.models.flat_random import Dense
from jaxdl.models.layers import check_input_rank, frozen_within


class Hybrid(nn.Module):
    """(batch, frames, height, width, channels) -> (batch, num_outputs).

    `frame_encoder` is a module mapping (n, height, width, channels) -> (n, d), e.g.
    `CNN(num_outputs=0)`; `sequence_encoder` maps (batch, frames, d) -> (batch, e), e.g.
    `RNN(num_outputs=0)`, and is called with `lengths`. When the sequence encoder has
    `mask_padding`, all-zero frames at the end of a sequence are padding (lengths come from the
    raw frames, since encoded blank frames are not zero). Sown into `intermediates`:
    `frame_features` (batch, frames, d), plus the encoders' own under `frame_encoder/...` and
    `sequence_encoder/...`. The last layer is the dense `head`. The frame encoder's batch norms
    named in `frozen_norms` by path (`frame_encoder/norm_0`, ...) run in inference mode in training
    too (fine-tuning with frozen layers, `jaxdl.transfer.phases`); the frame encoder must then
    have a `frozen_norms` field of its own. The head computes in `dtype` and returns float32 (the
    encoders have their own `dtype`; `from_config` gives all three `model.dtype`).
    """

    num_outputs: int
    frame_encoder: nn.Module
    sequence_encoder: nn.Module
    frozen_norms: tuple[str, ...] = ()
    dtype: Any = jnp.float32

    def __post_init__(self):
        # The encoder is a field, adopted under its field name when the model is bound, so its frozen
        # norms are handed to it here, before that, rather than by a second copy made in `__call__`.
        inner = frozen_within(self.frozen_norms, "frame_encoder")
        if inner != tuple(getattr(self.frame_encoder, "frozen_norms", ())):
            object.__setattr__(self, "frame_encoder", self.frame_encoder.clone(frozen_norms=inner))
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        batch, frames = x.shape[:2]
        features = self.frame_encoder(x.reshape((batch * frames, *x.shape[2:])), train=train)
        features = features.reshape((batch, frames, -1))
        self.sow("intermediates", "frame_features", features)
        lengths = rnn.sequence_lengths(x) if getattr(self.sequence_encoder, "mask_padding", False) else None
        x = self.sequence_encoder(features, train=train, lengths=lengths)
        return Dense(self.num_outputs, dtype=self.dtype, name="head")(x).astype(jnp.float32)


def from_config(config: ml_collections.ConfigDict, info: DataInfo) -> Hybrid:
    """A hybrid from `model.encoder` (the CNN's keys, see `cnn.options`) and `model.sequence`
    (the RNN's keys, see `rnn.options`), for data of shape (frames, height, width, channels), all
    computing in `model.dtype`."""
    check_input_rank("config.data.name", "hybrid", info.input_shape, 4, "(frames, height, width, channels)")
    encoder = cnn.options(config.encoder, info.input_shape[1:], "config.model.encoder")
    sequence = rnn.options(config.sequence, "config.model.sequence")
    if sequence["readout"] == "per_step":
        raise InputError("config.model.sequence.readout", "the hybrid model reads out one vector per sequence",
                         got="per_step", expected="last, mean or max")
    if sequence["vocab_size"]:
        raise InputError("config.model.sequence.vocab_size", "frame features are not token ids",
                         got=sequence["vocab_size"], expected=0)
    dtype = compute_dtype(config)
    return Hybrid(num_outputs=info.num_outputs, frame_encoder=cnn.CNN(num_outputs=0, **encoder, dtype=dtype),
                  sequence_encoder=rnn.RNN(num_outputs=0, **sequence, dtype=dtype), dtype=dtype)
