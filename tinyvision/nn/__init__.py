"""Neural-network building blocks, PyTorch-shaped: ``Module``, ``Parameter``, containers,
layers (same names, arguments, defaults and state_dict keys as ``torch.nn``) and ``init``.
``tinyvision.nn.functional`` holds the ops. See docs/nn.md.
"""
from tinyvision.nn import functional, init, utils
from tinyvision.nn.activation import (ELU, GELU, GLU, SELU, Hardsigmoid, Hardswish, Hardtanh, LeakyReLU,
                                      LogSigmoid, Mish, PReLU, ReLU, ReLU6, Sigmoid, SiLU, Softmax, Softplus,
                                      Softsign, Tanh)
from tinyvision.nn.attention import MultiheadAttention
from tinyvision.nn.conv import Conv1d, Conv2d, Conv3d, ConvTranspose2d, Fold, Unfold
from tinyvision.nn.dropout import Dropout, Dropout1d, Dropout2d, Dropout3d
from tinyvision.nn.embedding import Embedding
from tinyvision.nn.transformer import (Transformer, TransformerDecoder, TransformerDecoderLayer,
                                       TransformerEncoder, TransformerEncoderLayer)
from tinyvision.nn.linear import Flatten, Linear, Unflatten
from tinyvision.nn.loss import (BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, HuberLoss, KLDivLoss, L1Loss,
                                MSELoss, NLLLoss, SmoothL1Loss)
from tinyvision.nn.container import ModuleDict, ModuleList, ParameterDict, ParameterList, Sequential
from tinyvision.nn.module import Identity, IncompatibleKeys, Module, RemovableHandle
from tinyvision.nn.parameter import Parameter
from tinyvision.nn.normalization import (BatchNorm1d, BatchNorm2d, GroupNorm, InstanceNorm1d, InstanceNorm2d,
                                         InstanceNorm3d, LayerNorm, LocalResponseNorm)
from tinyvision.nn.padding import ConstantPad2d, ReflectionPad2d, ReplicationPad2d, ZeroPad2d
from tinyvision.nn.pooling import AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool2d, MaxPool2d
from tinyvision.nn.upsample import PixelShuffle, PixelUnshuffle, Upsample
