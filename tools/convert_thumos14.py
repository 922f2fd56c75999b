"""Converts THUMOS14 annotations + segment features into a tfwsar dataset directory.

  python tools/convert_thumos14.py --annotations DIR --features DIR --out DIR \
      [--video-info CSV] [--fps 25] [--stride 16] [--skip-missing]

--annotations is searched recursively for the original <Class>_val.txt / <Class>_test.txt /
Ambiguous_*.txt files (a W-TALC annotation folder or a BSN/G-TAD CSV also work). --features is a
folder of per-video rgb/<video>.npy + flow/<video>.npy, an .h5 file, or W-TALC's joint .npy.
Writes manifest.json, ground_truth.json and TFRecord shards (see tfwsar/data/records.py).
"""

import argparse
import sys

from tfwsar import console

console.quiet_terminal()  # before TensorFlow loads (TFWSAR_VERBOSE=1: all its logs)

from tfwsar.data import convert  # noqa: E402  pylint: disable=wrong-import-position


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--annotations", required=True,
                        help="folder with the THUMOS14 <Class>_val.txt / <Class>_test.txt files")
    parser.add_argument("--features", required=True,
                        help="per-video npy folder (rgb/, flow/), an .h5 file or a W-TALC .npy")
    parser.add_argument("--out", required=True, help="output dataset directory")
    parser.add_argument("--video-info", default=None,
                        help="CSV (video,duration or AFSD video,fps,...,count) or JSON of durations; "
                             "without it durations are T / (fps / stride)")
    convert.add_common_flags(parser)
    args = parser.parse_args(argv)
    return convert.run_tool(
        convert.convert_thumos14, args.out, annotations=args.annotations, features=args.features,
        video_info=args.video_info, fps=args.fps, stride=args.stride,
        skip_missing=args.skip_missing, rgb_dim=args.rgb_dim, hdf5_single=args.hdf5_single,
        show_progress=args.progress)


if __name__ == "__main__":
    sys.exit(main())
