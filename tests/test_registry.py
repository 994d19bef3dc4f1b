import pytest

from benchsuite.errors import PluginError, UnknownNameError
from benchsuite.registry import Registry


def make():
    r = Registry("method")
    for name in ("dc", "dsa", "dm", "glad-dc", "glad-dm", "random"):
        r.register(name, object(), origin="test")
    return r


def test_unknown_name_suggests_close_match():
    with pytest.raises(UnknownNameError, match="Did you mean 'random'"):
        make().get("randon")


def test_match_all_globs_and_lists_keep_order_without_duplicates():
    r = make()
    assert r.match("all") == sorted(["dc", "dsa", "dm", "glad-dc", "glad-dm", "random"])
    assert r.match("glad-*") == ["glad-dc", "glad-dm"]
    assert r.match("dm,dc,dm") == ["dm", "dc"]
    with pytest.raises(UnknownNameError):
        r.match("nothing-*")


def test_duplicate_name_names_both_plugins():
    r = make()
    with pytest.raises(PluginError, match="registered twice: by 'test' and by 'other'"):
        r.register("DC", object(), origin="other")


def test_aliases_resolve_case_insensitively():
    r = Registry("dataset")
    r.register("fashionmnist", 1, "x", aliases=["fmnist"])
    assert r.canonical("FMNIST") == "fashionmnist"
    assert "Fashionmnist" in r
