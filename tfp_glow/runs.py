"""Run directories: a Glow's config.json and its checkpoints, on disk."""

import json
import os

import tensorflow as tf

from tfp_glow import glow as glow_lib

__all__ = ['CONFIG_FILE', 'CHECKPOINT_DIR', 'glow_config', 'save_glow',
           'load_glow']

CONFIG_FILE = 'config.json'
CHECKPOINT_DIR = 'checkpoints'
_CONFIG_KEYS = ('image_shape', 'num_levels', 'num_steps', 'hidden_channels',
                'coupling', 'permutation', 'learn_top', 'num_classes',
                'num_bits', 'dtype', 'compute_dtype', 'seed',
                'recompute_gradients')


def glow_config(glow):
  """The JSON-ready constructor arguments of `glow`.

  Raises:
    ValueError: if `glow` was built with a custom `conditioner_fn`, which no
      config file can describe.
  """
  params = glow.parameters
  if params.get('conditioner_fn') is not None:
    raise ValueError('A Glow with a custom `conditioner_fn` cannot be saved as '
                     'a config; build it in code and use tf.train.Checkpoint.')
  config = {key: params[key] for key in _CONFIG_KEYS}
  config['image_shape'] = list(glow.image_shape)
  for key in ('dtype', 'compute_dtype'):
    if config[key] is not None:
      config[key] = tf.as_dtype(config[key]).name
  return config


def save_glow(glow, run_dir, step=0):
  """Writes `run_dir/config.json` and a checkpoint `{'glow': glow}`."""
  os.makedirs(run_dir, exist_ok=True)
  with open(os.path.join(run_dir, CONFIG_FILE), 'w') as f:
    json.dump(glow_config(glow), f, indent=2)
  prefix = os.path.join(run_dir, CHECKPOINT_DIR, 'ckpt')
  return tf.train.Checkpoint(glow=glow).write(f'{prefix}-{step}')


def load_glow(run_dir):
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
  image_shape = tuple(config.pop('image_shape'))
  glow = glow_lib.Glow(image_shape, **config)
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
