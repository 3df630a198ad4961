"""Computational imaging: the degradations of image restoration (noise, blur, downsampling,
JPEG), the offline photographs and their fixed train/val/test split, patch datasets that
degrade on the fly, and Eulerian motion magnification (``tinyvision.imaging.magnify``)."""
from tinyvision.imaging.degradations import (  # noqa: F401
    blur, downsample, gaussian_kernel, gaussian_noise, jpeg, motion_kernel, poisson_noise, upsample)
from tinyvision.imaging.io import read_image, to_uint8, write_image  # noqa: F401
from tinyvision.imaging.patches import DegradedImages, PatchDataset, dihedral  # noqa: F401
from tinyvision.imaging.photos import TEST_PHOTOS, TRAIN_PHOTOS, VAL_PHOTOS, load_photo, load_photos  # noqa: F401
