"""What two or more method modules share: the joint-feature input of W-TALC and BaS-Net, Adam as
the papers' code applies weight decay, and one gradient step for several networks from one tape.

Weight decay. W-TALC and BaS-Net train with PyTorch's `Adam(weight_decay=5e-4)`, which adds the
L2 gradient wd · θ to the loss gradient *before* Adam's moment estimates (coupled L2). Keras'
`Adam(weight_decay=...)` is decoupled (AdamW: θ ← θ − lr · wd · θ after the step), which for
lr = 1e-4 is a 2,000× weaker pull. `AdamWithL2` applies the coupled form, so the paper settings mean
what they meant in the papers' code.
"""

import keras
from keras import ops


def check_choice(name, value, choices):
    """Raises ValueError unless `value` is one of `choices` (for the configs' string fields)."""
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; expected one of {tuple(choices)}")


def joint_feature_inputs(feature_dims):
    """The inputs of a network on joint features [x^rgb | x^flow] (W-TALC, BaS-Net).

    Returns:
        `(inputs, mask, segment_mask, features)`: the dict of `keras.Input`s `rgb` `[B, T, D_rgb]`,
        `flow` `[B, T, D_flow]` and `mask` `[B, T]` (1 = valid); the mask; the mask `[B, T, 1]`;
        the joint features `[B, T, D_rgb + D_flow]`, 0 at padding.
    """
    rgb = keras.Input(shape=(None, feature_dims["rgb"]), name="rgb")
    flow = keras.Input(shape=(None, feature_dims["flow"]), name="flow")
    mask = keras.Input(shape=(None,), name="mask")
    segment_mask = ops.expand_dims(mask, -1)
    features = keras.layers.Concatenate(name="joint_features")([rgb, flow]) * segment_mask
    return {"rgb": rgb, "flow": flow, "mask": mask}, mask, segment_mask, features


def joint_model_inputs(batch):
    """The entries of a pipeline batch that a joint-feature network takes."""
    return {"rgb": batch["rgb"], "flow": batch["flow"], "mask": batch["mask"]}


@keras.saving.register_keras_serializable(package="tfwsar")
class AdamWithL2(keras.optimizers.Adam):
    """Adam on the gradient g + l2 · θ (PyTorch's `Adam(weight_decay=l2)`).

    Args:
        l2: coefficient of the L2 gradient, added for every trainable variable (biases too, as
            PyTorch does). 0 gives plain Adam.
        **kwargs: `keras.optimizers.Adam` arguments (`learning_rate`, `name`, ...).
    """

    def __init__(self, l2=0.0, **kwargs):
        super().__init__(**kwargs)
        self.l2 = float(l2)

    def update_step(self, gradient, variable, learning_rate):
        if self.l2:
            gradient = ops.add(
                ops.cast(gradient, variable.dtype), ops.multiply(self.l2, variable)
            )
        super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        config = super().get_config()
        config.update({"l2": self.l2})
        return config


def adam_optimizers(names, learning_rate, weight_decay):
    """One `AdamWithL2(learning_rate, l2=weight_decay)` per network name, named after it.

    Call inside `strategy.scope()`.
    """
    return {
        name: AdamWithL2(learning_rate=learning_rate, l2=weight_decay or 0.0, name=f"{name}_adam")
        for name in names
    }


def apply_gradients(tape, total, networks, optimizers):
    """Differentiates `total` once and lets each network's optimizer apply its own gradients.

    Networks that do not depend on each other (STPN's streams) each get the gradient of their own
    terms: the sum's gradient with respect to a network's variables is the gradient of that
    network's part.
    """
    names = sorted(networks)
    variables = [networks[name].trainable_variables for name in names]
    gradients = tape.gradient(total, variables)
    for name, network_gradients, network_variables in zip(names, gradients, variables):
        optimizers[name].apply_gradients(zip(network_gradients, network_variables))
