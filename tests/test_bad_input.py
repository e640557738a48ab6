"""Bad input under mpirun: every rank stops before any step, exit status 2, one line naming the fix."""

import pytest
from mpirun import mpirun

CASES = [
    (["--backups", "-1"], "backups must be an integer >= 0"),
    (["--backups", "3"], "use --backups 0..2"),
    (["--mode", "fast"], "unknown mode 'fast'"),
    (["--model", "vgg"], "unknown model 'vgg'"),
    (["--dataset", "mnist"], "use --dataset digits"),
    (["--optimizer", "lion"], "unknown optimizer 'lion'"),
    (["--straggler", "gamma:k=2"], "unknown straggler kind 'gamma'"),
    (["--straggler", "slow:ranks=5,delay=0.1"], "straggler rank 5 is outside the world of 3"),
    (["--config", "no/such.toml"], "not found"),
    (["--config", "{bad}"], "not valid TOML"),
    (["--config", "{unknown}"], "unknown key 'learning_rate'"),
]


@pytest.mark.parametrize("args,message", CASES, ids=[" ".join(a) for a, _ in CASES])
def test_bad_input_exits_2_on_every_rank_with_one_line(tmp_path, args, message):
    (tmp_path / "bad.toml").write_text("mode = \n")
    (tmp_path / "unknown.toml").write_text("learning_rate = 0.1\n")
    args = [a.format(bad=tmp_path / "bad.toml", unknown=tmp_path / "unknown.toml") for a in args]
    result = mpirun(3, ["-m", "backupsgd", "train", "--out", str(tmp_path / "run"), *args], timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [l for l in result.stderr.splitlines() if l.startswith("backupsgd: error:")]
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run" / "steps.jsonl").exists(), "no step may run on bad input"


def test_out_dir_of_a_finished_run_is_refused_but_one_that_never_stepped_is_reused(tmp_path):
    from backupsgd.errors import ConfigError
    from backupsgd.rundir import choose_run_dir

    never = tmp_path / "never"
    never.mkdir()
    (never / "steps.jsonl").write_text("")  # stopped before its first step
    assert choose_run_dir(str(never), "label") == never
    stepped = tmp_path / "stepped"
    stepped.mkdir()
    (stepped / "steps.jsonl").write_text('{"step": 0}\n')
    with pytest.raises(ConfigError, match="already holds a run; pass a new --out DIR"):
        choose_run_dir(str(stepped), "label")
