"""The evaluation protocol: flip-test inference, rescoring, OKS-NMS, COCO keypoint AP, and its records.

evaluate (inference and pycocotools), postprocess (rescoring, NMS, result format), results (the per-model
metrics files), golden (instance-by-instance predictions diff), reference (tier E's committed reference and
how it is evaluated), ledger (every evaluated retrain by seed). Imports the core and repro.data only.
"""
