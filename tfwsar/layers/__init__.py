"""tfwsar.layers: the Keras building blocks, one layer per module.

Importing this package registers the layers for `keras.saving.load_model`.
"""

from tfwsar.layers.attention_pooling import SelfAttentionPooling
from tfwsar.layers.mean_pooling import MeanPooling
from tfwsar.layers.mmd import MaximumMeanDiscrepancy

__all__ = ["MaximumMeanDiscrepancy", "MeanPooling", "SelfAttentionPooling"]
