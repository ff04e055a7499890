"""CNN + RNN on sequences of digit images, labelled with the sum of their digits (offline by default).

    python -m experiments.hybrid --config configs/hybrid.py

A CNN (`model.encoder`) encodes every frame, an RNN (`model.sequence`) reads the frame features,
a dense head classifies the sum. Variants, as `--config configs/hybrid.py:NAME`:
  default   4 frames per sequence (`digit_sequences`), 37 classes (sums 0..36).
  tiny      2 frames, small networks, a few epochs, for smoke tests.
"""

import ml_collections


def get_config(variant: str = "default") -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.experiment = "hybrid"
    config.seed = 0

    config.data = ml_collections.ConfigDict()
    config.data.name = "digit_sequences"
    config.data.data_dir = ""  # "" = $TFDS_DATA_DIR or ~/tensorflow_datasets
    config.data.validation_fraction = 0.1  # carved from train when the set has no validation split
    config.data.split_seed = 0
    config.data.download = False
    config.data.sequence_length = 4  # frames per sequence

    config.model = ml_collections.ConfigDict()
    config.model.name = "hybrid"
    config.model.encoder = ml_collections.ConfigDict()  # the CNN applied to every frame
    config.model.encoder.channels = (16, 32)
    config.model.encoder.kernel_size = 3
    config.model.encoder.strides = 1
    config.model.encoder.pooling = "max"  # max | avg | none
    config.model.encoder.pool_size = 2
    config.model.encoder.batch_norm = True
    config.model.encoder.dropout = 0.1
    config.model.encoder.dense_sizes = (64,)  # the frame feature size is the last of these
    config.model.encoder.activation = "relu"
    config.model.encoder.random_shift = 0  # pixels of random translation of frames in training
    config.model.sequence = ml_collections.ConfigDict()  # the RNN over frame features
    config.model.sequence.cell = "lstm"  # simple | lstm | gru
    config.model.sequence.hidden_size = 64
    config.model.sequence.num_layers = 1
    config.model.sequence.bidirectional = False
    config.model.sequence.readout = "last"  # last | mean | max
    config.model.sequence.mask_padding = False  # all-zero frames at the end are padding
    config.model.sequence.dropout = 0.0
    config.model.sequence.dense_sizes = ()
    config.model.sequence.activation = "relu"

    config.optimizer = ml_collections.ConfigDict()
    config.optimizer.name = "adam"
    config.optimizer.learning_rate = 2e-3
    config.optimizer.schedule = "cosine"  # constant | linear | cosine | warmup_cosine
    config.optimizer.warmup_epochs = 0.0
    config.optimizer.final_lr_ratio = 0.0
    config.optimizer.momentum = 0.9
    config.optimizer.weight_decay = 0.0
    config.optimizer.clip_norm = 1.0

    config.train = ml_collections.ConfigDict()
    config.train.epochs = 10
    config.train.batch_size = 64
    config.train.patience = 0  # epochs without a better validation loss before stopping; 0 = off

    config.eval = ml_collections.ConfigDict()
    config.eval.batch_size = 1024

    config.checkpoint = ml_collections.ConfigDict()
    config.checkpoint.every_epochs = 0  # 0 = by time only
    config.checkpoint.every_seconds = 30.0
    config.checkpoint.keep = 2

    if variant == "tiny":
        config.data.sequence_length = 2
        config.model.encoder.channels = (8,)
        config.model.encoder.dense_sizes = (16,)
        config.model.sequence.cell = "gru"
        config.model.sequence.hidden_size = 16
        config.train.epochs = 2
        config.train.batch_size = 32
    elif variant != "default":
        raise ValueError(f"unknown variant {variant!r}; expected default or tiny")
    return config
