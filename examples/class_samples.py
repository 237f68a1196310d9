"""Class-conditional samples: one row per class of a conditional run.

  python examples/train.py --preset cifar10_conditional --run-dir runs/c10c
  python examples/class_samples.py --run-dir runs/c10c --num 8 --temperature 0.7
"""

import argparse

from tfp_glow import tasks


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--run-dir', required=True, help='Run directory of a conditional run.')
  parser.add_argument('--output', help='PNG (default: RUN_DIR/samples/class_samples.png).')
  parser.add_argument('--num', type=int, default=8, help='Samples per class.')
  parser.add_argument('--temperature', type=float, default=0.7)
  parser.add_argument('--seed', type=int, default=0, help='Seed of the noise.')
  parser.add_argument('--scale', type=int, metavar='N',
                      help='Upscale the grid N times, nearest neighbour (default: each '
                      'image at least 96 px high; 1: one pixel per pixel).')
  args = parser.parse_args(argv)
  path = tasks.class_sample_grid(
      args.run_dir, args.output or f'{args.run_dir}/samples/class_samples.png',
      args.num, args.temperature, seed=args.seed, scale=args.scale)
  print(f'wrote {path}')
  return path


if __name__ == '__main__':
  main()
