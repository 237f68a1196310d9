"""Latent interpolation between pairs of held-out images, as a PNG grid.

Each row decodes evenly spaced points on the line between the latents of
two test images drawn at random (the first and last columns reconstruct
them).

  python examples/interpolate.py --run-dir runs/mnist_offline --pairs 4 --steps 8
"""

import argparse

from tfp_glow import tasks


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--run-dir', required=True, help='Run directory.')
  parser.add_argument('--output', help='PNG (default: RUN_DIR/samples/interpolation.png).')
  parser.add_argument('--pairs', type=int, default=4, help='Pairs (rows).')
  parser.add_argument('--steps', type=int, default=8, help='Images per row.')
  parser.add_argument('--split', help='Split (default: the held-out one).')
  parser.add_argument('--seed', type=int, default=0, help='Seed of the choice of pairs.')
  parser.add_argument('--data-dir', help='TFDS data directory.')
  parser.add_argument('--scale', type=int, metavar='N',
                      help='Upscale the grid N times, nearest neighbour (default: each '
                      'image at least 96 px high; 1: one pixel per pixel).')
  args = parser.parse_args(argv)
  path = tasks.interpolation_grid(
      args.run_dir, args.output or f'{args.run_dir}/samples/interpolation.png',
      num_pairs=args.pairs, num_steps=args.steps, split=args.split,
      data_dir=args.data_dir, seed=args.seed, scale=args.scale)
  print(f'wrote {path}')
  return path


if __name__ == '__main__':
  main()
