r"""BaS-Net (Lee, Uh, Byun, "Background Suppression Network for Weakly-supervised Temporal Action
Localization", AAAI 2020): python -m tfwsar.recipes.basnet.

A background class and a filtering module that suppresses background segments; two branches with
shared weights trained asymmetrically (base branch: background labelled 1, suppression branch:
background 0). Its published detection (thresholds on the CAS, outer-inner contrast, NMS) is the
shared "cas" rule. See tfwsar/methods/basnet.py and tfwsar/experiment.py.
"""

from tfwsar import experiment
from tfwsar.methods import basnet

# The paper's THUMOS14 mAP with I3D features (tIoU 0.1 / 0.3 / 0.5 / 0.7), printed beside ours.
# On the embedded data (32-d features) 256/128-wide layers instead of the paper's 2048/512, sized
# for 2048-d I3D features: with those, 2 CPU cores had not reached step 100 of 600 after 4 minutes.
# --preset paper or --data: the paper's.
RECIPE = experiment.Recipe(basnet, "basnet", rule="cas",
                           embedded_model={"cas_units": 256, "filter_units": 128},
                           paper_detection={"0.1": 0.582, "0.3": 0.446, "0.5": 0.270, "0.7": 0.104})
get_config, run = RECIPE.get_config, RECIPE.run

if __name__ == "__main__":
    RECIPE.main()
