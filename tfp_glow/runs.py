"""Run directories: a Glow's config.json and its checkpoints, on disk.

```none
run_dir/config.json        the Glow's constructor arguments, and under
                           "training" the `tfp_glow.presets.Config` of a run
run_dir/checkpoints/       tf.train.Checkpoint files: `glow` (always), and for
                           trained runs `model`, `optimizer` and `epoch`
run_dir/samples/*.png      sample grids; run_dir/metrics.csv: Keras CSVLogger
run_dir/logs/              TensorBoard; run_dir/evaluation.json: held-out bpd
```
"""

import json
import os
import tempfile
from typing import TYPE_CHECKING, Any, Mapping, Optional

import tensorflow as tf

from tfp_glow import glow as glow_lib

if TYPE_CHECKING:  # Type hints only: runs imports Keras lazily.
  from tfp_glow.training.model import GlowModel

__all__ = ['CONFIG_FILE', 'CHECKPOINT_DIR', 'SAMPLES_DIR', 'METRICS_FILE',
           'LOGS_DIR', 'EVALUATION_FILE', 'glow_config', 'save_glow',
           'load_glow', 'prepare_run_dir', 'write_config',
           'read_training_config', 'has_checkpoint', 'training_checkpoint',
           'training_callbacks', 'read_evaluation', 'write_evaluation']

CONFIG_FILE = 'config.json'
CHECKPOINT_DIR = 'checkpoints'
SAMPLES_DIR = 'samples'
METRICS_FILE = 'metrics.csv'
LOGS_DIR = 'logs'
EVALUATION_FILE = 'evaluation.json'
TRAINING_KEY = 'training'


def glow_config(glow: glow_lib.Glow) -> dict:
  """The JSON-ready constructor arguments of `glow` (`Glow.get_config`).

  Raises:
    NotImplementedError: if `glow` was built with a custom `conditioner_fn`,
      which no config file can describe.
  """
  return glow.get_config()


def save_glow(glow: glow_lib.Glow, run_dir: str, step: int = 0) -> str:
  """Writes `run_dir/config.json` and a checkpoint `{'glow': glow}`."""
  os.makedirs(run_dir, exist_ok=True)
  write_config(run_dir, glow)
  prefix = os.path.join(run_dir, CHECKPOINT_DIR, 'ckpt')
  return tf.train.Checkpoint(glow=glow).write(f'{prefix}-{step}')


def load_glow(run_dir: str) -> glow_lib.Glow:
  """Builds the Glow of `run_dir/config.json` and restores its newest weights.

  Any `tf.train.Checkpoint` in `run_dir/checkpoints` whose root has a `glow`
  attribute works (extra objects, such as an optimizer, are ignored).

  Raises:
    FileNotFoundError: if the config or a checkpoint is missing.
  """
  config_path = os.path.join(run_dir, CONFIG_FILE)
  if not os.path.isfile(config_path):
    raise FileNotFoundError(f'`run_dir` has no {CONFIG_FILE}: {config_path}')
  with open(config_path) as f:
    config = json.load(f)
  glow = glow_lib.Glow.from_config(
      {k: v for k, v in config.items() if k != TRAINING_KEY})
  checkpoint = tf.train.latest_checkpoint(
      os.path.join(run_dir, CHECKPOINT_DIR)) or _newest_written(run_dir)
  if checkpoint is None:
    raise FileNotFoundError(
        f'`run_dir` has no checkpoint in {os.path.join(run_dir, CHECKPOINT_DIR)}')
  tf.train.Checkpoint(glow=glow).restore(checkpoint).expect_partial()
  return glow


def _newest_written(run_dir):
  """Newest `Checkpoint.write` prefix (these have no 'checkpoint' index file)."""
  folder = os.path.join(run_dir, CHECKPOINT_DIR)
  if not os.path.isdir(folder):
    return None
  indexes = [f[:-len('.index')] for f in os.listdir(folder)
             if f.endswith('.index')]
  if not indexes:
    return None
  return os.path.join(folder, max(indexes, key=lambda p: int(p.rsplit('-')[-1])))


def prepare_run_dir(run_dir: str) -> str:
  """Creates `run_dir` (and parents) and checks that it is writable.

  Raises:
    PermissionError: if `run_dir` cannot be created or written to.
  """
  return writable_dir(run_dir, '`run_dir`')


def writable_dir(path: str, name: str) -> str:
  """Creates the folder `path` (and parents) and checks a file fits in it.

  Args:
    path: the folder.
    name: what to call it in the message, e.g. '`run_dir`' or '--output'.

  Returns:
    `path`.

  Raises:
    PermissionError: if `path` cannot be created or written to.
  """
  try:
    os.makedirs(path, exist_ok=True)
  except OSError as e:
    raise PermissionError(f'{name} cannot be created: {path} '
                          f'({e.strerror or e})') from e
  try:
    with tempfile.TemporaryFile(dir=path):
      pass
  except OSError as e:
    raise PermissionError(f'{name} is not writable: {path} '
                          f'({e.strerror or e})') from e
  return path


def write_config(run_dir: str, glow: glow_lib.Glow,
                 training: Optional[Mapping[str, Any]] = None) -> None:
  """Writes config.json: `glow_config(glow)`, plus `training` if given."""
  config = glow_config(glow)
  if training is not None:
    config[TRAINING_KEY] = dict(training)
  with open(os.path.join(run_dir, CONFIG_FILE), 'w') as f:
    json.dump(config, f, indent=2)


def read_training_config(run_dir: str) -> dict:
  """The `training` section of `run_dir/config.json` (a dict).

  Raises:
    FileNotFoundError: if there is no config.json, or it has no training
      section (the run was saved with `save_glow`, not trained by
      `tfp_glow.tasks.train`).
  """
  path = os.path.join(run_dir, CONFIG_FILE)
  if not os.path.isfile(path):
    raise FileNotFoundError(f'`run_dir` has no {CONFIG_FILE}: {path}')
  with open(path) as f:
    config = json.load(f)
  if TRAINING_KEY not in config:
    raise FileNotFoundError(f'{path} has no "{TRAINING_KEY}" section (the run '
                            'was not made by `tfp-glow train`).')
  return config[TRAINING_KEY]


def has_checkpoint(run_dir: str) -> bool:
  """True if `run_dir/checkpoints` holds a checkpoint."""
  folder = os.path.join(run_dir, CHECKPOINT_DIR)
  return bool(tf.train.latest_checkpoint(folder) or _newest_written(run_dir))


def training_checkpoint(model: 'GlowModel', run_dir: str,
                        max_to_keep: int = 2) -> tf.train.CheckpointManager:
  """A `tf.train.CheckpointManager` of a `GlowModel`'s training state.

  The checkpoint holds `glow` (what `load_glow` restores), `model` (the
  classifier of a conditional model), `optimizer` (its slots and step, hence
  the warmup and the dequantization noise) and `epoch`, the number of
  epochs done, a `tf.Variable` the manager exposes as `manager.epoch`.
  """
  epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name='epoch')
  checkpoint = tf.train.Checkpoint(glow=model.glow, model=model,
                                   optimizer=model.optimizer, epoch=epoch)
  manager = tf.train.CheckpointManager(
      checkpoint, os.path.join(run_dir, CHECKPOINT_DIR), max_to_keep,
      checkpoint_name='ckpt')
  manager.epoch = epoch
  return manager


def training_callbacks(run_dir: str, manager: tf.train.CheckpointManager,
                       append: bool = False) -> list:
  """Keras callbacks writing a run directory at the end of every epoch.

  A checkpoint (`manager` of `training_checkpoint`, numbered by epochs done),
  `metrics.csv` (`CSVLogger`, appended to when resuming) and TensorBoard
  scalars in `logs/`.
  """
  from tfp_glow.training._keras import keras  # pylint: disable=g-import-not-at-top

  def save(epoch, logs):
    del logs
    manager.epoch.assign(epoch + 1)
    manager.save(checkpoint_number=epoch + 1)

  return [
      keras.callbacks.LambdaCallback(on_epoch_end=save),
      keras.callbacks.CSVLogger(os.path.join(run_dir, METRICS_FILE),
                                append=append),
      keras.callbacks.TensorBoard(os.path.join(run_dir, LOGS_DIR),
                                  write_graph=False, profile_batch=0),
  ]


def write_evaluation(run_dir: str, evaluation: Mapping[str, Any]) -> None:
  """Writes a dict (e.g. held-out bits/dim) to `run_dir/evaluation.json`."""
  with open(os.path.join(run_dir, EVALUATION_FILE), 'w') as f:
    json.dump(evaluation, f, indent=2)


def read_evaluation(run_dir: str) -> dict:
  """The dict `write_evaluation` wrote."""
  with open(os.path.join(run_dir, EVALUATION_FILE)) as f:
    return json.load(f)
