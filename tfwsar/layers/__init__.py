"""tfwsar.layers: the Keras building blocks, one layer per module.

Importing this package registers the layers for `keras.saving.load_model`.
"""

from tfwsar.layers.attention_pooling import SelfAttentionPooling
from tfwsar.layers.mean_pooling import MeanPooling
from tfwsar.layers.minmax_normalization import TemporalMinMaxNormalization
from tfwsar.layers.mmd import MaximumMeanDiscrepancy
from tfwsar.layers.sigmoid_attention import SigmoidAttention
from tfwsar.layers.topk_pooling import TopKTemporalPooling

__all__ = [
    "MaximumMeanDiscrepancy",
    "MeanPooling",
    "SelfAttentionPooling",
    "SigmoidAttention",
    "TemporalMinMaxNormalization",
    "TopKTemporalPooling",
]
