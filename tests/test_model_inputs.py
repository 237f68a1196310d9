"""The data checks of `GlowModel`: every bad input fails with a message that
names the data, states the rule, shows the value and says how to fix it.

Each case goes through the three ways into the data path: a `fit` step
(`train_step`) of an initialised model, `evaluate` (`test_step`) and the
automatic data-dependent init of `fit` (`initialize`) of a model that is not
initialised. A failing batch must leave the model as it was: no update, no
init.

Static rules (dtypes, shapes) raise in Python while a step is traced, so
their tests use models that traced nothing yet: once a step was traced for
other shapes, `tf.function` relaxes its input shapes and the same rules are
asserted at run time instead (`test_shapes_unknown_to_the_trace_...`).
"""

import functools

import numpy as np
import pytest
import tensorflow as tf

NUM_CLASSES = 3
InvalidArgument = tf.errors.InvalidArgumentError


def _labels(n=32):
  return np.arange(n) % NUM_CLASSES


@pytest.fixture(scope='module')
def byte_images(uint8_images):
  """uint8 images of every byte value: pixels uniform in [0, 256)."""
  return functools.partial(uint8_images, low=0, levels=256)


@pytest.fixture(scope='module')
def make_model(compiled_model, byte_images):
  """Compiled models: 16 images per init batch, lr 1e-3, 2 warm-up steps."""

  def make(num_classes=None, initialize=True, jit_compile=False):
    model = compiled_model(num_classes=num_classes, learning_rate=1e-3,
                           warmup_steps=2, init_batch_size=16,
                           jit_compile=jit_compile)
    if initialize:
      model.initialize(byte_images(), _labels() if num_classes else None)
    return model

  return make


# Shared by the tests: no test may change them (each asserts it did not).
@pytest.fixture(scope='module')
def trained(make_model):
  return make_model()


@pytest.fixture(scope='module')
def fresh(make_model):
  return make_model(initialize=False)


@pytest.fixture(scope='module')
def conditional(make_model):
  return make_model(NUM_CLASSES)


@pytest.fixture(scope='module')
def fresh_conditional(make_model):
  return make_model(NUM_CLASSES, initialize=False)


def _state(model):
  return [v.numpy().copy() for v in model.variables + list(
      model.optimizer.variables)]


def _assert_unchanged(model, before):
  for a, b in zip(before, _state(model)):
    np.testing.assert_array_equal(a, b)


def _raises(error, call, *parts):
  """Runs `call`, which must raise `error` with every string of `parts`."""
  with pytest.raises(error) as info:
    call()
  message = str(info.value)
  for part in parts:
    assert part in message, (part, message[-2000:])
  return message


def _check_every_path(model, fresh_model, error, parts, x, y=None, *,
                      init_error=None, init_parts=None):
  """`fit` and `evaluate` of `model`, and the auto-init of `fresh_model`.

  The bad values of `x` and `y` must be in their first 16 elements.
  """
  before = _state(model)
  # Unshuffled: the bad value is in the first batch, so no step may run.
  _raises(error, lambda: model.fit(x, y, batch_size=16, epochs=1, verbose=0,
                                   shuffle=False),
          'GlowModel.train_step', *parts)
  _raises(error, lambda: model.evaluate(x, y, batch_size=16, verbose=0),
          'GlowModel.test_step', *parts)
  _assert_unchanged(model, before)
  _raises(init_error or error,
          lambda: fresh_model.fit(x, y, batch_size=16, epochs=1, verbose=0),
          'GlowModel.fit (data-dependent init)', *(init_parts or parts))
  assert not fresh_model.glow.is_initialized


def test_float_images_in_0_1(trained, fresh, byte_images):
  images = byte_images().astype(np.float32) / 255.0
  _check_every_path(trained, fresh, InvalidArgument, [
      '`images` must hold integer pixel values in [0, 256) (num_bits=8)',
      'non-integer values from', 'tf.cast(tf.round(images * 255), tf.uint8)'],
                    images)


def test_int_pixels_up_to_1000(trained, fresh, byte_images):
  images = byte_images().astype(np.int32)
  images[5, 3, 3, 0] = 1000
  _check_every_path(trained, fresh, InvalidArgument, [
      '`images` must hold pixel values in [0, 256) (num_bits=8)', '1000',
      'set num_bits'], images)


def test_negative_pixels(trained, fresh, byte_images):
  images = byte_images().astype(np.int32)
  images[0, 0, 0, 0] = -3
  _check_every_path(trained, fresh, InvalidArgument, [
      '`images` must hold pixel values in [0, 256)', '-3'], images)


def test_nan_images(trained, fresh, byte_images):
  images = byte_images().astype(np.float32)
  images[3, 2, 2, 0] = np.nan
  # Only the finiteness rule is reported (the other pixels are fine).
  message = _raises(
      InvalidArgument,
      lambda: trained.fit(images, batch_size=32, epochs=1, verbose=0),
      '`images` must be finite; got', 'NaN or inf values')
  assert 'integer pixel values' not in message
  assert 'min and max' not in message
  _check_every_path(trained, fresh, InvalidArgument,
                    ['`images` must be finite', 'NaN or inf'], images)


def test_wrong_image_shape(byte_images, make_model):
  images = byte_images()[:, :4]
  _check_every_path(make_model(), make_model(initialize=False), ValueError, [
      '`images` must have shape [N, 8, 8, 1]; got shape [', '4, 8, 1]',
      'Resize or crop'], images)


def test_wrong_rank(byte_images, make_model):
  images = byte_images()[..., 0]
  _check_every_path(make_model(), make_model(initialize=False), ValueError, [
      '`images` must have shape [N, 8, 8, 1]; got shape [', '8, 8]',
      'images[..., None]'], images)


def test_images_of_a_non_number_dtype(trained, fresh, byte_images):
  images = byte_images() > 100
  _check_every_path(trained, fresh, TypeError, [
      '`images` must be integer pixel values of an int or float dtype',
      'got dtype bool'], images)


def test_unbatched_dataset(byte_images, make_model):
  dataset = tf.data.Dataset.from_tensor_slices(byte_images())
  parts = ['`images` must have shape [N, 8, 8, 1]; got shape [8, 8, 1]',
           'dataset.batch(batch_size)']
  _raises(ValueError, lambda: make_model().fit(dataset, epochs=1, verbose=0),
          'GlowModel.train_step', *parts)
  fresh = make_model(initialize=False)
  _raises(ValueError, lambda: fresh.fit(dataset, epochs=1, verbose=0),
          'GlowModel.fit (data-dependent init)', *parts)
  assert not fresh.glow.is_initialized


def test_labels_out_of_range(conditional, fresh_conditional, byte_images):
  labels = _labels()
  labels[7] = NUM_CLASSES
  # Arrays reach the init as values Python knows: checked there, statically.
  _check_every_path(conditional, fresh_conditional, InvalidArgument, [
      '`labels` must be class ids in [0, 3); got min and max', '3'],
                    byte_images(), labels,
                    init_error=ValueError, init_parts=[
                        '`labels` must be class ids in [0, 3)',
                        'got values from 0 to 3'])


def test_negative_labels(conditional, byte_images):
  labels = _labels()
  labels[0] = -1
  _raises(InvalidArgument,
          lambda: conditional.evaluate(byte_images(), labels, verbose=0),
          '`labels` must be class ids in [0, 3)', '-1')


def test_float_labels(conditional, fresh_conditional, byte_images):
  labels = _labels().astype(np.float32)
  _check_every_path(conditional, fresh_conditional, TypeError, [
      '`labels` must be int class ids; got dtype float32'], byte_images(),
                    labels)


def test_labels_of_another_batch_size(conditional, fresh_conditional,
                                      byte_images):
  images = tf.data.Dataset.from_tensor_slices(byte_images()).batch(16)
  labels = tf.data.Dataset.from_tensor_slices(_labels()).batch(8)
  dataset = tf.data.Dataset.zip((images, labels))
  before = _state(conditional)
  parts = ['`labels` must hold one class id per image', '8', 'labels for',
           '16', 'images']
  _raises(InvalidArgument, lambda: conditional.fit(dataset, verbose=0),
          'GlowModel.train_step', *parts)
  _raises(InvalidArgument, lambda: conditional.evaluate(dataset, verbose=0),
          'GlowModel.test_step', *parts)
  _assert_unchanged(conditional, before)
  # Static shapes in `initialize`: a ValueError, before anything runs.
  _raises(ValueError,
          lambda: fresh_conditional.initialize(byte_images(16), _labels(8)),
          'GlowModel.initialize: `labels` must have one class id per '
          'example, shape [16]; got shape [8]')
  assert not fresh_conditional.glow.is_initialized


def test_labels_of_another_rank(byte_images, make_model):
  _raises(ValueError,
          lambda: make_model(NUM_CLASSES).fit(byte_images(), _labels()[:, None],
                                              batch_size=16, verbose=0),
          'GlowModel.train_step: `labels` must have one class id per example, '
          'shape [16]; got shape [16, 1]')


def test_shapes_unknown_to_the_trace_are_asserted_at_run_time(byte_images,
                                                              make_model):
  """After a good step, `fit` retraces with relaxed shapes (unknown rank)."""
  model = make_model(NUM_CLASSES)
  model.fit(byte_images(), _labels(), batch_size=16, epochs=1, verbose=0)
  before = _state(model)
  fit = lambda x, y: model.fit(x, y, batch_size=16, epochs=1, verbose=0)
  _raises(InvalidArgument, lambda: fit(byte_images()[..., 0], _labels()),
          'GlowModel.train_step: `images` must have shape [N, 8, 8, 1]; '
          'got shape] [16 8 8]', 'images[..., None]')
  _raises(InvalidArgument, lambda: fit(byte_images()[:, :4], _labels()),
          '`images` must have shape [N, 8, 8, 1]; got shape] [16 4 8 1]')
  _raises(InvalidArgument, lambda: fit(byte_images(), _labels()[:, None]),
          'GlowModel.train_step: `labels` must have one class id per example, '
          'shape [N]; got shape] [16 1]')
  _assert_unchanged(model, before)
  # Good data through the relaxed trace: trains as before.
  history = fit(byte_images(), _labels())
  assert np.isfinite(history.history['loss'][0])
  assert int(model.optimizer.iterations.numpy()) == 4


def test_missing_labels(conditional, fresh_conditional, byte_images):
  _raises(ValueError,
          lambda: conditional.fit(byte_images(), batch_size=16, verbose=0),
          'GlowModel.train_step: the Glow is class-conditional (num_classes=3)',
          'the data must be (images, labels)')
  _raises(ValueError, lambda: fresh_conditional.initialize(byte_images()),
          'GlowModel.initialize: the Glow is class-conditional')


def test_value_checks_run_under_jit_compile(byte_images, make_model):
  """XLA drops assertions: the checks must run outside the compiled part."""
  model = make_model(jit_compile=True)
  assert model.jit_compile is False  # Keras compiles no whole step.
  images = byte_images().astype(np.int32)
  images[0, 0, 0, 0] = 1000
  before = _state(model)
  _raises(InvalidArgument,
          lambda: model.fit(images, batch_size=16, epochs=1, verbose=0,
                            shuffle=False),
          'GlowModel.train_step: `images` must hold pixel values in [0, 256)')
  _raises(InvalidArgument,
          lambda: model.evaluate(images, batch_size=16, verbose=0),
          'GlowModel.test_step: `images` must hold pixel values')
  _assert_unchanged(model, before)
  history = model.fit(byte_images(), batch_size=16, epochs=1, verbose=0)
  assert np.isfinite(history.history['loss'][0])


def test_every_accepted_form_of_good_data_trains(byte_images, make_model):
  """uint8, int64 and integer-valued floats; labels ignored if unconditional."""
  model = make_model()
  images = byte_images()
  for data in (images, images.astype(np.int64), images.astype(np.float32),
               images.astype(np.float64)):
    history = model.fit(data, batch_size=16, epochs=1, verbose=0)
    assert np.isfinite(history.history['loss'][0])
  dataset = tf.data.Dataset.from_tensor_slices((images, _labels())).batch(16)
  result = model.evaluate(dataset, verbose=0, return_dict=True)
  assert np.isfinite(result['loss'])
  assert int(model.optimizer.iterations.numpy()) == 8
  conditional = make_model(NUM_CLASSES)
  history = conditional.fit(images, _labels().astype(np.int64), batch_size=16,
                            epochs=1, verbose=0)
  assert np.isfinite(history.history['loss'][0])
