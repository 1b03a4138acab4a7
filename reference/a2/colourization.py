"""Reference solution: image colourization as pixel-wise classification (Assignment 2, Part 1).

Written against the course's starter API (CSC321 2018 script / CSC421 2019 notebook, reused by
CS6360 2019), so every name and signature below is the one students were given:

    MyConv2d, MyDilatedConv2d            convolution layers built on F.conv2d
    CNN, UNet, DUNet (= DilatedUNet)     the colourization networks
    process, get_rgb_cat, get_cat_rgb,   data handling
    get_batch, get_torch_vars, compute_loss, run_validation_step, train, plot_activation

The grader also imports this file on its own (no package, top-level statements other than imports,
definitions and simple assignments stripped), as if it were a student's submission. Hence: only
stdlib / numpy / torch at top level, no work at import time, and the project helpers
(`reference.a2.data`, `grader.report.images`) are imported lazily inside the functions that need them.
"""
import math
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HORSE_CATEGORY = 7


class AttrDict(dict):
    """The notebook's argument holder: a dict whose keys are also attributes (args.epochs)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.__dict__ = self


# ----------------------------------------------------------------------------------------------
# Convolution layers
# ----------------------------------------------------------------------------------------------

class MyConv2d(nn.Module):
    """2D convolution with explicit parameters (the starter's layer, unchanged).

    weight [out, in, k, k] and bias [out] are drawn uniform in ±1/sqrt(in·k²), weight first, so the
    same torch seed gives a student's starter layer and this one identical parameters.
    """

    def __init__(self, in_channels, out_channels, kernel_size, padding=None):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        # "same" padding for odd kernels keeps 32x32 maps at 32x32
        self.padding = kernel_size // 2 if padding is None else padding
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(out_channels))
        self.reset_parameters()

    def reset_parameters(self):
        stdv = 1.0 / math.sqrt(self.in_channels * self.kernel_size * self.kernel_size)
        self.weight.data.uniform_(-stdv, stdv)
        self.bias.data.uniform_(-stdv, stdv)

    def forward(self, x):                                  # x [B, in, H, W]
        return F.conv2d(x, self.weight, self.bias, padding=self.padding)   # [B, out, H, W]


class MyDilatedConv2d(MyConv2d):
    """Dilated convolution made by spreading the kernel out, not by F.conv2d's own argument.

    The handout counts dilation as the number of *gaps* between taps ("dilation 1" = one zero
    between neighbouring taps), which is torch's dilation 2. A k x k kernel with gaps g becomes a
    kernel of size (g+1)(k-1)+1 with the original taps every (g+1) positions and zeros between.
    `weight` keeps its [out, in, k, k] shape, so the course's DUNet checkpoint loads unchanged, and
    the spread kernel is rebuilt from it on every call, so the gradient flows back to `weight`.
    """

    def __init__(self, in_channels, out_channels, kernel_size, dilation=1):
        super().__init__(in_channels, out_channels, kernel_size)
        self.dilation = dilation
        # padding that keeps the spatial size: half the spread kernel's extent
        self.padding = (dilation + 1) * (kernel_size // 2)

    def dilated_weight(self):
        step = self.dilation + 1                           # torch's notion of dilation
        k = self.kernel_size
        size = step * (k - 1) + 1
        out_c, in_c = self.weight.shape[:2]
        spread = self.weight.new_zeros(out_c, in_c, size, size)   # [out, in, size, size]
        spread[:, :, ::step, ::step] = self.weight         # differentiable index assignment
        return spread

    def forward(self, x):                                  # x [B, in, H, W]
        return F.conv2d(x, self.dilated_weight(), self.bias, padding=self.padding)  # [B, out, H, W]


# ----------------------------------------------------------------------------------------------
# Networks
# ----------------------------------------------------------------------------------------------

def _down(cin, cout, kernel):
    """Convolution, 2x2 max-pool, BatchNorm, ReLU: halves H and W (the 2018 starter's order)."""
    return nn.Sequential(MyConv2d(cin, cout, kernel), nn.MaxPool2d(2), nn.BatchNorm2d(cout), nn.ReLU())


def _same(cin, cout, kernel):
    """Convolution, BatchNorm, ReLU at constant resolution."""
    return nn.Sequential(MyConv2d(cin, cout, kernel), nn.BatchNorm2d(cout), nn.ReLU())


def _up(cin, cout, kernel):
    """Convolution, nearest 2x upsampling, BatchNorm, ReLU: doubles H and W."""
    return nn.Sequential(MyConv2d(cin, cout, kernel), nn.Upsample(scale_factor=2),
                         nn.BatchNorm2d(cout), nn.ReLU())


class CNN(nn.Module):
    """Encoder-decoder that maps a [B, Cin, 32, 32] image to per-pixel colour logits.

    Layers are created in the starter's order so a torch seed gives the same initial weights.
    """

    def __init__(self, kernel, num_filters, num_colours, num_in_channels=1):
        super().__init__()
        nf, nc = num_filters, num_colours
        self.downconv1 = _down(num_in_channels, nf, kernel)    # -> [B, NF, 16, 16]
        self.downconv2 = _down(nf, 2 * nf, kernel)             # -> [B, 2NF, 8, 8]
        self.rfconv = _same(2 * nf, 2 * nf, kernel)            # -> [B, 2NF, 8, 8]
        self.upconv1 = _up(2 * nf, nf, kernel)                 # -> [B, NF, 16, 16]
        self.upconv2 = _up(nf, nc, kernel)                     # -> [B, NC, 32, 32]
        self.finalconv = MyConv2d(nc, nc, kernel)              # -> [B, NC, 32, 32] logits

    def forward(self, x):                                      # x [B, Cin, 32, 32]
        # the activations are kept on the module: plot_activation (activations.py) reads them
        self.out1 = self.downconv1(x)                          # [B, NF, 16, 16]
        self.out2 = self.downconv2(self.out1)                  # [B, 2NF, 8, 8]
        self.out3 = self.rfconv(self.out2)                     # [B, 2NF, 8, 8]
        self.out4 = self.upconv1(self.out3)                    # [B, NF, 16, 16]
        self.out5 = self.upconv2(self.out4)                    # [B, NC, 32, 32]
        self.out_final = self.finalconv(self.out5)             # [B, NC, 32, 32]
        return self.out_final


class UNet(nn.Module):
    """The CNN with skip connections: each up-path layer also sees the matching down-path output."""

    def __init__(self, kernel, num_filters, num_colours, num_in_channels=1):
        super().__init__()
        nf, nc = num_filters, num_colours
        self.downconv1 = _down(num_in_channels, nf, kernel)    # -> [B, NF, 16, 16]
        self.downconv2 = _down(nf, 2 * nf, kernel)             # -> [B, 2NF, 8, 8]
        self.rfconv = _same(2 * nf, 2 * nf, kernel)            # -> [B, 2NF, 8, 8]
        self.upconv1 = _up(2 * nf + 2 * nf, nf, kernel)        # cat(out3, out2) -> [B, NF, 16, 16]
        self.upconv2 = _up(nf + nf, nc, kernel)                # cat(out4, out1) -> [B, NC, 32, 32]
        self.finalconv = MyConv2d(nc + num_in_channels, nc, kernel)   # cat(out5, x) -> logits

    def forward(self, x):                                      # x [B, Cin, 32, 32]
        self.out1 = self.downconv1(x)                                          # [B, NF, 16, 16]
        self.out2 = self.downconv2(self.out1)                                  # [B, 2NF, 8, 8]
        self.out3 = self.rfconv(self.out2)                                     # [B, 2NF, 8, 8]
        self.out4 = self.upconv1(torch.cat([self.out3, self.out2], dim=1))     # [B, NF, 16, 16]
        self.out5 = self.upconv2(torch.cat([self.out4, self.out1], dim=1))     # [B, NC, 32, 32]
        self.out_final = self.finalconv(torch.cat([self.out5, x], dim=1))      # [B, NC, 32, 32]
        return self.out_final


class DUNet(UNet):
    """UNet whose middle convolution is dilated (one gap between taps), widening its receptive field.

    As in the starter, the UNet is built first and its rfconv then replaced, so a seed consumes the
    same random numbers as a student's DilatedUNet.
    """

    def __init__(self, kernel, num_filters, num_colours, num_in_channels=1):
        super().__init__(kernel, num_filters, num_colours, num_in_channels)
        self.rfconv = nn.Sequential(
            MyDilatedConv2d(2 * num_filters, 2 * num_filters, kernel, dilation=1),
            nn.BatchNorm2d(2 * num_filters),
            nn.ReLU())


DilatedUNet = DUNet


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------

def downsize(xs):
    """Average-pool twice then nearest-upsample twice: [N, 3, 32, 32] -> same shape, 8x8 detail."""
    x = torch.from_numpy(np.ascontiguousarray(xs)).float()            # [N, 3, 32, 32]
    x = F.avg_pool2d(F.avg_pool2d(x, 2), 2)                            # [N, 3, 8, 8]
    x = F.interpolate(F.interpolate(x, scale_factor=2), scale_factor=2)   # [N, 3, 32, 32], nearest
    return x.numpy()


def process(xs, ys, max_pixel=256.0, downsize_input=False):
    """Keep the horses, scale to [0, 1), shuffle, and make the network's input.

    Args:
      xs: uint8 colour images [N, 3, 32, 32]; ys: labels [N, 1] (or [N]).
    Returns (in the handout's order, targets first):
      rgb: float colour images [n, 3, 32, 32] (the targets)
      input: grey images [n, 1, 32, 32] (channel mean), or with `downsize_input` the colour images
             reduced to 8x8 and blown back up to [n, 3, 32, 32] (super-resolution input)
    The shuffle uses numpy's global generator, as the handout's `npr.shuffle` does, so
    `np.random.seed(s)` before `process` fixes the order.
    """
    xs = xs / max_pixel
    xs = xs[np.where(np.asarray(ys) == HORSE_CATEGORY)[0], :, :, :]
    np.random.shuffle(xs)
    if downsize_input:
        return xs, downsize(xs)
    grey = np.mean(xs, axis=1, keepdims=True)                          # [n, 1, 32, 32]
    return xs, grey


def _nearest_colour(xs, colours):
    """[B, 3, H, W] RGB -> [B, 1, H, W] index of the nearest colour centre (Euclidean in RGB)."""
    cs = np.reshape(colours, [len(colours), 1, 3, 1, 1])               # [K, 1, 3, 1, 1]
    # squared distance summed channel by channel (same order as np.linalg.norm, without the sqrt)
    d2 = sum((xs[None, :, c] - cs[:, :, c]) ** 2 for c in range(3))    # [K, B, H, W]
    return np.argmin(d2, axis=0)[:, None]                              # [B, 1, H, W]


def get_rgb_cat(xs, colours, chunk=100):
    """Colour categories of RGB images, in chunks so the [K, B, H, W] distances fit in memory.

    Correct for any number of images (the starter's shortcut for fewer than 100 was broken).
    """
    if len(xs) == 0:
        return np.zeros((0, 1) + tuple(np.shape(xs)[2:]), dtype=np.int64)
    parts = [_nearest_colour(xs[i:i + chunk], colours) for i in range(0, len(xs), chunk)]
    return np.concatenate(parts, axis=0)                               # [N, 1, H, W]


def get_cat_rgb(cats, colours):
    """Colour categories -> RGB: [..] ints -> [.., 3] floats."""
    return colours[cats]


def get_batch(x, y, batch_size):
    """Consecutive mini-batches (the data are already shuffled by `process`)."""
    n = np.shape(x)[0]
    assert n == np.shape(y)[0]
    for i in range(0, n, batch_size):
        yield x[i:i + batch_size], y[i:i + batch_size]


def get_torch_vars(xs, ys, gpu=False):
    """numpy inputs/labels -> float/long tensors (on the GPU if asked and available)."""
    xs = torch.from_numpy(np.ascontiguousarray(xs)).float()
    ys = torch.from_numpy(np.ascontiguousarray(ys)).long()
    if gpu and torch.cuda.is_available():
        xs, ys = xs.cuda(), ys.cuda()
    return xs, ys


def compute_loss(criterion, outputs, labels, batch_size=None, num_colours=None):
    """Pixel-wise cross-entropy: logits [B, NC, H, W] and labels [B, 1, H, W].

    `batch_size` and `num_colours` are the handout's arguments; the shapes are read from the
    tensors instead so that a last, smaller batch works too.
    """
    nc = outputs.shape[1]
    loss_out = outputs.permute(0, 2, 3, 1).reshape(-1, nc)             # [B*H*W, NC]
    loss_lab = labels.reshape(-1)                                      # [B*H*W]
    return criterion(loss_out, loss_lab)


def _model_device(model):
    return next(model.parameters()).device


def run_validation_step(cnn, criterion, test_grey, test_rgb_cat, batch_size, colours,
                        plotpath=None, visualize=True, downsize_input=False):
    """Mean loss over batches and pixel accuracy in percent, in the model's current mode.

    Like the handout's, this function does not switch modes: `train` puts the model in eval mode
    before calling it (BatchNorm then uses its running statistics).
    """
    device = _model_device(cnn)
    losses, correct, total = [], 0, 0
    xs = ys = predicted = None
    with torch.no_grad():
        for xs, ys in get_batch(test_grey, test_rgb_cat, batch_size):
            images, labels = get_torch_vars(xs, ys)
            images, labels = images.to(device), labels.to(device)
            outputs = cnn(images)                                      # [B, NC, 32, 32]
            losses.append(compute_loss(criterion, outputs, labels).item())
            predicted = outputs.argmax(dim=1, keepdim=True)            # [B, 1, 32, 32]
            correct += (predicted == labels).sum().item()
            total += labels.numel()
    if plotpath and predicted is not None:
        plot(xs, ys, predicted.cpu().numpy(), colours, plotpath, visualize, downsize_input)
    return float(np.mean(losses)), 100.0 * correct / total


# ----------------------------------------------------------------------------------------------
# Pictures
# ----------------------------------------------------------------------------------------------

def _bilinear_from(rgb):
    """The bilinear baseline of super-resolution: 8x8 average then bilinear upsampling to 32x32."""
    x = torch.from_numpy(np.ascontiguousarray(rgb)).float()           # [B, 3, 32, 32]
    x = F.avg_pool2d(F.avg_pool2d(x, 2), 2)                            # [B, 3, 8, 8]
    x = F.interpolate(x, scale_factor=4, mode="bilinear", align_corners=False)
    return x.clamp(0, 1).numpy()                                       # [B, 3, 32, 32]


def plot(input, gtlabel, output, colours, path, visualize=True, compare_bilinear=False, n=10,
         scale=3):
    """Write a PNG grid: input / ground truth / output (/ bilinear baseline), `n` images per row,
    every pixel shown `scale` x `scale` times so 32x32 images are visible."""
    from grader.report.images import grid, write_png

    inputs = np.asarray(input[:n], dtype=np.float64)                   # [n, 1 or 3, 32, 32]
    if inputs.shape[1] == 1:
        inputs = np.repeat(inputs, 3, axis=1)                          # grey shown as RGB
    truth = get_cat_rgb(gtlabel[:n, 0], colours)                       # [n, 32, 32, 3]
    pred = get_cat_rgb(output[:n, 0], colours)                         # [n, 32, 32, 3]
    rows = [list(inputs), list(truth), list(pred)]
    if compare_bilinear:
        rows.append(list(_bilinear_from(np.transpose(truth, [0, 3, 1, 2]))))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_png(path, grid(rows, scale=scale))


# ----------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------

DEFAULT_ARGS = {"gpu": False, "valid": False, "checkpoint": "", "colours": None, "model": "CNN",
                "kernel": 3, "num_filters": 32, "learn_rate": 0.001, "batch_size": 100,
                "epochs": 25, "seed": 0, "plot": True, "experiment_name": "colourization_cnn",
                "visualize": False, "downsize_input": False, "data": None, "index": 0}

MODELS = {"CNN": CNN, "UNet": UNet, "DUNet": DUNet, "DilatedUNet": DUNet}


def _with_defaults(args):
    """The notebook's AttrDict (or any dict / argparse namespace) completed with DEFAULT_ARGS."""
    given = dict(args) if isinstance(args, dict) else vars(args)
    return AttrDict({**DEFAULT_ARGS, **given})


def load_cifar10(source=None):
    """((x_train, y_train), (x_test, y_test)) from a CIFAR-10 source path (tarball, folder, .npz),
    the embedded synthetic set (None), or such a pair of pairs already in memory."""
    from reference.a2 import data
    if source is None:
        return data.synthetic_cifar10()
    if isinstance(source, (tuple, list)):
        return source
    return data.load_cifar10(source)


def _colour_centres(spec, train_rgb):
    """The colour categories: a colours file if given and present, else k-means on the targets."""
    from reference.a2 import data
    if spec is not None and not isinstance(spec, str):
        return np.asarray(spec, dtype=np.float64)                      # already an array [K, 3]
    if spec and os.path.exists(spec):
        return data.load_colours(spec)
    if spec:
        print("Colours file %s not found: using 24 k-means colours of the training images" % spec)
    return data.kmeans_colours(train_rgb, k=24, seed=0)


def _prepare(args):
    """Seeded data preparation shared by train and plot_activation."""
    (x_train, y_train), (x_test, y_test) = load_cifar10(args.get("data"))
    train_rgb, train_in = process(x_train, y_train, downsize_input=args.downsize_input)
    test_rgb, test_in = process(x_test, y_test, downsize_input=args.downsize_input)
    colours = _colour_centres(args.colours, train_rgb)
    return colours, (train_rgb, train_in), (test_rgb, test_in)


def build_model(name, kernel, num_filters, num_colours, num_in_channels=1):
    if name not in MODELS:
        raise ValueError("unknown model %r; expected one of %s" % (name, sorted(MODELS)))
    return MODELS[name](kernel, num_filters, num_colours, num_in_channels)


def load_checkpoint(model, path):
    """Load a (possibly old, CUDA-saved) state dict; only BatchNorm's `num_batches_tracked` may lack."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:               # very old pickles that the safe loader refuses (trusted files)
        state = torch.load(path, map_location="cpu", weights_only=False)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise RuntimeError("checkpoint %s does not fit: missing %s, unexpected %s"
                           % (path, missing, unexpected))
    return model


def train(args, cnn=None):
    """Train (or, with args.valid, only evaluate) a colourization model; returns the model.

    `args` holds the notebook's keys (see DEFAULT_ARGS); missing keys take those defaults.
    Pictures and the learning curves go to outputs/<experiment_name>/.
    """
    args = _with_defaults(args)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    device = torch.device("cuda" if args.gpu and torch.cuda.is_available() else "cpu")
    save_dir = os.path.join("outputs", args.experiment_name)
    os.makedirs(save_dir, exist_ok=True)

    colours, (train_rgb, train_in), (test_rgb, test_in) = _prepare(args)
    num_colours = len(colours)
    train_cat = get_rgb_cat(train_rgb, colours)                        # [N, 1, 32, 32]
    test_cat = get_rgb_cat(test_rgb, colours)
    num_in_channels = 3 if args.downsize_input else 1
    if cnn is None:
        cnn = build_model(args.model, args.kernel, args.num_filters, num_colours, num_in_channels)
    cnn = cnn.to(device)
    criterion = nn.CrossEntropyLoss()

    if args.valid:
        if args.checkpoint:
            load_checkpoint(cnn, args.checkpoint)
        cnn.eval()
        outfile = os.path.join(save_dir, "eval_%s.png" % args.model) if args.plot else None
        val_loss, val_acc = run_validation_step(cnn, criterion, test_in, test_cat, args.batch_size,
                                                colours, outfile, args.visualize,
                                                args.downsize_input)
        print("Evaluating model %s: Val Loss: %.4f, Val Acc: %.1f%%" % (args.model, val_loss, val_acc))
        return cnn

    optimizer = torch.optim.Adam(cnn.parameters(), lr=args.learn_rate)
    start = time.time()
    curves = []
    for epoch in range(args.epochs):
        cnn.train()                    # BatchNorm normalises with batch statistics
        losses = []
        for xs, ys in get_batch(train_in, train_cat, args.batch_size):
            images, labels = get_torch_vars(xs, ys)
            images, labels = images.to(device), labels.to(device)
            optimizer.zero_grad()
            outputs = cnn(images)                                      # [B, NC, 32, 32]
            loss = compute_loss(criterion, outputs, labels)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        if args.plot:
            predicted = outputs.argmax(dim=1, keepdim=True).cpu().numpy()
            plot(xs, ys, predicted, colours, os.path.join(save_dir, "train_%d.png" % epoch),
                 args.visualize, args.downsize_input)

        cnn.eval()                     # BatchNorm uses its running statistics
        outfile = os.path.join(save_dir, "test_%d.png" % epoch) if args.plot else None
        val_loss, val_acc = run_validation_step(cnn, criterion, test_in, test_cat, args.batch_size,
                                                colours, outfile, args.visualize,
                                                args.downsize_input)
        curves.append((epoch + 1, float(np.mean(losses)), val_loss, val_acc))
        print("Epoch [%d/%d], Loss: %.4f, Val Loss: %.4f, Val Acc: %.1f%%, Time(s): %d"
              % (epoch + 1, args.epochs, curves[-1][1], val_loss, val_acc, time.time() - start))

    _write_curves(os.path.join(save_dir, "training_curve.csv"), curves)
    if args.checkpoint:
        torch.save(cnn.state_dict(), args.checkpoint)
    return cnn


def _write_curves(path, curves):
    with open(path, "w") as f:
        f.write("epoch,train_loss,val_loss,val_acc\n")
        for row in curves:
            f.write("%d,%.6f,%.6f,%.3f\n" % row)


def plot_activation(args, cnn):
    """Save the input, truth, output and every layer's activations for test image `args.index`."""
    from grader.report.images import grid, write_png

    args = _with_defaults(args)
    np.random.seed(args.seed)          # the same test order as in train
    colours, _, (test_rgb, test_in) = _prepare(args)
    idx = args.index
    outdir = os.path.join("outputs", args.experiment_name, "act%d" % idx)
    os.makedirs(outdir, exist_ok=True)

    cnn = cnn.cpu().eval()
    with torch.no_grad():
        outputs = cnn(torch.from_numpy(test_in[idx:idx + 1]).float())  # [1, NC, 32, 32]
    predicted = outputs.argmax(dim=1)[0].numpy()                        # [32, 32]
    shown = test_in[idx] if test_in.shape[1] == 3 else np.repeat(test_in[idx], 3, axis=0)
    write_png(os.path.join(outdir, "input_%d.png" % idx), grid([[shown]], pad=0, scale=4))
    write_png(os.path.join(outdir, "input_%d_gt.png" % idx), grid([[test_rgb[idx]]], pad=0, scale=4))
    write_png(os.path.join(outdir, "output_%d.png" % idx),
              grid([[get_cat_rgb(predicted, colours)]], pad=0, scale=4))

    layers = [cnn.out1, cnn.out2, cnn.out3, cnn.out4, cnn.out5]
    for i, act in enumerate(layers):
        maps = act[0].numpy()                                          # [C, h, w]
        lo, hi = maps.min(), maps.max()
        maps = (maps - lo) / (hi - lo + 1e-8)
        per_row = 8
        rows = [list(maps[r:r + per_row]) for r in range(0, len(maps), per_row)]
        write_png(os.path.join(outdir, "conv%d_out_%d.png" % (i + 1, idx)), grid(rows, pad=1, scale=4))
    print("visualization results are saved to %s" % outdir)
    return outdir
