"""The training engine: the loop, what a run writes, how it is launched, and its learning curve.

train (loop, schedule, checkpoint/resume), runlog (a run's files and progress), launch (in-process or
torchrun), probe (timed steps for `repro plan`), curve and mmpose_log (val AP per epoch against a reference
training log, early stop). Imports the core, repro.data and repro.evaluation (validation), never repro.report.
"""
