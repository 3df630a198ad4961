"""The process group: who am I (rank), how many are we (world size), and the collectives that
data parallelism needs, over MPI through ``mpi4py``.

``mpiexec -n 4 python train.py`` starts four copies of the same program; ``init()`` tells each
one its rank (0..3) and the world size (4). From then on the processes talk only through
collectives, calls that every rank makes in the same order:

    all_reduce(a)   every rank ends with the element-wise sum (or mean) of all ranks' ``a``
    broadcast(a)    every rank ends with rank 0's ``a``
    barrier()       nobody goes on until everybody has arrived

Every wait here has a deadline (``init(timeout=...)``): a rank that died or stalls would
otherwise leave the others waiting in a collective forever. A timeout raises
``DistributedError``; an uncaught exception on any rank (that one included) prints its
traceback and aborts the whole job (``MPI_Abort``), so ``mpiexec`` returns a non-zero exit code
within the timeout instead of hanging. A rank killed outright (out of memory, ``kill -9``) is
noticed by ``mpiexec`` itself, which then ends the others.

Without ``init()`` (a plain ``python`` run) the world is one process: rank 0 of 1, and every
collective returns its input unchanged, so the same script runs with or without ``mpiexec``.
"""
from __future__ import annotations

import pickle
import sys
import time
import traceback
from typing import Any

import numpy as np

from tinyvision.kernels import compat


class DistributedError(RuntimeError):
    """A collective did not finish in time: another rank died or stalls."""


_comm: Any = None  # the MPI communicator once init() ran (a duplicate of COMM_WORLD)
_timeout: float = 600.0


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError as e:  # the `mpi` extra is optional
        raise ImportError("tinyvision.distributed needs mpi4py and an MPI library: "
                          "pip install 'tinyvision[mpi]' (mpi4py + the mpich wheel, which brings mpiexec)") from e
    return MPI


def init(timeout: float | None = None) -> tuple[int, int]:
    """Join the MPI job this process was started in; returns ``(rank, world_size)``.

    timeout: seconds any collective may wait before it raises ``DistributedError`` (a dead or
        stalled rank must never make the others hang); None keeps the current limit (600 s
        unless an earlier call set another).

    Calling it again returns the same answer. Under plain ``python`` (no ``mpiexec``) MPI
    makes a world of one process, and everything still works.
    """
    global _comm, _timeout
    if timeout is not None:
        if timeout <= 0:
            raise ValueError(f"init: timeout must be > 0 seconds, got {timeout}")
        _timeout = float(timeout)
    if _comm is None:
        MPI = _mpi()
        _comm = MPI.COMM_WORLD.Dup()  # our own channel: a user's MPI traffic cannot mix with ours
        _install_abort_on_exception()
    return _comm.Get_rank(), _comm.Get_size()


def is_initialized() -> bool:
    return _comm is not None


def get_rank() -> int:
    """This process's rank (0 when not initialised)."""
    return _comm.Get_rank() if _comm is not None else 0


def get_world_size() -> int:
    """How many processes take part (1 when not initialised)."""
    return _comm.Get_size() if _comm is not None else 1


def is_main_process() -> bool:
    """Rank 0: the one that writes checkpoints, CSV files and pictures."""
    return get_rank() == 0


def abort(message: str, code: int = 1) -> None:
    """Print ``message`` on stderr, prefixed with this rank, and end every rank of the job."""
    print(f"[rank {get_rank()}] {message}", file=sys.stderr, flush=True)
    if _comm is not None and get_world_size() > 1:
        _comm.Abort(code)  # mpiexec kills the other ranks and exits with this code
    raise SystemExit(code)


def _install_abort_on_exception() -> None:
    """An uncaught exception on one rank would leave the others waiting in their next
    collective: print it, then abort the whole job. (``SystemExit`` never reaches the hook: a
    rank that exits on its own is caught by the others' timeout.)"""
    previous = sys.excepthook

    def hook(kind, value, tb):
        if get_world_size() <= 1 or issubclass(kind, KeyboardInterrupt):
            return previous(kind, value, tb)
        text = "".join(traceback.format_exception(kind, value, tb))
        abort(f"stopping all {get_world_size()} ranks after an error on this rank:\n{text}")

    sys.excepthook = hook


def wait(requests: list, what: str) -> None:
    """Wait for non-blocking MPI requests, but no longer than the timeout.

    Polling with ``Testall`` (rather than a blocking ``Waitall``) is what lets us give up: a
    blocking wait on a dead peer never returns. The first 100 us spin (a small all-reduce on one
    machine takes a few us); after that the sleep between polls grows from 20 us to 1 ms, so
    that a long wait does not burn a core that the other rank may need.
    """
    MPI = _mpi()
    start = time.monotonic()
    pause = 2e-5
    while not MPI.Request.Testall(requests):
        waited = time.monotonic() - start
        if waited > _timeout:
            raise DistributedError(
                f"rank {get_rank()}: {what} did not finish within {_timeout:g} s: another rank has died "
                "or stalls (raise the limit with tinyvision.distributed.init(timeout=...))")
        if waited > 1e-4:
            time.sleep(pause)
            pause = min(pause * 2, 1e-3)


def poll(requests: list) -> bool:
    """True when every request is done; also lets MPI move them on (see ``wait``)."""
    return bool(requests) and _mpi().Request.Testall(requests)


def _host(array: Any) -> np.ndarray:
    """MPI reads host memory: CuPy arrays go through the CPU (a CUDA-aware MPI could skip it)."""
    if not isinstance(array, np.ndarray):
        array = compat.to_numpy(array)
    if not array.flags.c_contiguous:
        raise ValueError(f"collectives need a contiguous array, got strides {array.strides}")
    return array


def iall_reduce(array: np.ndarray) -> Any:
    """Start summing ``array`` over all ranks, in place; returns the request to ``wait`` on."""
    return _comm.Iallreduce(_mpi().IN_PLACE, array, op=_mpi().SUM)


def all_reduce(array: Any, op: str = "sum") -> Any:
    """Element-wise sum (``op="sum"``) or mean (``op="mean"``) of ``array`` over all ranks;
    returns a new array of the same shape and dtype (the input is left as it is)."""
    if op not in ("sum", "mean"):
        raise ValueError(f"all_reduce: op must be 'sum' or 'mean', got {op!r}")
    out = np.array(compat.to_numpy(array), copy=True, order="C")  # a host copy MPI can write into
    if get_world_size() > 1:
        wait([iall_reduce(out)], f"all_reduce of {out.shape} {out.dtype}")
    if op == "mean":
        out = out / get_world_size()
    return out if compat.array_module(array) is np else compat.to_device(out, "cuda")


def broadcast(array: Any, src: int = 0) -> None:
    """Overwrite ``array`` (in place) on every rank with rank ``src``'s."""
    if get_world_size() <= 1:
        return
    host = _host(array)
    wait([_comm.Ibcast(host, root=src)], f"broadcast of {host.shape} {host.dtype} from rank {src}")
    if host is not array:
        array[...] = compat.to_device(host, "cuda")


def all_gather_object(obj: Any) -> list:
    """Every rank's picklable object, as a list by rank, on every rank (small things: RNG
    states, metrics). Built from two timed all-reduces: first each rank's byte count in its
    own slot, then each rank's bytes in its own segment of one buffer (zeros elsewhere)."""
    if get_world_size() <= 1:
        return [obj]
    mine = np.frombuffer(pickle.dumps(obj), dtype=np.uint8)
    sizes = np.zeros(get_world_size(), dtype=np.int64)
    sizes[get_rank()] = mine.size
    sizes = all_reduce(sizes)
    ends = np.cumsum(sizes)
    buffer = np.zeros(int(ends[-1]), dtype=np.uint8)
    buffer[ends[get_rank()] - mine.size:ends[get_rank()]] = mine
    buffer = all_reduce(buffer)  # each byte is one rank's value plus zeros from the others
    return [pickle.loads(buffer[end - n:end].tobytes()) for n, end in zip(sizes, ends)]


def barrier() -> None:
    """Block until every rank has called ``barrier()`` (with the timeout)."""
    if get_world_size() > 1:
        wait([_comm.Ibarrier()], "barrier")
