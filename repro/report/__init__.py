"""Reporting: measured metrics against the published table, the baseline and the plan; verdicts and files.

compare (comparison.md/.json, stats), tiers + checks (the gate tiers A/C/S/E and A-subset), drift, equivalence,
tables and plots (leaves), baseline + rebaseline (the smoke baseline),
tost (equivalence over the seed ledger's retrains), plan (time and device-hours before a run), diagnose (where the
AP went between two prediction files), record (commit a full run's results). Imports any layer below it;
nothing below imports it.
"""
