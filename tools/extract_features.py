"""Extracts per-video RGB and optical-flow features from video files.

    python tools/extract_features.py --videos DIR --out DIR [--fps 25] [--stride 16]
        [--weights imagenet|none|PATH]
        [--backbone resnet101|resnet50|mobilenet_v2|tiny|saved_model:PATH]

Every video file under --videos (mp4, avi, mkv, webm, recursively) becomes OUT/rgb/<stem>.npy and
OUT/flow/<stem>.npy (float32 [T, D], one row per --stride frames at --fps), the layout
tools/convert_*.py read. OUT/extraction.json records the settings; OUT/video_info.csv holds the
decoded durations (--video-info of the converters). A re-run skips finished videos. A video that
cannot be decoded is reported and skipped; the exit status is 1 if any failed.
Needs the video extra: pip install -e '.[video]'. --weights imagenet reads the Keras cache
(~/.keras/models, or $KERAS_HOME/models) and downloads the file there when it is absent.
"""

import argparse
import sys

from tfwsar import console

console.quiet_terminal()  # before TensorFlow loads (TFWSAR_VERBOSE=1: all its logs)

from tfwsar.errors import DataError  # noqa: E402
from tfwsar.extraction import backbones  # noqa: E402
from tfwsar.extraction import extract  # noqa: E402
from tfwsar.extraction import flow  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--videos", required=True, help="directory searched recursively for videos")
    parser.add_argument("--out", required=True, help="output directory (rgb/, flow/, extraction.json)")
    parser.add_argument("--fps", type=float, default=25.0, help="frame rate videos are resampled to")
    parser.add_argument("--stride", type=int, default=16, help="frames per feature segment")
    parser.add_argument("--backbone", default="resnet101",
                        help=f"RGB network: {', '.join(backbones.KERAS_BACKBONES)} or saved_model:PATH "
                             "(frames [N,H,W,3] or clips [N,L,H,W,3] in [-1,1] → features)")
    parser.add_argument("--weights", default="imagenet",
                        help="imagenet (the Keras cache; downloaded there when absent) | none | PATH")
    parser.add_argument("--flow-backbone", default=None,
                        help="flow network (default: the --backbone architecture, initialised from "
                             "the RGB weights by cross-modality averaging); required with a SavedModel "
                             "--backbone: saved_model:PATH of a flow network")
    parser.add_argument("--flow-weights", default=None,
                        help="weights file of a flow network (2*window input channels) instead of "
                             "the cross-modality initialisation")
    parser.add_argument("--flow-algorithm", default="auto", choices=flow.ALGORITHMS,
                        help="auto = TV-L1 when OpenCV has it (contrib), else Farneback")
    parser.add_argument("--flow-window", type=int, default=5, help="flow fields stacked per segment")
    parser.add_argument("--flow-bound", type=float, default=20.0,
                        help="flow images clip displacements to +-bound pixels/frame")
    parser.add_argument("--rgb-samples", type=int, default=1,
                        help="frames per segment through the RGB network, averaged (1 = centre)")
    parser.add_argument("--input-size", type=int, default=None,
                        help="square crop side fed to the networks (default 224; tiny: 64)")
    parser.add_argument("--short-side", type=int, default=None,
                        help="shorter side resized to this before the centre crop "
                             "(default input size * 256/224)")
    parser.add_argument("--batch-size", type=int, default=16, help="segments per inference batch")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random initialisation")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="force the progress bar on/off (default: only on a terminal)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        summary = extract.extract_features(
            args.videos, args.out, backbone=args.backbone, weights=args.weights,
            flow_backbone=args.flow_backbone, flow_weights=args.flow_weights, fps=args.fps,
            stride=args.stride, rgb_samples=args.rgb_samples, flow_window=args.flow_window,
            flow_algorithm=args.flow_algorithm, flow_bound=args.flow_bound,
            input_size=args.input_size, short_side=args.short_side, batch_size=args.batch_size,
            seed=args.seed, show_progress=args.progress)
    except (DataError, ImportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"extracted {len(summary.extracted)}, skipped {len(summary.skipped)} already finished, "
          f"failed {len(summary.failed)}", file=sys.stderr)
    for stem, message in sorted(summary.failed.items()):
        print(f"  failed {stem}: {message}", file=sys.stderr)
    return 1 if summary.failed else 0


if __name__ == "__main__":
    sys.exit(main())
