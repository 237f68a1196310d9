"""Train a Glow from a preset: the paper's configurations, MNIST, or the
offline default.

  python examples/train.py                                  # offline MNIST, ~5 min on 2 CPUs
  python examples/train.py --preset cifar10 --run-dir runs/cifar10
  python examples/train.py --preset cifar10 --run-dir runs/cifar10 --resume --epochs 200
  python examples/train.py --preset celeba64 --smoke        # tiny model, seconds

Presets (tfp_glow.presets.PRESETS): cifar10 (3 levels x 32 steps, width 512,
affine, LU, learned top), cifar10_conditional, imagenet32 (48 steps),
imagenet32_conditional, imagenet64 (4 levels x 48 steps), celeba64 (5-bit,
additive), lsun64, mnist, mnist_offline (the default).
"""

import argparse

import tfp_glow
from tfp_glow import presets
from tfp_glow import tasks


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--preset', default=presets.DEFAULT,
                      help=f'One of {", ".join(presets.names())}.')
  parser.add_argument('--run-dir', help='Run directory (default: runs/PRESET[_smoke]).')
  parser.add_argument('--epochs', type=int, help='Total epochs.')
  parser.add_argument('--resume', action='store_true',
                      help='Continue the newest checkpoint of --run-dir.')
  parser.add_argument('--smoke', action='store_true',
                      help='Tiny model, 2 batches: checks the set-up.')
  parser.add_argument('--data-dir', help='TFDS data directory.')
  parser.add_argument('--grid-scale', type=int, metavar='N',
                      help='Upscale the sample grids N times, nearest neighbour (default: '
                      'each image at least 96 px high; 1: one pixel per pixel).')
  args = parser.parse_args(argv)
  config = None
  if not args.resume:
    config = presets.get(args.preset)
    config = presets.smoke(config) if args.smoke else config
  run_dir = args.run_dir or f'runs/{args.preset}{"_smoke" if args.smoke else ""}'
  result = tasks.train(run_dir, config, resume=args.resume, epochs=args.epochs,
                       data_dir=args.data_dir, grid_scale=args.grid_scale)
  e = result.evaluation
  print(f'held-out bits/dim: {e.bits_per_dim:.4f} +/- {e.standard_error:.4f} '
        f'({e.num_images} images); samples: {result.samples}')
  return result


if __name__ == '__main__':
  tfp_glow.configure_cpu_threads()   # As tfp-glow: one thread per op, a chunk per core.
  main()
