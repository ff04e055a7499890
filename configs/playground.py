"""A small network on the 2-D sets of the TensorFlow Neural Network Playground (offline: generated data).

    python -m experiments.playground --config configs/playground.py[:VARIANTS]

VARIANTS is a comma-separated list (e.g. `spiral,sweep`):
  circle | xor | gaussian | spiral   the data set (default circle)
  sweep    12 members: 4 learning rates x 3 seeds, trained as one program
  tiny     a few epochs of a tiny network, for smoke tests

The images (decision boundary, neuron tiles, loss curves, and with a sweep the members'
boundaries) are written to the workdir.
"""

import ml_collections

from jaxdl.run.config import add_pipeline_keys
from jaxdl.train import sweep

DATASETS = ("circle", "xor", "gaussian", "spiral")


def get_config(variants: str = "") -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.experiment = "playground"
    config.seed = 0

    config.data = ml_collections.ConfigDict()
    config.data.name = "circle"  # circle | xor | gaussian | spiral
    config.data.noise = 0.0  # 0 .. 0.5, the playground's 0% .. 50%
    config.data.train_fraction = 0.5  # of all points; the rest is the test split
    config.data.num_examples = 500
    config.data.data_seed = 0  # seed of the point generator
    config.data.data_dir = ""  # "" = $TFDS_DATA_DIR or ~/tensorflow_datasets
    config.data.validation_fraction = 0.1  # carved from the train split
    config.data.split_seed = 0
    config.data.download = False
    add_pipeline_keys(config.data, pipeline="memory")  # the points are built in memory: nothing to stream

    config.model = ml_collections.ConfigDict()
    config.model.name = "playground"
    config.model.dtype = "float32"  # compute: float32 | bfloat16 | float16; parameters stay float32 (docs/models.md)
    config.model.features = ("x1", "x2")  # of x1, x2, x1_squared, x2_squared, x1_times_x2, sin_x1, sin_x2
    config.model.hidden_sizes = (32, 32, 32)  # 0 to 6 layers
    config.model.activation = "tanh"
    config.model.dropout = 0.0

    config.optimizer = ml_collections.ConfigDict()
    config.optimizer.name = "adam"
    config.optimizer.learning_rate = 0.01
    config.optimizer.schedule = "cosine"  # decays to final_lr_ratio: settles the boundary
    config.optimizer.warmup_epochs = 0.0
    config.optimizer.final_lr_ratio = 0.0
    config.optimizer.momentum = 0.9
    config.optimizer.weight_decay = 0.0  # L2
    config.optimizer.weight_decay_on = "kernels"  # kernels (ndim >= 2; not biases) | all
    config.optimizer.l1 = 0.0  # L1
    config.optimizer.clip_norm = 0.0

    config.train = ml_collections.ConfigDict()
    config.train.epochs = 300
    config.train.batch_size = 16
    config.train.patience = 0  # 0 = run every epoch and keep the last model

    config.eval = ml_collections.ConfigDict()
    config.eval.batch_size = 1024

    config.checkpoint = ml_collections.ConfigDict()
    config.checkpoint.every_epochs = 0
    config.checkpoint.every_seconds = 30.0
    config.checkpoint.keep = 2

    config.sweep = sweep.default_config(("learning_rate", "weight_decay", "l1"))

    config.plot = ml_collections.ConfigDict()
    config.plot.resolution = 120  # grid points per side of the decision-boundary image

    for variant in filter(None, (v.strip() for v in variants.split(","))):
        if variant in DATASETS:
            config.data.name = variant
        elif variant == "sweep":
            config.sweep.seeds = 3
            config.sweep.learning_rate = (0.001, 0.003, 0.01, 0.03)
        elif variant == "tiny":
            config.model.hidden_sizes = (4,)
            config.train.epochs = 3
            config.plot.resolution = 24
        else:
            raise ValueError(f"unknown variant {variant!r}; expected {', '.join(DATASETS)}, sweep or tiny")
    return config
