"""A few steps of `train_lib.Trainer` on a tiny model, run as a program by the tests:

    python tests/tiny_training.py WORKDIR [--steps N] [--profile START,STOP]
"""

import argparse

from tfwsar import console

console.quiet_terminal()  # before TensorFlow loads, as every tfwsar command

import keras  # noqa: E402  pylint: disable=wrong-import-position
import numpy as np  # noqa: E402  pylint: disable=wrong-import-position
import tensorflow as tf  # noqa: E402  pylint: disable=wrong-import-position

from tfwsar import train_lib  # noqa: E402  pylint: disable=wrong-import-position


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("workdir")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--profile", default=None, help="START,STOP steps to trace")
    args = parser.parse_args()
    strategy = train_lib.make_strategy("default")
    with strategy.scope():
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8), keras.layers.Dense(1)])
        optimizer = train_lib.sgd_with_step_decay(0.01, decay_every=100)
    train_lib.build_optimizers(strategy, [(optimizer, model.trainable_variables)])
    features = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    dataset = tf.data.Dataset.from_tensor_slices(
        {"x": features, "y": features.sum(axis=1, keepdims=True)}).repeat().batch(8, drop_remainder=True)
    trainer = train_lib.Trainer(args.workdir, strategy, dataset, {"model": model, "optimizer": optimizer})

    def step_fn(batch):
        with tf.GradientTape() as tape:
            loss = tf.nn.compute_average_loss(tf.reduce_mean((model(batch["x"]) - batch["y"]) ** 2, -1))
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables),
                                      model.trainable_variables))
        return {"loss": loss}

    profile = tuple(int(step) for step in args.profile.split(",")) if args.profile else None
    trainer.train(step_fn, args.steps, log_every=3, summary_every=3, checkpoint_every=100,
                  profile_steps=profile)
    trainer.close()


if __name__ == "__main__":
    main()
