"""Optimizers for Glow: Adam or Adamax with linear warmup and clipping."""

from typing import Optional, Union

import tensorflow as tf

from tfp_glow import _validation
from tfp_glow.training._keras import keras

__all__ = ['LinearWarmup', 'default_optimizer']

_OPTIMIZERS = ('adam', 'adamax')

TensorLike = tf.types.experimental.TensorLike


@keras.utils.register_keras_serializable(package='tfp_glow')
class LinearWarmup(keras.optimizers.schedules.LearningRateSchedule):
  """Learning rate rising linearly over the first `warmup_steps` steps.

  ```none
  lr(step) = learning_rate(step) * min(1, (step + 1) / warmup_steps)
  ```

  `step` counts optimizer steps (batches), not epochs, so the first update
  already uses a small but non-zero rate.

  Args:
    learning_rate: Python `float` > 0, or a `LearningRateSchedule` to warm up.
    warmup_steps: Python `int` >= 1.

  Raises:
    TypeError, ValueError: for a bad argument; the message names it.

  #### Examples

  >>> schedule = LinearWarmup(1e-3, warmup_steps=4)
  >>> [round(float(schedule(s)), 6) for s in range(5)]
  [0.00025, 0.0005, 0.00075, 0.001, 0.001]
  """

  def __init__(
      self,
      learning_rate: Union[float,
                           keras.optimizers.schedules.LearningRateSchedule],
      warmup_steps: int):
    super().__init__()
    if not isinstance(learning_rate,
                      keras.optimizers.schedules.LearningRateSchedule):
      learning_rate = _validation.positive_float('learning_rate', learning_rate)
    self.learning_rate = learning_rate
    self.warmup_steps = _validation.positive_int('warmup_steps', warmup_steps)

  def __call__(self, step: TensorLike) -> tf.Tensor:
    step = tf.cast(step, tf.float32)
    base = self.learning_rate
    base = base(step) if callable(base) else tf.constant(base, tf.float32)
    fraction = tf.minimum(1.0, (step + 1.0) / float(self.warmup_steps))
    return tf.cast(base, tf.float32) * fraction

  def get_config(self) -> dict:
    learning_rate = self.learning_rate
    if callable(learning_rate):
      learning_rate = keras.optimizers.schedules.serialize(learning_rate)
    return {'learning_rate': learning_rate, 'warmup_steps': self.warmup_steps}

  @classmethod
  def from_config(cls, config: dict) -> 'LinearWarmup':
    config = dict(config)
    if isinstance(config['learning_rate'], dict):
      config['learning_rate'] = keras.optimizers.schedules.deserialize(
          config['learning_rate'])
    return cls(**config)


def default_optimizer(learning_rate: float = 1e-3, *, warmup_steps: int = 500,
                      clip_norm: Optional[float] = 5.0,
                      kind: str = 'adam') -> keras.optimizers.Optimizer:
  """Adam or Adamax with linear warmup and global-norm gradient clipping.

  Glow diverges for some seeds without warmup (openai/glow#37,
  y0ast/Glow-PyTorch#1); these defaults keep the first steps small and bound
  every update. `clip_norm` bounds the global norm of the gradient of the
  bits/dim loss.

  Args:
    learning_rate: Python `float` > 0, the rate after warmup.
      Default value: `1e-3` (the paper's).
    warmup_steps: Python `int` >= 1, optimizer steps of linear warmup.
      Default value: `500`.
    clip_norm: Python `float` > 0 or `None` (no clipping): the
      `global_clipnorm` of the optimizer. Default value: `5.0`.
    kind: `'adam'` or `'adamax'`. Default value: `'adam'`.

  Returns:
    A Keras optimizer of the Keras flavour in use.

  Raises:
    TypeError, ValueError: for a bad argument; the message names it.

  #### Examples

  >>> opt = default_optimizer(1e-3, warmup_steps=100, kind='adamax')
  >>> type(opt).__name__
  'Adamax'
  """
  _validation.one_of('kind', kind, _OPTIMIZERS)
  if clip_norm is not None:
    clip_norm = _validation.positive_float('clip_norm', clip_norm)
  schedule = LinearWarmup(learning_rate, warmup_steps)
  cls = keras.optimizers.Adam if kind == 'adam' else keras.optimizers.Adamax
  return cls(learning_rate=schedule, global_clipnorm=clip_norm)
