"""The contract refuses what the evaluator cannot use: images that are not float32, labels that
are not int64 (hard) or float32 (soft), tensors on a device the cell does not run on (``meta``
above all, which holds no values), and labels on another device than their images. Such a set is
an error record naming the rule, and is never saved. Storage bytes count the tensors as stored."""

from __future__ import annotations

import textwrap

from plugin_text import PLUGIN_PRELUDE
from types import SimpleNamespace

import pytest
import torch

from benchsuite.api import SyntheticSet
from benchsuite.contract import check_synthetic_set
from benchsuite.errors import ContractError
from benchsuite.plugins import bundled_module, get_plugin_manager
from benchsuite.protocol import load_protocol
from benchsuite.records import read_records
from benchsuite.runner import RunOptions, Runner

SHAPE = (1, 2, 2)


def check(syn, **kw):
    args = dict(method="m", shape=SHAPE, num_classes=2, ipc=1) | kw
    check_synthetic_set(syn, **args)


def images(dtype=torch.float32, device="cpu"):
    return torch.zeros(2, *SHAPE, dtype=dtype, device=device)


HARD = torch.tensor([0, 1])
SOFT = torch.tensor([[0.9, 0.1], [0.2, 0.8]])


def test_a_float32_set_on_the_cpu_passes_with_or_without_the_cells_device():
    check(SyntheticSet(images(), HARD))
    check(SyntheticSet(images(), SOFT))
    # the CPU is always accepted, whatever the cell runs on: the evaluator moves the set there
    check(SyntheticSet(images(), HARD), device=torch.device("cpu"))
    check(SyntheticSet(images(), HARD), device=torch.device("cuda", 0))


def test_sparse_or_non_tensor_images_are_refused():
    syn = SyntheticSet(images(), HARD)
    syn.images = images().to_sparse()
    with pytest.raises(ContractError, match=r"contract rule 'dense tensors': images are a torch\.sparse_coo tensor"):
        check(syn)
    syn.images = images().numpy()
    with pytest.raises(ContractError, match="contract rule 'dense tensors': images are ndarray"):
        check(syn)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16, torch.uint8, torch.int64])
def test_images_of_any_dtype_but_float32_are_refused(dtype):
    with pytest.raises(ContractError, match=r"contract rule 'float32 images': images are torch\.\w+, the "
                                            r"evaluator trains in float32; return images\.float\(\)"):
        check(SyntheticSet(images(dtype), HARD))


def test_integer_images_are_told_to_normalise_not_only_to_cast():
    with pytest.raises(ContractError, match="normalise them with the dataset's mean and std"):
        check(SyntheticSet(images(torch.uint8), HARD))


@pytest.mark.parametrize("dtype", [torch.int32, torch.int16, torch.uint8, torch.bool])
def test_hard_labels_of_any_dtype_but_int64_are_refused(dtype):
    with pytest.raises(ContractError, match=r"contract rule 'int64 hard labels'.*return labels\.long\(\)"):
        check(SyntheticSet(images(), HARD.to(dtype)))


def test_float_hard_labels_are_refused_as_not_int64():
    with pytest.raises(ContractError, match=r"'int64 hard labels'.*got torch\.float32.*soft labels as a float32"):
        check(SyntheticSet(images(), torch.tensor([0.0, 1.0])))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16])
def test_soft_labels_of_any_dtype_but_float32_are_refused(dtype):
    with pytest.raises(ContractError, match=r"contract rule 'float32 soft labels'.*return labels\.float\(\)"):
        check(SyntheticSet(images(), SOFT.to(dtype)))


def test_non_finite_soft_labels_are_still_refused():
    with pytest.raises(ContractError, match="some soft labels are NaN or infinite"):
        check(SyntheticSet(images(), torch.tensor([[0.9, float("nan")], [0.2, 0.8]])))


@pytest.mark.parametrize("device", [None, torch.device("cpu")])
def test_a_meta_set_is_refused_by_a_rule_not_by_a_crash_inside_the_check(device):
    syn = SyntheticSet(images(device="meta"), HARD.to("meta"))
    with pytest.raises(ContractError, match=r"'images on the CPU or the cell's device': images are on meta.*"
                                            r"no values"):
        check(syn, device=device)


def test_a_meta_set_is_refused_even_if_the_cells_device_were_meta():
    with pytest.raises(ContractError, match="images are on meta"):
        check(SyntheticSet(images(device="meta"), HARD.to("meta")), device=torch.device("meta"))


def test_device_and_dtype_rules_come_before_any_rule_that_reads_values():
    # a meta set that also breaks the dtype, shape and count rules: the device rule is named
    syn = SyntheticSet(torch.empty(3, 2, 5, 5, dtype=torch.float64, device="meta"),
                       torch.empty(3, dtype=torch.int32, device="meta"))
    with pytest.raises(ContractError, match="images on the CPU or the cell's device"):
        check(syn)
    # NaN pixels in float64: the dtype is the rule named, not "finite images"
    with pytest.raises(ContractError, match="float32 images"):
        check(SyntheticSet(images(torch.float64).fill_(float("nan")), HARD))


@pytest.mark.parametrize("labels", [HARD, SOFT], ids=["hard", "soft"])
def test_labels_on_another_device_than_the_images_are_refused(labels):
    with pytest.raises(ContractError, match=r"'labels on the images' device': images are on cpu, labels on meta"):
        check(SyntheticSet(images(), labels.to("meta")))


def test_a_cuda_set_is_accepted_on_its_cells_device_and_refused_on_another():
    """The device rule on device objects alone, so it runs without a GPU."""
    from benchsuite.contract import _allowed_device

    cuda0, cuda1, cpu = torch.device("cuda", 0), torch.device("cuda", 1), torch.device("cpu")
    assert _allowed_device(cpu, cuda0) and _allowed_device(cpu, None) and _allowed_device(cpu, cpu)
    assert _allowed_device(cuda0, cuda0) and _allowed_device(cuda1, None)
    assert not _allowed_device(cuda1, cuda0)
    assert not _allowed_device(cuda0, cpu), "a CPU cell's set on a GPU is not on the cell's device"
    for other in ("meta", "mps", "xpu"):
        assert not _allowed_device(torch.device(other), None), other
    assert not _allowed_device(torch.device("meta"), torch.device("meta"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_cuda_set_passes_on_a_cuda_cell_and_is_refused_on_a_cpu_cell():
    syn = SyntheticSet(images(device="cuda"), HARD.to("cuda"))
    check(syn, device=torch.device("cuda"))
    check(syn)
    with pytest.raises(ContractError, match=r"images are on cuda:0, the set must be on the CPU \(the cell's device\)"):
        check(syn, device=torch.device("cpu"))


@pytest.mark.parametrize("size", [None, 0, -4, 1.5, float("nan"), True, "64"])
def test_storage_bytes_must_be_a_positive_integer(size):
    syn = SyntheticSet(images(), HARD)
    syn.storage_bytes = size
    with pytest.raises(ContractError, match="contract rule 'storage_bytes'"):
        check(syn)


@pytest.mark.parametrize("dtype, size", [(torch.float16, 2), (torch.bfloat16, 2), (torch.float32, 4),
                                         (torch.float64, 8), (torch.uint8, 1)])
def test_default_storage_bytes_count_the_images_as_stored(dtype, size):
    assert SyntheticSet(images(dtype), HARD).storage_bytes == 2 * 4 * size


def test_default_storage_bytes_count_soft_labels_and_not_hard_labels():
    pixels = 2 * 4 * 4
    assert SyntheticSet(images(), HARD).storage_bytes == pixels
    assert SyntheticSet(images(), SOFT).storage_bytes == pixels + 2 * 2 * 4
    assert SyntheticSet(images(torch.float16), SOFT.half()).storage_bytes == pixels // 2 + 2 * 2 * 2


def test_parameterised_methods_count_their_parameters_as_stored():
    memory = bundled_module("hmn.memory")
    layout = memory.MemoryLayout(4, 2, 1, 4, 1, 12)
    hmn = memory.HierarchicalMemory(layout, 10, 2, (3, 32, 32), torch.Generator().manual_seed(0))
    assert hmn.storage_bytes() == 4 * hmn.storage_floats()
    assert hmn.half().storage_bytes() == 2 * hmn.storage_floats()
    latents = bundled_module("glad.latents")
    ws, f = torch.zeros(3, 4, 8), torch.zeros(3, 2, 4, 4)
    lat = latents.LatentSet(SimpleNamespace(num_layers=2), 0, ws, f)
    assert lat.storage_bytes() == 4 * lat.storage_floats()
    assert latents.LatentSet(SimpleNamespace(num_layers=2), 0, ws.double(), f.double()).storage_bytes() == \
        8 * lat.storage_floats()


# -- end to end: a sweep turns each such set into an error record and saves none of them ---------

TYPE_METHODS = PLUGIN_PRELUDE + textwrap.dedent('''

    class Float64(Base):
        name = "float64-images"
        def distill(self, real, ipc, ctx):
            x, y = per_class(real, ipc)
            return benchsuite.SyntheticSet(x.double(), y)

    class Float16(Base):
        name = "float16-images"
        def distill(self, real, ipc, ctx):
            x, y = per_class(real, ipc)
            return benchsuite.SyntheticSet(x.half(), y)

    class Uint8(Base):
        name = "uint8-images"
        def distill(self, real, ipc, ctx):
            x, y = per_class(real, ipc)
            return benchsuite.SyntheticSet((x.clamp(0, 1) * 255).to(torch.uint8), y)

    class Meta(Base):
        name = "meta-set"
        def distill(self, real, ipc, ctx):
            x, y = per_class(real, ipc)
            return benchsuite.SyntheticSet(x.to("meta"), y.to("meta"))

    class MetaLabels(Base):
        name = "meta-labels"
        def distill(self, real, ipc, ctx):
            x, y = per_class(real, ipc)
            return benchsuite.SyntheticSet(x, y.to("meta"))

    class Int32(Base):
        name = "int32-labels"
        def distill(self, real, ipc, ctx):
            x, y = per_class(real, ipc)
            return benchsuite.SyntheticSet(x, y.int())

    class Float64Soft(Base):
        name = "float64-soft"
        def distill(self, real, ipc, ctx):
            x, y = per_class(real, ipc)
            return benchsuite.SyntheticSet(x, torch.nn.functional.one_hot(y, real.num_classes).double())

    class Typed(Base):
        name = "typed"
        def distill(self, real, ipc, ctx):
            return benchsuite.SyntheticSet(*per_class(real, ipc))

    @benchsuite.hookimpl
    def register_methods(register):
        for cls in (Float64, Float16, Uint8, Meta, MetaLabels, Int32, Float64Soft, Typed):
            register(cls)
''')

TYPE_RULES = {"float64-images": "float32 images", "float16-images": "float32 images",
              "uint8-images": "float32 images", "meta-set": "images on the CPU or the cell's device",
              "meta-labels": "labels on the images' device", "int32-labels": "int64 hard labels",
              "float64-soft": "float32 soft labels"}


def test_a_sweep_turns_sets_of_the_wrong_type_or_device_into_error_records_and_saves_none(tmp_path):
    folder = tmp_path / "plug"
    folder.mkdir()
    (folder / "type_methods.py").write_text(TYPE_METHODS)
    plugins = get_plugin_manager([folder], entry_points=False)
    protocol = load_protocol("smoke").with_overrides(ipcs=[1], eval={"epochs": 1})
    options = RunOptions(results_dir=tmp_path / "results", cache_dir=tmp_path / "cache", quiet=True,
                         allow_download=False, device="cpu")
    summary = Runner(plugins, protocol, options).run([*TYPE_RULES, "typed"])
    assert summary.error_records == len(TYPE_RULES) and summary.ok_records == 1, summary.errors
    records = {r.method: r for r in read_records(tmp_path / "results")}
    for method, rule in TYPE_RULES.items():
        record = records[method]
        assert record.status == "error", method
        assert record.error.type == "ContractError", (method, record.error.type, record.error.message)
        assert f"contract rule '{rule}'" in record.error.message, record.error.message
    assert records["typed"].status == "ok"
    saved = {p.parent.name for p in (tmp_path / "results" / "artifacts").rglob("*") if p.is_file()}
    assert saved == {"typed"}, "a set that breaks the contract is never saved"
