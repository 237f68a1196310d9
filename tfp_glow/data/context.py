"""Contexts for a conditional Glow p(x | context), computed from the images.

A context name selects what `tfp_glow.data.load(..., context=name)` pairs
with every image. One kind exists: `'box<k>'` (`'box4'`, `'box2'`, ...), the
image box-downsampled `k` times, for super-resolution:

```none
context[i, j, c] = mean of the k x k block of pixels (k i .. k i + k - 1,
                   k j .. k j + k - 1) of channel c, divided by
                   2**num_bits - 1                    (float32, in [0, 1])
```

so a 28x28x1 MNIST digit becomes a 7x7x1 context with `'box4'`. The context
is computed from the image the model sees (after bit reduction, crops and
flips), so the pair always matches.
"""

import re
from typing import Tuple

import tensorflow as tf

from tfp_glow import _validation

__all__ = ['KINDS', 'box_factor', 'context_shape', 'box_downsample',
           'to_pixels']

KINDS = ('box<k>',)   # For messages: the context names `load` accepts.

TensorLike = tf.types.experimental.TensorLike
_BOX = re.compile(r'box([0-9]+)')


def box_factor(context: str) -> int:
  """The factor `k` of a context name `'box<k>'`.

  >>> box_factor('box4')
  4

  Raises:
    TypeError: if `context` is not a `str`.
    ValueError: for another name, or k < 2.
  """
  if not isinstance(context, str):
    raise TypeError(f'`context` must be a str such as \'box4\' (or None); got '
                    f'{context!r} of type {type(context).__name__}.')
  match = _BOX.fullmatch(context)
  if match is None or int(match.group(1)) < 2:
    raise ValueError(f'unknown `context` {context!r}: contexts are '
                     "'box<k>' with k >= 2 (e.g. 'box4': the image "
                     'box-downsampled 4 times) or None.')
  return int(match.group(1))


def context_shape(context: str,
                  image_shape: Tuple[int, int, int]) -> Tuple[int, int, int]:
  """`(H / k, W / k, C)`: the shape of the `'box<k>'` context of an image.

  >>> context_shape('box4', (28, 28, 1))
  (7, 7, 1)

  Raises:
    ValueError: if k does not divide the image's height and width.
  """
  factor = box_factor(context)
  height, width, channels = image_shape
  if height % factor or width % factor:
    raise ValueError(
        f'`context`={context!r} needs images whose height and width are '
        f'divisible by {factor}; got images of {height}x{width}.')
  return (height // factor, width // factor, channels)


def box_downsample(images: TensorLike, factor: int,
                   num_bits: int = 8) -> tf.Tensor:
  """Means of the `factor x factor` blocks of integer images, in [0, 1].

  Args:
    images: integer pixels `[N, H, W, C]` in `[0, 2**num_bits)`, H and W
      divisible by `factor`.
    factor: Python `int` >= 1, the block side.
    num_bits: Python `int`, bits per pixel value of `images`: the block means
      are divided by `2**num_bits - 1`. Default value: `8`.

  Returns:
    float32 `[N, H / factor, W / factor, C]` in [0, 1].

  >>> x = tf.reshape(tf.range(0, 256, 17), [1, 4, 4, 1])  # 0, 17, ..., 255
  >>> (box_downsample(x, 2)[0, ..., 0] * 15).numpy().round(4)  # Means / 17.
  array([[ 2.5,  4.5],
         [10.5, 12.5]], dtype=float32)
  """
  _validation.positive_int('factor', factor)
  x = tf.cast(images, tf.float32) / float(2**num_bits - 1)
  return tf.nn.avg_pool2d(x, factor, factor, 'VALID')


def to_pixels(context: TensorLike, image_shape: Tuple[int, int, int],
              num_bits: int = 8) -> tf.Tensor:
  """A box context shown as images: back in pixel space, upscaled nearest.

  The inverse of the scaling of `box_downsample`: `context * (2**num_bits -
  1)` (rounded down to whole pixel values), each value repeated over its
  block, so that a low-resolution input can be shown beside the images.

  Args:
    context: float `[N, h, w, C]` in [0, 1].
    image_shape: `(H, W, C)`, H and W multiples of h and w.
    num_bits: Python `int`, bits per pixel value. Default value: `8`.

  Returns:
    float32 pixel-space images `[N, H, W, C]` in `[0, 2**num_bits)`.

  Raises:
    ValueError: if the shapes do not fit; the message names them.

  >>> to_pixels(tf.fill([1, 2, 2, 1], 0.5), (4, 4, 1)).shape
  TensorShape([1, 4, 4, 1])
  """
  context = tf.convert_to_tensor(context, tf.float32)
  height, width, channels = image_shape
  _, h, w, c = context.shape if context.shape.rank == 4 else (0, 0, 0, 0)
  if not (h and w and c == channels) or height % h or width % w:
    raise ValueError(
        f'`context` of shape {context.shape.as_list()} is not a box context '
        f'of images of shape {tuple(image_shape)}: its channels must be '
        f'{channels} and its height and width must divide {height}x{width}.')
  pixels = tf.floor(tf.clip_by_value(context, 0.0, 1.0) * (2**num_bits - 1))
  return tf.repeat(tf.repeat(pixels, height // h, axis=1), width // w, axis=2)
