"""RNN on sequences: digits read row by row (offline by default), the adding problem, or bytes of text.

    python -m experiments.rnn --config configs/rnn.py

Variants, as `--config configs/rnn.py:NAME`:
  default   digits as 8 steps (rows) of 8 features, an LSTM of 128 units read from its last state.
  tiny      a small GRU for a few epochs, for smoke tests.
  adding    the adding problem (regression, mean squared error), length 50 by default:
            --config.data.sequence_length=100 for longer sequences, --config.model.cell=gru|simple.
  imdb      the catalog imdb_reviews set read as bytes (must be prepared; see README), padded and
            masked: a bidirectional GRU, mean-pooled over the real steps.
"""

import ml_collections


def get_config(variant: str = "default") -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.experiment = "rnn"
    config.seed = 0

    config.data = ml_collections.ConfigDict()
    config.data.name = "digits"
    config.data.data_dir = ""  # "" = $TFDS_DATA_DIR or ~/tensorflow_datasets
    config.data.validation_fraction = 0.1  # carved from train when the set has no validation split
    config.data.split_seed = 0
    config.data.download = False  # True: prepare an unprepared catalog set (needs the network)
    config.data.sequence_length = 0  # 0 = the dataset's own; adding: steps; text sets: bytes kept

    config.model = ml_collections.ConfigDict()
    config.model.name = "rnn"
    config.model.cell = "lstm"  # simple | lstm | gru
    config.model.hidden_size = 128
    config.model.num_layers = 1
    config.model.bidirectional = False
    config.model.readout = "last"  # last | mean | max | per_step
    config.model.mask_padding = False  # trailing all-zero steps (token 0) are padding
    config.model.dropout = 0.0
    config.model.dense_sizes = ()
    config.model.activation = "relu"  # of the dense layers
    config.model.vocab_size = 0  # > 0: inputs are token ids, embedded
    config.model.embed_size = 32

    config.optimizer = ml_collections.ConfigDict()
    config.optimizer.name = "adam"
    config.optimizer.learning_rate = 3e-3
    config.optimizer.schedule = "cosine"  # constant | linear | cosine | warmup_cosine
    config.optimizer.warmup_epochs = 0.0
    config.optimizer.final_lr_ratio = 0.0
    config.optimizer.momentum = 0.9
    config.optimizer.weight_decay = 0.0
    config.optimizer.clip_norm = 1.0

    config.train = ml_collections.ConfigDict()
    config.train.epochs = 40
    config.train.batch_size = 64
    config.train.patience = 0  # epochs without a better validation loss before stopping; 0 = off

    config.eval = ml_collections.ConfigDict()
    config.eval.batch_size = 1024

    config.checkpoint = ml_collections.ConfigDict()
    config.checkpoint.every_epochs = 0  # 0 = by time only
    config.checkpoint.every_seconds = 30.0
    config.checkpoint.keep = 2

    if variant == "tiny":
        config.model.cell = "gru"
        config.model.hidden_size = 16
        config.train.epochs = 3
        config.train.batch_size = 32
    elif variant == "adding":
        config.data.name = "adding"
        config.data.sequence_length = 50
        config.model.hidden_size = 64
        config.optimizer.learning_rate = 3e-3
        config.train.epochs = 30
    elif variant == "imdb":
        config.data.name = "imdb_reviews"
        config.data.sequence_length = 512
        config.model.cell = "gru"
        config.model.hidden_size = 64
        config.model.bidirectional = True
        config.model.readout = "mean"
        config.model.mask_padding = True
        config.model.vocab_size = 257  # bytes + padding (jaxdl.data.text)
        config.train.epochs = 10
    elif variant != "default":
        raise ValueError(f"unknown variant {variant!r}; expected default, tiny, adding or imdb")
    return config
