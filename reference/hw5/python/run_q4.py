import os
import numpy as np
import matplotlib
matplotlib.use("Agg")          # boxes are drawn into files, never shown: the script never blocks
import matplotlib.pyplot as plt
import matplotlib.patches

import skimage
import skimage.measure
import skimage.color
import skimage.restoration
import skimage.io
import skimage.filters
import skimage.morphology
import skimage.segmentation
import skimage.transform

from nn import *
from q4 import *
# do not include any more libraries here!
# no opencv, no sklearn, etc!
import warnings
warnings.simplefilter(action='ignore', category=FutureWarning)
warnings.simplefilter(action='ignore', category=UserWarning)

import pickle
import string
letters = np.array([_ for _ in string.ascii_uppercase[:26]] + [str(_) for _ in range(10)])
params = pickle.load(open('q3_weights.pickle','rb'))

# Reference solution of Q4.3/Q4.4: find the letters, group them into lines, classify each crop.


def group_lines(bboxes):
    """Boxes [y1, x1, y2, x2] grouped into text lines, top to bottom, each line left to right.

    A box starts a new line when its centre lies below the current line's lowest box bottom:
    handwritten lines slope and vary in height, but never overlap vertically."""
    boxes = sorted(bboxes, key=lambda b: (b[0] + b[2]) / 2)
    lines = []
    for b in boxes:
        centre = (b[0] + b[2]) / 2
        if lines and centre < max(c[2] for c in lines[-1]):
            lines[-1].append(b)
        else:
            lines.append([b])
    return [sorted(line, key=lambda b: b[1]) for line in lines]


def crop_to_input(bw, box):
    """One character of the black-on-white image as a network input row [1024]: the box cropped,
    padded to a square with white so the character fills ~70% of it (as in NIST36), resized to
    32x32, transposed (the dataset stores images transposed) and flattened."""
    y1, x1, y2, x2 = box
    crop = bw[y1:y2, x1:x2]
    side = int(max(crop.shape) / 0.7)
    py, px = side - crop.shape[0], side - crop.shape[1]
    square = np.pad(crop, ((py // 2, py - py // 2), (px // 2, px - px // 2)), constant_values=1.0)
    # thicken thin pen strokes before shrinking (an erosion of the white background)
    square = skimage.morphology.erosion(square, np.ones((max(1, side // 20),) * 2))
    small = skimage.transform.resize(square, (32, 32), anti_aliasing=True)   # [32, 32]
    return small.T.reshape(-1)


texts = {}
for img in sorted(os.listdir('../images')):
    im1 = skimage.img_as_float(skimage.io.imread(os.path.join('../images',img)))
    bboxes, bw = findLetters(im1)

    plt.figure()
    plt.imshow(bw, cmap='gray')
    for bbox in bboxes:
        minr, minc, maxr, maxc = bbox
        rect = matplotlib.patches.Rectangle((minc, minr), maxc - minc, maxr - minr,
                                fill=False, edgecolor='red', linewidth=2)
        plt.gca().add_patch(rect)
    plt.savefig('q4_boxes_%s.png' % os.path.splitext(img)[0])
    plt.close()

    # find the rows, crop the bounding boxes, classify every crop of a line at once
    lines = []
    for line in group_lines(bboxes):
        x = np.stack([crop_to_input(bw, b) for b in line])               # [letters, 1024]
        h1 = forward(x, params, 'layer1')
        probs = forward(h1, params, 'output', softmax)                   # [letters, 36]
        lines.append(''.join(letters[np.argmax(probs, axis=1)]))
    texts[img] = lines
    print(img)
    print('\n'.join(lines))
