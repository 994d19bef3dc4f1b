"""``--set`` overrides: flat names and dotted paths into nested Config groups, checked by one validator."""

import json
import textwrap

import pytest
from conftest import run_cli

from benchsuite.api import apply_overrides, check_override_names, config_value, non_finite_fields
from benchsuite.errors import ConfigError

NESTED_PLUGIN = textwrap.dedent('''
    from dataclasses import dataclass, field
    import torch
    import benchsuite
    from benchsuite.errors import ConfigError

    @dataclass(frozen=True)
    class Match:
        lr_img: float = 1.0
        steps: int = 2

        def __post_init__(self):
            if self.steps < 1:
                raise ConfigError(f"nested.match.steps must be >= 1, got {self.steps}")

    @dataclass(frozen=True)
    class Cfg:
        scale: float = 1.0
        match: Match = field(default_factory=Match)

    class Nested(benchsuite.Method):
        name = "nested"
        Config = Cfg
        def distill(self, real, ipc, ctx):
            imgs, labels = [], []
            for c, idx in enumerate(real.class_indices()):
                mean = real.images[idx].mean(0, keepdim=True) * self.config.scale * self.config.match.lr_img
                imgs.append(mean.repeat(ipc, 1, 1, 1))
                labels.append(torch.full((ipc,), c))
            return benchsuite.SyntheticSet(torch.cat(imgs), torch.cat(labels))

    @benchsuite.hookimpl
    def register_methods(register):
        register(Nested)
''')


@pytest.fixture
def nested(tmp_path):
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "nested.py").write_text(NESTED_PLUGIN)
    from benchsuite.plugins import get_plugin_manager

    return folder, get_plugin_manager([folder], entry_points=False).methods.get("nested")


def test_dotted_paths_reach_nested_fields_and_rebuild_the_group(nested, smoke):
    _, cls = nested
    cfg = cls.resolve_config("synthetic", 1, smoke, {"scale": 2.0, "match.lr_img": 0.5})
    assert (cfg.scale, cfg.match.lr_img, cfg.match.steps) == (2.0, 0.5, 2)
    assert config_value(cfg, "match.lr_img") == 0.5
    # the nested group's own checks run on the new value
    with pytest.raises(ConfigError, match="nested.match.steps must be >= 1"):
        cls.resolve_config("synthetic", 1, smoke, {"match.steps": 0})


def test_unknown_paths_name_the_level_and_its_fields(nested, smoke):
    _, cls = nested
    cfg = cls.Config()
    with pytest.raises(ConfigError, match=r"no hyperparameter 'match\.lr'; known in 'match': \['lr_img', 'steps'\]"):
        check_override_names("nested", cfg, {"match.lr": 1.0})
    with pytest.raises(ConfigError, match=r"'scale' is a value, not a group.*--set nested\.scale=VALUE"):
        check_override_names("nested", cfg, {"scale.x": 1.0})
    with pytest.raises(ConfigError, match=r"no hyperparameter 'mtach\.steps'; known: \['match', 'scale'\]"):
        check_override_names("nested", cfg, {"mtach.steps": 1})


def test_non_finite_values_are_found_at_any_depth(nested, smoke):
    _, cls = nested
    assert non_finite_fields(apply_overrides(cls.Config(), {"match.lr_img": float("nan")})) == ["match.lr_img"]
    with pytest.raises(ConfigError, match=r"\['match\.lr_img'\] must be finite"):
        cls.resolve_config("synthetic", 1, smoke, {"match.lr_img": float("inf")})


def test_the_cli_types_dotted_values_and_records_the_nested_config(nested, tmp_path):
    folder, _ = nested
    out = tmp_path / "results"
    rc = run_cli("--plugins-dir", str(folder), "run", "--methods", "nested", "--protocol", "smoke",
                 "--datasets", "synthetic", "--ipc", "1", "--seeds", "0", "--results", str(out), "--quiet",
                 "--set", "nested.match.lr_img=0.25", "--set", "nested.match.steps=3")
    assert rc == 0
    record = json.loads((out / "records.jsonl").read_text().splitlines()[0])
    assert record["method_config"]["match"] == {"lr_img": 0.25, "steps": 3}
    assert run_cli("--plugins-dir", str(folder), "run", "--methods", "nested", "--protocol", "smoke",
                   "--datasets", "synthetic", "--results", str(out), "--quiet",
                   "--set", "nested.match.lr_img=fast") == 2
