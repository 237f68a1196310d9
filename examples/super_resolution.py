"""Super-resolution with a conditional Glow: p(28x28 digit | its 7x7 version).

Trains, on the offline MNIST split (no network), a Glow of each 28x28 digit
given its 4x4 box-downsampled 7x7 version (`--preset mnist_super_resolution`:
the context enters every coupling network and prior, resized to each
level), and an unconditional Glow of the same architecture for the same
wall-clock budget; then prints both held-out bits/dim (the context carries
information, so the conditional figure is lower) and writes a PNG whose rows
are held-out digits: the 7x7 input (upscaled, nearest), samples at
temperatures 0.5 and 0.8, and the truth.

  python examples/super_resolution.py                 # 4 minutes per model
  python examples/super_resolution.py --minutes 10 --run-dir runs/sr10
  python examples/super_resolution.py --smoke         # tiny models, seconds
"""

import argparse
import math
import os

from tfp_glow import data
from tfp_glow import presets
from tfp_glow import runs
from tfp_glow import tasks

PRESET = 'mnist_super_resolution'
# An upper bound only: the time budget ends training first.
MAX_EPOCHS = 1000


def _configs(smoke):
  """(conditional, unconditional) configs: one architecture, one context."""
  conditional = presets.get(PRESET)
  if smoke:
    conditional = presets.smoke(conditional)
  else:
    conditional = presets.replace(conditional, epochs=MAX_EPOCHS)
  return conditional, presets.replace(conditional, context=None)


def _train(name, run_dir, config, seconds, verbose):
  print(f'Training the {name} Glow for {seconds:.0f} s into {run_dir} '
        '(one line per epoch) ...', flush=True)
  return tasks.train(run_dir, config, max_seconds=seconds, verbose=verbose)


def _paired_difference(config, dirs):
  """Per-digit conditional - unconditional bits/dim on the same held-out
  digits and dequantization noise: (mean, standard error, digits lower)."""
  held_out = data.load(config.dataset, data.held_out_split(config.dataset),
                       batch_size=config.eval_batch_size,
                       context=config.context,
                       num_examples=config.eval_examples)
  conditional, unconditional = (
      tasks.bits_per_dim_values(runs.load_glow(dirs[k]), held_out,
                                seed=config.seed)
      for k in ('conditional', 'unconditional'))
  difference = conditional - unconditional
  stderr = (difference.std(ddof=1) / math.sqrt(difference.size)
            if difference.size > 1 else math.nan)
  return difference.mean(), stderr, int((difference < 0).sum())


def _line(name, result):
  e = result.evaluation
  return (f'  {name:<28} {e.bits_per_dim:.4f} +/- {e.standard_error:.4f}   '
          f'({result.steps:,} steps, {result.seconds:.0f} s)')


def main(argv=None):
  parser = argparse.ArgumentParser(
      description=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--minutes', type=float, default=4.0,
                      help='Wall-clock training budget per model, in minutes '
                      '(default: %(default)s).')
  parser.add_argument('--run-dir', default=None,
                      help='Folder of the two runs, conditional/ and '
                      'unconditional/ (default: runs/super_resolution, or '
                      'runs/super_resolution_smoke with --smoke); it must not '
                      'hold them yet.')
  parser.add_argument('--output', help='The PNG (default: '
                      'RUN_DIR/super_resolution.png).')
  parser.add_argument('--smoke', action='store_true', help='Tiny models, 2 '
                      'batches each: checks the set-up in seconds.')
  args = parser.parse_args(argv)
  if not args.minutes > 0:
    parser.error(f'--minutes must be > 0; got {args.minutes}')
  root = args.run_dir or ('runs/super_resolution' +
                          ('_smoke' if args.smoke else ''))
  dirs = {k: os.path.join(root, k) for k in ('conditional', 'unconditional')}
  taken = [d for d in dirs.values() if runs.has_checkpoint(d)]
  if taken:  # Checked before training either model.
    parser.error(f'{", ".join(taken)} already hold(s) a run; choose another '
                 '--run-dir or delete it.')
  conditional, unconditional = _configs(args.smoke)
  seconds, verbose = args.minutes * 60.0, 2   # 2: one line per epoch.
  results = {
      'conditional': _train('conditional', dirs['conditional'], conditional,
                            seconds, verbose),
      'unconditional': _train('unconditional', dirs['unconditional'],
                              unconditional, seconds, verbose)}
  output = tasks.context_sample_grid(
      dirs['conditional'],
      args.output or os.path.join(root, 'super_resolution.png'))
  e = results['conditional'].evaluation
  print(f'Held-out bits/dim (offline MNIST test split, {e.num_images} digits; '
        f'budget {seconds:.0f} s per model):')
  print(_line('conditional p(x | 7x7 x):', results['conditional']))
  print(_line('unconditional p(x):', results['unconditional']))
  mean, stderr, lower = _paired_difference(conditional, dirs)
  print(f'  conditional - unconditional: {mean:+.4f} +/- {stderr:.4f} '
        f'bits/dim (paired: the same {e.num_images} digits and noise); lower '
        f'for {lower} of {e.num_images} digits')
  print(f'Samples: {output} (rows: held-out digits; columns: the 7x7 input, '
        f'temperatures {", ".join(map(str, tasks.CONTEXT_TEMPERATURES))}, the '
        'truth)')
  return dict(results, png=output, difference=mean, difference_stderr=stderr)


if __name__ == '__main__':
  main()
