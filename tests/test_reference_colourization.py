"""The reference colourization solution: layers, networks, data handling, training, course weights."""
from __future__ import annotations

import ast
import importlib.util
import inspect
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from reference.a2 import colour_regression as R
from reference.a2 import colourization as C
from reference.a2 import data

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
COURSE = SHARED / "a2-course"


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """One intra-op thread: on a busy 2-core machine, 2 threads made training ~10x slower."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def shared_file(*parts) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"course data not found: {path} (only present on the course's machines)")
    return path


# ----------------------------------------------------------------------------------------------
# The file stands alone, as the grader's worker loads it
# ----------------------------------------------------------------------------------------------

ALLOWED_TOP_IMPORTS = {"math", "os", "time", "numpy", "torch", "torch.nn", "torch.nn.functional"}


@pytest.mark.parametrize("name", ["colourization.py", "colour_regression.py", "min_char_rnn.py"])
def test_top_level_is_imports_defs_and_simple_assignments(name):
    tree = ast.parse((REPO / "reference" / "a2" / name).read_text())
    for node in tree.body:
        if isinstance(node, ast.Import):
            assert {a.name for a in node.names} <= ALLOWED_TOP_IMPORTS, ast.dump(node)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0 and node.module in ALLOWED_TOP_IMPORTS, ast.dump(node)
        else:
            assert isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.Assign, ast.Expr)), \
                f"{name}:{node.lineno}: top-level {type(node).__name__}"
            if isinstance(node, ast.Expr):           # only the module docstring
                assert isinstance(node.value, ast.Constant), f"{name}:{node.lineno}"


def _load_standalone(path: Path, tmp_path: Path):
    """Load a file the way the worker does: from its path, under a new name, no package around it."""
    copy = tmp_path / path.name
    copy.write_text(path.read_text())
    spec = importlib.util.spec_from_file_location("submission_" + path.stem, copy)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_loads_standalone_and_builds_models(tmp_path):
    mod = _load_standalone(REPO / "reference" / "a2" / "colourization.py", tmp_path)
    out = mod.UNet(3, 8, 24)(torch.rand(2, 1, 32, 32))
    assert out.shape == (2, 24, 32, 32)
    assert mod.DilatedUNet is mod.DUNet and issubclass(mod.DUNet, mod.UNet)


# ----------------------------------------------------------------------------------------------
# MyConv2d and MyDilatedConv2d
# ----------------------------------------------------------------------------------------------

def _forward_backward(layer, x, upstream):
    x = x.clone().requires_grad_(True)
    out = layer(x)
    out.backward(upstream)
    return out.detach(), x.grad, layer.weight.grad, layer.bias.grad


@pytest.mark.parametrize("cin,cout,k,size", [(1, 4, 3, 8), (3, 5, 5, 11), (6, 2, 1, 7), (4, 4, 3, 32)])
def test_myconv2d_equals_nn_conv2d(cin, cout, k, size):
    torch.manual_seed(cin * 100 + k)
    mine = C.MyConv2d(cin, cout, k)
    ref = nn.Conv2d(cin, cout, k, padding=k // 2)
    with torch.no_grad():
        ref.weight.copy_(mine.weight)
        ref.bias.copy_(mine.bias)
    x = torch.randn(2, cin, size, size)
    up = torch.randn(2, cout, size, size)
    for a, b in zip(_forward_backward(mine, x, up), _forward_backward(ref, x, up)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_myconv2d_parameters_follow_the_starter():
    layer = C.MyConv2d(3, 7, 5)
    assert layer.padding == 2 and C.MyConv2d(3, 7, 5, padding=0).padding == 0
    assert layer.weight.shape == (7, 3, 5, 5) and layer.bias.shape == (7,)
    bound = 1 / np.sqrt(3 * 25)
    assert layer.weight.abs().max() <= bound and layer.bias.abs().max() <= bound
    # weight is drawn before bias, uniform in ±bound: the same seed gives a starter layer's values
    torch.manual_seed(0)
    layer = C.MyConv2d(3, 7, 5)
    torch.manual_seed(0)
    w = torch.empty(7, 3, 5, 5).uniform_(-bound, bound)
    b = torch.empty(7).uniform_(-bound, bound)
    torch.testing.assert_close(layer.weight.data, w)
    torch.testing.assert_close(layer.bias.data, b)


@pytest.mark.parametrize("cin,cout,k,gaps,size", [(2, 3, 3, 1, 32), (4, 2, 3, 2, 17), (3, 3, 5, 1, 16)])
def test_dilated_conv_equals_torch_dilation(cin, cout, k, gaps, size):
    torch.manual_seed(7)
    # float64: the two convolutions sum the weight gradient in different orders, and float32's
    # rounding of a 2x16x16 sum (~1e-5) is not what this test is about
    layer = C.MyDilatedConv2d(cin, cout, k, dilation=gaps).double()
    x = torch.randn(2, cin, size, size, dtype=torch.float64, requires_grad=True)
    out = layer(x)
    assert out.shape == (2, cout, size, size)                 # "same" size, 32x32 stays 32x32
    x2 = x.detach().clone().requires_grad_(True)
    w2 = layer.weight.detach().clone().requires_grad_(True)
    b2 = layer.bias.detach().clone().requires_grad_(True)
    torch_d = gaps + 1                                         # handout "dilation 1" = torch's 2
    ref = F.conv2d(x2, w2, b2, padding=torch_d * (k // 2), dilation=torch_d)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    up = torch.randn_like(out)
    out.backward(up)
    ref.backward(up)
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0
    torch.testing.assert_close(layer.weight.grad, w2.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(layer.bias.grad, b2.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(x.grad, x2.grad, rtol=1e-5, atol=1e-5)


def test_dilated_conv_keeps_weight_shape_and_passes_no_dilation_argument():
    layer = C.MyDilatedConv2d(64, 64, 3, dilation=1)
    assert layer.weight.shape == (64, 64, 3, 3)
    tree = ast.parse(inspect.getsource(C.MyDilatedConv2d).lstrip())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            assert "dilation" not in {kw.arg for kw in node.keywords if kw.arg}, ast.dump(node)
            name = ast.unparse(node.func)
            if name.endswith("conv2d"):
                assert len(node.args) <= 4, "a positional dilation argument to conv2d"


# ----------------------------------------------------------------------------------------------
# The networks
# ----------------------------------------------------------------------------------------------

SHAPE_CASES = [(m, nc, nf, cin) for m in ("CNN", "UNet") for nc in (16, 24, 32) for nf in (16, 32)
               for cin in (1, 3)] + [("DUNet", nc, nf, 1) for nc in (16, 24, 32) for nf in (16, 32)]


@pytest.mark.parametrize("model,nc,nf,cin", SHAPE_CASES)
def test_network_output_and_activation_shapes(model, nc, nf, cin):
    torch.manual_seed(0)
    net = C.build_model(model, 3, nf, nc, cin)
    out = net(torch.rand(2, cin, 32, 32))
    assert out.shape == (2, nc, 32, 32)
    assert net.out1.shape == (2, nf, 16, 16) and net.out2.shape == (2, 2 * nf, 8, 8)
    assert net.out3.shape == (2, 2 * nf, 8, 8) and net.out4.shape == (2, nf, 16, 16)
    assert net.out5.shape == (2, nc, 32, 32) and net.out_final is out


def _course_keys():
    """State-dict keys of the course checkpoints (2018 order: conv, pool/upsample, BN, ReLU)."""
    keys = []
    for name in ("downconv1", "downconv2", "upconv1", "upconv2"):
        keys += [f"{name}.0.weight", f"{name}.0.bias"] + [
            f"{name}.2.{p}" for p in ("weight", "bias", "running_mean", "running_var")]
    keys += ["rfconv.0.weight", "rfconv.0.bias"] + [
        f"rfconv.1.{p}" for p in ("weight", "bias", "running_mean", "running_var")]
    return set(keys + ["finalconv.weight", "finalconv.bias"])


@pytest.mark.parametrize("model", ["CNN", "UNet", "DUNet"])
def test_state_dict_layout_is_the_course_layout(model):
    net = C.build_model(model, 3, 32, 24)
    keys = {k for k in net.state_dict() if not k.endswith("num_batches_tracked")}
    assert keys == _course_keys()
    sd = net.state_dict()
    skip = model != "CNN"
    assert sd["upconv1.0.weight"].shape == (32, 128 if skip else 64, 3, 3)
    assert sd["upconv2.0.weight"].shape == (24, 64 if skip else 32, 3, 3)
    assert sd["finalconv.weight"].shape == (24, 25 if skip else 24, 3, 3)


def test_dunet_is_a_unet_with_a_dilated_middle():
    net = C.DilatedUNet(3, 8, 24)
    assert isinstance(net, C.UNet) and isinstance(net.rfconv[0], C.MyDilatedConv2d)
    assert net.rfconv[0].dilation == 1


# ----------------------------------------------------------------------------------------------
# Data handling
# ----------------------------------------------------------------------------------------------

def _toy_cifar(n=30, seed=0):
    rng = np.random.RandomState(seed)
    xs = rng.randint(0, 256, (n, 3, 32, 32)).astype(np.uint8)
    ys = rng.randint(0, 10, (n, 1))
    ys[:12] = 7
    return xs, ys


def test_process_keeps_horses_scales_shuffles_and_greys():
    xs, ys = _toy_cifar()
    np.random.seed(3)
    rgb, grey = C.process(xs, ys)
    horses = xs[ys[:, 0] == 7] / 256.0
    assert rgb.shape == (len(horses), 3, 32, 32) and grey.shape == (len(horses), 1, 32, 32)
    assert rgb.max() < 1.0 and rgb.min() >= 0.0
    np.testing.assert_allclose(grey, rgb.mean(axis=1, keepdims=True))
    # a permutation of the horses, decided by numpy's global generator
    assert sorted(map(bytes, rgb)) == sorted(map(bytes, horses))
    np.random.seed(3)
    rgb_again, _ = C.process(xs, ys)
    np.testing.assert_array_equal(rgb, rgb_again)
    # labels given as [N] work as well
    np.random.seed(3)
    np.testing.assert_array_equal(C.process(xs, ys[:, 0])[0], rgb)


def test_process_downsize_input_is_8x8_detail_in_colour():
    xs, ys = _toy_cifar()
    np.random.seed(0)
    rgb, small = C.process(xs, ys, downsize_input=True)
    assert small.shape == rgb.shape == (int((ys == 7).sum()), 3, 32, 32)
    blocks = rgb.reshape(len(rgb), 3, 8, 4, 8, 4).mean(axis=(3, 5))           # [n, 3, 8, 8]
    expected = blocks.repeat(4, axis=2).repeat(4, axis=3)
    np.testing.assert_allclose(small, expected, atol=1e-6)


@pytest.mark.parametrize("n", [1, 7, 99, 100, 250])
def test_get_rgb_cat_is_the_nearest_colour_for_any_count(n):
    rng = np.random.RandomState(n)
    xs = rng.rand(n, 3, 4, 5)
    colours = rng.rand(24, 3)
    cats = C.get_rgb_cat(xs, colours)
    assert cats.shape == (n, 1, 4, 5)
    px = np.transpose(xs, (0, 2, 3, 1))                                        # [n, 4, 5, 3]
    brute = np.argmin(((px[..., None, :] - colours) ** 2).sum(-1), axis=-1)    # [n, 4, 5]
    np.testing.assert_array_equal(cats[:, 0], brute)
    np.testing.assert_allclose(C.get_cat_rgb(cats[:, 0], colours), colours[brute])


def test_compute_loss_is_pixelwise_cross_entropy_even_for_a_short_batch():
    torch.manual_seed(0)
    logits = torch.randn(3, 24, 32, 32)
    labels = torch.randint(0, 24, (3, 1, 32, 32))
    loss = C.compute_loss(nn.CrossEntropyLoss(), logits, labels, batch_size=100, num_colours=24)
    torch.testing.assert_close(loss, F.cross_entropy(logits, labels[:, 0]))


def test_get_batch_covers_everything_in_order():
    x, y = np.arange(23)[:, None], -np.arange(23)[:, None]
    batches = list(C.get_batch(x, y, 10))
    assert [len(b[0]) for b in batches] == [10, 10, 3]
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), x)


# ----------------------------------------------------------------------------------------------
# Training on the embedded data
# ----------------------------------------------------------------------------------------------

def _adam_steps(model, inputs, cats, steps, batch_size=50, seed=0):
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    crit = nn.CrossEntropyLoss()
    done = 0
    while done < steps:
        for xs, ys in C.get_batch(inputs, cats, batch_size):
            x, y = C.get_torch_vars(xs, ys)
            opt.zero_grad()
            C.compute_loss(crit, model(x), y).backward()
            opt.step()
            done += 1
            if done == steps:
                break
    return model


def test_embedded_data_is_learnable_and_skips_help():
    """40 Adam steps (batch 50, NF 16) on the embedded images clearly beat the most common colour."""
    (xtr, ytr), (xte, yte) = data.synthetic_cifar10()
    np.random.seed(0)
    train_rgb, train_grey = C.process(xtr, ytr)
    test_rgb, test_grey = C.process(xte, yte)
    colours = data.kmeans_colours(train_rgb, k=24, seed=0)
    train_cat, test_cat = C.get_rgb_cat(train_rgb, colours), C.get_rgb_cat(test_rgb, colours)
    majority = np.bincount(train_cat.ravel(), minlength=24).argmax()
    baseline = 100.0 * np.mean(test_cat == majority)
    accs = {}
    for name in ("CNN", "UNet"):
        torch.manual_seed(0)
        model = _adam_steps(C.build_model(name, 3, 16, 24), train_grey, train_cat, steps=40)
        model.eval()
        _, accs[name] = C.run_validation_step(model, nn.CrossEntropyLoss(), test_grey, test_cat,
                                              100, colours)
    assert accs["CNN"] > baseline + 20, (accs, baseline)
    assert accs["UNet"] >= accs["CNN"] - 1.0, accs


SMALL = data.synthetic_cifar10(n_train=200, n_test=100)     # keeps the training tests quick


def test_train_and_plot_activation_write_pictures(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = C.AttrDict(model="UNet", num_filters=8, epochs=1, batch_size=50, experiment_name="t",
                      plot=True, checkpoint=str(tmp_path / "unet.pt"), data=SMALL)
    model = C.train(args)
    assert isinstance(model, C.UNet)
    out = tmp_path / "outputs" / "t"
    assert (out / "train_0.png").stat().st_size > 100 and (out / "test_0.png").exists()
    assert (out / "training_curve.csv").read_text().count("\n") == 2
    again = C.train(C.AttrDict(args, valid=True, plot=False))   # reload the checkpoint, evaluate
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        torch.testing.assert_close(a, b)
    outdir = Path(C.plot_activation(C.AttrDict(args, index=3), model))
    names = {p.name for p in outdir.iterdir()}
    assert {"input_3.png", "input_3_gt.png", "output_3.png"} <= names
    assert {"conv%d_out_3.png" % i for i in range(1, 6)} <= names


def test_super_resolution_training_adds_the_bilinear_row(tmp_path, monkeypatch):
    from grader.report.images import read_png_size
    monkeypatch.chdir(tmp_path)
    args = C.AttrDict(model="CNN", num_filters=8, epochs=1, batch_size=50, experiment_name="sr",
                      downsize_input=True, plot=True, data=SMALL)
    model = C.train(args)
    assert model.downconv1[0].in_channels == 3
    w, h = read_png_size(tmp_path / "outputs" / "sr" / "test_0.png")
    assert h == 3 * (2 + 4 * (32 + 2))          # input, truth, output, bilinear; pixels shown 3x3


# ----------------------------------------------------------------------------------------------
# Colour regression
# ----------------------------------------------------------------------------------------------

def test_regression_cnn_shapes_and_layer_orders():
    net = R.RegressionCNN(3, 16)
    assert net(torch.rand(2, 1, 32, 32)).shape == (2, 3, 32, 32)
    assert isinstance(net.downconv1[1], nn.BatchNorm2d)                         # 2019 notebook
    old = R.RegressionCNN(3, 16, order=R.ORDER_2018)
    assert isinstance(old.downconv1[2], nn.BatchNorm2d)                         # 2018 script
    assert old(torch.rand(2, 1, 32, 32)).shape == (2, 3, 32, 32)


def test_regression_training_lowers_the_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = R.train(R.AttrDict(num_filters=8, epochs=5, batch_size=8, plot=False, data=SMALL))
    np.random.seed(0)
    (_, _), (xte, yte) = SMALL
    rgb, grey = R.process(xte, yte)
    model.eval()
    mse = R.run_validation_step(model, nn.MSELoss(), grey, rgb, 100)
    assert mse < np.mean((rgb - rgb.mean(axis=(0, 2, 3), keepdims=True)) ** 2)


# ----------------------------------------------------------------------------------------------
# The course's pretrained weights on the real horses
# ----------------------------------------------------------------------------------------------

@pytest.mark.course_data
@pytest.mark.parametrize("name,cls", [("cnn", C.CNN), ("unet", C.UNet), ("dunet", C.DUNet)])
@pytest.mark.parametrize("nf", [16, 32])
def test_course_checkpoints_load(name, cls, nf):
    path = shared_file("a2-course", f"{name}_k3_f{nf}.pkl")
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = cls(3, nf, 24)
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing)
    if name == "dunet":
        assert state["rfconv.0.weight"].shape == (2 * nf, 2 * nf, 3, 3)


@pytest.mark.course_data
def test_course_regression_checkpoint_loads_with_the_2018_order():
    path = shared_file("a2-course", "regression_cnn_k3_f32.pkl")
    R.load_checkpoint(R.RegressionCNN(3, 32, order=R.ORDER_2018), path)


@pytest.mark.course_data
@pytest.mark.parametrize("name,cls,expected", [("cnn", C.CNN, 40.3), ("unet", C.UNet, 47.6)])
def test_course_weights_reach_the_course_accuracy(name, cls, expected):
    """Validation in eval mode (BatchNorm running statistics), as the handout's train loop does."""
    horses = np.load(shared_file("cifar10_horse.npz"))
    colours = data.load_colours(shared_file("colour_kmeans24_cat7.npy"))
    np.random.seed(0)
    rgb, grey = C.process(horses["test_x"], horses["test_y"], max_pixel=256.0)
    cats = C.get_rgb_cat(rgb, colours)
    model = C.load_checkpoint(cls(3, 32, 24), shared_file("a2-course", f"{name}_k3_f32.pkl"))
    model.eval()
    _, acc = C.run_validation_step(model, nn.CrossEntropyLoss(), grey, cats, 100, colours)
    assert abs(acc - expected) <= 1.5, acc
