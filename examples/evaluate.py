"""Bits/dim of a trained run over a whole split, with its standard error.

  python examples/evaluate.py --run-dir runs/mnist_offline            # held-out split
  python examples/evaluate.py --run-dir runs/mnist_offline --split train
"""

import argparse

from tfp_glow import tasks


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--run-dir', required=True, help='Run directory.')
  parser.add_argument('--split', help='Split (default: the held-out one).')
  parser.add_argument('--batch-size', type=int, help='Batch size (default: the run\'s).')
  parser.add_argument('--num-examples', type=int,
                      help='Only the first N images (default: the run\'s setting).')
  parser.add_argument('--data-dir', help='TFDS data directory.')
  args = parser.parse_args(argv)
  e = tasks.evaluate_run(args.run_dir, args.split, batch_size=args.batch_size,
                         num_examples=args.num_examples, data_dir=args.data_dir)
  print(f'bits/dim: {e.bits_per_dim:.4f} +/- {e.standard_error:.4f} '
        f'(standard error, {e.num_images} images)')
  return e


if __name__ == '__main__':
  main()
