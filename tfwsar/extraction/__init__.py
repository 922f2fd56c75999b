"""Feature extraction: video files → per-video `rgb/<video>.npy` and `flow/<video>.npy` features.

The modules, one job each:
- `video`: find video files, decode them with PyAV, resample to a target frame rate, resize and
  centre-crop, cut into segments of `stride` frames;
- `flow`: dense optical flow with OpenCV (TV-L1 when the installed build has it, Farnebäck
  otherwise) and flow images (clipped, scaled to uint8, stacked over a window);
- `backbones`: the RGB and flow networks (keras.applications ResNet101/ResNet50/MobileNetV2, a tiny
  test net, or any SavedModel), the cross-modality first-layer initialisation of the flow net;
- `extract`: the orchestration: tf.data batching, atomic writes, skipping finished videos, the
  failure summary and `OUT/extraction.json`.

PyAV and OpenCV come from the `video` extra (`pip install -e '.[video]'`); they are imported inside
the functions that need them, so `import tfwsar` and this package import without them.
"""
