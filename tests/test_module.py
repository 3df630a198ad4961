"""Module, Parameter and the containers: registration, walking the tree, state_dict order and
loading (checked against torch.nn with the same structure), hooks, modes, dtypes, repr."""
import copy

import numpy as np
import pytest
import torch

import tinyvision as tv
import tinyvision.nn as nn


class Block(nn.Module):
    """Own parameter + persistent and non-persistent buffers + children: the key-order cases."""

    def __init__(self, lib):
        super().__init__()
        self.scale = lib.Parameter(_ones(lib, 3))
        self.register_buffer("count", _ones(lib, 1))
        self.register_buffer("cache", _ones(lib, 2), persistent=False)
        self.body = lib.Sequential(lib.Linear(3, 4), lib.BatchNorm1d(4), lib.ReLU())
        self.head = lib.ModuleDict({"cls": lib.Linear(4, 2)})
        self.extra = lib.ModuleList([lib.Identity(), lib.Linear(2, 2, bias=False)])


class TorchBlock(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(3))
        self.register_buffer("count", torch.ones(1))
        self.register_buffer("cache", torch.ones(2), persistent=False)
        self.body = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.ReLU())
        self.head = torch.nn.ModuleDict({"cls": torch.nn.Linear(4, 2)})
        self.extra = torch.nn.ModuleList([torch.nn.Identity(), torch.nn.Linear(2, 2, bias=False)])


def _ones(lib, n):
    return tv.ones(n) if lib is nn else torch.ones(n)


def shapes(sd):
    return [(k, tuple(v.shape)) for k, v in sd.items()]


def test_state_dict_keys_order_and_shapes_match_torch():
    ours, theirs = Block(nn), TorchBlock()
    assert shapes(ours.state_dict()) == shapes(theirs.state_dict())
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()]
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    assert [n for n, _ in ours.named_children()] == [n for n, _ in theirs.named_children()]
    assert "cache" not in ours.state_dict() and "count" in ours.state_dict()
    assert ours.state_dict()["body.1.num_batches_tracked"].dtype == np.int64


def test_parameter_requires_grad_and_registration():
    p = nn.Parameter(tv.zeros(2, 3))
    assert p.requires_grad and isinstance(p, tv.Tensor)
    assert not nn.Parameter(tv.zeros(2), requires_grad=False).requires_grad
    m = nn.Linear(3, 2)
    assert set(dict(m.named_parameters())) == {"weight", "bias"}
    with pytest.raises(TypeError, match="weight"):
        m.weight = tv.zeros(2, 3)  # a plain Tensor cannot replace a Parameter
    m.bias = None
    assert [n for n, _ in m.named_parameters()] == ["weight"] and "bias" not in m.state_dict()

    class Early(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(tv.zeros(1))

    with pytest.raises(AttributeError, match="before Module.__init__"):
        Early()


def test_replacing_an_entry_keeps_its_place_like_torch():
    """Re-assigning a parameter, buffer or child (also after setting it to None) keeps its key
    where it was; deleting it and assigning again puts it last."""
    def edit(lib, tensors, m):
        m.weight = lib.Parameter(m.weight.detach() * 2)
        m.register_buffer("a", None)
        m.register_buffer("b", tensors.ones(1))
        m.register_buffer("a", tensors.zeros(1))
        m.bias = None
        m.bias = lib.Parameter(tensors.zeros(3))
        m.add_module("c", lib.Linear(1, 1))
        m.add_module("d", lib.Identity())
        m.c = lib.ReLU()
        del m.weight
        m.weight = lib.Parameter(tensors.zeros(3, 2))
        return list(m.state_dict()), [n for n, _ in m.named_children()]

    ours, theirs = edit(nn, tv, nn.Linear(2, 3)), edit(torch.nn, torch, torch.nn.Linear(2, 3))
    assert ours == theirs == (["bias", "weight", "a", "b"], ["c", "d"])


def test_shared_parameter_listed_once_and_deepcopy_is_independent():
    lin = nn.Linear(2, 2)
    seq = nn.Sequential(lin, lin)
    assert len(list(seq.parameters())) == 2
    clone = copy.deepcopy(seq)
    clone[0].weight.data[...] = 7
    assert not np.any(lin.weight.data == 7)
    assert clone[1].weight is clone[0].weight  # sharing survives the copy


def test_load_state_dict_accepts_torch_numpy_and_tensors():
    theirs = TorchBlock()
    with torch.no_grad():
        for p in theirs.parameters():
            p.uniform_(-1, 1)
    ours = Block(nn)
    ours.load_state_dict(theirs.state_dict())
    for k, v in theirs.state_dict().items():
        np.testing.assert_array_equal(ours.state_dict()[k].numpy(), v.numpy())
    as_numpy = {k: v.numpy() * 2 for k, v in theirs.state_dict().items()}
    ours.load_state_dict(as_numpy)
    np.testing.assert_array_equal(ours.body[0].weight.data, as_numpy["body.0.weight"])
    as_tensors = {k: tv.tensor(v.numpy().astype(np.float64)) for k, v in theirs.state_dict().items()}
    ours.load_state_dict(as_tensors)  # float64 values are cast to the parameters' float32
    assert ours.body[0].weight.dtype == np.float32


def test_load_state_dict_reports_every_problem_at_once_and_copies_nothing():
    ours = Block(nn)
    before = ours.body[0].weight.data.copy()
    sd = {k: v.numpy() + 1 for k, v in ours.state_dict().items()}
    del sd["scale"], sd["head.cls.bias"]
    sd["body.0.weight"] = np.zeros((5, 3), np.float32)
    sd["extra.1.weight"] = np.zeros((1, 1), np.float32)
    sd["stray"] = np.zeros(1)
    sd["body.9.weight"] = np.zeros(1)
    with pytest.raises(RuntimeError) as info:
        ours.load_state_dict(sd)
    msg = str(info.value)
    for needle in ['"scale"', '"head.cls.bias"', '"stray"', '"body.9.weight"',
                   "size mismatch for body.0.weight", "(5, 3)", "(4, 3)", "size mismatch for extra.1.weight"]:
        assert needle in msg, needle
    np.testing.assert_array_equal(ours.body[0].weight.data, before)
    # strict=False: missing/unexpected are returned, but a shape mismatch is still an error (as torch)
    with pytest.raises(RuntimeError, match="size mismatch"):
        ours.load_state_dict(sd, strict=False)
    del sd["body.0.weight"], sd["extra.1.weight"]
    missing, unexpected = ours.load_state_dict(sd, strict=False)
    assert missing == ["scale", "body.0.weight", "head.cls.bias", "extra.1.weight"]
    assert unexpected == ["stray", "body.9.weight"]
    # torch agrees on both lists
    t_missing, t_unexpected = TorchBlock().load_state_dict({k: torch.tensor(v) for k, v in sd.items()}, strict=False)
    assert (missing, unexpected) == (t_missing, t_unexpected)


def test_batchnorm_checkpoint_without_num_batches_tracked_loads():
    bn = nn.BatchNorm2d(3)
    sd = {k: v.numpy() for k, v in bn.state_dict().items() if k != "num_batches_tracked"}
    assert bn.load_state_dict(sd) == ([], [])


def test_hooks_run_modify_and_remove():
    m = nn.Linear(3, 3)
    seen = []
    pre = m.register_forward_pre_hook(lambda mod, args: (args[0] * 2,))
    post = m.register_forward_hook(lambda mod, args, out: seen.append((args[0].numpy().copy(), out)) or out + 1)
    x = tv.ones(1, 3)
    y = m(x)
    expected = tv.nn.functional.linear(x * 2, m.weight, m.bias) + 1
    np.testing.assert_allclose(y.detach().numpy(), expected.detach().numpy())
    np.testing.assert_array_equal(seen[0][0], 2 * np.ones((1, 3)))
    pre.remove()
    post.remove()
    np.testing.assert_allclose(m(x).detach().numpy(), tv.nn.functional.linear(x, m.weight, m.bias).detach().numpy())
    assert len(seen) == 1
    with m.register_forward_hook(lambda *a: seen.append(1)):
        m(x)
    m(x)
    assert len(seen) == 2


def test_train_eval_propagate():
    m = Block(nn)
    assert all(mod.training for mod in m.modules())
    assert m.eval() is m and not any(mod.training for mod in m.modules())
    m.body.train()
    assert m.body[1].training and not m.training


def test_to_float64_keeps_parameter_objects_and_int_buffers():
    m = Block(nn)
    w = m.body[0].weight
    m.body(tv.ones(2, 3)).sum().backward()
    assert m.double() is m
    assert m.body[0].weight is w and w.dtype == np.float64 and w.grad.dtype == np.float64
    assert m.body[1].running_mean.dtype == np.float64
    assert m.body[1].num_batches_tracked.dtype == np.int64
    assert m.body(tv.ones(2, 3, dtype=np.float64)).dtype == np.float64
    m.to(np.float32)
    assert all(p.dtype == np.float32 for p in m.parameters())
    with pytest.raises(TypeError, match="floating"):
        m.to(np.int32)
    with pytest.raises(ValueError, match="device"):
        m.to("tpu")


def test_zero_grad_and_requires_grad_():
    m = nn.Linear(3, 2)
    m(tv.ones(4, 3)).sum().backward()
    m.zero_grad(set_to_none=False)
    assert np.all(m.weight.grad.numpy() == 0)
    m.zero_grad()
    assert m.weight.grad is None
    m.requires_grad_(False)
    assert not any(p.requires_grad for p in m.parameters())


def test_apply_visits_children_first_like_torch():
    ours, theirs = [], []
    Block(nn).apply(lambda mod: ours.append(type(mod).__name__))
    TorchBlock().apply(lambda mod: theirs.append(type(mod).__name__))
    assert ours[:-1] == theirs[:-1] and ours[-1] == "Block"


def test_containers_behave_like_torch():
    seq = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    assert len(seq) == 3 and isinstance(seq[-1], nn.Linear) and len(seq[1:]) == 2
    assert [n for n, _ in seq[1:].named_children()] == ["1", "2"]  # slices keep their names, as torch
    del seq[1]
    assert [n for n, _ in seq.named_children()] == ["0", "1"]
    with pytest.raises(IndexError, match="out of range"):
        seq[5]
    ml = nn.ModuleList([nn.ReLU()])
    ml.append(nn.Tanh())
    ml.insert(0, nn.Sigmoid())
    ml += [nn.Identity()]
    assert [type(m).__name__ for m in ml] == ["Sigmoid", "ReLU", "Tanh", "Identity"]
    md = nn.ModuleDict([("a", nn.Linear(1, 1))])
    md["b"] = nn.Linear(1, 2)
    assert list(md.keys()) == ["a", "b"] and "b" in md and len(md) == 2
    assert list(md.state_dict()) == ["a.weight", "a.bias", "b.weight", "b.bias"]
    assert seq.get_submodule("1") is seq[1]


def _stack(lib):
    return lib.Sequential(
        lib.Conv2d(3, 8, 3, padding=1, bias=False), lib.BatchNorm2d(8), lib.ReLU(inplace=True),
        lib.MaxPool2d(2), lib.AvgPool2d(2), lib.AdaptiveAvgPool2d((1, 1)), lib.Flatten(),
        lib.Linear(8, 10), lib.Dropout(0.1), lib.GELU(), lib.LayerNorm(10), lib.Softmax(dim=-1),
        lib.Sequential(lib.Identity(), lib.Tanh()),
        lib.MultiheadAttention(8, 2),
    )


def _more_layers(lib):
    return lib.ModuleList([
        lib.ConvTranspose2d(4, 2, 3, stride=2, output_padding=1, groups=2), lib.Conv2d(2, 2, 4, padding="same"),
        lib.Conv2d(2, 4, 3, dilation=2, groups=2), lib.Conv2d(2, 2, 3, padding=1, padding_mode="circular"),
        lib.AdaptiveMaxPool2d(3), lib.MaxPool2d(3, ceil_mode=True),
        lib.BatchNorm1d(3, momentum=None, affine=False), lib.GroupNorm(2, 4), lib.LocalResponseNorm(5),
        lib.Embedding(10, 3, padding_idx=0), lib.Upsample(scale_factor=2), lib.Upsample(size=(4, 5), mode="bilinear"), lib.Upsample(scale_factor=(2, 3)),
        lib.SiLU(), lib.Sigmoid(), lib.GELU("tanh"), lib.LayerNorm((2, 3), elementwise_affine=False),
    ])


@pytest.mark.parametrize("make", [_stack, _more_layers])
def test_repr_matches_torch(make):
    theirs = repr(make(torch.nn)).replace("NonDynamicallyQuantizableLinear", "Linear")
    assert repr(make(nn)) == theirs


def test_parameter_repr():
    assert repr(nn.Parameter(tv.zeros(1))).startswith("Parameter containing:\ntensor(")


def test_every_import_path_of_module_parameter_and_containers():
    """The split (nn/module.py, nn/parameter.py, nn/container.py) keeps the old paths: each
    name is one class, whichever way it is imported."""
    import tinyvision.nn.container as container
    import tinyvision.nn.module as module
    import tinyvision.nn.parameter as parameter

    assert nn.Module is module.Module and nn.Identity is module.Identity
    assert nn.Parameter is parameter.Parameter is module.Parameter
    assert module.empty_parameter is parameter.empty_parameter
    from tinyvision.autograd.function import RemovableHandle  # one handle for Tensor and Module hooks

    assert nn.RemovableHandle is module.RemovableHandle is RemovableHandle
    assert type(nn.Identity().register_forward_hook(lambda *a: None)) is type(tv.zeros(1, requires_grad=True).register_hook(print))
    for name in ("Sequential", "ModuleList", "ModuleDict"):
        assert getattr(nn, name) is getattr(container, name) is getattr(module, name)
    from tinyvision.nn.module import ModuleList, Sequential  # noqa: F401  (the pre-split path)
    with pytest.raises(AttributeError, match="has no attribute 'Nothing'"):
        module.Nothing
