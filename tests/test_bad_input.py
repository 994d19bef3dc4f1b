"""Bad input is caught before the first cell with one clear line and exit status 2; a plugin that
misbehaves costs its own cell only; the exit status is 0, 1 or 2 as documented."""

from __future__ import annotations

import textwrap

import pytest

from benchsuite.errors import ConfigError
from benchsuite.protocol import load_protocol
from benchsuite.records import read_records
from conftest import run_cli


def run(tmp_path, *extra, methods="random", plugins_dir=None):
    args = [] if plugins_dir is None else ["--plugins-dir", str(plugins_dir)]
    args += ["run", "--methods", methods, "--protocol", "smoke", "--eval", "epochs=1", "--results",
             str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache"), "--quiet", "--no-download", *extra]
    return run_cli(*args)


def no_work_done(tmp_path):
    return not (tmp_path / "results" / "records.jsonl").exists() and not (tmp_path / "results" / "artifacts").exists()


@pytest.mark.parametrize("extra, message", [
    (["--eval", "lr=nan"], "eval.lr: expected a finite number, got 'nan'"),
    (["--eval", "lr=-1"], "eval.lr must be a finite number > 0"),
    (["--eval", "weight_decay=inf"], "expected a finite number"),
    (["--eval", "epochs=2.5"], "eval.epochs: expected an integer"),
    (["--set", "dm.iterations=-5"], "dm.iterations must be >= 0, got -5"),
    (["--set", "dm.lr_img=nan"], "dm.lr_img: expected a finite number"),
    (["--archs", "timm:resnet19"], "unknown timm model 'resnet19'"),
    (["--ipc", "51"], "IPC 51 asks for more images per class than synthetic has (50"),
])
def test_bad_values_fail_before_any_distillation_with_status_2(tmp_path, capsys, extra, message):
    methods = "dm" if "dm." in " ".join(extra) else "random"
    assert run(tmp_path, *extra, methods=methods) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert "Traceback" not in err
    assert no_work_done(tmp_path)


def test_a_results_path_that_is_a_file_or_unwritable_is_status_2(tmp_path, capsys):
    (tmp_path / "results").write_text("I am a file")
    assert run(tmp_path) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert run_cli("run", "--methods", "random", "--protocol", "smoke", "--results", "/proc/benchsuite-results",
                   "--cache-dir", str(tmp_path / "cache"), "--quiet") == 2
    assert "results folder /proc/benchsuite-results is not writable" in capsys.readouterr().err


def test_a_cache_path_that_is_a_file_is_status_2(tmp_path, capsys):
    (tmp_path / "cache").write_text("I am a file")
    assert run(tmp_path) == 2
    assert "cache folder" in capsys.readouterr().err and no_work_done(tmp_path)


@pytest.mark.parametrize("line, words", [
    ('ipcs = "one"', ['ipcs = \'one\' is a string; expected a list of integers']),
    ('datasets = "synthetic"', ["datasets = 'synthetic' is a string; expected a list of strings"]),
    ("ipcs = [1, 2.5]", ["expected a list of integers"]),
    ("seeds = [true]", ["expected a list of integers"]),
    ("[eval]\nepochs = 2.5", ["eval.epochs = 2.5 is a number; expected an integer"]),
    ("[eval]\nepochs = true", ["eval.epochs = True is a boolean; expected an integer"]),
    ("[eval]\nlr = nan", ["eval.lr = nan must be a finite number"]),
    ('[eval]\nlr = "0.1"', ["eval.lr = '0.1' is a string; expected a number"]),
    ("train_limit_per_class = 0", ["train_limit_per_class must be >= 1"]),
])
def test_protocol_files_with_wrong_types_name_key_value_and_type(tmp_path, line, words):
    base = {"datasets": 'datasets = ["synthetic"]', "ipcs": "ipcs = [1]", "seeds": "seeds = [0]"}
    head = [v for k, v in base.items() if not line.startswith(k)]
    path = tmp_path / "p.toml"
    path.write_text("\n".join(head + [line]) + "\n" if not line.startswith("[") else "\n".join(head) + "\n" + line + "\n")
    with pytest.raises(ConfigError) as info:
        load_protocol(path)
    for w in words:
        assert w in str(info.value)


def test_integer_numbers_in_protocol_files_keep_the_hash(tmp_path):
    """``lr = 1`` is accepted as a number and hashed as written, as before."""
    path = tmp_path / "p.toml"
    path.write_text('datasets = ["synthetic"]\nipcs = [1]\n[eval]\nlr = 1\n')
    assert load_protocol(path).eval.lr == 1


def test_repeated_ipcs_and_seeds_run_once_with_a_note(tmp_path, capsys):
    args = ["run", "--methods", "random", "--protocol", "smoke", "--ipc", "1,1,2,1", "--seeds", "0,0",
            "--eval", "epochs=1", "--results", str(tmp_path / "r"), "--cache-dir", str(tmp_path / "c"),
            "--no-download"]
    assert run_cli(*args) == 0
    err = capsys.readouterr().err
    assert "note: --ipc repeats values; running each once: 1,2" in err
    assert "note: --seeds repeats values; running each once: 0" in err
    assert sorted(r.ipc for r in read_records(tmp_path / "r")) == [1, 2]


EXITING = textwrap.dedent('''
    from dataclasses import dataclass
    import sys
    import benchsuite

    @dataclass(frozen=True)
    class Cfg:
        pass

    class Quitter(benchsuite.Method):
        name = "quitter"
        Config = Cfg
        def distill(self, real, ipc, ctx):
            sys.exit(3)

    class Interrupted(benchsuite.Method):
        name = "interrupted"
        Config = Cfg
        def distill(self, real, ipc, ctx):
            raise KeyboardInterrupt

    @benchsuite.hookimpl
    def register_methods(register):
        register(Quitter)
        register(Interrupted)
''')


@pytest.fixture
def exiting(tmp_path):
    (tmp_path / "plug").mkdir()
    (tmp_path / "plug" / "exiting.py").write_text(EXITING)
    return tmp_path / "plug"


def test_a_plugin_calling_sys_exit_fails_its_cell_only(tmp_path, exiting, capsys):
    assert run(tmp_path, "--ipc", "1", methods="quitter,random", plugins_dir=exiting) == 1
    records = {r.method: r for r in read_records(tmp_path / "results")}
    assert records["random"].status == "ok"
    assert records["quitter"].status == "error" and records["quitter"].error.type == "SystemExit"
    assert "sys.exit(3)" in records["quitter"].error.message
    assert "failed: quitter" in capsys.readouterr().err


def test_ctrl_c_stops_the_sweep_and_keeps_finished_records(tmp_path, exiting, capsys):
    assert run(tmp_path, "--ipc", "1", methods="random,interrupted", plugins_dir=exiting) == 130
    assert [r.method for r in read_records(tmp_path / "results")] == ["random"]
    assert "interrupted; finished records are kept" in capsys.readouterr().err


def test_show_on_a_bad_file_is_one_line(tmp_path, capsys):
    for content in (b"", b"not a torch file", b"PK\x03\x04 truncated zip"):
        bad = tmp_path / "bad.pt"
        bad.write_bytes(content)
        assert run_cli("show", str(bad)) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("benchsuite: error: ") and "not a distilled set written by benchsuite" in err
        assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert run_cli("show", str(tmp_path)) == 2
    assert "not a distilled set" in capsys.readouterr().err


def test_exit_status_0_when_all_ok_and_for_a_finished_rerun(tmp_path):
    assert run(tmp_path, "--ipc", "1") == 0
    assert run(tmp_path, "--ipc", "1") == 0


def test_exit_status_2_for_usage_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        run_cli("run", "--methods", "random", "--no-such-flag")
    assert info.value.code == 2
    assert run(tmp_path, methods="herdng") == 2
    assert run_cli("report", "--results", str(tmp_path / "nothing")) == 2
