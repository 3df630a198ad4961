"""Neural-network layers (filled by the nn issue); ``tinyvision.nn.functional`` holds the ops."""
from tinyvision.nn import functional
