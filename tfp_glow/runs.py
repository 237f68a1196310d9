"""Run directories: a Glow's config.json and its checkpoints, on disk.

```none
run_dir/config.json        the Glow's constructor arguments, under "training"
                           the `tfp_glow.presets.Config` of a run, and under
                           "dequantizer" the `VariationalDequantizer`'s
                           (variational runs only)
run_dir/checkpoints/       tf.train.Checkpoint files: `glow` (always), for
                           trained runs `model`, `optimizer` and `epoch`, and
                           `dequantizer` for variational ones
run_dir/samples/*.png      sample grids; run_dir/metrics.csv: Keras CSVLogger
run_dir/logs/              TensorBoard; run_dir/evaluation.json: held-out bpd
```
"""

import json
import os
import tempfile
from typing import TYPE_CHECKING, Any, Mapping, Optional

import tensorflow as tf

from tfp_glow import checkpoints
from tfp_glow import glow as glow_lib
from tfp_glow.dequantizer import VariationalDequantizer

if TYPE_CHECKING:  # Type hints only: runs imports Keras lazily.
  from tfp_glow.training.model import GlowModel

__all__ = ['CONFIG_FILE', 'CHECKPOINT_DIR', 'SAMPLES_DIR', 'METRICS_FILE',
           'LOGS_DIR', 'EVALUATION_FILE', 'glow_config', 'save_glow',
           'load_glow', 'load_dequantizer', 'load_model', 'prepare_run_dir',
           'write_config',
           'read_training_config', 'has_checkpoint', 'training_checkpoint',
           'training_callbacks', 'read_evaluation', 'write_evaluation']

CONFIG_FILE = 'config.json'
CHECKPOINT_DIR = 'checkpoints'
SAMPLES_DIR = 'samples'
METRICS_FILE = 'metrics.csv'
LOGS_DIR = 'logs'
EVALUATION_FILE = 'evaluation.json'
TRAINING_KEY = 'training'
DEQUANTIZER_KEY = 'dequantizer'


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
  attribute works (extra objects, such as an optimizer, are ignored), in
  the current variable layout or tfp_glow 0.1's (`tfp_glow.checkpoints`).

  Raises:
    FileNotFoundError: if the config or a checkpoint is missing.
    ValueError: if the checkpoint's `glow` is not the config's: every
      variable must be restored.
  """
  config = _read_config(run_dir)
  glow = glow_lib.Glow.from_config(
      {k: v for k, v in config.items()
       if k not in (TRAINING_KEY, DEQUANTIZER_KEY)})
  checkpoints.restore(_newest_checkpoint(run_dir), glow=glow)
  return glow


def load_dequantizer(run_dir: str) -> Optional[VariationalDequantizer]:
  """The `VariationalDequantizer` q(u | x) of a variational run, restored.

  Built from the "dequantizer" section of `run_dir/config.json` and restored
  from the `dequantizer` of the newest checkpoint (as `training_checkpoint`
  writes it).

  Returns:
    The dequantizer, or `None` for a run with uniform dequantization (no
    "dequantizer" section).

  Raises:
    FileNotFoundError: if the config or a checkpoint is missing, or the
      checkpoint holds no dequantizer.
  """
  config = _read_config(run_dir)
  if config.get(DEQUANTIZER_KEY) is None:
    return None
  dequantizer = VariationalDequantizer.from_config(config[DEQUANTIZER_KEY])
  checkpoint = _newest_checkpoint(run_dir)
  if not checkpoints.holds(checkpoint, DEQUANTIZER_KEY):
    raise FileNotFoundError(
        f'{checkpoint} holds no `dequantizer`, but {CONFIG_FILE} of `run_dir` '
        f'describes one: {run_dir}')
  checkpoints.restore(checkpoint, dequantizer=dequantizer)
  return dequantizer


def load_model(run_dir: str) -> 'GlowModel':
  """The `tfp_glow.GlowModel` of a run: its Glow and dequantizer, restored.

  `load_glow` and `load_dequantizer` in a model of the run's dequantization
  (`'variational'` if the run has a dequantizer, else `'uniform'`), with the
  run's `init_batch_size`, noise seed and `weight_y` (defaults for a run
  saved with `save_glow`). Not compiled; initialised (restored).

  Raises:
    FileNotFoundError: as `load_glow` and `load_dequantizer`.
  """
  from tfp_glow.training.model import GlowModel  # pylint: disable=g-import-not-at-top
  training = _read_config(run_dir).get(TRAINING_KEY) or {}
  names = (('init_batch_size', 'init_batch_size'), ('noise_seed', 'seed'),
           ('weight_y', 'weight_y'))
  kwargs = {name: training[key] for name, key in names if key in training}
  dequantizer = load_dequantizer(run_dir)
  return GlowModel(
      load_glow(run_dir), dequantizer=dequantizer,
      dequantization='uniform' if dequantizer is None else 'variational',
      **kwargs)


def _read_config(run_dir):
  """The dict of `run_dir/config.json`."""
  path = os.path.join(run_dir, CONFIG_FILE)
  if not os.path.isfile(path):
    raise FileNotFoundError(f'`run_dir` has no {CONFIG_FILE}: {path}')
  with open(path) as f:
    return json.load(f)


def _newest_checkpoint(run_dir):
  """The prefix of the newest checkpoint of `run_dir`."""
  checkpoint = tf.train.latest_checkpoint(
      os.path.join(run_dir, CHECKPOINT_DIR)) or _newest_written(run_dir)
  if checkpoint is None:
    raise FileNotFoundError(
        f'`run_dir` has no checkpoint in {os.path.join(run_dir, CHECKPOINT_DIR)}')
  return checkpoint


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
                 training: Optional[Mapping[str, Any]] = None,
                 dequantizer: Optional[VariationalDequantizer] = None) -> None:
  """Writes config.json: `glow_config(glow)`, plus `training` and the
  `dequantizer`'s constructor arguments if given."""
  config = glow_config(glow)
  if training is not None:
    config[TRAINING_KEY] = dict(training)
  if dequantizer is not None:
    config[DEQUANTIZER_KEY] = dequantizer.get_config()
  with open(os.path.join(run_dir, CONFIG_FILE), 'w') as f:
    json.dump(config, f, indent=2)


def read_training_config(run_dir: str) -> dict:
  """The `training` section of `run_dir/config.json` (a dict).

  Raises:
    FileNotFoundError: if there is no config.json, or it has no training
      section (the run was saved with `save_glow`, not trained by
      `tfp_glow.tasks.train`).
  """
  config = _read_config(run_dir)
  path = os.path.join(run_dir, CONFIG_FILE)
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
  classifier of a conditional model, and every other variable of the
  model), `optimizer` (its slots and step, hence the warmup and the
  dequantization noise), `epoch`, the number of epochs done, a `tf.Variable`
  the manager exposes as `manager.epoch`, and for a variational model its
  `dequantizer` q(u | x) (what `load_dequantizer` restores).
  """
  epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name='epoch')
  parts = dict(glow=model.glow, model=model, optimizer=model.optimizer,
               epoch=epoch)
  if model.dequantizer is not None:
    parts['dequantizer'] = model.dequantizer
  checkpoint = tf.train.Checkpoint(**parts)
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
