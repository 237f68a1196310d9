"""Training configurations: the paper's, MNIST's, the offline default and
the offline super-resolution model.

A `Config` holds everything `tfp_glow.tasks.train` needs: the data, the
model and the optimisation. `PRESETS` holds the paper's configurations as
openai/glow's README runs them (3 levels, 32 steps, width 512, affine
coupling, LU 1x1 convolutions, learned top prior, Adamax at 1e-3 with 10
"epochs" of 50,000 images of warmup), with openai's per-GPU batch size (one
device here), the offline default that the README's main command trains
in about five minutes on two CPU cores, and `mnist_super_resolution`, the same
model conditioned on each digit's 7x7 box-downsampled version
(`context='box4'`): p(28x28 digit | 7x7 digit).
"""

import dataclasses
from typing import Any, Mapping, Optional, Tuple

from tfp_glow import _hardware
from tfp_glow import _validation
from tfp_glow import data
from tfp_glow import vocabulary

__all__ = ['Config', 'PRESETS', 'DEFAULT', 'get', 'replace', 'check', 'smoke',
           'names']

DEFAULT = 'mnist_offline'
_WARMUP_IMAGES = 500_000  # openai/glow: 10 epochs of n_train = 50,000.


@dataclasses.dataclass(frozen=True)
class Config:
  """One training run: data, model and optimisation.

  Attributes:
    dataset: a name of `tfp_glow.data.names()`.
    image_size: image height and width, or `None` for the dataset's.
    num_bits: bits per pixel value in [1, 8] (5 for the paper's CelebA).
    flip: random horizontal flips of the training images.
    conditional: class-conditional model (top prior depends on the label,
      plus openai's classification loss of weight `weight_y`).
    context: `None`, or a context of `tfp_glow.data.load` such as `'box4'`:
      a conditional Glow p(x | context) (`Glow(..., context_shape=...)`) of
      each image given its box-downsampled version (`data.context`), for
      super-resolution.
    num_levels, num_steps, hidden_channels, coupling, permutation,
      learn_top: the `tfp_glow.Glow` arguments (`coupling='spline'`:
      rational-quadratic spline couplings).
    dequantization: `'uniform'` (openai/glow: `x + u`, `u ~ U[0, 1)`) or
      `'variational'` (Flow++: a `dequantizer.VariationalDequantizer` q(u | x)
      trained with the Glow, and the loss and every reported bits/dim the
      variational bound); see `tfp_glow.GlowModel`.
    compute_dtype: what the coupling networks compute in (`Glow`'s
      `compute_dtype`): `'auto'` (bfloat16 where bf16 units compute faster
      than float32, float32 elsewhere: `tfp_glow.Glow`), `'bfloat16'`,
      `'float16'`, or `None` / `'float32'` (no mixed precision; runs
      written before v0.3 read as `None`).
    weight_y: weight of the classification loss of a conditional model.
    batch_size: training batch size (the last partial batch is dropped).
    epochs: full passes over the training split (or `steps_per_epoch`
      batches each).
    steps_per_epoch: batches per epoch, or `None` for a full pass.
    learning_rate, warmup_steps, optimizer, clip_norm: see
      `tfp_glow.model.default_optimizer`.
    lr_schedule: `'constant'` (openai/glow) or `'cosine'`: after warmup the
      rate decays to 0 over `epochs` epochs (cosine).
    init_batch_size: images of the data-dependent ActNorm init.
    train_examples, eval_examples: use only the first N examples of the
      training / held-out split (`None`: all).
    eval_batch_size: batch size of the held-out evaluation.
    temperature: temperature of the sample grids written during training.
    seed: seeds the model's initial values, the data order and augmentation
      and the dequantization noise.
  """
  dataset: str
  num_levels: int
  num_steps: int
  hidden_channels: int
  epochs: int
  image_size: Optional[int] = None
  num_bits: int = 8
  flip: bool = False
  conditional: bool = False
  context: Optional[str] = None
  coupling: str = 'affine'
  permutation: str = 'lu'
  dequantization: str = 'uniform'
  compute_dtype: Optional[str] = 'auto'
  learn_top: bool = True
  weight_y: float = 0.01
  batch_size: int = 64
  steps_per_epoch: Optional[int] = None
  learning_rate: float = 1e-3
  lr_schedule: str = 'constant'
  warmup_steps: int = _WARMUP_IMAGES // 64
  optimizer: str = 'adamax'
  clip_norm: Optional[float] = 5.0
  init_batch_size: int = 256
  train_examples: Optional[int] = None
  eval_examples: Optional[int] = None
  eval_batch_size: int = 250
  temperature: float = 0.7
  seed: int = 0

  @property
  def image_shape(self) -> Tuple[int, int, int]:
    """`(H, W, C)` of the training images."""
    return data.image_shape(self.dataset, self.image_size)

  @property
  def context_shape(self) -> Optional[Tuple[int, ...]]:
    """The shape of one context (`(7, 7, 1)` for MNIST and `'box4'`), or
    `None` for a model without context."""
    if self.context is None:
      return None
    return data.context_shape(self.dataset, self.context, self.image_size)

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)

  @classmethod
  def from_dict(cls, values: Mapping[str, Any]) -> 'Config':
    """The `Config` of a `to_dict()` (as stored in a run's config.json).

    Reads run directories written before v0.2 too, whose configs name the
    bit depth `n_bits`.
    """
    values = dict(values)
    if 'n_bits' in values and 'num_bits' not in values:
      values['num_bits'] = values.pop('n_bits')
    # Older runs trained in float32: resuming one keeps it so.
    values.setdefault('compute_dtype', None)
    return replace(cls(**_required(values)), **values)


def _required(values):
  names = ('dataset', 'num_levels', 'num_steps', 'hidden_channels', 'epochs')
  missing = [n for n in names if n not in values]
  if missing:
    raise ValueError(f'a training config needs {", ".join(missing)}; got '
                     f'keys {sorted(values)}.')
  return {n: values[n] for n in names}


def replace(config: Config, **changes) -> Config:
  """`config` with `changes`, checked (see `check`).

  Raises:
    ValueError: for an unknown field or an invalid value; the message names
      it.
  """
  fields = {f.name for f in dataclasses.fields(Config)}
  unknown = sorted(set(changes) - fields)
  if unknown:
    raise ValueError(f'unknown config field(s) {", ".join(unknown)}; fields: '
                     f'{", ".join(sorted(fields))}.')
  return check(dataclasses.replace(config, **changes))


def check(config: Config) -> Config:
  """Returns `config` if its values fit together, else raises ValueError.

  Checks the dataset name, that the image size is divisible by
  `2**num_levels`, that a conditional model has a labelled dataset, the
  context (a known one, fitting the image size), the choices (coupling,
  permutation, dequantization, compute_dtype, optimizer, lr_schedule) and the
  ranges of the integer fields.
  """
  height, width, _ = config.image_shape  # Checks dataset and image_size.
  if config.context is not None:  # A known context that fits the images.
    data.context_shape(config.dataset, config.context, config.image_size)
  for name in ('num_levels', 'num_steps', 'hidden_channels', 'epochs',
               'batch_size', 'warmup_steps', 'init_batch_size',
               'eval_batch_size'):
    _validation.positive_int(name, getattr(config, name))
  for name in ('steps_per_epoch', 'train_examples', 'eval_examples'):
    if getattr(config, name) is not None:
      _validation.positive_int(name, getattr(config, name))
  scale = 2**config.num_levels
  if height % scale or width % scale:
    raise ValueError(
        f'image size {height}x{width} of dataset {config.dataset!r} is not '
        f'divisible by 2**num_levels = {scale} (num_levels='
        f'{config.num_levels}); use fewer levels or another image_size.')
  _validation.one_of('lr_schedule', config.lr_schedule, ('constant', 'cosine'))
  vocabulary.check_coupling(config.coupling)
  vocabulary.check_permutation(config.permutation)
  vocabulary.check_dequantization(config.dequantization)
  _hardware.check_compute_dtype(config.compute_dtype)
  _validation.one_of('optimizer', config.optimizer, ('adam', 'adamax'))
  vocabulary.check_num_bits(config.num_bits, maximum=8)  # 8-bit sources.
  if config.conditional and not data.num_classes(config.dataset):
    raise ValueError(f'a conditional model needs class labels; dataset '
                     f'{config.dataset!r} has none.')
  return config


def _paper(dataset, *, num_steps, num_levels=3, batch_size=64, **kwargs):
  return Config(dataset=dataset, num_levels=num_levels, num_steps=num_steps,
                hidden_channels=512, batch_size=batch_size,
                warmup_steps=_WARMUP_IMAGES // batch_size, eval_batch_size=50,
                **kwargs)


PRESETS = {
    # The offline default: sized to train in about 5 minutes on 2 CPU cores.
    # Variational dequantization (Flow++) scores best in those minutes (the
    # README's trials); 22 epochs: 4 min 25-44 s where 'auto' computes in
    # bfloat16, one thread per op and two chunks a batch (README).
    'mnist_offline': Config(
        dataset='mnist_offline', num_levels=2, num_steps=8,
        hidden_channels=64, epochs=22, batch_size=16, optimizer='adam',
        learning_rate=3e-3, lr_schedule='cosine', warmup_steps=300,
        dequantization='variational', eval_batch_size=250, temperature=0.8),
    # The offline default conditioned on each digit's 7x7 box-downsampled
    # version: p(28x28 digit | 7x7 digit), super-resolution (about as fast).
    'mnist_super_resolution': Config(
        dataset='mnist_offline', context='box4', num_levels=2, num_steps=8,
        hidden_channels=64, epochs=24, batch_size=16, optimizer='adam',
        learning_rate=3e-3, lr_schedule='cosine', warmup_steps=300,
        eval_batch_size=250, temperature=0.8),
    'mnist': _paper('mnist', num_levels=2, num_steps=32, epochs=100),
    'cifar10': _paper('cifar10', num_steps=32, epochs=1000),
    'cifar10_conditional': _paper(
        'cifar10', num_steps=32, epochs=1000, coupling='additive', num_bits=5,
        conditional=True),
    'imagenet32': _paper('downsampled_imagenet/32x32', num_steps=48,
                         epochs=100),
    'imagenet32_conditional': _paper(
        'imagenet_resized/32x32', num_steps=48, epochs=100,
        coupling='additive', num_bits=5, conditional=True),
    'imagenet64': _paper('downsampled_imagenet/64x64', num_levels=4,
                         num_steps=48, batch_size=16, epochs=100),
    'celeba64': _paper('celeb_a', num_levels=4, num_steps=32, batch_size=16,
                       coupling='additive', num_bits=5, epochs=100),
    'lsun64': _paper('lsun/bedroom', num_steps=48, batch_size=16,
                     epochs=100),
}


def names() -> Tuple[str, ...]:
  """The preset names, the default first."""
  return tuple(PRESETS)


def get(name: str, **changes) -> Config:
  """The preset `name`, with `changes` applied and checked.

  >>> get('cifar10').num_steps, get('imagenet64').num_levels
  (32, 4)
  >>> get('mnist_offline', dequantization='variational').dequantization
  'variational'
  >>> get('mnist_offline', num_levels=3)
  Traceback (most recent call last):
  ...
  ValueError: image size 28x28 of dataset 'mnist_offline' is not divisible by 2**num_levels = 8 (num_levels=3); use fewer levels or another image_size.

  Raises:
    ValueError: for an unknown preset or an invalid change.
  """
  if name not in PRESETS:
    raise ValueError(f'unknown preset {name!r}; presets: '
                     f'{", ".join(PRESETS)}.')
  return replace(PRESETS[name], **changes)


def smoke(config: Config) -> Config:
  """A tiny version of `config` that trains in seconds (for tests and CI).

  Keeps the data, the image size and the number of levels; uses 1 step per
  level, width 8, 2 batches of 8 images, 16 held-out images.

  >>> smoke(get('cifar10')).hidden_channels
  8
  """
  return replace(
      config, num_steps=1, hidden_channels=8, epochs=1, batch_size=8,
      steps_per_epoch=2, warmup_steps=2, init_batch_size=8,
      train_examples=32, eval_examples=16, eval_batch_size=16)
