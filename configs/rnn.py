"""RNN on sequences: digits read row by row (offline by default), the adding problem, or bytes of text.

    python -m experiments.rnn --config configs/rnn.py

Variants, as `--config configs/rnn.py:NAME`:
  default   digits as 8 steps (rows) of 8 features, an LSTM of 128 units read from its last state.
  tiny      a small GRU for a few epochs, for smoke tests.
  signals   the generated `signals` set (sine, square, sawtooth, noise burst; 128 steps of one
            value): a GRU read from its mean over the steps; --config.model.cell=lstm for an LSTM.
  adding    the adding problem (regression, mean squared error), length 50 by default:
            --config.data.sequence_length=100 for longer sequences, --config.model.cell=gru|simple.
  adding_per_step  the adding problem with a target at every step (the running sum of the marked
            numbers so far): readout per_step, the loss a mean over each sequence's real steps.
  imdb      the catalog imdb_reviews set read as bytes (must be prepared; see README), padded and
            masked: a bidirectional GRU, mean-pooled over the real steps.

Shared sections (data, optimizer, train, eval, checkpoint): see `jaxdl.run.config.add_*_section`;
`data.sequence_length` is the adding problem's length, or the bytes kept of each text.
"""

import ml_collections

from jaxdl.run.config import add_data_section, add_optimizer_section, add_training_sections


def get_config(variant: str = "default") -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.experiment = "rnn"
    config.seed = 0
    add_data_section(config)
    config.model = ml_collections.ConfigDict()
    config.model.name = "rnn"
    config.model.dtype = "float32"  # compute: float32 | bfloat16 | float16; parameters stay float32 (docs/models.md)
    config.model.summary_only = False  # true: print the layers and parameter counts, exit (no training, no workdir)
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

    add_optimizer_section(config, learning_rate=3e-3, schedule="cosine", clip_norm=1.0)
    add_training_sections(config, epochs=40, batch_size=64)
    config.eval.baseline = True  # also fit the no-hidden-layer model (softmax / linear regression)
    config.eval.report = True  # figures and report.html in the workdir

    if variant == "tiny":
        config.model.cell = "gru"
        config.model.hidden_size = 16
        config.train.epochs = 3
        config.train.batch_size = 32
        config.eval.baseline = False
        config.eval.questions = "good_enough,data"  # all, none, or some of simpler_methods,why,good_enough,data,compute
    elif variant == "signals":
        config.data.name = "signals"
        config.model.cell = "gru"
        config.model.hidden_size = 32
        config.model.readout = "mean"
        config.train.epochs = 20
    elif variant == "adding":
        config.data.name = "adding"
        config.data.sequence_length = 50
        config.model.hidden_size = 64
        config.train.epochs = 30
    elif variant == "adding_per_step":
        config.data.name = "adding_per_step"
        config.data.sequence_length = 50
        config.model.hidden_size = 64
        config.model.readout = "per_step"
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
        raise ValueError(f"unknown variant {variant!r}; "
                         "expected default, tiny, signals, adding, adding_per_step or imdb")
    return config
