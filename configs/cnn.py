"""CNN on handwritten digits as 8x8x1 images (offline by default), on 1-D signals, or on 3-D volumes.

    python -m experiments.cnn --config configs/cnn.py

Variants, as `--config configs/cnn.py:NAME`:
  default        two conv blocks (32, 64 channels, batch norm, max pooling, dropout), a 128-wide dense layer.
  tiny           one small block for a few epochs, for smoke tests.
  signals        a 1-D CNN on the generated `signals` set (sine, square, sawtooth, noise burst; 128 steps).
  mnist          catalog MNIST (must be prepared; see README).
  fashion_mnist  catalog Fashion-MNIST (must be prepared).
  cifar10        catalog CIFAR-10 with the ResNet-20 model and random shifts (must be prepared).
  resnet18       the ImageNet-style ResNet-18 (torchvision's layout, for imported weights: see
                 jaxdl.transfer.imported), inputs normalised with ImageNet's mean and std; a few epochs.
                 `--config.model.name=resnet34` or `resnet50` for the deeper ones.

The number of spatial axes comes from the data: (length,) or (length, channels) signals, (height,
width, channels) images, (depth, height, width, channels) volumes; `kernel_size`, `strides` and
`pool_size` are an int (the same along every axis) or a tuple with one entry per axis.

Shared sections (data, optimizer, train, eval, checkpoint): see `jaxdl.run.config.add_*_section`.
"""

import ml_collections

from jaxdl.run.config import add_augment_keys, add_data_section, add_optimizer_section, add_training_sections


def get_config(variant: str = "default") -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.experiment = "cnn"
    config.seed = 0
    add_data_section(config)
    config.model = ml_collections.ConfigDict()
    config.model.name = "cnn"  # cnn | resnet | resnet18 | resnet34 | resnet50
    config.model.dtype = "float32"  # compute: float32 | bfloat16 | float16; parameters stay float32 (docs/models.md)
    config.model.summary_only = False  # true: print the layers and parameter counts, exit (no training, no workdir)
    config.model.channels = (32, 64)  # per conv block (cnn) or per stage (resnet)
    config.model.kernel_size = 3
    config.model.strides = 1
    config.model.pooling = "max"  # max | avg | none, after each block (cnn)
    config.model.pool_size = 2
    config.model.batch_norm = True
    config.model.dropout = 0.25
    config.model.dense_sizes = (128,)
    config.model.activation = "relu"
    config.model.blocks_per_stage = 2  # resnet only
    config.model.random_shift = 0  # steps (pixels) of random translation in training, per axis (augmentation)

    add_optimizer_section(config, learning_rate=1e-3, schedule="cosine")
    add_training_sections(config, epochs=30, batch_size=64)
    add_augment_keys(config.train)  # train.augment: on-device image augmentation, all off (docs/knobs.md)
    config.eval.baseline = True  # also fit softmax regression under the same budget
    config.eval.report = True  # figures and report.html in the workdir

    if variant == "tiny":
        config.model.channels = (8,)
        config.model.dense_sizes = (16,)
        config.train.epochs = 3
        config.train.batch_size = 32
        config.eval.baseline = False
        config.eval.questions = "good_enough,data"  # all, none, or some of simpler_methods,why,good_enough,data,compute
    elif variant == "signals":
        config.data.name = "signals"
        config.model.channels = (16, 32, 32)  # 128 -> 64 -> 32 -> 16 steps
        config.model.kernel_size = 5
        config.model.dropout = 0.1
        config.model.dense_sizes = (64,)
        config.train.epochs = 10
    elif variant in ("mnist", "fashion_mnist"):
        config.data.name = variant
        config.train.epochs = 15
        config.train.batch_size = 128
    elif variant == "cifar10":
        config.data.name = "cifar10"
        config.model.name = "resnet"
        config.model.channels = (16, 32, 64)
        config.model.blocks_per_stage = 3  # ResNet-20
        config.model.dropout = 0.0
        config.model.dense_sizes = ()
        config.model.random_shift = 4  # the standard CIFAR augmentation: pad 4, crop 32
        config.optimizer.name = "momentum"
        config.optimizer.learning_rate = 0.1
        config.optimizer.weight_decay = 1e-4
        config.optimizer.schedule = "warmup_cosine"
        config.optimizer.warmup_epochs = 2.0
        config.train.epochs = 60
        config.train.batch_size = 128
    elif variant == "resnet18":
        config.model.name = "resnet18"
        config.model.input_normalization = "imagenet"  # imagenet | none (resnet18/34/50 only)
        config.train.epochs = 3
        config.train.batch_size = 32
        config.eval.baseline = False
    elif variant != "default":
        raise ValueError(f"unknown variant {variant!r}; "
                         "expected default, tiny, signals, mnist, fashion_mnist, cifar10 or resnet18")
    return config
