"""tfwsar.methods: one module per weakly supervised localization method.

W-TALC, STPN and BaS-Net (`wtalc`, `stpn`, `basnet`) name their paper (`PAPER`) and provide
`ModelConfig`, `PAPER_TRAINING`, `build_networks`, `build_optimizers`, `make_step_fn` (for
`tfwsar.train_lib`) and `video_outputs` (class scores, class activation sequence, optional
attention) for the shared runner `tfwsar.experiment.run`.

`tsrnet` is TSRNet's (and convex clustering's) two stream networks, their SGD and TSRNet's step;
its recipe adds the trimmed stream of the knowledge transfer and calls the same phases of
`tfwsar.experiment` itself.
"""
