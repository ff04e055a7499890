"""Running experiments: the command line, config files and overrides, and the pipeline that wires
data, model, training, evaluation and the report from a config (`train_and_evaluate`)."""
