"""Augmentation on device, in training only: random shifts of signals, images and volumes inside the
model (`model.random_shift`), and for images the `train.augment` keys applied to each batch in the
compiled step (`augmenter`): random crop with padding, horizontal flip, small rotation, colour jitter,
mixup and cutmix.

Either way it runs on device inside the compiled steps, draws its randomness from the run's dropout
key stream folded with the step (so a seed gives the same bits, whatever `train.steps_per_call` and
on any number of devices), and is off in evaluation.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxdl.errors import InputError, check_range


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


# The keys of `train.augment` (image configs: cnn, resnet, transfer), all off by default.
AUGMENT_DEFAULTS = {"crop_padding": 0, "flip": False, "rotation": 0.0, "colour_jitter": 0.0, "mixup": 0.0,
                    "cutmix": 0.0}


def flip(images: jax.Array, key: jax.Array) -> jax.Array:
    """(batch, height, width, c) -> each example mirrored left-right with probability 1/2."""
    chosen = jax.random.bernoulli(key, 0.5, (images.shape[0],))
    return jnp.where(chosen[:, None, None, None], images[:, :, ::-1], images)


def rotate(images: jax.Array, max_degrees: float, key: jax.Array) -> jax.Array:
    """(batch, height, width, c) -> each example turned about its centre by an angle drawn uniformly from
    [-max_degrees, max_degrees], read off with bilinear interpolation; what comes in from outside is zero."""
    batch, height, width, _ = images.shape
    angles = jnp.deg2rad(jax.random.uniform(key, (batch,), minval=-max_degrees, maxval=max_degrees))
    rows, cols = jnp.meshgrid(jnp.arange(height, dtype=jnp.float32), jnp.arange(width, dtype=jnp.float32),
                              indexing="ij")
    cy, cx = (height - 1) / 2.0, (width - 1) / 2.0

    def turn(image, angle):
        cos, sin = jnp.cos(angle), jnp.sin(angle)
        source_rows = cy + cos * (rows - cy) - sin * (cols - cx)  # where each output pixel reads from
        source_cols = cx + sin * (rows - cy) + cos * (cols - cx)
        channel = lambda c: jax.scipy.ndimage.map_coordinates(c, [source_rows, source_cols], order=1,  # noqa: E731
                                                              mode="constant", cval=0.0)
        return jax.vmap(channel, in_axes=-1, out_axes=-1)(image)

    return jax.vmap(turn)(images, angles).astype(images.dtype)


def colour_jitter(images: jax.Array, strength: float, key: jax.Array) -> jax.Array:
    """(batch, height, width, c) -> brightness, contrast and (for 3 channels) saturation of each example
    scaled by factors drawn uniformly from [1 - strength, 1 + strength]."""
    batch, channels = images.shape[0], images.shape[-1]
    factors = jax.random.uniform(key, (3, batch, 1, 1, 1), minval=1.0 - strength, maxval=1.0 + strength)
    x = images * factors[0]
    mean = jnp.mean(x, axis=(1, 2, 3), keepdims=True)
    x = mean + (x - mean) * factors[1]
    if channels == 3:
        grey = jnp.mean(x, axis=-1, keepdims=True)
        x = grey + (x - grey) * factors[2]
    return x.astype(images.dtype)


def mixup(images: jax.Array, alpha: float, key: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(batch, ...) -> (images mixed with a partner, partner index (batch,), own weight (batch,)).

    One weight `lam ~ Beta(alpha, alpha)` for the batch; partners are a random permutation; the mixed
    example is `lam * x + (1 - lam) * x[partner]` and its label weighs `lam` own, `1 - lam` partner's.
    """
    lam_key, perm_key = jax.random.split(key)
    lam = jax.random.beta(lam_key, alpha, alpha)
    partner = jax.random.permutation(perm_key, images.shape[0])
    # XLA:CPU may round this sum of products differently inside a loop of steps than at top level (a
    # fused multiply-add), so with mixup a run's bits may differ in the last place between steps_per_call
    # values (measured: 1 ulp of some pixels); the random draws are the same.
    mixed = lam * images + (1.0 - lam) * images[partner]
    return mixed.astype(images.dtype), partner, jnp.full((images.shape[0],), lam, jnp.float32)


def cutmix(images: jax.Array, alpha: float, key: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(batch, height, width, c) -> (images with a box pasted from a partner, partner index (batch,),
    own weight (batch,)): a box of about `1 - lam` of the area (`lam ~ Beta(alpha, alpha)`), centred
    at a random pixel and clipped at the edges; the own weight is the area fraction left uncovered."""
    lam_key, perm_key, centre_key = jax.random.split(key, 3)
    batch, height, width, _ = images.shape
    lam = jax.random.beta(lam_key, alpha, alpha)
    partner = jax.random.permutation(perm_key, batch)
    side = jnp.sqrt(1.0 - lam)
    centre = jax.random.uniform(centre_key, (2,)) * jnp.array([height, width])
    half = side * jnp.array([height, width]) / 2.0
    low = jnp.clip(jnp.round(centre - half), 0, jnp.array([height, width])).astype(jnp.int32)
    high = jnp.clip(jnp.round(centre + half), 0, jnp.array([height, width])).astype(jnp.int32)
    rows, cols = jnp.arange(height)[:, None], jnp.arange(width)[None, :]
    box = (rows >= low[0]) & (rows < high[0]) & (cols >= low[1]) & (cols < high[1])  # (height, width)
    mixed = jnp.where(box[None, :, :, None], images[partner], images)
    own = 1.0 - jnp.mean(box.astype(jnp.float32))
    return mixed, partner, jnp.full((batch,), own, jnp.float32)


def augmenter(section, input_shape: tuple[int, ...], where: str = "config.train.augment"):
    """`(key, batch) -> batch` applying what `section` (the `train.augment` keys) turns on to the batch's
    images, in the order crop, flip, rotation, colour jitter, then mixup or cutmix (when both are on,
    each batch takes one of them at random); None when everything is off, so today's steps are unchanged.

    A mixed batch gets "mix" (batch,), the weight of each example's own label, and "y_mix", its
    partner's label (`jaxdl.train.step.mixed_metrics`).
    """
    given = dict(section or {})
    unknown = sorted(set(given) - set(AUGMENT_DEFAULTS))
    if unknown:
        raise InputError(f"{where}.{unknown[0]}", "unknown augmentation", expected=", ".join(AUGMENT_DEFAULTS))
    knobs = {**AUGMENT_DEFAULTS, **given}
    if not any(knobs.values()):
        return None
    if len(input_shape) != 3:
        raise InputError(where, "augmentation needs images (height, width, channels)", got=tuple(input_shape),
                         expected="an image dataset, or every train.augment key off")
    crop = check_range(f"{where}.crop_padding", knobs["crop_padding"], low=0, high=min(input_shape[:2]) - 1,
                       integer=True)
    degrees = check_range(f"{where}.rotation", knobs["rotation"], low=0, high=180)
    jitter = check_range(f"{where}.colour_jitter", knobs["colour_jitter"], low=0, high=1)
    mix_alpha = check_range(f"{where}.mixup", knobs["mixup"], low=0)
    cut_alpha = check_range(f"{where}.cutmix", knobs["cutmix"], low=0)
    if not isinstance(knobs["flip"], bool):
        raise InputError(f"{where}.flip", "wrong type", got=knobs["flip"], expected="true or false")

    def augment(key, batch):
        keys = jax.random.split(key, 6)
        x = batch["x"]
        if crop:
            x = random_shift(x, crop, keys[0])
        if knobs["flip"]:
            x = flip(x, keys[1])
        if degrees:
            x = rotate(x, degrees, keys[2])
        if jitter:
            x = colour_jitter(x, jitter, keys[3])
        batch = {**batch, "x": x}
        if not (mix_alpha or cut_alpha):
            return batch
        mixes = [fn(x, alpha, keys[4]) for fn, alpha in ((mixup, mix_alpha), (cutmix, cut_alpha)) if alpha]
        if len(mixes) == 2:
            pick = jax.random.bernoulli(keys[5])
            mixes = [jax.tree.map(lambda a, b: jnp.where(pick, a, b), *mixes)]
        mixed, partner, own = mixes[0]
        return {**batch, "x": mixed, "mix": own, "y_mix": batch["y"][partner]}

    return augment
