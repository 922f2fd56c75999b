"""Converts ActivityNet1.3 annotations + segment features into a tfwsar dataset directory.

  python tools/convert_activitynet.py --annotations FILE.json [--video-info CSV] \
      --features DIR|FILE.h5 --out DIR [--fps 25] [--stride 16] [--skip-missing]

--annotations is the official activity_net.v1-3.min.json, or BSN's anet_anno_action.json together
with --video-info video_info_new.csv (which gives the subsets). --features is an .h5 file with a
group per video (e.g. v_<id>/c3d_features; `v_` prefixes are matched to the annotation ids), a
per-video npy folder, or a W-TALC joint .npy.
"""

import argparse
import sys

from tfwsar import console

console.quiet_terminal()  # before TensorFlow loads (TFWSAR_VERBOSE=1: all its logs)

from tfwsar.data import convert  # noqa: E402  pylint: disable=wrong-import-position


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--annotations", required=True, help="ActivityNet JSON file")
    parser.add_argument("--video-info", default=None,
                        help="CSV of durations/subsets (BSN video_info_new.csv)")
    parser.add_argument("--features", required=True,
                        help=".h5 file, per-video npy folder (rgb/, flow/) or a W-TALC .npy")
    parser.add_argument("--out", required=True, help="output dataset directory")
    convert.add_common_flags(parser)
    args = parser.parse_args(argv)
    return convert.run_tool(
        convert.convert_activitynet, args.out, annotations=args.annotations,
        features=args.features, video_info=args.video_info, fps=args.fps, stride=args.stride,
        skip_missing=args.skip_missing, rgb_dim=args.rgb_dim, hdf5_single=args.hdf5_single,
        show_progress=args.progress)


if __name__ == "__main__":
    sys.exit(main())
