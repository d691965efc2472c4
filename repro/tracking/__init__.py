"""MLflow records of the pipeline's runs; with tracking/models.py the only code that imports mlflow (lazily:
`import repro.engine.train` stays fast). One module per job:

    store       whether tracking is on, the store's URI and experiment, the check that it takes writes
    context     what a run records about itself: pipeline id, git, pip freeze, versions, data digests
    tracker     Tracker (one run, buffered metrics) and NullTracker (other ranks, tracking off); flatten
    lifecycle   the experiment and its saved view, opening a run under its pipeline's parent, a training
                run's start, dead runs marked KILLED, the parent run closed with the pipeline's results
    outbox      publish a finished result as one run, and `repro publish` of the runs kept by pending
    pending     a run the store could not take, kept in outputs/unpublished/
    models      checkpoints as registered MLflow PyTorch models (cpm-<config>, cpm-<config>-published)

    tracker = tracking.start(cfg, out_dir, world_size=2, recipe_diff=[...])   # rank 0; others get NullTracker()
    tracker.log_metrics({"train/loss": 0.01, "train/lr": 5e-4}, step=17)      # buffered, written in batches
    tracker.end("FINISHED")
    tracking.publish({"kind": "evaluate", "name": ..., "tags": ..., "params": ..., "metrics": ...})

Store: $MLFLOW_TRACKING_URI, else sqlite:///<cwd>/mlflow.db (run `mlflow ui --backend-store-uri
sqlite:///mlflow.db` in the repo root). Experiment: $MLFLOW_EXPERIMENT_NAME, else "cpm-repro".
Each run carries the resolved configuration as params (dotted keys) and its context (git commit + diff,
pip freeze, torch/CUDA/cuDNN, CPU and GPU names, world size, seed, data sha256, recipe status,
`repro.pipeline`). The run builders of the steps live with their steps: the evaluation run in
repro/evaluation/tracking_run.py, the comparison run in repro/report/tracking_run.py. The metric names, one
per quantity and run kind, are the README's "MLflow metric names" table. REPRO_TRACKING=0 records nothing.
"""
from repro.digest import sha256_file  # noqa: F401  (tests compare the tags against it)
from repro.tracking.context import (data_digests, dataset_inputs, git_commit, pipeline_group_id,  # noqa: F401
                                    run_context)
from repro.tracking.lifecycle import (EXPERIMENT_KIND, LOG_FILES, SYSTEM_METRICS_INTERVAL_S, VIEW_COLUMNS,  # noqa: F401
                                      VIEW_KEY, VIEW_STATS, close_pipeline, gather_logs, open_run, owner_tags,
                                      saved_view, start, start_system_metrics, summary_metrics, view_columns)
from repro.tracking.outbox import publish, publish_pending  # noqa: F401
from repro.tracking.pending import PENDING_DIR, keep_pending  # noqa: F401
from repro.tracking.store import (DEFAULT_EXPERIMENT, TrackingError, check_store, enabled,  # noqa: F401
                                  experiment_name, preflight, tracking_uri)
from repro.tracking.tracker import NullTracker, Tracker, flatten  # noqa: F401
