# Colourization, written independently of the reference: a student-style 2019 notebook solution.
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class MyConv2d(nn.Module):
    """Convolution as a matrix product over unfolded patches."""

    def __init__(self, in_channels, out_channels, kernel_size, padding=None):
        super(MyConv2d, self).__init__()
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.padding = kernel_size // 2 if padding is None else padding
        n = in_channels * kernel_size * kernel_size
        self.weight = nn.Parameter(torch.Tensor(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.Tensor(out_channels))
        self.weight.data.uniform_(-1.0 / math.sqrt(n), 1.0 / math.sqrt(n))
        self.bias.data.uniform_(-1.0 / math.sqrt(n), 1.0 / math.sqrt(n))

    def forward(self, x):
        b, _, h, w = x.shape
        cols = F.unfold(x, self.kernel_size, padding=self.padding)          # [B, C*k*k, L]
        out = self.weight.view(self.out_channels, -1) @ cols                # [B, O, L]
        out = out + self.bias.view(1, -1, 1)
        hout = h + 2 * self.padding - self.kernel_size + 1
        wout = w + 2 * self.padding - self.kernel_size + 1
        return out.view(b, self.out_channels, hout, wout)


def block(cin, cout, k, pool=False, up=False):
    layers = [MyConv2d(cin, cout, k), nn.BatchNorm2d(cout), nn.ReLU()]
    if pool:
        layers.append(nn.MaxPool2d(2))
    if up:
        layers.insert(1, nn.Upsample(scale_factor=2))
    return nn.Sequential(*layers)


class CNN(nn.Module):
    def __init__(self, kernel, num_filters, num_colours, num_in_channels=1):
        super(CNN, self).__init__()
        self.downconv1 = block(num_in_channels, num_filters, kernel, pool=True)
        self.downconv2 = block(num_filters, num_filters * 2, kernel, pool=True)
        self.rfconv = block(num_filters * 2, num_filters * 2, kernel)
        self.upconv1 = block(num_filters * 2, num_filters, kernel, up=True)
        self.upconv2 = block(num_filters, num_colours, kernel, up=True)
        self.finalconv = MyConv2d(num_colours, num_colours, kernel)

    def forward(self, x):
        self.out1 = self.downconv1(x)
        self.out2 = self.downconv2(self.out1)
        self.out3 = self.rfconv(self.out2)
        self.out4 = self.upconv1(self.out3)
        self.out5 = self.upconv2(self.out4)
        self.out_final = self.finalconv(self.out5)
        return self.out_final


class UNet(nn.Module):
    def __init__(self, kernel, num_filters, num_colours, num_in_channels=1):
        super(UNet, self).__init__()
        self.downconv1 = block(num_in_channels, num_filters, kernel, pool=True)
        self.downconv2 = block(num_filters, num_filters * 2, kernel, pool=True)
        self.rfconv = block(num_filters * 2, num_filters * 2, kernel)
        self.upconv1 = block(num_filters * 4, num_filters, kernel, up=True)
        self.upconv2 = block(num_filters * 2, num_colours, kernel, up=True)
        self.finalconv = MyConv2d(num_colours + num_in_channels, num_colours, kernel)

    def forward(self, x):
        self.out1 = self.downconv1(x)
        self.out2 = self.downconv2(self.out1)
        self.out3 = self.rfconv(self.out2)
        self.out4 = self.upconv1(torch.cat((self.out2, self.out3), 1))
        self.out5 = self.upconv2(torch.cat((self.out1, self.out4), 1))
        self.out_final = self.finalconv(torch.cat((x, self.out5), 1))
        return self.out_final


def process(xs, ys, max_pixel=256.0, downsize_input=False):
    xs = xs / max_pixel
    xs = xs[np.where(ys == 7)[0], :, :, :]
    np.random.shuffle(xs)
    if downsize_input:
        t = torch.from_numpy(xs).float()
        small = nn.AvgPool2d(2)(nn.AvgPool2d(2)(t))
        big = nn.Upsample(scale_factor=2)(nn.Upsample(scale_factor=2)(small))
        return xs, big.numpy()
    grey = np.mean(xs, axis=1, keepdims=True)
    return xs, grey
