"""Honest model selection: held-out training videos, best weights kept across restarts."""

import keras
import numpy as np
import pytest

from tfwsar import inference
from tfwsar.models import tsrnet


def test_split_is_reproducible_disjoint_and_sized(monkeypatch):
    videos = [f"video_{i:03d}" for i in range(50)]
    monkeypatch.setattr(inference.pipeline, "video_ids", lambda data_dir, subset: list(videos))
    kept, held_out = inference.split_training_videos("unused", "validation", 0.2, seed=3)
    again = inference.split_training_videos("unused", "validation", 0.2, seed=3)
    other = inference.split_training_videos("unused", "validation", 0.2, seed=4)
    assert (kept, held_out) == again and held_out != other[1]
    assert len(held_out) == 10 and not set(kept) & set(held_out)
    assert sorted(kept + held_out) == videos
    assert inference.split_training_videos("unused", "validation", 0.0, seed=3) == (videos, [])


def _models():
    return {stream: tsrnet.build_stream_network(3, 2, fc1_units=4, fc2_units=4, attention_units=2,
                                                name=stream) for stream in inference.STREAMS}


def test_best_weights_keep_the_best_score_and_survive_a_restart(tmp_path):
    keras.utils.set_random_seed(0)
    models = _models()
    selection = inference.BestWeights(str(tmp_path), models, metric="m")
    assert selection.offer(10, 0.5)
    best = [w.copy() for w in models["rgb"].get_weights()]
    for weight in models["rgb"].weights:
        weight.assign(weight + 1.0)
    assert not selection.offer(20, 0.4)  # worse: not kept
    assert not selection.offer(30, 0.5)  # a tie keeps the earlier
    restarted = inference.BestWeights(str(tmp_path), models, metric="m")
    assert restarted.record == {"step": 10, "score": 0.5, "metric": "m"}
    restarted.restore()
    for got, want in zip(models["rgb"].get_weights(), best):
        np.testing.assert_array_equal(got, want)


def test_classification_metrics_fuse_streams_with_theta():
    def outputs(video, rgb, flow, labels):
        return inference.VideoOutputs(video, 10.0, labels, {"rgb": np.array(rgb),
                                      "flow": np.array(flow)}, {}, {}, {})
    videos = [outputs("a", [0.9, 0.1], [0.2, 0.8], (0,)), outputs("b", [0.6, 0.4], [0.1, 0.9], (1,))]
    metrics = inference.classification_metrics(videos, theta=0.5)
    assert metrics["rgb"] == 0.5 and metrics["flow"] == 0.5
    # fused: a → [0.55, 0.45] correct; b → [0.35, 0.65] correct
    assert metrics["fusion"] == 1.0
    assert inference.classification_metrics(videos, theta=1.0)["fusion"] == 0.5
    with pytest.raises(ValueError, match="no labelled video"):
        inference.classification_metrics([outputs("c", [1, 0], [1, 0], ())], theta=0.5)


def test_predictions_keep_the_fc2_embedding_only_when_asked(tmp_path):
    from toy_datasets import make_dataset

    data_dir = make_dataset(tmp_path / "toy", train_videos=2, test_videos=2, feature_dim=3)
    keras.utils.set_random_seed(0)
    models = _models()
    plain = inference.predict_videos(models, str(data_dir), "test")
    kept = inference.predict_videos(models, str(data_dir), "test", keep_features=True)
    assert [o.features for o in plain] == [{}, {}]
    for without, with_features in zip(plain, kept):
        length = len(with_features.attention["rgb"])
        assert with_features.features["rgb"].shape == (length, 4)
        # the flag changes what is kept, nothing that is computed
        np.testing.assert_array_equal(without.probabilities["rgb"], with_features.probabilities["rgb"])


def test_the_paper_preset_batches_videos_of_similar_lengths_without_padding_to_750():
    from tfwsar.recipes import tsrnet as recipe

    paper = recipe.get_config("paper")
    assert (paper.data.num_segments, paper.data.batch_length, paper.data.sort_window) == (
        750, "longest", 5)
    assert recipe.get_config("default").data.batch_length == "fixed"
