"""MLP on handwritten digits (offline by default).

    python -m experiments.mlp --config configs/mlp.py

Variants, as `--config configs/mlp.py:NAME`:
  default   512-512 ReLU MLP, Adam, early stopping (patience 20).
  softmax   no hidden layer: softmax regression, the baseline a deep model must beat.
  tiny      a few epochs of a small network, no baseline, for smoke tests.
  mnist     the catalog MNIST set (must be prepared; see README).

Your own data: --config.data.name=csv:PATH (with --config.data.label=COLUMN) or npz:PATH.
"""

import ml_collections

from jaxdl.run.config import add_pipeline_keys, add_training_sections
from jaxdl.train import sweep


def get_config(variant: str = "default") -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.experiment = "mlp"
    config.seed = 0

    config.data = ml_collections.ConfigDict()
    config.data.name = "digits"
    config.data.data_dir = ""  # "" = $TFDS_DATA_DIR or ~/tensorflow_datasets
    config.data.validation_fraction = 0.1  # carved from train when the set has no validation split
    config.data.split_seed = 0
    config.data.download = False  # True: prepare an unprepared catalog set (needs the network)
    config.data.label = ""  # csv:PATH tables: the label column ("" = the last column)
    config.data.task = "auto"  # csv:/npz: labels: auto | classification | regression
    config.data.image_size = ()  # folder:PATH only: (height, width) to resize to; () = the images' own size
    add_pipeline_keys(config.data)  # pipeline (memory | stream | auto), memory_budget_mb, chunk_steps

    config.model = ml_collections.ConfigDict()
    config.model.name = "mlp"
    config.model.dtype = "float32"  # compute: float32 | bfloat16 | float16; parameters stay float32 (docs/models.md)
    config.model.summary_only = False  # true: print the layers and parameter counts, exit (no training, no workdir)
    config.model.hidden_sizes = (512, 512)
    config.model.activation = "relu"
    config.model.dropout = 0.0

    config.optimizer = ml_collections.ConfigDict()
    config.optimizer.name = "adam"
    config.optimizer.learning_rate = 1e-3
    config.optimizer.schedule = "constant"  # constant | linear | cosine | warmup_cosine | onecycle
    config.optimizer.warmup_epochs = 0.0
    config.optimizer.final_lr_ratio = 0.0
    config.optimizer.momentum = 0.9
    config.optimizer.weight_decay = 0.0
    config.optimizer.weight_decay_on = "kernels"  # kernels (ndim >= 2; not biases or norm scales) | all
    config.optimizer.clip_norm = 0.0

    # train.{epochs, batch_size, patience, nan_policy, max_consecutive_nonfinite}, eval.batch_size,
    # checkpoint.{every_epochs, every_seconds, keep}: see jaxdl.run.config.add_training_sections.
    add_training_sections(config, epochs=300, batch_size=64, patience=20)
    config.eval.baseline = True  # also fit softmax regression (no hidden layer) under the same budget
    config.eval.target_accuracy = None  # e.g. 0.97: the summary says whether the test accuracy met it
    config.eval.report = True  # figures and report.html in the workdir

    # Several members (seeds x values) train as one program; () = the value above. See jaxdl/sweep.py.
    config.sweep = sweep.default_config()

    if variant == "softmax":
        config.model.hidden_sizes = ()
        config.optimizer.learning_rate = 1e-2
    elif variant == "tiny":
        config.model.hidden_sizes = (32,)
        config.train.epochs = 3
        config.train.batch_size = 32
        config.eval.baseline = False
        config.eval.questions = "good_enough,data"  # all, none, or some of simpler_methods,why,good_enough,data,compute
    elif variant == "mnist":
        config.data.name = "mnist"
        config.train.epochs = 20
        config.train.batch_size = 128
        config.train.patience = 5
    elif variant != "default":
        raise ValueError(f"unknown variant {variant!r}; expected default, softmax, tiny or mnist")
    return config
