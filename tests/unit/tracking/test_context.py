"""repro.tracking.context: a run records the data it read."""
import dataclasses

from repro import config, tracking
from repro.evaluation.tracking_run import log_evaluation
from tests.conftest import REPO
from tests.unit.tracking.helpers import RECORD, client


def test_evaluation_run_has_the_val_annotations_and_det_file_as_dataset_inputs(store, tmp_path):
    cfg = config.load(REPO / "params.yaml", "256x192")
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, root=str(tmp_path)))
    data = {"val_ann": cfg.data.val_ann, "det_file": cfg.data.det_file}   # train_ann absent: not an input
    for path in data.values():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("[]")
    run = client().get_run(log_evaluation("evaluate_256x192", cfg, RECORD))
    inputs = {i.dataset.name: i for i in run.inputs.dataset_inputs}
    assert set(inputs) == {"val_ann", "det_file"}
    assert inputs["val_ann"].dataset.digest == tracking.sha256_file(data["val_ann"])[:32]
    assert {t.key: t.value for t in inputs["det_file"].tags}["mlflow.data.context"] == "evaluation"
