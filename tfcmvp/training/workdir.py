"""The names of the files a training run writes into its WORKDIR.

Pretraining, finetuning (and any later task run by :mod:`tfcmvp.training.runner`)
share these; a task adds its own (e.g. finetuning's results.json).
"""

CONFIG_NAME = "config.yaml"  # the resolved config (every field)
CHECKPOINT_DIR = "checkpoints"  # tf.train checkpoints: model, optimizer, counters
HISTORY_CSV = "history.csv"  # one row per epoch
HISTORY_PNG = "history.png"  # its curves
TENSORBOARD_DIR = "tensorboard"  # TensorBoard event files
WEIGHTS_DIR = "weights"  # <stem>.weights.h5 after every epoch

# Network -> its weights file stem in WEIGHTS_DIR (pretraining). The stems are
# the file names of the first runs, kept so that every existing workdir still
# exports and older code reads new workdirs.
NETWORK_WEIGHTS_STEMS = {"video": "v_network", "iframe": "i_network", "motion": "m_network"}
