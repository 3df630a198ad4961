"""Data: datasets, the loader, transforms and batch mixing (``torch.utils.data`` + torchvision).

    from tinyvision.data import DataLoader, digits, transforms as T
    train = digits(train=True, size=32, transform=T.RandomAffine(10, translate=(0.1, 0.1)))
    for images, labels in DataLoader(train, batch_size=64, shuffle=True, seed=0): ...
"""
from tinyvision.data import functional, joint, transforms
from tinyvision.data.dataset import Dataset, Subset, TensorDataset, random_split
from tinyvision.data.digits import digits
from tinyvision.data.folder import ImageFolder
from tinyvision.data.loader import DataLoader, default_collate, default_convert
from tinyvision.data.mix import CutMix, MixUp, soft_target_cross_entropy
from tinyvision.data.readers import cifar10, fashion_mnist, mnist, read_cifar_batch, read_idx
from tinyvision.data.shapes import shapes, shapes_scenes

__all__ = ["Dataset", "Subset", "TensorDataset", "random_split", "DataLoader", "default_collate", "default_convert",
           "digits", "shapes", "shapes_scenes", "mnist", "fashion_mnist", "cifar10", "read_idx", "read_cifar_batch",
           "ImageFolder",
           "MixUp", "CutMix", "soft_target_cross_entropy", "functional", "joint", "transforms"]
