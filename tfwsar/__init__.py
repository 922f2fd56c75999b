"""tfwsar: weakly supervised action recognition and temporal action localization in TensorFlow/Keras.

Two methods are reproduced: TSRNet (self-attentive pooling + MMD knowledge transfer from trimmed
clips, Zhang et al. AAAI 2019) and convex clustering (exemplar database + representativeness matrix
Q, Peng et al.). Importing the package does no work; every module is imported on demand.
"""

# The one place the version is written: setup.py reads this line as text.
__version__ = "0.1.0"
