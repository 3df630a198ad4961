"""Kernel benchmarks: each rung of a kernel ladder and PyTorch on the same shapes.

The protocol is one function per module: ``run(device: str = "cpu") -> Report`` (a
``benchmarks.runner.Report``). ``python -m benchmarks.kernels`` imports every module in this
folder that defines ``run`` (conv, pooling, attention, ...), calls it, prints the table and
writes ``benchmarks/results/<report name>.json``. A module that has nothing for a device
returns an empty Report.
"""
