"""Reference solution: colourization as regression of RGB values (Assignment 2, Part 1, Q1).

The handout provides `RegressionCNN` and its training loop; students only run them. Like
`colourization.py`, this file stands alone (the grader may import it on its own): stdlib, numpy and
torch at top level, project helpers imported inside the functions that need them.
"""
import os
import time

import numpy as np
import torch
import torch.nn as nn

HORSE_CATEGORY = 7

# The two layer orders of the course's releases. The 2019 notebook (the handout's Q6(b) asks about
# its "max-pooling after ReLU") uses conv, BatchNorm, ReLU, pool; the 2018 script, whose trained
# weights regression_cnn_k3_f*.pkl the course also released, uses conv, pool, BatchNorm, ReLU.
ORDER_2019 = "conv-bn-relu-pool"
ORDER_2018 = "conv-pool-bn-relu"


class AttrDict(dict):
    """The notebook's argument holder: a dict whose keys are also attributes."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.__dict__ = self


def _block(cin, cout, kernel, resample, order):
    """Convolution + BatchNorm + ReLU, with an optional resampling layer placed as `order` says."""
    conv = nn.Conv2d(cin, cout, kernel_size=kernel, padding=kernel // 2)
    if resample is None:
        return nn.Sequential(conv, nn.BatchNorm2d(cout), nn.ReLU())
    if order == ORDER_2018:
        return nn.Sequential(conv, resample, nn.BatchNorm2d(cout), nn.ReLU())
    return nn.Sequential(conv, nn.BatchNorm2d(cout), nn.ReLU(), resample)


class RegressionCNN(nn.Module):
    """Grey [B, 1, 32, 32] -> RGB [B, 3, 32, 32]: two down-sampling, one middle and two up-sampling
    convolution blocks, then a final 3 -> 3 convolution. All kernels k x k with "same" padding."""

    def __init__(self, kernel, num_filters, order=ORDER_2019):
        super().__init__()
        if order not in (ORDER_2019, ORDER_2018):
            raise ValueError("order must be %r or %r" % (ORDER_2019, ORDER_2018))
        nf = num_filters
        self.downconv1 = _block(1, nf, kernel, nn.MaxPool2d(2), order)                 # [B, NF, 16, 16]
        self.downconv2 = _block(nf, 2 * nf, kernel, nn.MaxPool2d(2), order)            # [B, 2NF, 8, 8]
        self.rfconv = _block(2 * nf, 2 * nf, kernel, None, order)                      # [B, 2NF, 8, 8]
        self.upconv1 = _block(2 * nf, nf, kernel, nn.Upsample(scale_factor=2), order)  # [B, NF, 16, 16]
        self.upconv2 = _block(nf, 3, kernel, nn.Upsample(scale_factor=2), order)       # [B, 3, 32, 32]
        self.finalconv = nn.Conv2d(3, 3, kernel_size=kernel, padding=kernel // 2)      # [B, 3, 32, 32]

    def forward(self, x):                                  # x [B, 1, 32, 32]
        self.out1 = self.downconv1(x)
        self.out2 = self.downconv2(self.out1)
        self.out3 = self.rfconv(self.out2)
        self.out4 = self.upconv1(self.out3)
        self.out5 = self.upconv2(self.out4)
        self.out_final = self.finalconv(self.out5)
        return self.out_final                              # [B, 3, 32, 32]


# ----------------------------------------------------------------------------------------------
# Data (as in colourization.py; repeated so that this file stands alone, as the handout's did)
# ----------------------------------------------------------------------------------------------

def process(xs, ys, max_pixel=256.0):
    """Horses only, scaled to [0, 1), shuffled (numpy's global generator): (rgb, grey)."""
    xs = xs / max_pixel
    xs = xs[np.where(np.asarray(ys) == HORSE_CATEGORY)[0], :, :, :]
    np.random.shuffle(xs)
    grey = np.mean(xs, axis=1, keepdims=True)             # [n, 1, 32, 32]
    return xs, grey


def get_batch(x, y, batch_size):
    n = np.shape(x)[0]
    assert n == np.shape(y)[0]
    for i in range(0, n, batch_size):
        yield x[i:i + batch_size], y[i:i + batch_size]


def get_torch_vars(xs, ys, gpu=False):
    """numpy inputs and RGB targets -> float tensors."""
    xs = torch.from_numpy(np.ascontiguousarray(xs)).float()
    ys = torch.from_numpy(np.ascontiguousarray(ys)).float()
    if gpu and torch.cuda.is_available():
        xs, ys = xs.cuda(), ys.cuda()
    return xs, ys


def run_validation_step(cnn, criterion, test_grey, test_rgb, batch_size, plotpath=None):
    """Mean squared error over the test images, in the model's current mode."""
    device = next(cnn.parameters()).device
    losses = []
    xs = ys = outputs = None
    with torch.no_grad():
        for xs, ys in get_batch(test_grey, test_rgb, batch_size):
            images, labels = get_torch_vars(xs, ys)
            outputs = cnn(images.to(device))
            losses.append(criterion(outputs, labels.to(device)).item())
    if plotpath and outputs is not None:
        plot(xs, ys, outputs.cpu().numpy(), plotpath)
    return float(np.mean(losses))


def plot(grey, rgb, output, path, n=10):
    """PNG grid: grey input / true colour / predicted colour."""
    from grader.report.images import grid, write_png

    rows = [list(np.repeat(grey[:n], 3, axis=1)), list(rgb[:n]), list(np.clip(output[:n], 0, 1))]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_png(path, grid(rows, scale=3))


DEFAULT_ARGS = {"gpu": False, "valid": False, "checkpoint": "", "model": "RegressionCNN",
                "kernel": 3, "num_filters": 32, "learn_rate": 0.001, "batch_size": 100,
                "epochs": 25, "seed": 0, "plot": True, "experiment_name": "colour_regression",
                "visualize": False, "data": None, "order": ORDER_2019}


def _with_defaults(args):
    """The notebook's AttrDict (or any dict / argparse namespace) completed with DEFAULT_ARGS."""
    given = dict(args) if isinstance(args, dict) else vars(args)
    return AttrDict({**DEFAULT_ARGS, **given})


def load_cifar10(source=None):
    """CIFAR-10 from a path, the embedded synthetic set (None), or a ((x, y), (x, y)) pair."""
    from reference.a2 import data
    if source is None:
        return data.synthetic_cifar10()
    if isinstance(source, (tuple, list)):
        return source
    return data.load_cifar10(source)


def load_checkpoint(model, path):
    """Load a (possibly old, CUDA-saved) state dict; only BatchNorm's `num_batches_tracked` may lack.

    The course's regression_cnn_k3_f*.pkl need RegressionCNN(..., order=ORDER_2018).
    """
    state = torch.load(path, map_location="cpu", weights_only=True)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise RuntimeError("checkpoint %s does not fit: missing %s, unexpected %s"
                           % (path, missing, unexpected))
    return model


def train(args, cnn=None):
    """Train RegressionCNN with MSE and Adam (or, with args.valid, only evaluate a checkpoint)."""
    args = _with_defaults(args)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    device = torch.device("cuda" if args.gpu and torch.cuda.is_available() else "cpu")
    save_dir = os.path.join("outputs", args.experiment_name)
    os.makedirs(save_dir, exist_ok=True)

    (x_train, y_train), (x_test, y_test) = load_cifar10(args.data)
    train_rgb, train_grey = process(x_train, y_train)
    test_rgb, test_grey = process(x_test, y_test)
    if cnn is None:
        cnn = RegressionCNN(args.kernel, args.num_filters, order=args.order)
    cnn = cnn.to(device)
    criterion = nn.MSELoss()

    if args.valid:
        if args.checkpoint:
            load_checkpoint(cnn, args.checkpoint)
        cnn.eval()
        outfile = os.path.join(save_dir, "eval_regression.png") if args.plot else None
        val_loss = run_validation_step(cnn, criterion, test_grey, test_rgb, args.batch_size, outfile)
        print("Evaluating RegressionCNN: Val Loss: %.4f" % val_loss)
        return cnn

    optimizer = torch.optim.Adam(cnn.parameters(), lr=args.learn_rate)
    start = time.time()
    for epoch in range(args.epochs):
        cnn.train()
        losses = []
        for xs, ys in get_batch(train_grey, train_rgb, args.batch_size):
            images, labels = get_torch_vars(xs, ys)
            optimizer.zero_grad()
            loss = criterion(cnn(images.to(device)), labels.to(device))   # pixel-wise squared error
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        cnn.eval()
        outfile = os.path.join(save_dir, "test_%d.png" % epoch) if args.plot else None
        val_loss = run_validation_step(cnn, criterion, test_grey, test_rgb, args.batch_size, outfile)
        print("Epoch [%d/%d], Loss: %.4f, Val Loss: %.4f, Time(s): %d"
              % (epoch + 1, args.epochs, np.mean(losses), val_loss, time.time() - start))
    if args.checkpoint:
        torch.save(cnn.state_dict(), args.checkpoint)
    return cnn
