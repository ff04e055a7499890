"""CNN + RNN on sequences of digit images, labelled with the sum of their digits (offline by default).

    python -m experiments.hybrid --config configs/hybrid.py

A CNN (`model.encoder`, the keys of configs/cnn.py) encodes every frame, an RNN (`model.sequence`,
the keys of configs/rnn.py) reads the frame features, a dense head classifies the sum.
Variants, as `--config configs/hybrid.py:NAME`:
  default   4 frames per sequence (`digit_sequences`), 37 classes (sums 0..36).
  tiny      2 frames, small networks, a few epochs, for smoke tests.

Shared sections (data, optimizer, train, eval, checkpoint): see `jaxdl.run.config.add_*_section`;
`data.sequence_length` is the number of frames.
"""

import ml_collections

from jaxdl.run.config import add_data_section, add_optimizer_section, add_training_sections


def get_config(variant: str = "default") -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.experiment = "hybrid"
    config.seed = 0
    add_data_section(config, "digit_sequences", sequence_length=4)  # 4 frames per sequence

    config.model = ml_collections.ConfigDict()
    config.model.name = "hybrid"
    config.model.dtype = "float32"  # compute: float32 | bfloat16 | float16; parameters stay float32 (docs/models.md)
    config.model.summary_only = False  # true: print the layers and parameter counts, exit (no training, no workdir)
    config.model.encoder = ml_collections.ConfigDict()  # the CNN applied to every frame
    config.model.encoder.channels = (32, 64)
    config.model.encoder.kernel_size = 3
    config.model.encoder.strides = 1
    config.model.encoder.pooling = "max"  # max | avg | none
    config.model.encoder.pool_size = 2
    config.model.encoder.batch_norm = True
    config.model.encoder.dropout = 0.25
    config.model.encoder.dense_sizes = (64,)  # the frame feature size is the last of these
    config.model.encoder.activation = "relu"
    config.model.encoder.random_shift = 0  # pixels of random translation of frames in training
    config.model.sequence = ml_collections.ConfigDict()  # the RNN over frame features
    config.model.sequence.cell = "lstm"  # simple | lstm | gru
    config.model.sequence.hidden_size = 128
    config.model.sequence.num_layers = 1
    config.model.sequence.bidirectional = False
    config.model.sequence.readout = "last"  # last | mean | max
    config.model.sequence.mask_padding = False  # all-zero frames at the end are padding
    config.model.sequence.dropout = 0.0
    config.model.sequence.dense_sizes = ()
    config.model.sequence.activation = "relu"

    add_optimizer_section(config, learning_rate=3e-3, schedule="cosine")
    add_training_sections(config, epochs=20, batch_size=32)
    config.eval.baseline = True  # also fit softmax regression on the raw frames under the same budget
    config.eval.report = True  # figures and report.html in the workdir

    if variant == "tiny":
        config.data.sequence_length = 2
        config.model.encoder.channels = (8,)
        config.model.encoder.dense_sizes = (16,)
        config.model.sequence.cell = "gru"
        config.model.sequence.hidden_size = 16
        config.train.epochs = 2
        config.eval.baseline = False
        config.eval.questions = "good_enough,data"  # all, none, or some of simpler_methods,why,good_enough,data,compute
    elif variant != "default":
        raise ValueError(f"unknown variant {variant!r}; expected default or tiny")
    return config
