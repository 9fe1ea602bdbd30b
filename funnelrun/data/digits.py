"""scikit-learn's bundled 8x8 handwritten digits (UCI optical recognition of handwritten digits): real
images that need no file, the embedded default image set.

``sklearn.datasets.load_digits`` gives 1,797 images of 8x8 with 17 grey levels 0..16. They are stored
as 8-bit values x_8 = min(16 v, 255), so the n-bit reduction floor(x_8 / 2^(8-n)) of
:mod:`funnelrun.data.images` gives, at 4 bits, x_4 = v for v <= 15 and clamps v = 16 to 15 (17 levels
do not fit in 16); at 5 bits and more every level stays distinct. There is no official split: a
fixed permutation (numpy's frozen ``RandomState(SPLIT_SEED)``, whatever ``data.seed`` is) puts
:data:`TEST_SIZE` images in the test split and the rest in train.
"""
from __future__ import annotations

import numpy as np

from funnelrun.data.image_files import ImageSplits

SPLIT_SEED = 0
TEST_SIZE = 360


def load_digits() -> ImageSplits:
    """1,437 training and 360 test images, (N, 1, 8, 8) uint8 in 0..255."""
    from sklearn.datasets import load_digits as sklearn_digits

    values = sklearn_digits().images  # float64 (1797, 8, 8), integers 0..16
    images = np.minimum(16 * values, 255).astype(np.uint8)[:, None]
    order = np.random.RandomState(SPLIT_SEED).permutation(len(images))
    test, train = np.sort(order[:TEST_SIZE]), np.sort(order[TEST_SIZE:])
    return ImageSplits(train=images[train], test=images[test])
