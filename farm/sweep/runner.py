"""The farm: run the cells of a sweep on Ray and store every finished cell as it arrives.

The only module that imports Ray. Default: an embedded local Ray (listening on 127.0.0.1 only, no
dashboard, worker logs not forwarded, one worker per core); with an address (`--address` or
RAY_ADDRESS) it joins a cluster started with `ray start`.

- Resume is a set difference: the cells whose id already has a row are not run again (failed
  ones are, with `rerun_failed`).
- Cells are batched into tasks of about `TARGET_TASK_S` seconds of work (a cost estimate rescaled
  by the cell times measured so far), so Ray's per-task overhead stays small against the cells
  however tiny they are, while the last tasks shrink for load balance and Ctrl-C loses at most
  one task per worker.
- numba: the kernels are compiled with cache=True. Before Ray starts, the compile units of the
  planned cells run in parallel processes (warmup.py; nothing when the cache is marked warm), and
  on a multi-node cluster every node runs the same units in one task before any cell, so no two
  workers compile concurrently.
- A cell that raises is stored with status `error` and its message. A worker process that dies is
  retried by Ray (`max_retries`); the driver writes a task's rows only when the task returns, so
  a retried cell is stored once. A task that still fails is split into one task per cell, so only
  the cell that kills its worker ends as an error. Each such event is told in one line (`warn`)
  instead of Ray's own text, which `verbose` prints as well.
- Ctrl-C (SIGINT) stops scheduling, cancels the running tasks and returns; every stored cell is
  kept and the next run computes only the missing ones.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import logging
import os
import re
import signal
import socket
import sys
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from kernels import MODEL_VERSION

from .plan import Cell, Plan
from .results import error_row, ok_row
from .store import Store
from .warmup import compile_model, compile_units, warm_up

TARGET_TASK_S = 2.0
MAX_BATCH = 256
MAX_RETRIES = 3


class RunnerError(RuntimeError):
    """An error a user can cause that is not in the sweep file (e.g. an unreachable --address)."""

    def __init__(self, key: str, message: str):
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


@dataclass
class RunSummary:
    sweep: str
    out: str
    run_id: str
    status: str = "complete"       # complete | interrupted | nothing to do
    planned: int = 0               # cells in the plan
    stored_before: int = 0         # planned cells already stored (ok or error) at the start
    todo: int = 0                  # cells this run set out to compute
    computed: int = 0              # cells computed and stored by this run
    errors: int = 0                # of those, status error
    errors_total: int = 0          # planned cells whose latest row is an error, after the run
    workers: int = 0
    nodes: int = 0
    batches: int = 0
    split_batches: int = 0         # tasks that failed after Ray's retries and were split per cell
    address: str | None = None
    warm_s: float = 0.0            # compiling the model before the sweep (0 with the cache warm)
    ray_start_s: float = 0.0
    compute_s: float = 0.0         # first task submitted -> last result stored
    wall_s: float = 0.0
    computed_ids: list[str] = field(default_factory=list)
    error_examples: list[dict[str, str]] = field(default_factory=list)

    def record(self) -> dict[str, Any]:
        """The line appended to runs.jsonl."""
        return {k: v for k, v in asdict(self).items() if k not in ("computed_ids", "error_examples")}


def estimate_s(cell: Cell) -> float:
    """A rough relative cost of one cell (per operation, per page, per cell), for batching only:
    the batcher rescales it by the cell times it measures."""
    p = cell.params
    return 80e-9 * p.get("ops", 0) + 40e-9 * p.get("nr_pages", 0) + 2e-3


class Batcher:
    """Cuts the cells (in plan order) into tasks as they are submitted.

    A task gets about `target_s` seconds of work, judged by `estimate_s` times the ratio of
    measured to estimated time over the tasks returned so far (`observe`); until the first task
    returns, tasks are kept short. Near the end tasks shrink so that the remaining work is spread
    over at least four tasks per worker slot: no worker is left with a long tail."""

    def __init__(self, cells: list[Cell], slots: int, batch_size: int | None = None,
                 target_s: float = TARGET_TASK_S):
        self.queue: deque[tuple[Cell, float]] = deque((c, estimate_s(c)) for c in cells)
        self.remaining = sum(e for _, e in self.queue)
        self.slots = max(slots, 1)
        self.batch_size = batch_size
        self.target_s = target_s
        self.singles: deque[Cell] = deque()
        self.measured = 0.0
        self.estimated = 0.0

    def __len__(self) -> int:
        return len(self.queue) + len(self.singles)

    def scale(self) -> float | None:
        return self.measured / self.estimated if self.estimated > 0 and self.measured > 0 else None

    def take(self) -> list[Cell]:
        if self.singles:
            return [self.singles.popleft()]
        if self.batch_size:
            n = self.batch_size
        else:
            scale = self.scale()
            budget = self.target_s if scale is not None else self.target_s / 8
            budget = min(budget, self.remaining * (scale or 1.0) / (4 * self.slots))
            acc, n = 0.0, 0
            for _, est in self.queue:
                n += 1
                acc += est * (scale or 1.0)
                if acc >= budget or n >= MAX_BATCH:
                    break
        batch = [self.queue.popleft() for _ in range(min(n, len(self.queue)))]
        self.remaining -= sum(e for _, e in batch)
        return [c for c, _ in batch]

    def put_back(self, cells: list[Cell]) -> None:
        """Cells to run next, one per task (those of a task that failed after Ray's retries)."""
        self.singles.extend(cells)

    def observe(self, cells: list[Cell], rows: list[dict[str, Any]]) -> None:
        measured = sum(r.get("cell_s") or 0.0 for r in rows)
        if measured > 0:
            self.measured += measured
            self.estimated += sum(estimate_s(c) for c in cells)


def make_batches(cells: list[Cell], slots: int, batch_size: int | None = None,
                 target_s: float = TARGET_TASK_S) -> list[list[Cell]]:
    """The tasks a Batcher cuts when no task has returned yet (no measurements)."""
    b = Batcher(cells, slots, batch_size, target_s)
    out = []
    while len(b):
        out.append(b.take())
    return out


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def run_batch(cells: list[Cell], sweep: str, run_id: str, model_version: str,
              cell_fn: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Body of one task: run each cell, catching its exceptions into error rows."""
    import kernels
    from ..cell.simulate import run
    fn = cell_fn or run
    host, pid = socket.gethostname(), os.getpid()
    try:
        node = ray.get_runtime_context().get_node_id()
    except Exception:
        node = None
    rows = []
    for cell in cells:
        t0 = time.perf_counter()

        def provenance() -> dict[str, Any]:
            return {"cell_s": time.perf_counter() - t0, "finished_at": _utc_now(), "run_id": run_id,
                    "host": host, "node": node, "pid": pid}

        if kernels.MODEL_VERSION != model_version:
            rows.append(error_row(cell.id, sweep, cell.params, model_version,
                                  f"this worker has model version {kernels.MODEL_VERSION}, the sweep "
                                  f"was planned with {model_version}", provenance()))
            continue
        try:
            result = fn(cell.run_params, zone_map=True)
            row = ok_row(cell.id, sweep, cell.params, result, provenance())
        except Exception as e:
            row = error_row(cell.id, sweep, cell.params, model_version, f"{type(e).__name__}: {e}",
                            provenance())
        rows.append(row)
    return rows


_run_batch_task = ray.remote(max_retries=MAX_RETRIES)(run_batch)
_warm_task = ray.remote(max_retries=MAX_RETRIES)(warm_up)


def _quiet_ray_logs() -> None:
    # A new local Ray announces its token authentication on every start; the sweep output is
    # the progress line, so only Ray's errors are shown.
    for name in ("ray", "ray._private.authentication.authentication_token_setup"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _adopt_auth_token() -> None:
    """Send Ray's authentication token when joining a cluster, if this machine has one.

    `ray start --head` turns token authentication on when a token exists (~/.ray/auth_token, which
    any local Ray run creates), and `ray.init()` does the same for a cluster it finds by itself, but
    `ray.init(address=...)` does not and is then refused. This applies Ray's own rule (a token sent
    to a cluster without authentication is ignored). RAY_AUTH_MODE, when set, is respected."""
    try:
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available,
        )
    except ImportError:  # a Ray without token authentication
        return
    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


LOOPBACK = "127.0.0.1"


@contextlib.contextmanager
def _single_machine_addresses():
    """While an embedded Ray starts, let it take the loopback address as its node address.

    Ray 2.60 binds its servers (GCS, the raylet's node manager and object manager, each worker's
    and the driver's core worker, the runtime env and dashboard agents, the metrics exporter) to
    the loopback address when the node address is a loopback one, else to all interfaces (a few
    to the node address). But on Linux `ray.init`
    replaces a loopback node address by the machine's outward one (it expects other nodes to join),
    unless cluster support is off: `ray_constants.ENABLE_RAY_CLUSTER`, which Ray reads from
    RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER when it is imported and leaves off on Windows and macOS
    for this very reason. An embedded Ray is never joined, so cluster support is off while it
    starts; it is put back at once, for a later `ray.init(address=...)` in the same process."""
    from ray._private import ray_constants
    previous = getattr(ray_constants, "ENABLE_RAY_CLUSTER", None)
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = previous


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def start_ray(address: str | None, workers: int | None) -> bool:
    """Connect to `address`, or start an embedded local Ray with `workers` CPUs (default: all
    cores) that listens on the loopback address only (no dashboard, no client server). Returns
    whether this call started Ray (and so must shut it down)."""
    if ray.is_initialized():
        return False
    _quiet_ray_logs()
    common = {"log_to_driver": False, "logging_level": logging.ERROR}
    try:
        if address:
            _adopt_auth_token()
            ray.init(address=address, **common)
        else:
            with _single_machine_addresses():
                ray.init(address="local", num_cpus=workers or os.cpu_count() or 1,
                         _node_ip_address=LOOPBACK, include_dashboard=False, dashboard_host=LOOPBACK,
                         **common)
    except Exception as e:
        if address:
            raise RunnerError("--address", f"cannot connect to a Ray cluster at {address}: "
                              f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
        raise
    if not address:
        node_ip = ray.util.get_node_ip_address()
        if not _is_loopback(node_ip):  # this Ray's rule changed: its servers listen on the network
            ray.shutdown()
            raise RuntimeError(f"the embedded Ray took the node address {node_ip} instead of {LOOPBACK}, "
                               f"so its servers would listen on the network: stopped it")
    return True


def _cluster_cpus() -> int:
    return int(ray.cluster_resources().get("CPU", 1))


def _alive_nodes() -> list[dict[str, Any]]:
    return [n for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) > 0]


class _Interrupt:
    """SIGINT -> a flag checked between phases and between tasks: no write is cut in half, and a
    Ctrl-C during numba's compilation (which swallows KeyboardInterrupt) is not lost."""

    def __init__(self) -> None:
        self.stop = False
        self._previous = None

    def __enter__(self) -> "_Interrupt":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def _handler(self, signum, frame) -> None:
        self.stop = True
        # A second Ctrl-C while we clean up interrupts for real.
        signal.signal(signal.SIGINT, self._previous or signal.default_int_handler)

    def check(self) -> None:
        if self.stop:
            raise KeyboardInterrupt

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _progress(total: int, desc: str, enabled: bool):
    from tqdm import tqdm
    tty = sys.stderr.isatty()
    return tqdm(total=total, desc=desc, unit="cell", file=sys.stderr, disable=not enabled or total == 0,
                mininterval=0.5 if tty else 10.0, dynamic_ncols=tty, smoothing=0.05)


def new_run_id() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ") + f"-{os.getpid()}"


def run_sweep(plan: Plan, out: str | Path, *, address: str | None = None, workers: int | None = None,
              rerun_failed: bool = False, batch_size: int | None = None, progress: bool = True,
              log: Callable[[str], None] | None = None,
              cell_fn: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
              warn: Callable[[str], None] | None = None, verbose: bool = False) -> RunSummary:
    """Compute the cells of `plan` missing from the store at `out`; see the module docstring.

    `log` gets the progress messages; `warn` (default: `log`, else stderr) one line per event of
    the run a user should know of (a worker process died, a task failed after Ray's retries), in
    place of Ray's own multi-line messages, which are printed as well with `verbose`.
    `cell_fn` replaces `farm.cell.simulate.run` in the workers, called as it is (the cell's
    parameters, zone_map=True); tests use it to make cells fail or report their process. If Ray is already initialised in this process it is used as it is."""
    t_start = time.perf_counter()
    say = log or (lambda msg: None)
    warn = warn or log or (lambda msg: print(msg, file=sys.stderr))
    address = address or os.environ.get("RAY_ADDRESS") or None
    store = Store(out)
    summary = RunSummary(sweep=plan.name, out=str(out), run_id=new_run_id(), planned=len(plan.cells),
                         address=address)
    stored = store.status() if store.exists() else {}
    planned = {c.id for c in plan.cells}
    summary.stored_before = sum(1 for cid in stored if cid in planned)
    todo = [c for c in plan.cells if c.id not in stored or (rerun_failed and stored[c.id] == "error")]
    summary.todo = len(todo)
    if summary.stored_before:
        say(f"{summary.stored_before} of them already stored; {len(todo)} to compute")
    if not todo:
        summary.status = "nothing to do"
        summary.errors_total = sum(1 for cid, st in stored.items() if cid in planned and st == "error")
        summary.wall_s = time.perf_counter() - t_start
        return summary

    started = False
    try:
        with _Interrupt() as interrupt:
            units = compile_units([c.run_params for c in todo])
            compiled = compile_model(units, processes=workers, progress=progress, check=interrupt.check)
            summary.warm_s = compiled.seconds
            if compiled.units:
                say(f"compiled the model ({', '.join(compiled.units)}) in {compiled.seconds:.1f} s; "
                    "the next runs load it from the cache")
            interrupt.check()
            t0 = time.perf_counter()
            started = start_ray(address, workers)
            summary.ray_start_s = time.perf_counter() - t0
            interrupt.check()
            nodes = _alive_nodes()
            summary.nodes = len(nodes)
            cpus = _cluster_cpus()
            summary.workers = min(workers, cpus) if workers else cpus
            if len(nodes) > 1:
                _warm_nodes(nodes, [u.params for u in units], interrupt)
            say(f"Ray: {summary.workers} workers on {summary.nodes} node(s)"
                + (f" at {address}" if address else " (embedded)")
                + f", started in {summary.ray_start_s:.1f} s")

            store.create()
            with store.lock():
                store.clean_temporaries()
                store.write_manifest(plan.summary(), [c.id for c in plan.cells])
                _schedule(plan, todo, store, summary, batch_size, progress, cell_fn, stored, interrupt,
                          warn, verbose)
    except KeyboardInterrupt:
        summary.status = "interrupted"
    finally:
        if started:
            ray.shutdown()
    planned_status = {cid: st for cid, st in stored.items() if cid in planned}
    summary.errors_total = sum(1 for st in planned_status.values() if st == "error")
    summary.wall_s = time.perf_counter() - t_start
    if store.exists():
        store.log_run({**summary.record(), "finished_at": _utc_now().isoformat()})
    return summary


def _warm_nodes(nodes: list[dict[str, Any]], warm: list[dict[str, Any]], interrupt: "_Interrupt") -> None:
    """One warm-up task pinned to each node: a node compiles (or loads its cache) once, before any
    cell, instead of in every worker at the same time."""
    refs = [_warm_task.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
            .remote(warm) for n in nodes]
    pending = list(refs)
    while pending:
        _, pending = ray.wait(pending, num_returns=len(pending), timeout=0.25)
        interrupt.check()
    versions = {v for _, v in ray.get(refs)}
    if versions != {MODEL_VERSION}:
        raise RunnerError("--address", f"the cluster's nodes run model versions {sorted(versions)}; "
                          f"this one is {MODEL_VERSION} (install the same buddyfarm everywhere)")


_WORKER_DIED = "A worker died or was killed"
_TASK_RETRIED = re.compile(r"Task \S+ failed\. There are .*retries remaining, so the task will be retried")
_WORKER_FIELDS = re.compile(r"Worker (PID|IP address|exit type): (\S+)")
_EXIT_CAUSES = {"SYSTEM_ERROR": "killed or crashed",  # Ray's WorkerExitType
                "NODE_OUT_OF_MEMORY": "killed by Ray: the node was low on memory",
                "USER_ERROR": "exited with an error",
                "INTENDED_USER_EXIT": "exited on request",
                "INTENDED_SYSTEM_EXIT": "stopped by Ray"}


class _RayMessages:
    """Ray's messages about this run's workers, one line each.

    The driver prints the errors that Ray publishes for its job as Ray's text, on stdout, several
    lines and ids per event: a thread of ray._private.worker (listen_error_messages) hands each to
    its module's print_to_stdstream. While installed, this stands in for that function: a worker
    that died becomes one line through `note`, and Ray's announcement that the task is retried is
    dropped; Ray's own text is printed as well only if `verbose`. Any other message is printed as
    Ray prints it."""

    GRACE_S = 1.0

    def __init__(self, note: Callable[[str], None], verbose: bool, bar) -> None:
        self.note = note
        self.verbose = verbose
        self.bar = bar
        self.failed_at: float | None = None  # when a task last failed after Ray's retries
        self._module = None
        self._ray_print = None

    def start(self) -> "_RayMessages":
        import ray._private.worker as module
        self._ray_print = getattr(module, "print_to_stdstream", None)
        if self._ray_print is not None:
            self._module = module
            module.print_to_stdstream = self._print
        return self

    def stop(self) -> None:
        if self.failed_at is not None:
            # Ray's message about the worker whose death failed a task can come after the failure
            # itself: it is still told in one line when the failure ended the run.
            time.sleep(max(0.0, self.failed_at + self.GRACE_S - time.monotonic()))
        if self._module is not None:
            self._module.print_to_stdstream = self._ray_print
            self._module = None

    @staticmethod
    def summary(line: str) -> str | None:
        """Our line for one of Ray's messages; "" to drop it; None to print it as it is."""
        if line.startswith(_WORKER_DIED):
            fields = dict(_WORKER_FIELDS.findall(line))
            who = f"worker process {fields['PID']}" if "PID" in fields else "a worker process"
            if fields.get("IP address") and not _is_loopback(fields["IP address"]):
                who += f" on {fields['IP address']}"
            exit_type = fields.get("exit type", "SYSTEM_ERROR")
            cause = _EXIT_CAUSES.get(exit_type, exit_type.lower().replace("_", " "))
            return (f"{who} died ({cause}); its task is retried (at most {MAX_RETRIES} times), "
                    f"no stored cell is lost")
        if _TASK_RETRIED.match(line):
            return ""
        return None

    def _print(self, data: dict[str, Any], ignore_prefix: bool) -> None:
        # Runs in Ray's thread: whatever goes wrong here, Ray's message is printed as it is.
        try:
            if data.get("pid") != "raylet":
                return self._ray_write(data, ignore_prefix)
            raw = []
            for line in data.get("lines", []):
                ours = self.summary(line)
                if ours:
                    self.note(ours)
                if ours is None or self.verbose:
                    raw.append(line)
            if raw:
                self._ray_write({**data, "lines": raw}, ignore_prefix)
        except Exception:
            self._ray_print(data, ignore_prefix)

    def _ray_write(self, data: dict[str, Any], ignore_prefix: bool) -> None:
        with self.bar.external_write_mode(file=sys.stderr):
            self._ray_print(data, ignore_prefix)


def _schedule(plan: Plan, todo: list[Cell], store: Store, summary: RunSummary, batch_size: int | None,
              progress: bool, cell_fn, stored: dict[str, str], interrupt: "_Interrupt",
              warn: Callable[[str], None], verbose: bool) -> None:
    """Keep one task per worker slot in flight; write each task's rows when it returns."""
    params = list(plan.cells[0].params)
    batcher = Batcher(todo, summary.workers, batch_size)
    fn_ref = ray.put(cell_fn) if cell_fn is not None else None
    pending: dict[Any, list[Cell]] = {}
    # On a cluster, spread the tasks over the nodes: Ray's default packs them on the driver's
    # node while it has a free CPU, and short tasks free it again before the next is submitted.
    task = _run_batch_task.options(scheduling_strategy="SPREAD") if summary.nodes > 1 else _run_batch_task

    def submit() -> None:
        while len(batcher) and len(pending) < summary.workers:
            batch = batcher.take()
            summary.batches += 1
            ref = task.remote(batch, plan.name, summary.run_id, MODEL_VERSION, fn_ref)
            pending[ref] = batch

    bar = _progress(len(todo), plan.name, progress)

    def note(message: str) -> None:
        with bar.external_write_mode(file=sys.stderr):  # clear the progress line, write, redraw it
            warn(message)

    messages = _RayMessages(note, verbose, bar).start()
    t0 = time.perf_counter()
    try:
        submit()
        while pending and not interrupt.stop:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.25)
            for ref in ready:
                if interrupt.stop:
                    break
                batch = pending.pop(ref)
                try:
                    rows = ray.get(ref)
                except ray.exceptions.RayError as e:
                    if isinstance(getattr(e, "cause", None), KeyboardInterrupt):
                        interrupt.stop = True  # Ctrl-C in a terminal reaches the workers too
                        break
                    messages.failed_at = time.monotonic()
                    if len(batch) > 1:
                        # Ray's retries are spent: find the cell that kills its worker.
                        note(f"a task of {len(batch)} cells failed after {MAX_RETRIES} retries "
                             f"({type(e).__name__}); its cells run again, one per task")
                        summary.split_batches += 1
                        batcher.put_back(batch)
                        submit()
                        continue
                    note(f"cell {batch[0].id} failed after {MAX_RETRIES} retries ({type(e).__name__}); "
                         f"stored as an error")
                    rows = [_lost_row(plan.name, summary.run_id, batch[0], e)]
                batcher.observe(batch, rows)
                submit()
                store.append(rows, params, summary.run_id)
                for row in rows:
                    stored[row["cell_id"]] = row["status"]
                    summary.computed_ids.append(row["cell_id"])
                    if row["status"] == "error":
                        summary.errors += 1
                        if len(summary.error_examples) < 5:
                            summary.error_examples.append({"cell_id": row["cell_id"],
                                                           "error": row["error"]})
                summary.computed += len(rows)
                bar.update(len(rows))
                bar.set_postfix(errors=summary.errors, refresh=False)
        if interrupt.stop:
            summary.status = "interrupted"
            for ref in pending:
                try:
                    ray.cancel(ref, force=True)
                except Exception:
                    pass
    finally:
        messages.stop()
        bar.close()
        summary.compute_s = time.perf_counter() - t0
        store.compact(summary.run_id)


def _lost_row(sweep: str, run_id: str, cell: Cell, exc: BaseException) -> dict[str, Any]:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return error_row(cell.id, sweep, cell.params, MODEL_VERSION,
                     f"{type(exc).__name__}: the task failed after {MAX_RETRIES} retries: {first}",
                     {"cell_s": None, "finished_at": _utc_now(), "run_id": run_id, "host": None,
                      "node": None, "pid": None})
