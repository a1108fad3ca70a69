"""One folder per run: RecBole's log file and TensorBoard folder land in the run's own folder, every time."""

from __future__ import annotations

from pathlib import Path

from recbole_hnlm.quick_start import run_hnlm
from recbole_hnlm.run_logging import tee_output
from tests.conftest import FAST


def test_two_runs_in_one_process_leave_two_complete_logs(in_tmp):
    settings = {**FAST, "state": "INFO", "train_batch_size": 4096}
    runs = [
        Path(
            run_hnlm(model="MF", dataset="ml-100k", sampler="rns", config_dict={**settings, "seed": seed})[
                "run_dir"
            ]
        )
        for seed in (1, 2)
    ]
    assert runs[0] != runs[1]
    for run, seed in zip(runs, (1, 2)):
        logs = list((run / "log").glob("*.log"))
        assert len(logs) == 1, logs
        text = logs[0].read_text()
        assert f"\nseed = {seed}\n" in text  # the run's own config heads its log
        assert "epoch 0 training" in text and "Saving current" in text
        assert f"{run}/" in text  # this run's checkpoint, not the other run's
        other = runs[1] if run == runs[0] else runs[0]
        # with the separator: two runs in one second are <stamp> and <stamp>~2, one a prefix of the other
        assert f"{other}/" not in text
        boards = list((run / "log_tensorboard").iterdir())
        assert len(boards) == 1 and boards[0].name == logs[0].stem
        assert list(boards[0].glob("events.out.tfevents.*"))
    assert not (in_tmp / "log").exists() and not (in_tmp / "log_tensorboard").exists()


def test_tee_output_copies_prints_once_when_nested(tmp_path, capsys):
    log = tmp_path / "a" / "pipeline.log"
    with tee_output(log):
        print("stage one")
        with tee_output(log):
            print("stage two")
    print("after")
    assert capsys.readouterr().out == "stage one\nstage two\nafter\n"
    lines = log.read_text().splitlines()
    assert lines[0].startswith("==== ") and lines[1:] == ["stage one", "stage two"]


def test_unknown_config_keys_are_written_into_the_run_log(in_tmp):
    from recbole_hnlm.config import make_config
    from recbole_hnlm.run_logging import init_run_logger

    config = make_config("HNLMLightGCN", "ml-100k", config_dict={**FAST, "semantic_alpah": 0.5})
    log = init_run_logger(config, in_tmp / "run").read_text()
    assert "WARNING  1 unknown config key" in log and "did you mean 'semantic_alpha'?" in log
