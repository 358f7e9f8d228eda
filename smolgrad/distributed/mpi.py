"""The "mpi" backend: collectives on NumPy buffers with mpi4py's non-blocking calls.

Faults. Every wait polls its request (which also drives MPI's progress, so an all-reduce
started during backward advances while Python computes) and fails with DistributedError:
- within about a second when a rank on this machine has died (its process is gone);
- after `timeout` when the collective has not finished (a rank hung, or died elsewhere).
An uncaught exception on any rank prints its traceback with the rank and calls MPI_Abort,
which ends every rank at once (otherwise the others would wait forever for it). A rank
killed outright (a signal, the OOM killer) is caught by mpiexec, which kills the others
within about a second and names the dead process's PID; rank 0 prints, at
init_process_group, which PID and host each rank has.
"""

from __future__ import annotations

import atexit
import os
import socket
import sys
import threading
import time
from datetime import timedelta

import numpy as np

from .process_group import DistributedError, ReduceOp

INSTALL_HINT = 'the "mpi" backend needs mpi4py and an MPI library: pip install "smolgrad[dist]" (mpi4py and mpich)'
LIVENESS_PERIOD = 0.25  # seconds between checks that the ranks on this machine are alive
PROGRESS_PERIOD = 0.0005  # seconds between the progress thread's polls of pending requests


def import_mpi():
    """mpi4py's MPI module, or an ImportError that says how to install it."""
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise ImportError(f"smolgrad.distributed: {INSTALL_HINT} ({e})") from None
    except RuntimeError as e:  # mpi4py present but its MPI library failed to load
        raise ImportError(f"smolgrad.distributed: mpi4py could not load an MPI library: {e}. {INSTALL_HINT}") from None
    return MPI


def _process_alive(pid: int) -> bool:
    """Whether process `pid` (on this machine) exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False
    except OSError:  # no procfs (macOS): ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


class MPIGroup:
    """All processes of the MPI job (a duplicate of COMM_WORLD, so that user code on
    COMM_WORLD cannot mix with ours)."""

    name = "mpi"

    def __init__(self, timeout: timedelta):
        MPI = import_mpi()
        self.MPI = MPI
        self.comm = MPI.COMM_WORLD.Dup()
        self.comm.Set_errhandler(MPI.ERRORS_RETURN)  # MPI failures raise in Python
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.timeout = timeout
        self.ops = {ReduceOp.SUM: MPI.SUM, ReduceOp.AVG: MPI.SUM, ReduceOp.PRODUCT: MPI.PROD,
                    ReduceOp.MIN: MPI.MIN, ReduceOp.MAX: MPI.MAX}
        host = socket.gethostname()
        self.peers = self.comm.allgather((host, os.getpid()))
        self.local_peers = [(r, pid) for r, (h, pid) in enumerate(self.peers) if h == host and r != self.rank]
        self._next_check = 0.0
        self._previous_hook = None
        # MPI advances a non-blocking collective only inside MPI calls: while Python computes
        # the rest of backward, a thread polls the pending ones (SMOLGRAD_DIST_PROGRESS=0: off)
        self._lock = threading.Lock()  # one MPI_Test at a time on a request
        self._pending: list = []
        self._wake = threading.Event()
        self._progress = None
        self._stopping = False
        threads_ok = MPI.Query_thread() == MPI.THREAD_MULTIPLE  # (mpi4py's default)
        if self.size > 1 and threads_ok and os.environ.get("SMOLGRAD_DIST_PROGRESS", "1") != "0":
            self._progress = threading.Thread(target=self._poll_pending, name="smolgrad-mpi-progress", daemon=True)
            self._progress.start()
            atexit.register(self._stop_progress)  # before mpi4py's MPI_Finalize (atexit runs in reverse)
        if self.size > 1:
            self._previous_hook = sys.excepthook
            sys.excepthook = self._abort_on_uncaught
            if self.rank == 0:
                shown = ", ".join(f"rank {r} = pid {pid} on {h}" for r, (h, pid) in enumerate(self.peers[:16]))
                more = f", ... ({self.size} ranks)" if self.size > 16 else ""
                print(f"smolgrad.distributed: {self.size} ranks over MPI: {shown}{more}", file=sys.stderr, flush=True)

    # ----- collectives (non-blocking: each returns an MPI request) -----
    def iallreduce(self, buf: np.ndarray, op: ReduceOp):
        return self._started(self.comm.Iallreduce(self.MPI.IN_PLACE, buf, op=self.ops[op]))

    def ibcast(self, buf: np.ndarray, src: int):
        return self._started(self.comm.Ibcast(buf, root=src))

    def iallgather(self, buf: np.ndarray, out: np.ndarray):
        return self._started(self.comm.Iallgather(buf, out))

    def ibarrier(self):
        return self._started(self.comm.Ibarrier())

    def test(self, request) -> bool:
        with self._lock:
            return request.Test()

    def _started(self, request):
        if self._progress is not None:
            with self._lock:
                self._pending.append(request)
            self._wake.set()
        return request

    def _poll_pending(self) -> None:
        """The progress thread: test the pending requests every PROGRESS_PERIOD while there are any."""
        while True:
            self._wake.wait()
            with self._lock:
                if self._stopping:
                    return
                self._pending = [r for r in self._pending if not r.Test()]
                if not self._pending:
                    self._wake.clear()
            time.sleep(PROGRESS_PERIOD)

    def wait(self, request, what: str, timeout: timedelta | None = None) -> None:
        """Poll `request` until it completes, checking that the ranks are alive."""
        limit = (timeout or self.timeout).total_seconds()
        start = time.monotonic()
        pause = 0.0
        while not self.test(request):
            now = time.monotonic()
            if now >= self._next_check:
                self._next_check = now + LIVENESS_PERIOD
                self.check_peers(what)
            if now - start > limit:
                raise DistributedError(
                    f"smolgrad.distributed: rank {self.rank} timed out after {limit:g} s waiting for {what}: some rank "
                    "has not joined it (it hung, died on another machine, or runs different code). Raise the timeout "
                    "with init_process_group(timeout=...) or SMOLGRAD_DIST_TIMEOUT if a step legitimately takes longer."
                )
            time.sleep(pause)
            pause = min(2 * pause or 2e-6, 1e-3)  # back off to 1 ms: the other ranks share these cores

    def check_peers(self, what: str = "a collective") -> None:
        """Raise DistributedError naming the first rank on this machine whose process is gone."""
        for r, pid in self.local_peers:
            if not _process_alive(pid):
                raise DistributedError(
                    f"smolgrad.distributed: rank {r} (pid {pid}) died; rank {self.rank} stops waiting for {what}"
                )

    # ----- faults -----
    def _abort_on_uncaught(self, exc_type, exc, tb) -> None:
        """sys.excepthook: print the traceback, then end the whole job (MPI_Abort), so the
        other ranks do not wait forever for this one."""
        sys.stderr.write(f"smolgrad.distributed: rank {self.rank} of {self.size} raised an uncaught exception:\n")
        (self._previous_hook or sys.__excepthook__)(exc_type, exc, tb)
        sys.stderr.write(f"smolgrad.distributed: aborting the job from rank {self.rank} (MPI_Abort)\n")
        sys.stderr.flush()
        sys.stdout.flush()
        self.comm.Abort(1)

    def _stop_progress(self) -> None:
        with self._lock:
            self._stopping = True
        self._wake.set()
        if self._progress is not None:
            self._progress.join()
            atexit.unregister(self._stop_progress)
        self._progress = None

    def close(self) -> None:
        self._stop_progress()
        comm, self.comm = self.comm, None
        if self._previous_hook is not None and sys.excepthook == self._abort_on_uncaught:
            sys.excepthook = self._previous_hook
        self._previous_hook = None
        if comm is not None and not self.MPI.Is_finalized():
            comm.Free()
