"""Reporting: measured metrics against the published table, the baseline and the plan; verdicts and files.

compare (comparison.md/.json, plots), gates (tiers A/C/E/S, drift, rendering), baseline (the smoke baseline),
tost (equivalence over the seed ledger's retrains), plan (time and device-hours before a run), diagnose (where the
AP went between two prediction files), record (commit a full run's results). Imports any layer below it;
nothing below imports it.
"""
