"""train.augment: on-device image augmentation in the compiled step (crop, flip, rotation, colour jitter,
mixup, cutmix): shapes and dtypes kept, exact flips, mixed labels that weigh 1, the same bits for the
same key whatever steps_per_call, and off = no change."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxdl.errors import InputError
from jaxdl.models import MLP
from jaxdl.models.augment import AUGMENT_DEFAULTS, augmenter, colour_jitter, cutmix, flip, mixup, rotate
from jaxdl.train.digest import params_sha256
from jaxdl.train.fit import fit
from jaxdl.train.losses import classification_metrics
from jaxdl.train.state import create_state
from jaxdl.train.step import mixed_metrics

KEY = jax.random.PRNGKey(3)
IMAGES = jax.random.uniform(jax.random.PRNGKey(0), (6, 8, 8, 3))
BATCH = {"x": IMAGES, "y": jnp.arange(6) % 4}
EVERYTHING = {"crop_padding": 2, "flip": True, "rotation": 10.0, "colour_jitter": 0.2, "mixup": 0.4, "cutmix": 1.0}


@pytest.mark.slow
@pytest.mark.parametrize("knob", sorted(EVERYTHING))
def test_each_knob_keeps_shapes_and_dtypes_and_repeats_for_the_same_key(knob):
    augment = augmenter({knob: EVERYTHING[knob]}, (8, 8, 3))
    out = augment(KEY, BATCH)
    assert out["x"].shape == IMAGES.shape and out["x"].dtype == IMAGES.dtype
    assert out["y"].shape == (6,)
    np.testing.assert_array_equal(out["x"], augment(KEY, BATCH)["x"])
    assert not np.array_equal(out["x"], augment(jax.random.PRNGKey(4), BATCH)["x"])


def test_everything_off_is_no_augmenter():
    assert augmenter(AUGMENT_DEFAULTS, (8, 8, 3)) is None and augmenter(None, (64,)) is None


def test_flip_mirrors_exactly_or_not_at_all():
    out = np.asarray(flip(IMAGES, KEY))
    flipped = [np.array_equal(o, np.asarray(x)[:, ::-1]) for o, x in zip(out, IMAGES, strict=True)]
    kept = [np.array_equal(o, np.asarray(x)) for o, x in zip(out, IMAGES, strict=True)]
    assert all(f or k for f, k in zip(flipped, kept, strict=True)) and any(flipped) and any(kept)


def test_rotation_by_zero_degrees_and_jitter_of_zero_change_nothing():
    np.testing.assert_allclose(rotate(IMAGES, 0.0, KEY), IMAGES, atol=1e-6)
    np.testing.assert_allclose(colour_jitter(IMAGES, 0.0, KEY), IMAGES, atol=1e-6)


@pytest.mark.parametrize("mix", [mixup, cutmix])
def test_mixed_labels_weigh_one_and_match_the_mixed_images(mix):
    x, partner, own = mix(IMAGES, 1.0, KEY)
    own = np.asarray(own)
    assert np.all((own >= 0) & (own <= 1))
    soft = own[:, None] * np.eye(4)[BATCH["y"]] + (1 - own[:, None]) * np.eye(4)[BATCH["y"][partner]]
    np.testing.assert_allclose(soft.sum(axis=1), 1.0, rtol=1e-6)
    if mix is mixup:
        np.testing.assert_allclose(x, own[:, None, None, None] * IMAGES + (1 - own[:, None, None, None])
                                   * IMAGES[partner], rtol=1e-5)
    else:  # the own weight is the share of pixels left as they were
        same = np.all(np.asarray(x) == np.asarray(IMAGES), axis=-1).mean(axis=(1, 2))
        moved = np.asarray(partner) != np.arange(6)
        np.testing.assert_allclose(same[moved], own[moved], rtol=1e-6)
    # the loss of a mixed batch is the cross-entropy against the mixed soft label
    logits = jax.random.normal(KEY, (6, 4))
    loss = mixed_metrics(classification_metrics, logits, {"x": x, "y": BATCH["y"], "mix": jnp.asarray(own),
                                                          "y_mix": BATCH["y"][partner]})["loss"]
    np.testing.assert_allclose(loss, optax.softmax_cross_entropy(logits, soft), rtol=1e-5)


def test_augmentation_needs_images_and_known_keys():
    with pytest.raises(InputError, match="config.train.augment"):
        augmenter({"flip": True}, (64,))
    with pytest.raises(InputError, match="config.train.augment.flips"):
        augmenter({"flips": True}, (8, 8, 1))
    with pytest.raises(InputError, match="config.train.augment.crop_padding"):
        augmenter({"crop_padding": 8}, (8, 8, 1))


@pytest.mark.slow
def test_the_same_seed_trains_the_same_bits_whatever_steps_per_call(digits):
    train = {key: value[:128] for key, value in digits.train.items()}

    def run(knobs, steps_per_call):
        state = create_state(MLP(num_outputs=10, hidden_sizes=(16,)), optax.adam(1e-2), (8, 8, 1), 0,
                             classification_metrics)
        state = state.replace(augment=augmenter(knobs, (8, 8, 1)))
        return fit(state, train, digits.validation, epochs=1, batch_size=32, steps_per_call=steps_per_call).state

    knobs = {**EVERYTHING, "mixup": 0.0}
    assert params_sha256(run(knobs, 1).params) == params_sha256(run(knobs, "epoch").params)
    # mixup's sum of products may round differently in a loop (a fused multiply-add): the same draws, and
    # the same numbers to float rounding
    one, loop = run({"mixup": 0.4}, 1), run({"mixup": 0.4}, "epoch")
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), one.params, loop.params)
