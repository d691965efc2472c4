"""repro.engine.mmpose_log: mmpose 0.x log.json files written here in that format (spec §6), read into a curve."""
import json
import logging

import pytest

from repro.engine import mmpose_log
from repro.engine.mmpose_log import LogFormatError, read_curve
from repro.evaluation import evaluate

META = {"env_info": "sys.platform: linux\nPython: 3.8", "seed": None}


def train_line(epoch, it):
    return {"mode": "train", "epoch": epoch, "iter": it, "lr": 0.0005, "memory": 5221, "data_time": 0.01,
            "mse_loss": 0.0012, "acc_pose": 0.5, "loss": 0.0012, "time": 0.4}


def val_line(epoch, ap, ap50_key="AP .5"):
    return {"mode": "val", "epoch": epoch, "iter": 293, "lr": 0.0005, "AP": ap, ap50_key: ap + 0.25,
            "AP .75": ap + 0.05, "AP (M)": ap - 0.03, "AP (L)": ap + 0.07, "AR": ap + 0.06, "AR .5": 0.9,
            "AR .75": 0.7, "AR (M)": 0.6, "AR (L)": 0.75}


def log_text(aps, ap50_key="AP .5"):
    """A published-style log: meta, then per 10 epochs two train lines and a val line."""
    lines = [META]
    for i, ap in enumerate(aps):
        epoch = 10 * (i + 1)
        lines += [train_line(epoch, 50), train_line(epoch, 100), val_line(epoch, ap, ap50_key)]
    return "".join(json.dumps(line) + "\n" for line in lines)


def test_full_log_gives_every_validation_with_our_stat_names(tmp_path):
    path = tmp_path / "cpm.log.json"
    path.write_text(log_text([0.41, 0.52, 0.58]))
    curve = read_curve(path)
    assert [p["epoch"] for p in curve] == [10, 20, 30]
    assert [p["AP"] for p in curve] == [0.41, 0.52, 0.58]
    assert curve[1]["AP50"] == pytest.approx(0.77) and curve[1]["AP_M"] == pytest.approx(0.49)
    assert set(curve[0]) == {"epoch", *evaluate.STAT_NAMES}


def test_older_ap_5_spelling_is_read_as_ap50(tmp_path):
    path = tmp_path / "hrnet.log.json"
    path.write_text(log_text([0.41, 0.52], ap50_key="Ap .5"))
    assert [p["AP50"] for p in read_curve(path)] == pytest.approx([0.66, 0.77])


def test_truncated_last_line_is_dropped_with_a_warning(tmp_path, caplog):
    text = log_text([0.41, 0.52, 0.58])
    path = tmp_path / "cut.log.json"
    path.write_text(text[:-40])                  # an interrupted download: the last val line cut short
    with caplog.at_level(logging.WARNING, logger="repro.mmpose_log"):
        curve = read_curve(path)
    assert [p["epoch"] for p in curve] == [10, 20]
    assert f"{path}:10: dropped a truncated last line" in caplog.text


def test_malformed_line_is_an_error_naming_file_and_line(tmp_path):
    lines = log_text([0.41, 0.52]).splitlines(keepends=True)
    lines[3] = '{"mode": "train", "epoch": 11, garbage\n'
    path = tmp_path / "bad.log.json"
    path.write_text("".join(lines))
    with pytest.raises(LogFormatError, match=rf"^{path}:4: not a JSON object"):
        read_curve(path)


def test_cut_line_that_is_not_the_last_is_an_error(tmp_path):
    """Only the very end of the file may be cut: a broken line followed by a newline is garbage."""
    path = tmp_path / "bad.log.json"
    path.write_text(log_text([0.41])[:-40] + "\n")
    with pytest.raises(LogFormatError, match=rf"^{path}:4:"):
        read_curve(path)


def test_non_object_line_is_an_error(tmp_path):
    path = tmp_path / "list.log.json"
    path.write_text(log_text([0.41]) + "[1, 2]\n")
    with pytest.raises(LogFormatError, match=rf"^{path}:5: expected a JSON object, got list"):
        read_curve(path)


def test_log_without_validation_lines_is_an_error(tmp_path):
    path = tmp_path / "train_only.log.json"
    path.write_text("".join(json.dumps(line) + "\n" for line in [META, train_line(1, 50), train_line(2, 50)]))
    with pytest.raises(LogFormatError, match="no validation lines"):
        read_curve(path)


@pytest.mark.parametrize("bad", [{"AP": None}, {"AP": float("nan")}, {"epoch": "10"}, {"epoch": 0}])
def test_validation_line_without_epoch_or_finite_ap_is_an_error(tmp_path, bad):
    path = tmp_path / "val.log.json"
    path.write_text("".join(json.dumps(line) + "\n" for line in [META, {**val_line(10, 0.4), **bad}]))
    with pytest.raises(LogFormatError, match=rf"^{path}:2: validation line without"):
        read_curve(path)


def test_missing_file_is_an_error_naming_it(tmp_path):
    with pytest.raises(LogFormatError, match=rf"^{tmp_path / 'none.log.json'}: cannot read"):
        read_curve(tmp_path / "none.log.json")


def our_records():
    """What repro.engine.runlog writes to train_log.jsonl: train intervals and validations."""
    stats = {name: 0.1 + 0.01 * i for i, name in enumerate(evaluate.STAT_NAMES)}
    return [{"mode": "train", "epoch": 1, "iter": 10, "iters": 20, "step": 10, "lr": 9.2e-05, "loss": 0.0361234567,
             "acc_pose": 0.0157, "time": 0.4455, "data_time": 0.0289, "loss_kpt": 0.0361},
            {"mode": "train", "epoch": 1, "iter": 20, "iters": 20, "step": 20, "lr": 0.000194, "loss": 0.0341,
             "acc_pose": 0.0455, "time": 0.413, "data_time": 0.0242, "loss_kpt": 0.0341},
            {"mode": "val", "epoch": 1, "step": 20, **stats, "num_images": 50, "num_instances": 120}]


def test_writer_produces_the_mmpose_format_that_reads_back(tmp_path):
    src = tmp_path / "train_log.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in our_records()))
    out = mmpose_log.write_log(src, tmp_path / "run.log.json", seed=3)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines[0]["seed"] == 3 and "env_info" in lines[0]
    # mmcv rounds every float to 5 decimals, the learning rate too
    assert lines[1] == {"mode": "train", "epoch": 1, "iter": 10, "lr": 9e-05, "data_time": 0.0289,
                        "mse_loss": 0.03612, "acc_pose": 0.0157, "loss": 0.03612, "time": 0.4455}
    assert lines[3] == {"mode": "val", "epoch": 1, "iter": 20, "lr": 0.00019, "AP": 0.1, "AP .5": 0.11,
                        "AP .75": 0.12, "AP (M)": 0.13, "AP (L)": 0.14, "AR": 0.15, "AR .5": 0.16,
                        "AR .75": 0.17, "AR (M)": 0.18, "AR (L)": 0.19}
    assert read_curve(out) == [{"epoch": 1, **{k: pytest.approx(v) for k, v in our_records()[2].items()
                                               if k in evaluate.STAT_NAMES}}]


def test_cli_writes_the_log_and_says_what_it_holds(tmp_path, capsys):
    src = tmp_path / "train_log.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in our_records()))
    mmpose_log.main([str(src), str(tmp_path / "out.log.json")])
    assert "1 validation(s), epochs [1]" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="repro.engine.mmpose_log: error: .*no validation lines"):
        src.write_text(json.dumps(our_records()[0]) + "\n")
        mmpose_log.main([str(src), str(tmp_path / "out2.log.json")])
