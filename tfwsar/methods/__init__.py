"""tfwsar.methods: one module per weakly supervised localization method.

Each module names its paper (`PAPER`) and provides `ModelConfig`, `PAPER_TRAINING`,
`build_networks`, `build_optimizers`, `make_step_fn` (for `tfwsar.train_lib`) and `video_outputs`
(class scores, class activation sequence, optional attention) for the shared runner.
"""
