"""The 2-D classification sets of the TensorFlow Neural Network Playground, as TFDS builders.

`circle`, `xor`, `gaussian` and `spiral` are generated, so preparing them needs no download. The
points and labels follow the playground's generators (github.com/tensorflow/playground,
src/dataset.ts) with its defaults: 500 points, inputs roughly in [-6, 6], half of them for
training. Where the playground labels +1 / -1, the class is 1 ("positive") / 0 ("negative").
The train / test split is stratified by class, so both splits keep the classes' proportions.

A builder config, written after the name as `circle/noise0.2-train0.7` (any of the fields, in
any order, separated by `-`), sets:

    noise    0 .. 0.5, the playground's "noise" slider (0% .. 50%); default 0
    train    fraction of the points in the train split, (0, 1); default 0.5
    n        number of points, even, >= 4; default 500
    seed     seed of the generator; default 0

Generation is seeded by the config (and the set's name), so a config always gives the same points.
"""

from __future__ import annotations

import dataclasses
import re
import zlib

import ml_collections
import numpy as np
import tensorflow_datasets as tfds

from jaxdl.errors import InputError, check_choice, check_range

PLAYGROUND_NAMES = ("circle", "xor", "gaussian", "spiral")
CLASS_NAMES = ("negative", "positive")
FIELD = re.compile(r"^(noise|train|n|seed)(\d+(?:\.\d*)?|\.\d+)$")


@dataclasses.dataclass(eq=False)
class PlaygroundConfig(tfds.core.BuilderConfig):
    """How many points, how noisy, and how they are split (see the module docstring)."""

    num_examples: int = 500
    noise: float = 0.0
    train_fraction: float = 0.5
    seed: int = 0


def config_name(num_examples: int = 500, noise: float = 0.0, train_fraction: float = 0.5, seed: int = 0) -> str:
    """The canonical builder-config name, e.g. `noise0-train0.5-n500-seed0`."""
    number = lambda value: np.format_float_positional(float(value), trim="-")  # no exponent, no "-"
    return f"noise{number(noise)}-train{number(train_fraction)}-n{int(num_examples)}-seed{int(seed)}"


DEFAULT_CONFIG = PlaygroundConfig(name=config_name(), description="The playground's defaults.")


def parse_config(text: str) -> PlaygroundConfig:
    """`noise0.2-train0.7` (any fields, any order) -> a checked PlaygroundConfig."""
    where = "config.data.name"
    fields = {"noise": 0.0, "train": 0.5, "n": 500, "seed": 0}
    for token in filter(None, text.split("-")):
        match = FIELD.match(token)
        if not match:
            raise InputError(where, "unknown playground data option", got=token,
                             expected="noise<0..0.5>, train<fraction>, n<count> or seed<int>, joined by '-'")
        key, value = match.groups()
        fields[key] = float(value) if key in ("noise", "train") else int(float(value))
    return make_config(num_examples=fields["n"], noise=fields["noise"], train_fraction=fields["train"],
                       seed=fields["seed"], where=where)


def make_config(*, num_examples: int, noise: float, train_fraction: float, seed: int,
                where: str | None = None) -> PlaygroundConfig:
    """A checked PlaygroundConfig (the default object itself for the default values).

    Errors name `where`, or else the playground experiment's key (`config.data.noise`, ...).
    """
    at = lambda key: where or f"config.data.{key}"
    check_range(at("noise"), noise, low=0, high=0.5)
    check_range(at("train_fraction"), train_fraction, low=0, high=1, low_inclusive=False, high_inclusive=False)
    check_range(at("num_examples"), num_examples, low=4, integer=True)
    if num_examples % 2:
        raise InputError(at("num_examples"), "the number of points must be even (half per class)", got=num_examples)
    check_range(at("data_seed"), seed, low=0, integer=True)
    name = config_name(num_examples, noise, train_fraction, seed)
    if name == DEFAULT_CONFIG.name:
        return DEFAULT_CONFIG
    return PlaygroundConfig(name=name, num_examples=num_examples, noise=float(noise),
                            train_fraction=float(train_fraction), seed=seed)


def dataset_name(config: ml_collections.ConfigDict) -> str:
    """`config.data` of the playground experiment (name, noise, train_fraction, num_examples,
    data_seed) -> the TFDS name with its builder config, e.g. `spiral/noise0.1-train0.5-n500-seed0`."""
    check_choice("config.data.name", config.name, PLAYGROUND_NAMES)
    options = make_config(num_examples=config.num_examples, noise=config.noise, train_fraction=config.train_fraction,
                          seed=config.data_seed)
    return f"{config.name}/{options.name}"


def circle(rng: np.random.Generator, n: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """Positive points within radius 2.5, negative ones in the ring 3.5..5; a point's label is
    decided at its position plus noise, so noise flips labels near the edge."""
    radius = 5.0
    halves = []
    for low, high in ((0.0, radius * 0.5), (radius * 0.7, radius)):
        r = rng.uniform(low, high, n // 2)
        angle = rng.uniform(0.0, 2 * np.pi, n // 2)
        halves.append(np.stack([r * np.sin(angle), r * np.cos(angle)], axis=1))
    points = np.concatenate(halves)
    shifted = points + rng.uniform(-radius, radius, 2 * n).reshape(2, n).T * noise
    return points, (np.linalg.norm(shifted, axis=1) < radius * 0.5).astype(np.int64)


def xor(rng: np.random.Generator, n: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """Uniform points in [-5, 5]^2 pushed 0.3 away from the axes; positive where x1 * x2 >= 0."""
    points = rng.uniform(-5.0, 5.0, 2 * n).reshape(2, n).T
    points += np.where(points > 0, 0.3, -0.3)
    shifted = points + rng.uniform(-5.0, 5.0, 2 * n).reshape(2, n).T * noise
    return points, (shifted[:, 0] * shifted[:, 1] >= 0).astype(np.int64)


def gaussian(rng: np.random.Generator, n: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """Two Gaussian blobs at (2, 2) (positive) and (-2, -2); noise 0..0.5 sets the variance 0.5..4."""
    variance = 0.5 + (4.0 - 0.5) * noise / 0.5
    blobs = [rng.normal(center, np.sqrt(variance), (n // 2, 2)) for center in (2.0, -2.0)]
    return np.concatenate(blobs), np.repeat(np.array([1, 0]), n // 2)


def spiral(rng: np.random.Generator, n: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved spirals of 1.75 turns out to radius 5; noise moves points by up to `noise`."""
    half = n // 2
    step = np.arange(half) / half
    arms = []
    for delta in (0.0, np.pi):
        r, t = step * 5.0, 1.75 * step * 2 * np.pi + delta
        jitter = rng.uniform(-1.0, 1.0, 2 * half).reshape(2, half).T * noise
        arms.append(np.stack([r * np.sin(t), r * np.cos(t)], axis=1) + jitter)
    return np.concatenate(arms), np.repeat(np.array([1, 0]), half)


GENERATORS = {"circle": circle, "xor": xor, "gaussian": gaussian, "spiral": spiral}


def plane(rng: np.random.Generator, n: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """Regression: uniform points in [-6, 6]^2, target (x1 + x2) / 10 in [-1.2, 1.2], read at the
    position plus noise."""
    points = rng.uniform(-6.0, 6.0, (n, 2))
    shifted = points + rng.uniform(-6.0, 6.0, (n, 2)) * noise
    return points, (shifted[:, 0] + shifted[:, 1]) / 10.0


GAUSSIAN_CENTERS = ((-4, 2.5, 1), (0, 2.5, -1), (4, 2.5, 1), (-4, -2.5, -1), (0, -2.5, 1), (4, -2.5, -1))


def multi_gaussian(rng: np.random.Generator, n: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """Regression: uniform points in [-6, 6]^2, target +-1 at six centres falling to 0 at distance 2 (the
    strongest centre wins), read at the position plus noise."""
    points = rng.uniform(-6.0, 6.0, (n, 2))
    shifted = points + rng.uniform(-6.0, 6.0, (n, 2)) * noise
    centers = np.array(GAUSSIAN_CENTERS, np.float64)
    distance = np.linalg.norm(shifted[:, None, :] - centers[None, :, :2], axis=-1)  # (n, 6)
    values = centers[None, :, 2] * np.clip(1.0 - distance / 2.0, 0.0, 1.0)
    return points, values[np.arange(n), np.argmax(np.abs(values), axis=1)]


# The playground's two regression sets (targets in about [-1, 1]); the live page trains on them.
REGRESSION_GENERATORS = {"plane": plane, "multi_gaussian": multi_gaussian}


def generate(name: str, config: PlaygroundConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All points of set `name`: (points (n, 2) float32, labels (n,) int64, in_train (n,) bool)."""
    rng = np.random.default_rng([config.seed, zlib.crc32(name.encode())])
    points, labels = GENERATORS[name](rng, config.num_examples, config.noise)
    in_train = np.zeros(len(labels), bool)
    for label in (0, 1):
        members = rng.permutation(np.flatnonzero(labels == label))
        in_train[members[: int(round(config.train_fraction * len(members)))]] = True
    return points.astype(np.float32), labels, in_train


class PlaygroundBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """A 2-D set: point (2,) float32, label 0 (negative) / 1 (positive). Subclasses name the set."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "The playground's generators, stratified train / test split."}
    BUILDER_CONFIGS = [DEFAULT_CONFIG]

    def __init__(self, *, config: str | PlaygroundConfig | None = None, **kwargs):
        if isinstance(config, str):
            config = parse_config(config)
        super().__init__(config=config, **kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=f"The Neural Network Playground's {self.name} set. {self.__class__.__doc__}",
            features=tfds.features.FeaturesDict({
                "point": tfds.features.Tensor(shape=(2,), dtype=np.float32),
                "label": tfds.features.ClassLabel(names=list(CLASS_NAMES)),
            }),
            supervised_keys=("point", "label"),
            homepage="https://playground.tensorflow.org",
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # Generated: nothing to download.
        points, labels, in_train = generate(self.name, self.builder_config)
        return {"train": self._generate_examples(points, labels, in_train),
                "test": self._generate_examples(points, labels, ~in_train)}

    def _generate_examples(self, points: np.ndarray, labels: np.ndarray, chosen: np.ndarray):
        for index in np.flatnonzero(chosen):
            yield int(index), {"point": points[index], "label": int(labels[index])}


class Circle(PlaygroundBuilder):
    """Positive points inside a circle, negative points in a ring around it."""


class Xor(PlaygroundBuilder):
    """Positive points in the first and third quadrants, negative in the second and fourth."""


class Gaussian(PlaygroundBuilder):
    """Two Gaussian blobs, one per class."""


class Spiral(PlaygroundBuilder):
    """Two interleaved spirals, one per class."""


PLAYGROUND_BUILDERS: dict[str, type[PlaygroundBuilder]] = {
    "circle": Circle, "xor": Xor, "gaussian": Gaussian, "spiral": Spiral}
