"""Detects actions in new feature files with nothing but an exported tfwsar SavedModel.

  python tools/localize.py --saved-model WORKDIR/saved_model --features DIR --out predictions.json

--features is a per-video npy folder (rgb/<video>.npy, flow/<video>.npy, float32 [T, D]), an .h5
file, or a W-TALC joint .npy, at the feature rate the model was trained on (stored in the model).
Writes the ActivityNet result format ({"version", "external_data", "results": {video: [{"label",
"score", "segment"}]}}) atomically; bad features stop the run with `error: ...` and no output.
"""

import argparse
import os
import sys

from tfwsar import console

console.quiet_terminal()  # before TensorFlow loads (TFWSAR_VERBOSE=1: all its logs)

from tfwsar import export, localize  # noqa: E402  pylint: disable=wrong-import-position
from tfwsar.data import features as feature_sources  # noqa: E402  pylint: disable=wrong-import-position
from tfwsar.errors import DataError  # noqa: E402  pylint: disable=wrong-import-position
from tfwsar.progress import progress  # noqa: E402  pylint: disable=wrong-import-position


def localize_features(saved_model, features, show_progress=None):
    """Runs the SavedModel's `detect` signature on every video of a feature source.

    Returns:
      the ActivityNet-format predictions dict.
    """
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    detect = tf.saved_model.load(str(saved_model)).signatures["detect"]
    source = feature_sources.open_features(features)
    classes = None
    detections = {}
    for video in progress(source.videos(), desc="localize", enabled=show_progress):
        rgb, flow = source.read(video)
        outputs = detect(rgb=tf.constant(rgb), flow=tf.constant(flow))
        if classes is None:
            classes = [name.decode() for name in outputs["classes"].numpy()]
        detections[video] = export.detections_from_signature(
            {key: value.numpy() for key, value in outputs.items()})
    if classes is None:
        raise DataError(f"{features}: no videos found")
    return localize.predictions_to_activitynet(detections, classes)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--saved-model", required=True, help="an exported saved_model/ directory")
    parser.add_argument("--features", required=True,
                        help="per-video npy folder (rgb/, flow/), an .h5 file or a W-TALC .npy")
    parser.add_argument("--out", required=True, help="predictions JSON to write")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="force the progress bar on or off (default: on a terminal)")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.saved_model):
        print(f"error: {args.saved_model}: no SavedModel directory", file=sys.stderr)
        return 1
    try:
        predictions = localize_features(args.saved_model, args.features, args.progress)
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    localize.write_predictions(args.out, predictions)
    count = sum(len(entries) for entries in predictions["results"].values())
    print(f"wrote {args.out}: {count} detections in {len(predictions['results'])} videos")
    return 0


if __name__ == "__main__":
    sys.exit(main())
