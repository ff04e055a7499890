"""Transfer learning on handwritten digits: pretrain on digits 0-4, fine-tune on 5-9 (offline).

    python -m experiments.transfer --config configs/transfer.py
    python -m experiments.transfer --config.source=runs/transfer-X/pretrain   # reuse a trained source
    python -m experiments.transfer --config configs/transfer.py:folder \
        --config.source=resnet18:resnet18.safetensors --config.data.name=folder:photos   # ImageNet weights

For each label budget (labels per class of the target task) and seed, three strategies train on
the same labelled examples and are tested on the same target test split: `scratch` (a fresh
model), `head_only` (every pretrained layer but the head loaded and frozen, a new head trained),
`finetune` (the pretrained layers but `transfer.skip` loaded; phase 1 trains the new layers for
`transfer.head_epochs` with the loaded ones frozen, phase 2 trains everything, the loaded layers
at a lower rate). Every strategy trains `train.epochs` epochs of the labelled set, repeated to
(at least) `train.min_epoch_examples` examples per epoch.

Variants, as `--config configs/transfer.py:NAME`:
  default        digits 0-4 -> digits 5-9, a small CNN, budgets 1, 5, 10, 20, 50 and all, 5 seeds.
  tiny           a few epochs, two budgets, one seed: a smoke test.
  fashion_mnist  mnist -> fashion_mnist (catalog sets: must be prepared, see README).
  folder         fine-tune ImageNet weights (config.source=resnet18:FILE, resnet34:, resnet50:) on a
                 folder of images (config.data.name=folder:PATH): all labels, one seed, head only
                 and fine-tuned, images resized to 224x224 (data.image_size) and normalised with
                 ImageNet's mean and std inside the model (model.input_normalization).
"""

import ml_collections

from jaxdl.run.config import add_augment_keys
from jaxdl.train import sweep


def data_section(name: str, classes: tuple[int, ...]) -> ml_collections.ConfigDict:
    section = ml_collections.ConfigDict()
    section.name = name
    section.data_dir = ""  # "" = $TFDS_DATA_DIR or ~/tensorflow_datasets
    section.classes = classes  # the classes that make up the task, renumbered 0..; () = all
    section.validation_fraction = 0.1  # carved from train when the set has no validation split
    section.split_seed = 0
    section.download = False  # True: prepare an unprepared catalog set (needs the network)
    section.image_size = ()  # folder:PATH only: (height, width) to resize to; () = the images' own size
    return section


def optimizer_section(learning_rate: float) -> ml_collections.ConfigDict:
    section = ml_collections.ConfigDict()
    section.name = "adam"
    section.learning_rate = learning_rate
    section.schedule = "cosine"  # constant | linear | cosine | warmup_cosine | onecycle (over each training phase)
    section.warmup_epochs = 0.0
    section.final_lr_ratio = 0.0
    section.momentum = 0.9
    section.weight_decay = 0.0
    section.weight_decay_on = "kernels"  # kernels (ndim >= 2; not biases or norm scales) | all
    section.clip_norm = 0.0
    return section


def get_config(variant: str = "default") -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.experiment = "transfer"
    config.seed = 0

    # The target task. Its test split scores every strategy; its validation split draws the curves.
    config.data = data_section("digits", (5, 6, 7, 8, 9))

    config.model = ml_collections.ConfigDict()
    config.model.name = "cnn"
    config.model.dtype = "float32"  # compute: float32 | bfloat16 | float16; parameters stay float32 (docs/models.md)
    config.model.channels = (16, 32)
    config.model.kernel_size = 3
    config.model.strides = 1
    config.model.pooling = "max"
    config.model.pool_size = 2
    config.model.batch_norm = True
    config.model.dropout = 0.1
    config.model.dense_sizes = (64,)
    config.model.activation = "relu"

    # The source: a jaxdl workdir or checkpoint to start from, "" to pretrain one first (into
    # WORKDIR/pretrain) on `pretrain.data` with the model above, or ImageNet weights as ARCH:FILE
    # (resnet18, resnet34, resnet50; a torchvision/timm .safetensors or .pth state dict), which
    # make the model that architecture (docs/transfer.md).
    config.source = ""
    config.pretrain = ml_collections.ConfigDict()
    config.pretrain.data = data_section("digits", (0, 1, 2, 3, 4))
    config.pretrain.optimizer = optimizer_section(1e-3)
    config.pretrain.optimizer.name = "adamw"
    config.pretrain.optimizer.weight_decay = 0.05  # a regularised source transfers better (docs/transfer.md)
    config.pretrain.train = ml_collections.ConfigDict()
    config.pretrain.train.epochs = 15
    config.pretrain.train.batch_size = 32
    config.pretrain.train.patience = 0

    # Training on the target, the same for every strategy (fine-tuning lowers the rate in phase 2).
    config.optimizer = optimizer_section(3e-3)
    config.train = ml_collections.ConfigDict()
    config.train.epochs = 20
    config.train.batch_size = 32
    config.train.min_epoch_examples = 320  # small labelled sets are repeated up to this many per epoch
    config.train.patience = 0  # no early stopping: a few labels leave nothing to validate on honestly
    add_augment_keys(config.train)  # train.augment: on-device image augmentation, all off (docs/knobs.md)

    config.transfer = ml_collections.ConfigDict()
    config.transfer.head = ("head",)  # the new classifier: never loaded; `head_only` trains it alone
    config.transfer.skip = ("conv_1", "norm_1", "dense_*")  # body layers fine-tuning does not load either
    config.transfer.head_epochs = 2  # fine-tuning phase 1: train what was not loaded, the rest frozen
    config.transfer.finetune_lr_ratio = 1.0  # phase 2: every layer at learning_rate times this ...
    config.transfer.body_lr_ratio = 0.3  # ... and the loaded layers at that times this (discriminative rates)
    config.transfer.keep_frozen = ()  # patterns frozen in phase 2 too, e.g. ("norm_*",)
    config.transfer.member = -1  # a sweep source: its member to load (-1 = its best member)
    # Head-only training on a fully frozen body computes the body's features once per example and
    # trains the head on them (no dropout or augmentation in the body then; jaxdl.transfer.features).
    config.transfer.cache_features = True

    config.budgets = (1, 5, 10, 20, 50, 0)  # labels per class of the target task; 0 = every label
    config.seeds = 5  # runs per budget and strategy, seeds config.seed, config.seed + 1, ...
    config.curves_budget = 5  # the budget whose learning curves (validation accuracy per step) are drawn
    config.strategies = ("scratch", "head_only", "finetune")  # those to run; "finetune" is the headline

    config.eval = ml_collections.ConfigDict()
    config.eval.batch_size = 1024
    # of the headline model: all, none, or some of simpler_methods,why,good_enough,data,compute
    config.eval.questions = "all"

    config.checkpoint = ml_collections.ConfigDict()  # of the pretraining run
    config.checkpoint.every_epochs = 0
    config.checkpoint.every_seconds = 30.0
    config.checkpoint.keep = 2

    # A sweep is refused here: this experiment runs its own grid of budgets, strategies and seeds.
    config.sweep = sweep.default_config()

    if variant == "tiny":
        config.model.channels = (8,)
        config.model.dense_sizes = (16,)
        config.transfer.skip = ("dense_*",)  # one conv block: fine-tuning loads it alone
        config.pretrain.train.epochs = 3
        config.train.epochs = 4
        config.train.min_epoch_examples = 64
        config.transfer.head_epochs = 2
        config.budgets = (2, 0)
        config.seeds = 1
        config.curves_budget = 2
    elif variant == "fashion_mnist":
        config.data = data_section("fashion_mnist", ())
        config.pretrain.data = data_section("mnist", ())
        config.model.channels = (32, 64)
        config.model.dense_sizes = (128,)
        config.pretrain.train.epochs = 5
        config.pretrain.train.batch_size = 128
        config.train.batch_size = 64
        config.budgets = (1, 5, 10, 50, 100, 0)
    elif variant == "folder":
        config.data = data_section("", ())  # --config.data.name=folder:PATH
        config.data.image_size = (224, 224)  # the size the ImageNet weights were trained at; smaller is faster
        # The architecture is that of the weights in config.source (resnet18:FILE, ...): name "" = theirs.
        config.model = ml_collections.ConfigDict({"name": "", "input_normalization": "imagenet",
                                                  "dtype": config.model.dtype})
        config.optimizer.learning_rate = 1e-3
        config.train.epochs = 10
        config.train.min_epoch_examples = 1  # an epoch is the folder's training images, once each
        config.transfer.head_epochs = 3
        config.transfer.skip = ()  # fine-tuning loads every layer but the head
        config.transfer.finetune_lr_ratio = 0.1  # phase 2: 1e-4 for every layer
        config.transfer.body_lr_ratio = 1.0
        config.budgets = (0,)
        config.seeds = 1
        config.curves_budget = 0
        config.strategies = ("head_only", "finetune")
    elif variant != "default":
        raise ValueError(f"unknown variant {variant!r}; expected default, tiny, fashion_mnist or folder")
    return config
