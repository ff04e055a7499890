"""Augmentation inside the model, in training only: random shifts of images.

Being part of the model's training-mode call, it runs on device inside the compiled epoch, draws
its randomness from the run's dropout key stream (so a seed gives the same shifts, on any number
of devices), and is off in evaluation.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def random_shift(images: jax.Array, max_shift: int, key: jax.Array) -> jax.Array:
    """(batch, h, w, c) -> the same shape, each image moved by up to `max_shift` pixels in y and x.

    Pixels moved in from outside the image are zero (the background of the digits).
    """
    if max_shift == 0:
        return images
    height, width = images.shape[1:3]
    padded = jnp.pad(images, ((0, 0), (max_shift, max_shift), (max_shift, max_shift), (0, 0)))
    offsets = jax.random.randint(key, (images.shape[0], 2), 0, 2 * max_shift + 1)

    def crop(image, offset):
        return jax.lax.dynamic_slice(image, (offset[0], offset[1], 0), (height, width, image.shape[-1]))

    return jax.vmap(crop)(padded, offsets)
