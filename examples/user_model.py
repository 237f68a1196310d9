"""A user's own Keras 3 model with a Glow density as one term of its loss.

A small convolutional classifier of 8x8 images (horizontal or vertical
stripes) is trained jointly with a Glow on the same images, with `fit`:

```none
loss = cross_entropy(classifier(x), y) + density_weight * bits_per_dim(x)
```

The Glow's term makes the model a density too: after training, images unlike
the data (here uniform noise) get a higher bits/dim, which serves as an
out-of-distribution score next to the classifier's prediction.

How the Glow joins the model: under Keras 3, a `tf.Module` attribute's
variables are not tracked, so the model holds the Glow through a
`tfp_glow.GlowModel` layer (`self.density`), whose variables are the Glow's;
`model.trainable_variables`, `save_weights` and checkpoints then include them.
Its `fit` is not used here, so the ActNorm data-dependent init is run by hand
(`density.initialize(images)`) before training. A custom `train_step` is one
way to add the term; `self.add_loss(...)` in `call`, with Keras's own
`compile(loss=...)` and `fit`, works as well, beside layers with Keras
regularisers (tests/test_keras3.py trains such a model).

Run:

```bash
python examples/user_model.py --smoke      # a few seconds of training
python examples/user_model.py --epochs 20  # a longer run
```
"""

import argparse
import json
import sys

import keras
import numpy as np
import tensorflow as tf

import tfp_glow
from tfp_glow import model as glow_model

SHAPE = (8, 8, 1)


def stripes(num_images, seed):
  """`(images, labels)`: uint8 `[N, 8, 8, 1]` stripes; label 0 horizontal, 1
  vertical. Each image has its own phase and contrast, plus pixel noise."""
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, 2, num_images)
  phase = rng.integers(0, 2, (num_images, 1, 1))
  rows = (np.arange(8)[None, :, None] + phase) % 2
  pattern = np.where(labels[:, None, None] == 0, rows,
                     np.swapaxes(rows, 1, 2))
  contrast = rng.uniform(80.0, 160.0, (num_images, 1, 1))
  pixels = 48.0 + pattern * contrast + rng.normal(0.0, 8.0, pattern.shape)
  images = np.clip(np.round(pixels), 0, 255).astype(np.uint8)[..., None]
  return images, labels.astype(np.int32)


class ClassifierWithDensity(keras.Model):
  """A classifier whose loss adds a Glow's bits/dim of the same images.

  `call(images)` returns the class logits `[N, num_classes]`; `train_step`
  minimises `cross_entropy + density_weight * bits_per_dim`, with the Glow's
  dequantization noise seeded by `(seed, optimizer step)`. `fit` logs
  `loss`, `cross_entropy`, `bits_per_dim` and `accuracy`.

  Args:
    glow: a `tfp_glow.Glow` over the images.
    num_classes: Python `int`.
    density_weight: Python `float` >= 0, the weight of the bits/dim term.
    seed: Python `int`, seed of the classifier's initial weights and of the
      dequantization noise.
  """

  def __init__(self, glow, num_classes, density_weight=0.1, seed=0, **kwargs):
    super().__init__(**kwargs)
    self.density = glow_model.GlowModel(glow, name='density')
    self.classifier = keras.Sequential([
        keras.layers.Rescaling(1.0 / 255.0),
        keras.layers.Conv2D(8, 3, activation='relu', kernel_initializer=(
            keras.initializers.GlorotUniform(seed=seed))),
        keras.layers.Flatten(),
        keras.layers.Dense(num_classes, kernel_initializer=(
            keras.initializers.GlorotUniform(seed=seed + 1))),
    ], name='classifier')
    self.classifier.build((None,) + tuple(glow.image_shape))
    self.density_weight = float(density_weight)
    self.seed = int(seed)
    self._trackers = {name: keras.metrics.Mean(name=name) for name in
                      ('loss', 'cross_entropy', 'bits_per_dim')}
    self._accuracy = keras.metrics.SparseCategoricalAccuracy(name='accuracy')

  @property
  def metrics(self):
    return list(self._trackers.values()) + [self._accuracy]

  def call(self, images):
    return self.classifier(tf.cast(images, tf.float32))

  def bits_per_dim(self, images, seed):
    """Per-image bits/dim of the Glow, images dequantized with `seed`."""
    return self.density.glow.bits_per_dim(images, seed=seed)

  def train_step(self, data):
    images, labels = data
    step = tf.cast(self.optimizer.iterations, tf.int32)
    seed = tf.stack([tf.constant(self.seed, tf.int32), step])
    with tf.GradientTape() as tape:
      logits = self(images)
      cross_entropy = tf.reduce_mean(
          tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
      bpd = tf.reduce_mean(self.bits_per_dim(images, seed))
      loss = cross_entropy + self.density_weight * bpd
    variables = self.trainable_variables
    grads = tape.gradient(loss, variables)
    self.optimizer.apply_gradients(zip(grads, variables))
    for name, value in (('loss', loss), ('cross_entropy', cross_entropy),
                        ('bits_per_dim', bpd)):
      self._trackers[name].update_state(value)
    self._accuracy.update_state(labels, logits)
    return {m.name: m.result() for m in self.metrics}


def build(smoke, density_weight, seed):
  """The model, compiled; the Glow is small in smoke mode."""
  glow = tfp_glow.Glow(SHAPE, num_levels=2, num_steps=1 if smoke else 4,
                       hidden_channels=8 if smoke else 64, seed=seed)
  model = ClassifierWithDensity(glow, num_classes=2,
                                density_weight=density_weight, seed=seed)
  model.compile(glow_model.default_optimizer(
      3e-3, warmup_steps=5 if smoke else 100))
  return model


def main(argv=None):
  """Trains the joint model; returns a `dict` of results (also printed).

  Returns:
    `{'history': fit's history, 'glow_variables_changed': int,
    'glow_variables': int, 'bpd_data': float, 'bpd_noise': float,
    'accuracy': float}`; the bits/dim are means over held-out stripes and
    uniform noise images.
  """
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--smoke', action='store_true',
                      help='tiny model and data, a few seconds of training')
  parser.add_argument('--epochs', type=int, default=None)
  parser.add_argument('--density-weight', type=float, default=0.1)
  parser.add_argument('--seed', type=int, default=0)
  args = parser.parse_args(argv)
  num_images = 64 if args.smoke else 2048
  epochs = args.epochs or (12 if args.smoke else 10)

  images, labels = stripes(num_images, seed=args.seed)
  model = build(args.smoke, args.density_weight, args.seed)
  model.density.initialize(images[:256])   # ActNorm data init, before fit.
  glow_variables = model.density.glow.trainable_variables
  before = [v.numpy() for v in glow_variables]
  dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(16)
  history = model.fit(dataset, epochs=epochs, verbose=0 if args.smoke else 2)

  test_images, test_labels = stripes(64, seed=args.seed + 1)
  noise = np.random.default_rng(args.seed).integers(
      0, 256, test_images.shape).astype(np.uint8)
  seed = (args.seed, -1)
  predictions = np.argmax(model(test_images).numpy(), axis=-1)
  results = dict(
      history={k: [float(x) for x in v] for k, v in history.history.items()},
      glow_variables=len(glow_variables),
      glow_variables_changed=sum(
          not np.array_equal(b, v.numpy())
          for b, v in zip(before, glow_variables)),
      bpd_data=float(np.mean(model.bits_per_dim(test_images, seed))),
      bpd_noise=float(np.mean(model.bits_per_dim(noise, seed))),
      accuracy=float(np.mean(predictions == test_labels)))
  print(json.dumps({k: v for k, v in results.items() if k != 'history'}))
  return results


if __name__ == '__main__':
  main(sys.argv[1:])
