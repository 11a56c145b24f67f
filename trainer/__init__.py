"""The offline path: COCO data, the training loop and its hooks, checkpoints, distributed launch, COCO
evaluation and a synthetic data set. Entry points: `trainer.cli.train | evaluate | synth | plot` (`maskrcnn ...`)."""
