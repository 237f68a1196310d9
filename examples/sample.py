"""Sample a trained run: a PNG grid with one row per temperature.

  python examples/sample.py --run-dir runs/mnist_offline --temperatures 0.5,0.7,1.0
"""

import argparse

from tfp_glow import tasks


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--run-dir', required=True, help='Run directory.')
  parser.add_argument('--output', help='PNG (default: RUN_DIR/samples/sample_grid.png).')
  parser.add_argument('--temperatures', default='0.5,0.7,0.85,1.0',
                      help='Comma-separated temperatures, one row each.')
  parser.add_argument('--num', type=int, default=8, help='Samples per row.')
  parser.add_argument('--seed', type=int, default=0, help='Seed of the noise.')
  parser.add_argument('--scale', type=int, metavar='N',
                      help='Upscale the grid N times, nearest neighbour (default: each '
                      'image at least 96 px high; 1: one pixel per pixel).')
  args = parser.parse_args(argv)
  temperatures = [float(t) for t in args.temperatures.split(',')]
  path = tasks.sample_grid(
      args.run_dir, args.output or f'{args.run_dir}/samples/sample_grid.png',
      temperatures, args.num, seed=args.seed, scale=args.scale)
  print(f'wrote {path}')
  return path


if __name__ == '__main__':
  main()
