import numpy as np

import skimage
import skimage.measure
import skimage.color
import skimage.restoration
import skimage.filters
import skimage.morphology
import skimage.segmentation

# takes a color image
# returns a list of bounding boxes and black_and_white image
def findLetters(image):
    """Find the characters of a photographed page.

    image -- float image [H, W, 3] (or [H, W, 4], or grey [H, W]) in [0, 1], dark ink on paper
    returns (bboxes, bw): bboxes a list of [y1, x1, y2, x2] (regionprops' bbox: top-left and
    bottom-right, the latter exclusive), one per character; bw a float image [H, W] in [0, 1]
    with the characters black (0) on white (1).
    """
    # greyscale [H, W]
    if image.ndim == 3:
        grey = skimage.color.rgb2gray(image[..., :3])
    else:
        grey = np.asarray(image, dtype=np.float64)

    # the morphology is scaled to the image: phone photos are ~10x larger than a scanned page
    scale = max(1, int(round(max(grey.shape) / 800)))

    # denoise, then split ink from paper with Otsu's threshold
    smooth = skimage.filters.gaussian(grey, sigma=scale)
    ink = smooth < skimage.filters.threshold_otsu(smooth)            # True on ink

    # join the broken strokes of a character (pen pressure, JPEG); drop what touches the border
    # (page edges, shadows)
    ink = skimage.morphology.closing(ink, np.ones((2 * scale + 1, 2 * scale + 1), dtype=bool))
    ink = skimage.segmentation.clear_border(ink)

    # one connected component per character; skip specks far smaller than a typical character
    labels = skimage.measure.label(ink, connectivity=2)
    regions = skimage.measure.regionprops(labels)
    if regions:
        areas = np.array([r.area for r in regions])
        typical = np.median(areas[areas >= 0.1 * areas.max()])
        min_area = max(20 * scale * scale, 0.15 * typical)
        regions = [r for r in regions if r.area >= min_area]
    bboxes = [list(r.bbox) for r in regions]

    bw = (~ink).astype(np.float64)                                     # black ink on white
    return bboxes, bw
