"""Neural-network building blocks, PyTorch-shaped: ``Module``, ``Parameter``, containers,
layers (same names, arguments, defaults and state_dict keys as ``torch.nn``) and ``init``.
``tinyvision.nn.functional`` holds the ops. See docs/nn.md.
"""
from tinyvision.nn import functional, init, utils
from tinyvision.nn.activation import GELU, ReLU, Sigmoid, SiLU, Softmax, Tanh
from tinyvision.nn.attention import MultiheadAttention
from tinyvision.nn.conv import Conv2d, ConvTranspose2d
from tinyvision.nn.dropout import Dropout
from tinyvision.nn.embedding import Embedding
from tinyvision.nn.transformer import (Transformer, TransformerDecoder, TransformerDecoderLayer,
                                       TransformerEncoder, TransformerEncoderLayer)
from tinyvision.nn.linear import Flatten, Linear
from tinyvision.nn.container import ModuleDict, ModuleList, Sequential
from tinyvision.nn.module import Identity, IncompatibleKeys, Module, RemovableHandle
from tinyvision.nn.parameter import Parameter
from tinyvision.nn.normalization import (BatchNorm1d, BatchNorm2d, GroupNorm, LayerNorm,
                                         LocalResponseNorm)
from tinyvision.nn.pooling import AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool2d, MaxPool2d
from tinyvision.nn.upsample import Upsample
