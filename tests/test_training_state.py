"""Training state does not grow with the dataset: checkpoints hold models, optimizers and a step.

The input position of a run is its step (`tfwsar.data.pipeline`: the stream is a function of the
seed), so no shuffle buffer or prefetched batch is written into `checkpoints/ckpt-N`.
"""

import pathlib

import pytest

from tfwsar import config as config_lib
from tfwsar.recipes import tsrnet as tsrnet_recipe
from toy_datasets import make_dataset

pytestmark = pytest.mark.slow


def _checkpoint_bytes(workdir, step):
    files = list((pathlib.Path(workdir) / "checkpoints").glob(f"ckpt-{step}.*"))
    assert files, f"no checkpoint ckpt-{step} in {workdir}"
    return sum(path.stat().st_size for path in files)


def _run(data_dir, workdir):
    config = config_lib.override(tsrnet_recipe.get_config(), [
        "variant=srnet", f"data.data_dir={data_dir}", "data.validation_fraction=0.1",
        "train.steps=4", "train.batch_size=4", "train.steps_per_execution=1",
        "train.log_every=2", "train.eval_every=4", "train.checkpoint_every=2",
        "data.num_segments=32", "model.fc1_units=8", "model.fc2_units=8",
        "model.attention_units=4"])
    tsrnet_recipe.run(config, str(workdir))


def test_checkpoint_size_does_not_depend_on_the_number_of_training_videos(tmp_path):
    sizes, data_bytes = {}, {}
    for num_videos in (10, 100):
        data_dir = make_dataset(tmp_path / f"data_{num_videos}", train_videos=num_videos,
                                test_videos=4, feature_dim=64, lengths=(40, 120))
        data_bytes[num_videos] = sum(path.stat().st_size
                                     for path in (data_dir / "validation").glob("*.tfrecord"))
        _run(data_dir, tmp_path / f"run_{num_videos}")
        sizes[num_videos] = _checkpoint_bytes(tmp_path / f"run_{num_videos}", 2)
        assert _checkpoint_bytes(tmp_path / f"run_{num_videos}", 4) == sizes[num_videos]
    # The training data grew by megabytes; the checkpoints by (almost) nothing.
    assert data_bytes[100] - data_bytes[10] > 2_000_000
    assert abs(sizes[100] - sizes[10]) < 2048, sizes
