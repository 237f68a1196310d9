"""How a `GlowModel` is saved: its config (`.keras` files) and `export`.

`GlowModel` takes these methods from `SavingMixin`; the model's own module
keeps training. The config is the Glow's constructor arguments
(`Glow.get_config`) and the model's own.
"""

import os
from typing import TYPE_CHECKING, Optional, Union

import tensorflow as tf

from tfp_glow import _validation
from tfp_glow.dequantizer import VariationalDequantizer
from tfp_glow.glow import Glow
from tfp_glow.training._keras import IS_LEGACY
from tfp_glow.training._keras import keras

if TYPE_CHECKING:  # model.py imports this module.
  from tfp_glow.training.model import GlowModel

__all__ = ['SavingMixin']


class SavingMixin:
  """`get_config`, `from_config`, `save`, `compile_from_config`, `export`.

  For a Keras model with a `glow`, a `context_encoder` (or `None`),
  `init_batch_size`, `noise_seed`, `weight_y`, a `context_spec()` method (the
  served raw context) and a `_serve(images, labels=None, context=None)`
  method (bits/dim).
  """


  def get_config(self) -> dict:
    """The model's configuration: its Glow's constructor arguments and its own.

    `GlowModel.from_config(model.get_config())` builds the same model with
    fresh weights; `.keras` files hold this and the weights.

    Returns:
      A JSON-serialisable `dict`: `name`, `trainable`, `glow` (the
      arguments of `tfp_glow.Glow`), `context_encoder` (Keras'
      serialization of the encoder, or `None`), `init_batch_size`,
      `noise_seed`, `weight_y`, `batch_chunks`, `dequantization` and
      `dequantizer` (the arguments of a variational model's
      `VariationalDequantizer`, or `None`).

    Raises:
      NotImplementedError: if the Glow has a custom `conditioner_fn` (a
        function has no config).
    """
    encoder = self.context_encoder
    return dict(name=self.name, trainable=self.trainable,
                glow=self.glow.get_config(),
                context_encoder=None if encoder is None else (
                    keras.saving.serialize_keras_object(encoder)),
                init_batch_size=self._init_batch_size,
                noise_seed=self._noise_seed, weight_y=self._weight_y,
                batch_chunks=self._batch_chunks,
                dequantization=self.dequantization,
                dequantizer=None if self.dequantizer is None else (
                    self.dequantizer.get_config()))

  def save(self, filepath: Union[str, os.PathLike], *args, **kwargs):
    """`keras.Model.save`, which first checks that the model has a config.

    Keras writes (an empty) file before it asks for the config; this raises
    before, so a model that cannot be saved leaves no file behind.

    Args:
      filepath: Python `str` or path, ending in `.keras`.
      *args: other positional arguments of `keras.Model.save`.
      **kwargs: other arguments of `keras.Model.save`.

    Raises:
      NotImplementedError: if the Glow has a custom `conditioner_fn`.
    """
    if not IS_LEGACY or str(filepath).endswith('.keras'):
      self.glow.get_config()
    return super().save(filepath, *args, **kwargs)

  @classmethod
  def from_config(cls, config: dict) -> 'GlowModel':
    """A `GlowModel` (with a new Glow) from `get_config()`'s output.

    Args:
      config: a `dict` from `get_config`.

    Returns:
      A `GlowModel`, not initialised: load its weights. Its
      `context_encoder` (Keras' deserialization: a custom class must be
      registered, or in `custom_objects`) is built as it was saved.
    """
    config = dict(config)
    glow = Glow.from_config(config.pop('glow'))
    encoder = config.pop('context_encoder', None)
    if encoder is not None:
      encoder = keras.saving.deserialize_keras_object(encoder)
    dequantizer = config.pop('dequantizer', None)
    if dequantizer is not None:
      dequantizer = VariationalDequantizer.from_config(dequantizer)
    return cls(glow, context_encoder=encoder, dequantizer=dequantizer,
               **config)

  def compile_from_config(self, config: dict) -> None:
    """Compiles as `get_compile_config()` says (`load_model` calls this).

    Keras skips it for a model that overrides `compile` unless the model
    overrides this too; `compile` also builds the optimizer, whose state the
    `.keras` file then restores.

    Args:
      config: a `dict` from `get_compile_config`.
    """
    self.compile(**keras.saving.deserialize_keras_object(config))

  def export(
      self, filepath: Union[str, os.PathLike],
      format: str = 'tf_saved_model',  # pylint: disable=redefined-builtin
      verbose: Optional[bool] = None) -> None:
    """Writes a SavedModel whose default endpoint serves bits/dim.

    The SavedModel needs only TensorFlow: `tf.saved_model.load(filepath)`,
    then

    ```none
    loaded.serve(images [N, H, W, C] float)            -> bits_per_dim [N]
    loaded.serve(images, labels [N] int32)             (class-conditional)
    loaded.serve(images, context [N, ...])             (conditional)
    loaded.serve(images, labels, context)              (both)
    loaded.signatures['serving_default'](images=...)   -> {'output_0': ...}
    ```

    `images` are integer pixel values in `[0, 2**num_bits)` (in the Glow's
    float dtype), dequantized with the fixed noise `evaluate` uses, so a
    batch gets the per-image bits/dim `evaluate` averages. `context` is the
    raw context, one per image, which the SavedModel passes through the
    `context_encoder` (its shape and dtype: `context_spec()`). The data's
    rules are checked at serving time as in `fit`. For more endpoints
    (`log_prob`, `sample`, `encode`, `decode`) use
    `tfp_glow.export_saved_model`.

    Args:
      filepath: Python `str` or path, the directory to write.
      format: only `'tf_saved_model'`. Default value: `'tf_saved_model'`.
      verbose: Python `bool` or `None`: print the endpoints (Keras 3 only).
        Default value: `None`.

    Raises:
      ValueError: for another `format`, if the Glow was never initialised,
        or if the raw context's shape is not known (see `context_spec`).
    """
    _validation.one_of('format', format, ('tf_saved_model',))
    if not self.glow.is_initialized:
      raise ValueError('The Glow has not been initialised: run '
                       '`model.initialize(images)` (or `fit`) before '
                       '`export`.')
    specs = [tf.TensorSpec([None, *self.glow.image_shape], self.glow.dtype,
                           name='images')]
    if self.glow.num_classes:
      specs.append(tf.TensorSpec([None], tf.int32, name='labels'))
    if self.glow.context_shape is not None:
      specs.append(self.context_spec())
    archive = keras.export.ExportArchive()
    archive.track(self)
    archive.add_endpoint('serve', _positional(self._serve, specs),
                         input_signature=specs)
    if IS_LEGACY:
      archive.write_out(str(filepath))
    else:
      archive.write_out(str(filepath), verbose=bool(verbose))


def _positional(serve, specs):
  """`serve(images, labels=None, context=None)` as a function of the `specs`'
  names, in order: the endpoint passes its inputs by position."""
  names = [spec.name for spec in specs]
  if names == ['images', 'labels', 'context'][:len(names)]:
    return serve

  def endpoint(images, context):   # No labels: a context, not by class.
    return serve(images, context=context)

  return endpoint
