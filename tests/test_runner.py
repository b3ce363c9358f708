"""The farm on Ray: every cell stored once, errors recorded, a killed worker retried, a multi-node
cluster giving the embedded run's results, Ctrl-C and resume giving an uninterrupted run's results.

One embedded Ray (2 CPUs) is shared by the tests of this module; the cluster test, last, stops it
and starts a `ray.cluster_utils.Cluster` (head + two nodes) of its own. Cells are tiny."""

import functools
import ipaddress
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import ray

import sweep_hooks
from farm.sweep.plan import load_plan
from farm.sweep.results import volatile_columns
from farm.sweep.runner import TARGET_TASK_S, Batcher, estimate_s, make_batches, run_sweep, start_ray
from farm.sweep.store import Store, load

ray.cloudpickle.register_pickle_by_value(sweep_hooks)

TINY = """
    [sweep]
    name = "tiny"
    description = "runner tests"
    seeds = 3
    [base]
    memory = "16M"
    ops = 2000
    [grid]
    max_order = [10, 11, 12]
    policy = ["v5.4", "v6.15"]
"""


@pytest.fixture
def local_ray():
    """The runner's embedded Ray with 2 CPUs, started once and shared (a test that needs another
    Ray stops it)."""
    if not ray.is_initialized():
        start_ray(None, 2)
    yield


@pytest.fixture(scope="module", autouse=True)
def _shutdown_ray_after_module():
    yield
    if ray.is_initialized():
        ray.shutdown()


@pytest.fixture(scope="module")
def tiny_plan(tmp_path_factory):
    path = tmp_path_factory.mktemp("sweep") / "tiny.toml"
    path.write_text(textwrap.dedent(TINY))
    return load_plan(path)


@pytest.fixture(scope="module")
def reference(tiny_plan, tmp_path_factory):
    """The tiny sweep run once, cleanly, on the embedded Ray: what every other run must equal."""
    if not ray.is_initialized():
        start_ray(None, 2)
    out = tmp_path_factory.mktemp("reference")
    s = run_sweep(tiny_plan, out, progress=False)
    assert (s.status, s.computed, s.errors) == ("complete", 18, 0)
    return load(out)


def records(df):
    """The frame as sorted tuples of plain values, without the columns that differ between two
    runs of the same cell (timing and provenance)."""
    cols = [c for c in df.columns if c not in volatile_columns(df.columns)]

    def plain(v):
        if hasattr(v, "tolist"):
            return v.tolist()
        if isinstance(v, float) and math.isnan(v):
            return None
        return v
    return cols, sorted(tuple(plain(v) for v in row) for row in df[cols].itertuples(index=False))


def assert_same_results(a, b):
    assert records(a) == records(b)


def raw_rows(out):
    """cell ids of every stored row, duplicates included."""
    return Store(out).read_table().column("cell_id").to_pylist()


def test_batches_cover_every_cell_once(tiny_plan):
    cells = tiny_plan.cells
    for slots, size in ((1, None), (2, None), (8, None), (2, 4)):
        batches = make_batches(cells, slots, size)
        assert [c.id for b in batches for c in b] == [c.id for c in cells]
    assert len(make_batches(cells, 2)) >= 8
    assert [len(b) for b in make_batches(cells, 2, 4)] == [4, 4, 4, 4, 2]


def test_batches_follow_measured_cell_times(tiny_plan):
    cells = tiny_plan.cells * 100  # same cost each
    b = Batcher(cells, slots=2)
    first = b.take()
    b.observe(first, [{"cell_s": 100 * estimate_s(c)} for c in first])  # 100 times slower than estimated
    assert len(b.take()) == math.ceil(TARGET_TASK_S / (100 * estimate_s(cells[0])))
    b.put_back(first)
    assert [len(b.take()) for _ in first] == [1] * len(first)
    while len(b):
        last = b.take()
    assert len(last) == 1  # the tail is cut fine


def test_run_stores_every_cell_once_and_a_rerun_computes_nothing(local_ray, tiny_plan, reference, tmp_path):
    assert sorted(reference["cell_id"]) == sorted(c.id for c in tiny_plan.cells)
    assert set(reference["status"]) == {"ok"}
    assert (reference["alloc_ops"] > 0).all()
    s = run_sweep(tiny_plan, tmp_path, progress=False)
    assert (s.status, s.computed, s.stored_before) == ("complete", 18, 0)
    assert sorted(raw_rows(tmp_path)) == sorted(c.id for c in tiny_plan.cells)
    assert_same_results(load(tmp_path), reference)
    again = run_sweep(tiny_plan, tmp_path, progress=False)
    assert (again.status, again.computed, again.stored_before) == ("nothing to do", 0, 18)
    assert len(raw_rows(tmp_path)) == 18


def test_a_cell_that_raises_is_an_error_row_and_the_others_are_unaffected(local_ray, tiny_plan, reference,
                                                                          tmp_path):
    s = run_sweep(tiny_plan, tmp_path, progress=False, cell_fn=functools.partial(sweep_hooks.fail_seed, 2))
    assert (s.status, s.computed, s.errors, s.errors_total) == ("complete", 18, 6, 6)
    df = load(tmp_path)
    bad = df[df["seed"] == 2]
    assert set(bad["status"]) == {"error"}
    assert set(bad["error"]) == {"RuntimeError: injected failure for seed 2"}
    assert bad["alloc_ops"].isna().all()
    good = df[df["seed"] != 2]
    assert set(good["status"]) == {"ok"}
    assert_same_results(good.dropna(axis=1, how="all"),
                        reference[reference["seed"] != 2].dropna(axis=1, how="all"))
    # A plain rerun keeps the errors; --rerun-failed computes exactly those cells again.
    assert run_sweep(tiny_plan, tmp_path, progress=False).status == "nothing to do"
    s = run_sweep(tiny_plan, tmp_path, progress=False, rerun_failed=True)
    assert (s.computed, s.errors, s.errors_total) == (6, 0, 0)
    assert sorted(s.computed_ids) == sorted(bad["cell_id"])
    assert_same_results(load(tmp_path), reference)


def test_a_killed_worker_is_retried_and_every_cell_is_stored_exactly_once(local_ray, tiny_plan, reference,
                                                                          tmp_path):
    marker = tmp_path / "pids"
    match = {"max_order": 11, "policy": "v6.15", "seed": 2}
    killed = []

    def killer():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if marker.exists() and marker.read_text().strip():
                pid = int(marker.read_text().split()[0])
                os.kill(pid, signal.SIGKILL)  # the worker process, mid-cell
                killed.append(pid)
                return
            time.sleep(0.02)

    thread = threading.Thread(target=killer)
    thread.start()
    notes = []
    s = run_sweep(tiny_plan, tmp_path / "out", progress=False, batch_size=3, warn=notes.append,
                  cell_fn=functools.partial(sweep_hooks.report_and_wait, str(marker), match, 2.0))
    thread.join()
    assert killed, "the worker was never seen"
    assert notes == [f"worker process {killed[0]} died (killed or crashed); its task is retried "
                     f"(at most 3 times), no stored cell is lost"]
    pids = [int(x) for x in marker.read_text().split()]
    assert len(pids) == 2 and pids[0] == killed[0] and pids[1] != pids[0]  # retried in a new process
    assert (s.status, s.computed, s.errors) == ("complete", 18, 0)
    assert s.split_batches == 0  # Ray retried the task itself
    rows = raw_rows(tmp_path / "out")
    assert len(rows) == len(set(rows)) == 18
    assert sorted(rows) == sorted(c.id for c in tiny_plan.cells)
    assert_same_results(load(tmp_path / "out"), reference)


@pytest.mark.slow
def test_a_cell_that_kills_every_worker_ends_as_the_only_error(local_ray, tiny_plan, reference, tmp_path):
    match = {"max_order": 11, "policy": "v6.15", "seed": 2}
    notes = []
    s = run_sweep(tiny_plan, tmp_path, progress=False, batch_size=3, warn=notes.append,
                  cell_fn=functools.partial(sweep_hooks.die_on, match))
    assert (s.status, s.computed, s.errors, s.split_batches) == ("complete", 18, 1, 1)
    df = load(tmp_path)
    bad = df[(df["max_order"] == 11) & (df["policy"] == "v6.15") & (df["seed"] == 2)]
    assert list(bad["status"]) == ["error"]
    assert bad["error"].iloc[0].startswith("WorkerCrashedError: the task failed after 3 retries")
    assert_same_results(df[df["status"] == "ok"], reference[~reference["cell_id"].isin(bad["cell_id"])])
    # One line per event: 4 deaths of the 3-cell task, then 4 of the lone cell's task (Ray tells
    # the last one after the task's failure; a heavily loaded machine could make it late even for
    # the runner's grace period, when Ray's text is printed instead).
    died = [n for n in notes if " died (killed or crashed); its task is retried" in n]
    assert len(died) in (7, 8), notes
    assert "a task of 3 cells failed after 3 retries (WorkerCrashedError); its cells run again, one per task" \
        in notes
    assert f"cell {bad['cell_id'].iloc[0]} failed after 3 retries (WorkerCrashedError); stored as an error" \
        in notes
    assert len(notes) == 2 + len(died), notes


def _descendants(root):
    """pids of `root` and of every process below it."""
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            pid, rest = stat.read_text().split(" (", 1)
            ppid = int(rest.rsplit(") ", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        children.setdefault(ppid, []).append(int(pid))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def _proc_address(hex_addr):
    """An address of /proc/net/tcp or tcp6 (32-bit words in host order, x86: little-endian)."""
    host, port = hex_addr.split(":")
    raw = b"".join(bytes.fromhex(host[i:i + 8])[::-1] for i in range(0, len(host), 8))
    return ipaddress.ip_address(raw), int(port, 16)


def listening_sockets(pids):
    """[(process name, pid, address, port)] of the TCP sockets in LISTEN state owned by `pids`."""
    listening = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # TCP_LISTEN
                listening[fields[9]] = _proc_address(fields[1])
    out = []
    for pid in pids:
        try:
            name = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue  # gone meanwhile
        for fd in fds:
            try:
                link = os.readlink(fd)
            except OSError:
                continue  # closed meanwhile (such as the one that listed the folder)
            if link.startswith("socket:[") and link[8:-1] in listening:
                out.append((os.path.basename(name.split()[0]) if name else "?", pid, *listening[link[8:-1]]))
    return out


def is_loopback(address):
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads Linux's /proc")
def test_the_embedded_ray_listens_on_the_loopback_address_only(local_ray):
    @ray.remote
    def pid():
        time.sleep(0.5)  # both workers busy at once: two worker processes
        return os.getpid()

    workers = set(ray.get([pid.remote() for _ in range(2)]))
    sockets = listening_sockets(_descendants(os.getpid()))
    names = {name for name, *_ in sockets}
    # Ray's own servers are all seen: the GCS, the raylet, the driver (this process) and the workers.
    assert {"gcs_server", "raylet"} <= names, sockets
    assert os.getpid() in {p for _, p, *_ in sockets}, sockets
    assert workers <= {p for _, p, *_ in sockets}, sockets
    exposed = [s for s in sockets if not is_loopback(s[2])]
    assert not exposed, f"Ray processes listening beyond the loopback address: {exposed}"


SLOW = """
    [sweep]
    name = "slow"
    description = "interrupt test"
    seeds = 8
    [base]
    memory = "64M"
    ops = {ops}
    [grid]
    max_order = [10, 12]
    pcp = [false, true]
"""


def _ops_for(seconds):
    """Operations that make one 64M cell take about `seconds` on this machine, now."""
    from farm.cell.simulate import run
    run({"memory": "64M", "ops": 1000})
    t0 = time.perf_counter()
    run({"memory": "64M", "ops": 100_000})
    per_op = (time.perf_counter() - t0) / 100_000
    return max(20_000, int(seconds / per_op))


def _farm(*argv, cwd):
    return subprocess.Popen([sys.executable, "-m", "farm.cli", *argv], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_ctrl_c_keeps_finished_cells_and_a_rerun_computes_only_the_missing_ones(local_ray, tmp_path):
    path = tmp_path / "slow.toml"
    path.write_text(textwrap.dedent(SLOW.format(ops=_ops_for(0.15))))
    plan = load_plan(path)
    assert len(plan.cells) == 32
    out = tmp_path / "out"

    proc = _farm("run", str(path), "--out", str(out), "--batch-size", "1", "--workers", "2", cwd=tmp_path)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        if Store(out).exists() and Store(out).part_files():
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stdout
    first = Store(out).status()
    assert 0 < len(first) < 32, (len(first), stdout)
    assert set(first.values()) == {"ok"}

    proc = _farm("run", str(path), "--out", str(out), "--workers", "2", "-q", cwd=tmp_path)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    missing = 32 - len(first)
    assert f"{len(first)} already stored; computed {missing} (0 errors)" in stdout
    second = Store(out).runs()[-1]
    assert (second["status"], second["computed"], second["stored_before"]) == ("complete", missing, len(first))
    df = load(out)
    assert sorted(df.loc[df["run_id"] == second["run_id"], "cell_id"]) == \
        sorted(c.id for c in plan.cells if c.id not in first)
    rows = raw_rows(out)
    assert len(rows) == len(set(rows)) == 32

    whole = run_sweep(plan, tmp_path / "whole", progress=False)
    assert whole.computed == 32
    assert_same_results(df, load(tmp_path / "whole"))


def _kill_a_running_task(proc, killed):
    """Kill (SIGKILL) the first worker process below `proc` seen running a cell task; its pid goes
    to `killed`."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        for pid in _descendants(proc.pid):
            try:
                title = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if title.startswith(b"ray::run_batch"):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads Linux's /proc")
def test_farm_run_tells_a_killed_worker_in_one_line_and_ray_s_text_only_when_verbose(tmp_path):
    path = tmp_path / "slow.toml"
    path.write_text(textwrap.dedent(SLOW.format(ops=_ops_for(1.0))).replace("seeds = 8", "seeds = 1"))
    for verbose in (False, True):
        out = tmp_path / f"out-{verbose}"
        proc = _farm("run", str(path), "--out", str(out), "--batch-size", "1", "--workers", "2",
                     "--no-report", *(["--verbose"] if verbose else []), cwd=tmp_path)
        killed = []
        thread = threading.Thread(target=_kill_a_running_task, args=(proc, killed))
        thread.start()
        stdout, stderr = proc.communicate(timeout=600)
        thread.join()
        assert killed, "no worker was seen running a cell"
        assert proc.returncode == 0, stderr
        assert "computed 4 (0 errors)" in stdout
        ours = (f"farm run: worker process {killed[0]} died (killed or crashed); its task is retried "
                f"(at most 3 times), no stored cell is lost\n")
        assert stderr.count(ours) == 1, stderr
        assert "retries remaining" not in stderr
        # Ray's own text (on stdout, with lease, worker and node ids) only with --verbose
        for ray_text in ("A worker died or was killed", f"Worker PID: {killed[0]}",
                         "so the task will be retried"):
            assert (ray_text in stdout + stderr) == verbose, (ray_text, stdout, stderr)
        rows = raw_rows(out)
        assert len(rows) == len(set(rows)) == 4


@pytest.mark.slow
def test_bench_sweep_smoke(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(textwrap.dedent(TINY))
    r = subprocess.run([sys.executable, "-m", "farm.cli", "bench", "--sweep", str(path), "--quick",
                        "--cells", "6", "-o", str(tmp_path / "bench.json")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "parallel efficiency, 2 workers vs 1" in r.stdout
    data = json.loads((tmp_path / "bench.json").read_text())
    assert [row["workers"] for row in data["results"]] == [1, 2]
    assert all(row["cells"] == 6 for row in data["results"])
    assert data["efficiency"] == data["results"][1]["efficiency"] > 0
    assert data["machine_scaling"] > 0


@pytest.mark.slow
def test_a_multi_node_cluster_gives_the_embedded_results(tiny_plan, reference, tmp_path):
    from ray.cluster_utils import Cluster
    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        for _ in range(2):
            cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        # one cell per task: the batcher would otherwise pack these quick cells into one task,
        # which then runs on a single node; three one-CPU nodes and three tasks in flight spread
        s = run_sweep(tiny_plan, tmp_path, address=cluster.address, progress=False, batch_size=1)
        assert not ray.is_initialized()  # the runner connected, so the runner disconnected
    finally:
        cluster.shutdown()
    assert (s.status, s.computed, s.errors, s.nodes, s.workers) == ("complete", 18, 0, 3, 3)
    df = load(tmp_path)
    assert df["node"].nunique() >= 2
    rows = raw_rows(tmp_path)
    assert len(rows) == len(set(rows)) == 18
    assert_same_results(df, reference)
