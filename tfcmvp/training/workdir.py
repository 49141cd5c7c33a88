"""The names of the files a training run writes into its WORKDIR.

Pretraining, finetuning (and any later task run by :mod:`tfcmvp.training.runner`)
share these; a task adds its own (e.g. finetuning's results.json).
"""

CONFIG_NAME = "config.yaml"  # the resolved config (every field)
CHECKPOINT_DIR = "checkpoints"  # tf.train checkpoints: model, optimizer, counters
HISTORY_CSV = "history.csv"  # one row per epoch
HISTORY_PNG = "history.png"  # its curves
TENSORBOARD_DIR = "tensorboard"  # TensorBoard event files
WEIGHTS_DIR = "weights"  # <network>.weights.h5 after every epoch
