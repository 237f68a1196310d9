"""Beyond Glow's likelihood: variational dequantization, spline couplings and
the importance-weighted bound, at equal wall-clock budgets.

Trains on the offline MNIST split (no network) four models of the offline
default (`--preset mnist_offline`, the README's main job: 2 levels x 8 steps,
width 64), each for the same wall-clock budget (`tasks.train(...,
max_seconds=...)`, the cosine schedule decaying over the budget), each in its
own run directory:

  glow                 the preset as is: affine couplings, uniform noise
  variational          + variational dequantization (Flow++'s q(u | x))
  spline               + rational-quadratic spline couplings (RQ-NSF)
  spline_variational   + both

then prints the held-out bits/dim of the 500 test digits of each, the
single-sample figure (one draw of the run's noise per digit: uniform, or
q(u | x), the ELBO) beside the K-sample importance-weighted bound (K = 16,
the run's noise as proposal), with the steps and seconds of each, as a
markdown table and one JSON line. The CPU model and its bf16/AMX flags
(/proc/cpuinfo) and the load average come first. A model whose training
stops on a non-finite loss or gradient gets a row saying in which epoch.

  python benchmarks/likelihood.py                    # 4 x 5 minutes, ~25 min
  python benchmarks/likelihood.py --minutes 10 --run-dir runs/likelihood10
  python benchmarks/likelihood.py --smoke            # tiny models, seconds
"""

import argparse
import json
import os
import time

PRESET = 'mnist_offline'
# An upper bound only: the time budget ends training first.
MAX_EPOCHS = 1000
# name: (coupling, dequantization, row label)
MODELS = {
    'glow': ('affine', 'uniform', 'Glow (affine, uniform)'),
    'variational': ('affine', 'variational', '+ variational dequantization'),
    'spline': ('spline', 'uniform', '+ spline couplings'),
    'spline_variational': ('spline', 'variational', '+ both'),
}


def cpu_description(path='/proc/cpuinfo'):
  """`(model name, logical cores, bf16/AMX flags)` from /proc/cpuinfo.

  The flags are those naming bf16 or AMX (`avx512_bf16`, `amx_bf16`,
  `amx_tile`, ...), sorted; the model is `'unknown'` without the file.
  """
  try:
    with open(path) as f:
      lines = f.read().splitlines()
  except OSError:
    return 'unknown', os.cpu_count() or 0, ()
  fields = [line.split(':', 1) for line in lines if ':' in line]
  fields = [(k.strip(), v.strip()) for k, v in fields]
  model = next((v for k, v in fields if k == 'model name'), 'unknown')
  cores = sum(1 for k, _ in fields if k == 'processor')
  flags = next((v.split() for k, v in fields if k == 'flags'), [])
  wanted = sorted({f for f in flags if 'bf16' in f or f.startswith('amx')})
  return model, cores, tuple(wanted)


def _cpu_line():
  model, cores, flags = cpu_description()
  load = ', '.join(f'{x:.2f}' for x in os.getloadavg())
  return (f'CPU: {model} ({cores} logical cores); bf16/AMX flags: '
          f'{" ".join(flags) or "none"}; load average (1, 5, 15 min): '
          f'{load}')


def configs(smoke):
  """The `presets.Config` of each of `MODELS`: the preset, one change each."""
  from tfp_glow import presets  # pylint: disable=g-import-not-at-top
  base = presets.get(PRESET)
  base = presets.smoke(base) if smoke else presets.replace(
      base, epochs=MAX_EPOCHS)
  return {name: presets.replace(base, coupling=coupling,
                                dequantization=dequantization)
          for name, (coupling, dequantization, _) in MODELS.items()}


def _train(name, run_dir, config, seconds, samples):
  from tfp_glow import tasks  # pylint: disable=g-import-not-at-top
  print(f'Training {name} ({config.coupling} coupling, '
        f'{config.dequantization} dequantization) for {seconds:.0f} s into '
        f'{run_dir} (one line per epoch) ...', flush=True)
  return tasks.train(run_dir, config, max_seconds=seconds, verbose=2,
                     eval_num_samples=samples)


def _run(name, run_dir, config, seconds, samples):
  """The JSON-ready figures of one model, trained now.

  A model whose training stops on a non-finite loss or gradient
  (`FloatingPointError`) gets a row saying so, with the epoch it stopped
  in (Keras logs that epoch, partial) and the message, and the benchmark
  goes on with the others.
  """
  coupling, dequantization, label = MODELS[name]
  row = dict(model=name, label=label, coupling=coupling,
             dequantization=dequantization)
  start = time.time()
  try:
    result = _train(name, run_dir, config, seconds, samples)
  except FloatingPointError as e:
    print(f'{name}: {e}', flush=True)
    return dict(row, diverged=str(e), seconds=round(time.time() - start, 1),
                epochs=_epochs_done(run_dir))
  e = result.evaluation
  return dict(row, steps=result.steps, epochs=result.epochs,
              seconds=round(result.seconds, 1), num_images=e.num_images,
              num_samples=e.num_samples, bits_per_dim=e.bits_per_dim,
              standard_error=e.standard_error,
              iw_bits_per_dim=e.importance_weighted_bits_per_dim,
              iw_standard_error=e.importance_weighted_standard_error)


def _epochs_done(run_dir):
  """The epochs of `run_dir/metrics.csv` (the header line not counted): a
  stopped run's last one is the epoch it stopped in."""
  from tfp_glow import runs  # pylint: disable=g-import-not-at-top
  try:
    with open(os.path.join(run_dir, runs.METRICS_FILE)) as f:
      return max(0, len(f.read().splitlines()) - 1)
  except OSError:
    return 0


def table(rows, samples):
  """The markdown table of `_run`'s rows: one line per model."""
  lines = [
      f'| model | steps | seconds | bits/dim, 1 sample | bits/dim, IW K={samples} |',
      '|---|---|---|---|---|']
  for r in rows:
    if 'diverged' in r:
      lines.append(f'| {r["label"]} | - | {r["seconds"]:.0f} | diverged in '
                   f'epoch {r["epochs"]} (non-finite loss or gradient) '
                   '| - |')
      continue
    lines.append(
        f'| {r["label"]} | {r["steps"]:,} | {r["seconds"]:.0f} | '
        f'{r["bits_per_dim"]:.4f} +/- {r["standard_error"]:.4f} | '
        f'{r["iw_bits_per_dim"]:.4f} +/- {r["iw_standard_error"]:.4f} |')
  return '\n'.join(lines)


def main(argv=None):
  parser = argparse.ArgumentParser(
      description=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--minutes', type=float, default=5.0,
                      help='Wall-clock training budget per model, in minutes '
                      '(default: %(default)s).')
  parser.add_argument('--samples', type=int, default=16,
                      help='K of the importance-weighted bound, >= 2 '
                      '(default: %(default)s).')
  parser.add_argument('--run-dir', default=None,
                      help='Folder of the four runs (default: runs/likelihood, '
                      'or runs/likelihood_smoke with --smoke); it must not '
                      'hold them yet.')
  parser.add_argument('--smoke', action='store_true', help='Tiny models, 2 '
                      'batches each: checks the set-up in seconds.')
  args = parser.parse_args(argv)
  if not args.minutes > 0:
    parser.error(f'--minutes must be > 0; got {args.minutes}')
  if args.samples < 2:
    parser.error(f'--samples must be >= 2; got {args.samples}')
  print(_cpu_line(), flush=True)
  from tfp_glow import runs  # pylint: disable=g-import-not-at-top
  root = args.run_dir or ('runs/likelihood' + ('_smoke' if args.smoke else ''))
  dirs = {name: os.path.join(root, name) for name in MODELS}
  taken = [d for d in dirs.values() if runs.has_checkpoint(d)]
  if taken:  # Checked before training any model.
    parser.error(f'{", ".join(taken)} already hold(s) a run; choose another '
                 '--run-dir or delete it.')
  seconds, start = args.minutes * 60.0, time.time()
  rows = [_run(name, dirs[name], config, seconds, args.samples)
          for name, config in configs(args.smoke).items()]
  count = next((r['num_images'] for r in rows if 'num_images' in r), '?')
  print(f'\nHeld-out bits/dim (offline MNIST test split, {count} '
        f'digits; budget {seconds:.0f} s per model; 1 sample: one draw of '
        "the run's noise per digit, uniform or q(u | x); IW: the "
        f'{args.samples}-sample importance-weighted bound, that noise as '
        'proposal; seconds: the whole train call, final evaluation '
        'included):\n')
  print(table(rows, args.samples))
  print(f'\n{_cpu_line()}; {time.time() - start:.0f} s in all', flush=True)
  result = dict(budget_s=seconds, samples=args.samples, smoke=args.smoke,
                cpu=cpu_description()[0], models=rows)
  print(json.dumps(result), flush=True)
  return result


if __name__ == '__main__':
  main()
