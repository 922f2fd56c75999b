"""Converts UCF101 clip features (the trimmed domain) into a tfwsar dataset directory.

  python tools/convert_ucf101.py --splits DIR --features DIR --out DIR \
      [--classes-of CONVERTED_DIR] [--split 1]

--splits holds classInd.txt and trainlist0N.txt / testlist0N.txt; clip ids are the file stems.
--features is a per-clip npy folder (rgb/<clip>.npy, flow/<clip>.npy) or an .h5 file. With
--classes-of (a converted untrimmed dataset, e.g. THUMOS14), only the UCF101 classes that are
classes of that dataset are kept and its class order is used, so label indices align for
knowledge transfer; clips of other classes need no features.
"""

import argparse
import sys

from tfwsar import console

console.quiet_terminal()  # before TensorFlow loads (TFWSAR_VERBOSE=1: all its logs)

from tfwsar.data import convert  # noqa: E402  pylint: disable=wrong-import-position


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--splits", required=True,
                        help="folder with classInd.txt, trainlist0N.txt, testlist0N.txt")
    parser.add_argument("--features", required=True,
                        help="per-clip npy folder (rgb/, flow/) or an .h5 file")
    parser.add_argument("--out", required=True, help="output dataset directory")
    parser.add_argument("--classes-of", default=None,
                        help="converted dataset whose classes (and class order) to keep")
    parser.add_argument("--split", type=int, choices=(1, 2, 3), default=1,
                        help="UCF101 split (default 1)")
    convert.add_common_flags(parser)
    args = parser.parse_args(argv)
    return convert.run_tool(
        convert.convert_ucf101, args.out, splits=args.splits, features=args.features,
        classes_of=args.classes_of, split=args.split, fps=args.fps, stride=args.stride,
        skip_missing=args.skip_missing, rgb_dim=args.rgb_dim, hdf5_single=args.hdf5_single,
        show_progress=args.progress)


if __name__ == "__main__":
    sys.exit(main())
