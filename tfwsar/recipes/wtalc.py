r"""W-TALC (Paul, Roy, Roy-Chowdhury, "W-TALC: Weakly-supervised Temporal Activity Localization
and Classification", ECCV 2018): `python -m tfwsar.recipes.wtalc [--data DIR --preset paper]`.

One FC + dropout + classifier on joint RGB|flow features; MIL over the top ⌈T/8⌉ segment logits
plus the co-activity similarity loss on same-class video pairs, which is why its batches start
with 3 such pairs. Detection: its own rule ("wtalc"); `--rule cas` scores the same model with the
shared localizer. Model: `tfwsar/methods/wtalc.py`; the run: `tfwsar.experiment`.
"""

from tfwsar import experiment
from tfwsar.methods import wtalc

# The paper's THUMOS14 mAP with I3D features (tIoU 0.1 / 0.3 / 0.5 / 0.7), printed beside ours.
RECIPE = experiment.Recipe(wtalc, "wtalc", rule="wtalc", similar_pairs=3,
                           paper_detection={"0.1": 0.552, "0.3": 0.401, "0.5": 0.228, "0.7": 0.076})
get_config, run = RECIPE.get_config, RECIPE.run

if __name__ == "__main__":
    RECIPE.main()
