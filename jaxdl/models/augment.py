"""Augmentation inside the model, in training only: random shifts of signals, images and volumes.

Being part of the model's training-mode call, it runs on device inside the compiled epoch, draws
its randomness from the run's dropout key stream (so a seed gives the same shifts, on any number
of devices), and is off in evaluation.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def random_shift(images: jax.Array, max_shift: int, key: jax.Array) -> jax.Array:
    """(batch, *spatial, c) -> the same shape, each example moved by up to `max_shift` steps along
    every spatial axis (1 to 3 of them: a signal's length; an image's y and x; a volume's z, y, x).

    Values moved in from outside the example are zero (the background of the digits).
    """
    if max_shift == 0:
        return images
    spatial = images.shape[1:-1]
    pad = ((0, 0), *[(max_shift, max_shift)] * len(spatial), (0, 0))
    padded = jnp.pad(images, pad)
    offsets = jax.random.randint(key, (images.shape[0], len(spatial)), 0, 2 * max_shift + 1)

    def crop(image, offset):
        start = (*(offset[i] for i in range(len(spatial))), 0)
        return jax.lax.dynamic_slice(image, start, (*spatial, image.shape[-1]))

    return jax.vmap(crop)(padded, offsets)
