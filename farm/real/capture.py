"""`farm capture`: record a capture of a real Linux kernel booted under qemu.

The folder written has the layout of the captures in ../shared/data (read by
`farm.real.captures.read_capture`, judged by `farm validate`): /proc snapshots at phases before /
mid / compacted / after, kpageflags, the ftrace text of the page allocator and compaction events
with phase markers, the hugetlb pages the kernel obtained, uname, cmdline, trace_stats, iomem.

How it goes:
- the kernel is a bzImage path, or a Debian package name fetched with `apt-get download` into
  ~/.cache/buddyfarm/kernels and unpacked with `dpkg -x`; the virtio modules the guest needs
  (when the package builds them as modules) go into the initramfs with their dependencies;
- the initramfs (cpio newc, gzip, written here) holds busybox-static with its applets, the
  workload compiled static from farm/real/workloads/NAME.c, the snapshot program
  (farm/real/guest/snapshot.c: a phase's /proc files read by one process right after the phase's
  marker), the pageblocktypes module when it could be built for the kernel
  (farm/real/module/pageblocktypes.c, against its headers package or its `farm kernel build`
  tree) and an /init script;
- the guest writes its files as a tar to a raw virtio disk (/dev/vda) and the trace text raw to
  a second one (/dev/vdb); the host unpacks the tar, gzips the trace and the kpageflags; a third
  (/dev/vdc) is an ext2 file system at /mnt, for page cache that reclaim can drop (the
  initramfs's own files cannot be reclaimed);
- the guest prints `buddyfarm: phase=NAME` lines on the serial console, which the host follows
  (console.log in the output folder) to print each phase with its elapsed time.

With --virtio-mem (capture(virtio_mem=...)), a virtio-mem device adds memory to the boot memory
before the `before` snapshot, and after `mid` the host asks it over QMP to shrink: the capture's
last phase is then `unplugged` (no compaction or hugetlb phases); see docs/traces.md.

Every failure raises `CaptureFailed` with one line naming the problem; the console log stays in
the output folder.
"""

from __future__ import annotations

import fcntl
import glob
import gzip
import json
import lzma
import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

from .captures import parse_config

__all__ = ["CaptureFailed", "WORKLOADS", "capture", "parse_memory", "parse_workload", "parse_hugepages",
           "parse_virtio_mem", "resolve_kernel", "build_initramfs", "kvm_usable"]

WORKLOAD_DIR = Path(__file__).with_name("workloads")
GUEST_DIR = Path(__file__).with_name("guest")            # programs the guest runs besides the workload
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "buddyfarm" / "kernels"

#: Workloads (farm/real/workloads/NAME.c): their key=value parameters with the defaults a capture
#: passes (None: computed from the guest memory by _memory_defaults; "": the program's own default,
#: not passed). A value is a whole number where the default is one, else text.
WORKLOADS = {
    "fragmenter": {"mb": None, "pipes": None, "file_every": 64, "keep_one_in": 4, "seed": 1},
    "scatterer": {"fill_mb": None, "rounds": 20000, "free_per_round": 2, "seed": 1},
    "thp": {"mb": None, "rounds": 3, "split": 1, "defrag": "", "enabled": ""},
    "pagecache": {"mb": None, "files": 50, "passes": 2, "fsync": 1},
    "mixed": {"rounds": 3, "anon_mb": None, "tmpfs_mb": None, "pipes": 200, "forks": 8, "thp_mb": 32, "seed": 1},
}


def _memory_defaults(name: str, params: dict, memory_mib: int) -> None:
    """Sizes that follow the guest's memory (a trace buffer of an eighth of it is set aside)."""
    defaults = {
        "fragmenter": {"mb": memory_mib * 43 // 100},            # as ../shared/data: 1100 MiB of 2560
        "scatterer": {"fill_mb": memory_mib * 60 // 100},        # memory tight: what is left is small
        "thp": {"mb": memory_mib // 4},
        "pagecache": {"mb": memory_mib // 4},
        "mixed": {"anon_mb": memory_mib // 5, "tmpfs_mb": memory_mib // 10},
    }[name]
    for key, value in defaults.items():
        if params[key] is None:
            params[key] = value
    if name == "fragmenter" and params["pipes"] is None:
        params["pipes"] = max(16, params["mb"] // 2)


#: The trace events enabled (kmem), besides every compaction:* event.
KMEM_EVENTS = ("mm_page_alloc", "mm_page_free", "mm_page_free_batched", "mm_page_alloc_extfrag",
               "mm_page_alloc_zone_locked", "mm_page_pcpu_drain")

#: Modules the guest may need for its output disks, by config symbol, in load order.
VIRTIO_CONFIG = (("CONFIG_VIRTIO", "virtio"), ("CONFIG_VIRTIO_RING", "virtio_ring"),
                 ("CONFIG_VIRTIO_PCI_LIB_LEGACY", "virtio_pci_legacy_dev"),
                 ("CONFIG_VIRTIO_PCI_LIB", "virtio_pci_modern_dev"),
                 ("CONFIG_VIRTIO_PCI", "virtio_pci"), ("CONFIG_VIRTIO_BLK", "virtio_blk"))

PANIC = re.compile(r"Kernel panic - not syncing.*")


class CaptureFailed(RuntimeError):
    """A capture that could not be made; the message is one line naming the problem."""


def _say(msg: str) -> None:
    print(msg, flush=True)


# --- arguments --------------------------------------------------------------------------------

def parse_memory(text: str) -> int:
    """'512M', '2G', '2560' (MiB) -> MiB."""
    m = re.fullmatch(r"\s*(\d+)\s*([MmGg]?)(i?[Bb])?\s*", str(text))
    if m is None:
        raise CaptureFailed(f"--memory {text!r}: expected a size such as 512M or 2G")
    mib = int(m[1]) * (1024 if m[2].lower() == "g" else 1)
    if mib < 128:
        raise CaptureFailed(f"--memory {text}: at least 128M")
    return mib


def parse_workload(text: str, memory_mib: int) -> tuple[str, dict]:
    """'fragmenter:mb=100,pipes=200' -> ('fragmenter', {every parameter passed})."""
    name, _, rest = text.partition(":")
    if name not in WORKLOADS:
        raise CaptureFailed(f"--workload {name!r}: unknown (known: {', '.join(WORKLOADS)})")
    params = dict(WORKLOADS[name])
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if not eq or key not in params:
            raise CaptureFailed(f"--workload {text!r}: {item!r} is not one of "
                                + ", ".join(f"{k}=..." for k in params))
        if isinstance(WORKLOADS[name][key], str):
            if not re.fullmatch(r"[A-Za-z0-9_+./-]*", value):
                raise CaptureFailed(f"--workload {text!r}: {key}={value!r} has characters other than "
                                    "letters, digits and _+./-")
            params[key] = value
            continue
        try:
            params[key] = int(value)
        except ValueError:
            raise CaptureFailed(f"--workload {text!r}: {key} must be a whole number") from None
    _memory_defaults(name, params, memory_mib)
    return name, {k: v for k, v in params.items() if v != ""}


def parse_hugepages(text: str | None, memory_mib: int) -> dict[str, int]:
    """'2M=300,1G=1' -> {'2m': 300, '1g': 1}; default: as many 2 MiB pages as the memory holds and
    as many 1 GiB pages as it has whole GiB (at least 1)."""
    out = {"2m": memory_mib // 2, "1g": max(1, memory_mib // 1024)}
    for item in filter(None, (text or "").split(",")):
        key, eq, value = item.partition("=")
        key = key.strip().lower().removesuffix("b").removesuffix("i")
        if not eq or key not in out or not value.strip().isdigit():
            raise CaptureFailed(f"--hugepages {text!r}: expected 2M=N,1G=N")
        out[key] = int(value)
    return out


def parse_size(text: str, what: str) -> int:
    """'2G', '512M', '4096K', '2147483648B', '0', '256' (MiB, as --memory) -> bytes."""
    m = re.fullmatch(r"\s*(\d+)\s*([KkMmGgTt]?)(i?[Bb])?\s*", str(text))
    if m is None or (m[3] and not m[2] and m[3].lower() != "b"):
        raise CaptureFailed(f"{what}: expected a size such as 512M, 2G or 0")
    unit = m[2].lower() or ("b" if m[3] else "m")
    return int(m[1]) << {"b": 0, "k": 10, "m": 20, "g": 30, "t": 40}[unit]


#: memhp_default_state= of the kernel command line for --virtio-mem's online=
VIRTIO_MEM_ONLINE = {"movable": "online_movable", "normal": "online"}


def parse_virtio_mem(text: str, memory_mib: int) -> dict:
    """--virtio-mem 'SIZE[,block=SIZE][,online=movable|normal][,request=SIZE]' ->
    {'region_bytes', 'block_bytes' (None: qemu's default, 2 MiB), 'online', 'requested' (bytes the
    host asks for after mid), 'maxmem_mib' (boot memory + region, rounded up to 1 GiB),
    'boot_mib'}."""
    what = f"--virtio-mem {text!r}"
    first, *rest = str(text).split(",")
    if not first.strip():
        raise CaptureFailed(f"{what}: expected SIZE[,block=SIZE][,online=movable|normal][,request=SIZE]")
    region = parse_size(first, f"{what}: SIZE")
    vm = {"region_bytes": region, "block_bytes": None, "online": "movable", "requested": 0}
    for item in rest:
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or key not in ("block", "online", "request"):
            raise CaptureFailed(f"{what}: {item!r} is not one of block=SIZE, online=movable|normal, "
                                "request=SIZE")
        if key == "online":
            if value.strip() not in VIRTIO_MEM_ONLINE:
                raise CaptureFailed(f"{what}: online={value} (expected movable or normal)")
            vm["online"] = value.strip()
        elif key == "block":
            vm["block_bytes"] = parse_size(value, f"{what}: block")
        else:
            vm["requested"] = parse_size(value, f"{what}: request")
    block = vm["block_bytes"] or 2 << 20
    if vm["block_bytes"] is not None and (block < 1 << 20 or block & (block - 1)):
        raise CaptureFailed(f"{what}: block must be a power of two of at least 1M")
    if region <= 0 or region % block:
        raise CaptureFailed(f"{what}: SIZE must be a positive multiple of the block size ({block >> 20} MiB)")
    if vm["requested"] > region or vm["requested"] % block:
        raise CaptureFailed(f"{what}: request must be a multiple of the block size ({block >> 20} MiB) "
                            "no larger than SIZE")
    vm["maxmem_mib"] = -(-(memory_mib + (region >> 20)) // 1024) * 1024
    vm["boot_mib"] = memory_mib
    return vm


# --- tools ------------------------------------------------------------------------------------

def _need(tool: str, install: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise CaptureFailed(f"{tool} is not installed (install it: {install})")
    return path


def find_busybox() -> str:
    """A static busybox: /bin/busybox of busybox-static (a dynamic one cannot run in the guest)."""
    for path in (shutil.which("busybox"), "/bin/busybox", "/usr/bin/busybox"):
        if path and Path(path).exists():
            head = Path(path).read_bytes()[:4096]
            out = subprocess.run(["file", "-L", path], capture_output=True, text=True).stdout \
                if shutil.which("file") else ""
            if "dynamically linked" in out or b"/lib64/ld-linux" in head:
                continue
            return path
    raise CaptureFailed("busybox-static is not installed (install it: apt-get install -y busybox-static)")


def kvm_usable() -> bool:
    """True when /dev/kvm opens and a VM can be created in it."""
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        if fcntl.ioctl(fd, 0xAE00) != 12:          # KVM_GET_API_VERSION
            return False
        vm = fcntl.ioctl(fd, 0xAE01, 0)             # KVM_CREATE_VM
        os.close(vm)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


# --- kernel -----------------------------------------------------------------------------------

def resolve_kernel(spec: str, cache: Path = CACHE) -> dict:
    """The kernel to boot: {'bzimage', 'config' (dict, empty when unknown), 'modules' (a folder or
    None), 'source' (what was asked), 'package' (name and version, or None)}."""
    path = Path(spec)
    if path.exists():
        if not path.is_file():
            raise CaptureFailed(f"--kernel {spec}: not a file")
        config = {}
        for guess in (path.with_name(path.name.replace("vmlinuz", "config")), path.parent / "config",
                      path.parent / ".config"):
            if guess != path and guess.is_file():
                config = parse_config(guess.read_text(errors="replace"))
                break
        return {"bzimage": str(path), "config": config, "modules": None, "source": spec, "package": None}
    if "/" in spec:
        raise CaptureFailed(f"--kernel {spec}: no such file")
    _need("apt-get", "a Debian system, or pass a bzImage path")
    _need("dpkg", "a Debian system, or pass a bzImage path")
    names = _package_names(spec)
    if not names:
        raise CaptureFailed(f"--kernel {spec}: no such Debian package (see apt-cache search linux-image)")
    deb = _download(names[-1], cache, f"--kernel {spec}")
    root = cache / deb.name.removesuffix(".deb")
    if not (root / "boot").is_dir():
        tmp = Path(tempfile.mkdtemp(dir=cache))
        r = subprocess.run(["dpkg", "-x", str(deb), str(tmp)], capture_output=True, text=True)
        if r.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            raise CaptureFailed(f"--kernel {spec}: dpkg -x {deb.name} failed: {r.stderr.strip()}")
        shutil.rmtree(root, ignore_errors=True)
        tmp.rename(root)
    images = sorted((root / "boot").glob("vmlinuz-*"))
    if not images:
        raise CaptureFailed(f"--kernel {spec}: {deb.name} holds no /boot/vmlinuz-*")
    configs = sorted((root / "boot").glob("config-*"))
    mods = sorted(glob.glob(str(root / "lib/modules/*"))) + sorted(glob.glob(str(root / "usr/lib/modules/*")))
    return {"bzimage": str(images[-1]), "config": parse_config(configs[-1].read_text()) if configs else {},
            "modules": mods[-1] if mods else None, "source": spec,
            "package": deb.name.removesuffix(".deb").removesuffix("_amd64")}


def _download(name: str, cache: Path, what: str) -> Path:
    """The .deb of package `name` in `cache`, fetched with `apt-get download` the first time."""
    cache.mkdir(parents=True, exist_ok=True)
    debs = sorted(cache.glob(f"{name}_*.deb"))
    if not debs:
        _say(f"fetching {name} into {cache}")
        r = subprocess.run(["apt-get", "download", name], cwd=cache, capture_output=True, text=True)
        debs = sorted(cache.glob(f"{name}_*.deb"))
        if r.returncode != 0 or not debs:
            msg = (r.stderr.strip().splitlines() or ["no .deb written"])[-1]
            raise CaptureFailed(f"{what}: apt-get download {name} failed: {msg}")
    return debs[-1]


def _package_names(spec: str) -> list[str]:
    """Debian package names matching `spec` (a name, or a pattern such as
    linux-image-6.12.*-cloud-amd64-unsigned), sorted by version."""
    if not any(c in spec for c in "*?["):
        r = subprocess.run(["apt-cache", "policy", spec], capture_output=True, text=True)
        return [spec] if "Candidate:" in r.stdout and "Candidate: (none)" not in r.stdout else []
    r = subprocess.run(["apt-cache", "pkgnames", spec.split("*")[0]], capture_output=True, text=True)
    pattern = re.compile(re.escape(spec).replace(r"\*", ".*").replace(r"\?", "."))
    names = [n for n in r.stdout.split() if pattern.fullmatch(n)]

    def version_key(n):
        return [int(x) if x.isdigit() else x for x in re.findall(r"\d+|[a-z]+", n)]
    return sorted(set(names), key=version_key)


def _read_module(path: Path) -> bytes:
    raw = path.read_bytes()
    if path.suffix == ".xz":
        return lzma.decompress(raw)
    if path.suffix == ".gz":
        return gzip.decompress(raw)
    if path.suffix == ".zst":
        try:
            from compression import zstd               # Python 3.14
            return zstd.decompress(raw)
        except ImportError:
            pass
        try:
            import zstandard
            return zstandard.ZstdDecompressor().decompressobj().decompress(raw)
        except ImportError:
            pass
        exe = _need("zstd", "apt-get install -y zstd")
        return subprocess.run([exe, "-dc", str(path)], capture_output=True, check=True).stdout
    return raw


def needed_modules(kernel: dict) -> list[tuple[str, bytes]]:
    """The virtio modules the guest must insmod for its disks, with their dependencies, in load
    order: [(name, uncompressed .ko)]. Empty when the kernel has them built in (or its config is
    unknown)."""
    config = kernel["config"]
    wanted = [mod for sym, mod in VIRTIO_CONFIG if config.get(sym) == "m"]
    if not wanted:
        return []
    if not kernel["modules"]:
        raise CaptureFailed(f"the kernel builds {', '.join(wanted)} as modules but no modules came with it")
    return _module_order(kernel, wanted, "needed for the virtio disks")


def _module_files(kernel: dict) -> dict[str, Path]:
    return {p.name.split(".ko")[0].replace("-", "_"): p for p in Path(kernel["modules"]).rglob("*.ko*")}


def _module_order(kernel: dict, wanted: list[str], why: str, loaded=()) -> list[tuple[str, bytes]]:
    """`wanted` with their dependencies (modinfo depends=) in load order, leaving out `loaded`."""
    files = _module_files(kernel)
    order: list[tuple[str, bytes]] = []
    seen: set[str] = set(loaded)

    def visit(name, chain=()):
        if name in seen:
            return
        if name not in files:
            raise CaptureFailed(f"module {name} ({why}) is not in {kernel['modules']}")
        seen.add(name)
        data = _read_module(files[name])
        m = re.search(rb"(?:^|\0)depends=([^\0]*)\0", data)
        for dep in filter(None, (m[1].decode().split(",") if m else [])):
            visit(dep.replace("-", "_"), chain + (name,))
        order.append((name, data))
    for name in wanted:
        visit(name)
    return order


def virtio_mem_modules(kernel: dict, loaded=()) -> list[tuple[str, bytes]]:
    """The modules --virtio-mem needs insmodded (virtio_mem and its dependencies not in `loaded`),
    found as needed_modules() finds the disks'. Empty when the kernel has virtio_mem built in, or
    when neither its config nor its modules are known (the guest then checks for the driver).
    Raises CaptureFailed when the kernel has no virtio_mem."""
    state = kernel["config"].get("CONFIG_VIRTIO_MEM")
    if state == "y":
        return []
    if kernel["config"] and state != "m":
        raise CaptureFailed("--virtio-mem: the kernel has no virtio_mem driver (CONFIG_VIRTIO_MEM is not set "
                            "in its config)")
    if not kernel["modules"]:
        if state == "m":
            raise CaptureFailed("--virtio-mem: the kernel builds virtio_mem as a module but no modules came "
                                "with it")
        return []
    if "virtio_mem" not in _module_files(kernel):
        raise CaptureFailed(f"--virtio-mem: the kernel has no virtio_mem module in {kernel['modules']}")
    return _module_order(kernel, ["virtio_mem"], "needed for --virtio-mem", loaded)


# --- the pageblock-types module -------------------------------------------------------------

MODULE_DIR = Path(__file__).with_name("module")


def module_build_tree(kernel: dict, cache: Path = CACHE) -> Path:
    """A tree to build an external module against for `kernel`: for a Debian package, its
    linux-headers package (with the -common and linux-kbuild packages it depends on) unpacked
    into `cache`; for a bzImage, the `src` folder beside it that `farm kernel build` leaves (a
    built tree with its Module.symvers). Raises CaptureFailed naming what is missing."""
    if kernel["package"] is None:
        tree = Path(kernel["bzimage"]).resolve().parent / "src"
        if not (tree / "Module.symvers").is_file():
            raise CaptureFailed(f"no built kernel tree with Module.symvers at {tree} (a kernel from "
                                "`farm kernel build` has one)")
        return tree
    release = Path(kernel["bzimage"]).name.removeprefix("vmlinuz-")
    root = cache / f"headers-{release}"
    tree = root / "usr/src" / f"linux-headers-{release}"
    if (tree / "Makefile").is_file() and (root / ".complete").exists():
        return tree
    what = f"the headers of {release}"
    debs = [_download(f"linux-headers-{release}", cache, what)]
    r = subprocess.run(["dpkg", "-f", str(debs[0]), "Depends"], capture_output=True, text=True)
    for dep in r.stdout.split(","):
        dep = dep.split("(")[0].strip()
        if dep.startswith(("linux-headers-", "linux-kbuild-")):
            debs.append(_download(dep, cache, what))
    shutil.rmtree(root, ignore_errors=True)
    for deb in debs:
        r = subprocess.run(["dpkg", "-x", str(deb), str(root)], capture_output=True, text=True)
        if r.returncode != 0:
            raise CaptureFailed(f"{what}: dpkg -x {deb.name} failed: {r.stderr.strip()}")
    # Debian's per-flavour Makefile includes the -common one by its absolute /usr/src path
    makefile = tree / "Makefile"
    makefile.write_text(makefile.read_text().replace("/usr/src/", f"{root}/usr/src/"))
    (root / ".complete").touch()
    return tree


def build_pageblock_module(tree: Path, work: Path) -> bytes:
    """farm/real/module/pageblocktypes.c built against `tree`: the .ko's bytes."""
    _need("make", "apt-get install -y make")
    d = work / "module"
    d.mkdir()
    shutil.copy(MODULE_DIR / "pageblocktypes.c", d)
    (d / "Kbuild").write_text("obj-m := pageblocktypes.o\n")
    # Debian's headers name the compiler the kernel was built with (gcc-12); another gcc builds
    # a module that loads as well (Debian turns the compiler version check off)
    cc = []
    kv = tree / ".kernelvariables"
    if kv.exists():
        m = re.search(r"^CC\s*=.*?(gcc-\d+)\s*$", kv.read_text(), re.M)
        if m and not shutil.which(f"x86_64-linux-gnu-{m[1]}") and not shutil.which(m[1]):
            cc = ["CC=gcc"]
    # BTF for the module would need pahole; the module does not need BTF
    r = subprocess.run(["make", "-C", str(tree), f"M={d}", "CONFIG_DEBUG_INFO_BTF_MODULES=", *cc, "modules"],
                       capture_output=True, text=True)
    ko = d / "pageblocktypes.ko"
    if r.returncode != 0 or not ko.is_file():
        lines = [x for x in (r.stderr + r.stdout).splitlines() if "error" in x.lower()] or \
            (r.stderr.strip().splitlines() or ["no pageblocktypes.ko"])
        raise CaptureFailed(f"the pageblocktypes module did not build against {tree}: {lines[0].strip()}")
    return ko.read_bytes()


# --- initramfs --------------------------------------------------------------------------------

class Cpio:
    """A cpio archive in the newc format, as the kernel unpacks an initramfs."""

    def __init__(self):
        self.parts: list[bytes] = []
        self.ino = 1

    def _entry(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)):
        name_b = name.encode() + b"\0"
        fields = (self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(name_b), 0)
        head = b"070701" + b"".join(b"%08X" % f for f in fields)
        self.ino += 1
        pad = lambda n: b"\0" * (-n % 4)  # noqa: E731
        self.parts += [head, name_b, pad(len(head) + len(name_b)), data, pad(len(data))]

    def dir(self, name):
        self._entry(name, 0o040755)

    def file(self, name, data: bytes, mode=0o755):
        self._entry(name, 0o100000 | mode, data)

    def symlink(self, name, target):
        self._entry(name, 0o120777, target.encode())

    def chardev(self, name, major, minor):
        self._entry(name, 0o020600, rdev=(major, minor))

    def bytes(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        return b"".join(self.parts)


def compile_static(src: Path, out: Path, what: str) -> Path:
    """`gcc -static` of one C file for the guest: out/STEM."""
    gcc = _need("gcc", "apt-get install -y gcc libc6-dev")
    exe = out / src.stem
    r = subprocess.run([gcc, "-static", "-O2", "-o", str(exe), str(src)], capture_output=True, text=True)
    if r.returncode != 0:
        line = (r.stderr.strip().splitlines() or ["?"])[-1]
        raise CaptureFailed(f"gcc -static could not build {what}: {line} "
                            "(is the static libc installed? apt-get install -y libc6-dev)")
    return exe


def compile_workload(name: str, out: Path) -> Path:
    return compile_static(WORKLOAD_DIR / f"{name}.c", out, f"the {name} workload")


def _virtio_mem_plug(vm: dict, modules: list[str]) -> str:
    """The /init lines of --virtio-mem before the `before` snapshot: insmod virtio_mem (after the
    trace buffer is allocated, so that it lies in the boot memory, not in the device's), wait
    until the driver has plugged and onlined the memory, record the memory blocks."""
    return f"""# --virtio-mem: the trace drops new events when full instead of overwriting the oldest, so
# that events lost during the unplug (after mid) cost the end of the trace, not its start
echo 0 > $T/options/overwrite || fail "cannot turn the trace buffer's overwrite option off"
M=/sys/devices/system/memory
# memory_blocks PHASE: memoryN STATE VALID_ZONES per memory block, by the shell's own reads
memory_blocks() {{
    n=0
    for d in $M/memory[0-9]*; do i=${{d##*/memory}}; [ $i -gt $n ] && n=$i; done
    i=0
    while [ $i -le $n ]; do
        if [ -d $M/memory$i ]; then
            read st < $M/memory$i/state 2>/dev/null || st=gone
            if [ -r $M/memory$i/valid_zones ]; then read vz < $M/memory$i/valid_zones 2>/dev/null || vz=-; else vz=-; fi
            echo "memory$i $st $vz"
        fi
        i=$((i+1))
    done > /out/memory_blocks.$1
}}
# the boot memory qemu gives (kB): MemTotal above it means the device's memory is in; a driver
# built into the kernel has plugged it before /init runs, a module after its insmod below
mem0={vm['boot_mib'] * 1024}
for m in {' '.join(modules)}; do
    insmod /lib/modules/$m.ko || fail "insmod $m failed"
done
[ -d /sys/bus/virtio/drivers/virtio_mem ] || fail "virtio-mem: the guest kernel has no virtio_mem driver"
# the driver plugs and onlines the device's memory in a work item after its probe: wait until
# MemTotal has grown and then read the same 3 times 1 s apart
last=$mem0; same=0; waited=0
while [ $same -lt 2 ]; do
    [ $waited -ge 120 ] && fail "virtio-mem: MemTotal did not grow and settle within 120 s (boot $mem0 kB, last $last kB)"
    sleep 1
    waited=$((waited+1))
    read k mt u < /proc/meminfo
    if [ $mt -gt $mem0 ] && [ $mt = $last ]; then same=$((same+1)); else same=0; fi
    last=$mt
done
say phase=plugged memtotal_kb=$last boot_kb=$mem0 seconds=$waited
# /tmp (the workloads' tmpfs) holds half of the memory, the device's too
mount -o remount,size=50% /tmp || fail "cannot resize /tmp to half of the memory"
read bs < $M/block_size_bytes
echo $bs > /out/memory_block_size_bytes
memory_blocks before
"""


def _virtio_mem_unplug() -> str:
    """The /init lines of --virtio-mem after the mid snapshot: ask the host to unplug, wait for its
    line on the console, snapshot the result as the phase `unplugged`."""
    return """memory_blocks mid
# the trace buffer's counters at mid: the host tells losses before mid from those of the unplug
mkdir -p /out/trace_stats_mid.d
for c in $T/per_cpu/cpu*; do
    while read l; do echo "$l"; done < $c/stats > /out/trace_stats_mid.d/${c##*/}
done
mark unplug-request
# the host asks the device to shrink over QMP, waits until its size settles and writes a line
read line
# memory the device could not give back may be short now (the unplug stops at -ENOMEM): a failed
# snapshot of this last phase is recorded, and the capture keeps its trace and mid
/bin/snapshot unplugged /out --marker $T/trace_marker 2> /out/unplugged.err && rm /out/unplugged.err
say phase=unplugged
memory_blocks unplugged
cat /proc/iomem > /out/iomem.unplugged
"""


def _after_mid(hugepages: dict) -> str:
    """The /init lines of a normal capture after the mid snapshot: compaction, hugetlb pages."""
    return f"""echo 1 > /proc/sys/vm/compact_memory
snap compacted
H=/sys/kernel/mm/hugepages
# hugetlb pages of one size: hugepages SIZE_KB NAME ASKED "why there are none"
hugepages() {{
    echo $3 > /out/hugepages_$2.asked
    if [ -d $H/hugepages-$1kB ]; then
        echo $3 > $H/hugepages-$1kB/nr_hugepages 2> /out/hugepages_$2.err
        # the shell's own read: with every page in the pool a fork for cat can fail
        read got < $H/hugepages-$1kB/nr_hugepages
    else
        echo "$4" > /out/hugepages_$2.err; got=0
    fi
    echo $got > /out/hugepages_$2
    mark hugepages-$2-done got=$got
    [ -d $H/hugepages-$1kB ] && echo 0 > $H/hugepages-$1kB/nr_hugepages
}}
hugepages 2048 2m {hugepages['2m']} "no 2 MiB hugetlb pages in this kernel"
hugepages 1048576 1g {hugepages['1g']} "no 1 GiB hugetlb pages on this machine"
snap after
"""


def init_script(workload: str, argv: list, hugepages: dict, trace_kb: int, modules: list[str],
                virtio_mem: dict | None = None, virtio_mem_modules: list[str] = ()) -> str:
    """The guest's /init. With `virtio_mem` (parse_virtio_mem's dict): insmod
    `virtio_mem_modules` and wait for the plug before the `before` snapshot, and after `mid` the
    unplug (phases unplug-request, unplugged) instead of compaction and hugetlb pages."""
    events = " ".join(f"kmem/{e}" for e in KMEM_EVENTS)
    plug = _virtio_mem_plug(virtio_mem, list(virtio_mem_modules)) if virtio_mem else ""
    after_mid = _virtio_mem_unplug() if virtio_mem else _after_mid(hugepages)
    return f"""#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
mount -t tmpfs tmpfs /tmp
mkdir -p /out
T=/sys/kernel/tracing
say() {{ echo "buddyfarm: $*" > /dev/console; }}
writeout() {{
    dmesg > /out/dmesg 2>/dev/null
    say phase=write-out
    tar c -C /out . > /dev/vda
    sync
    say phase=done
    poweroff -f
}}
fail() {{ echo "$*" > /out/error; say "error=$*"; writeout; }}
mark() {{ echo "phase=$*" > $T/trace_marker; say "phase=$*"; }}
# the /proc snapshots of a phase, read by one process right after the phase's trace marker
# (farm/real/guest/snapshot.c): nothing is forked between the marker and the reads
snap() {{ /bin/snapshot $1 /out --marker $T/trace_marker || fail "the $1 snapshot failed"; say "phase=$1"; }}
for m in {' '.join(modules)}; do
    insmod /lib/modules/$m.ko || say "error=insmod $m failed"
done
if [ -e /lib/modules/pageblocktypes.ko ]; then
    insmod /lib/modules/pageblocktypes.ko 2> /out/pageblocktypes.err && rm /out/pageblocktypes.err
fi
i=0
while [ ! -b /dev/vdc ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done
[ -b /dev/vda ] && [ -b /dev/vdb ] && [ -b /dev/vdc ] || {{ say "error=no virtio disks /dev/vda, /dev/vdb and /dev/vdc in the guest"; poweroff -f; }}
mkdir -p /mnt
mke2fs -q /dev/vdc > /dev/null 2>&1 && mount -t ext2 /dev/vdc /mnt || {{ say "error=cannot make or mount an ext2 file system on /dev/vdc"; poweroff -f; }}
say phase=boot
# transparent_hugepage=madvise of the command line: hugepage_init() turns THP off in a guest of
# less than 512 MiB of RAM, whatever the command line says; /sys turns it back on
echo madvise > /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null
[ -e $T/trace_marker ] || fail "no tracefs at $T"
echo 0 > $T/tracing_on
echo {trace_kb} > $T/buffer_size_kb || fail "cannot set a {trace_kb} KiB trace buffer"
echo > $T/trace
{plug}for e in {events}; do echo 1 > $T/events/$e/enable || fail "no trace event $e"; done
echo 1 > $T/events/compaction/enable || fail "no compaction trace events"
# when each vmstat update (and with it decay_pcp_high()) ran: work items starting
echo 1 > $T/events/workqueue/workqueue_execute_start/enable || fail "no workqueue trace events"
cat /proc/iomem > /out/iomem
# The initial state of a replay is the before snapshot (kpageflags, pageblocktypes), and the
# trace must start where it was taken: the snapshot program starts tracing right after its reads.
/bin/snapshot before /out --start $T/tracing_on || fail "the before snapshot failed"
mark work-start
/bin/{workload} {' '.join(str(a) for a in argv)} > /out/work.log 2>&1
st=$?
mark work-end
if [ $st -ne 0 ]; then
    if dmesg | grep -q -e "Out of memory" -e "oom-kill"; then
        fail "the workload was OOM-killed (exit status $st): $(dmesg | grep -m1 'Out of memory')"
    fi
    fail "the workload failed with exit status $st: $(tail -n1 /out/work.log)"
fi
sync
echo 3 > /proc/sys/vm/drop_caches
snap mid
{after_mid}echo 0 > $T/tracing_on
mkdir -p /out/trace_stats.d
for c in $T/per_cpu/cpu*; do cat $c/stats > /out/trace_stats.d/${{c##*/}}; done
uname -a > /out/uname
cat /proc/cmdline > /out/cmdline
say phase=trace-dump
dd if=$T/trace of=/dev/vdb bs=1M 2> /out/trace.dd || fail "cannot write the trace to /dev/vdb"
sync
writeout
"""


def build_initramfs(out: Path, workload: str, argv: list, hugepages: dict, trace_kb: int,
                    modules: list[tuple[str, bytes]], pageblock_ko: bytes | None = None,
                    virtio_mem: dict | None = None,
                    virtio_mem_modules: list[tuple[str, bytes]] = ()) -> Path:
    busybox = find_busybox()
    exe = compile_workload(workload, out)
    snapshot = compile_static(GUEST_DIR / "snapshot.c", out, "the snapshot program")
    c = Cpio()
    for d in ("bin", "dev", "proc", "sys", "tmp", "out", "lib", "lib/modules"):
        c.dir(d)
    c.chardev("dev/console", 5, 1)
    c.chardev("dev/null", 1, 3)
    c.file("bin/busybox", Path(busybox).read_bytes())
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True).stdout.split()
    for a in applets:
        if a != "busybox":
            c.symlink(f"bin/{a}", "busybox")
    c.file(f"bin/{workload}", exe.read_bytes())
    c.file("bin/snapshot", snapshot.read_bytes())
    for name, data in [*modules, *virtio_mem_modules]:
        c.file(f"lib/modules/{name}.ko", data, 0o644)
    if pageblock_ko is not None:
        c.file("lib/modules/pageblocktypes.ko", pageblock_ko, 0o644)
    c.file("init", init_script(workload, argv, hugepages, trace_kb, [n for n, _ in modules], virtio_mem,
                               [n for n, _ in virtio_mem_modules]).encode())
    path = out / "initramfs.cpio.gz"
    path.write_bytes(gzip.compress(c.bytes(), compresslevel=6))
    return path


# --- the run ----------------------------------------------------------------------------------

def _trace_stats(folder: Path, name: str = "trace_stats.d") -> str:
    """trace_stats as the shared captures have it (per_cpu/cpu0/stats), summed over the cpus."""
    d = folder / name
    files = sorted(d.glob("cpu*"), key=lambda p: int(p.name[3:])) if d.is_dir() else []
    if not files:
        raise CaptureFailed("the guest wrote no trace buffer stats (per_cpu/cpu*/stats)")
    if len(files) == 1:
        text = files[0].read_text()
    else:
        keys, sums = [], {}
        for f in files:
            for line in f.read_text().splitlines():
                k, _, v = line.partition(":")
                v = v.strip()
                if k not in sums:
                    keys.append(k)
                    sums[k] = float(v) if "." in v else int(v)
                elif "oldest" in k:
                    sums[k] = min(sums[k], float(v))
                elif "." in v:
                    sums[k] = max(sums[k], float(v))
                else:
                    sums[k] += int(v)
        text = "".join(f"{k}: {sums[k]:.6f}\n" if isinstance(sums[k], float) else f"{k}: {sums[k]}\n"
                       for k in keys)
    shutil.rmtree(d)
    return text


def _copy_trace(image: Path, dest: Path) -> int:
    """The trace text the guest wrote raw at the start of `image` (up to the first NUL), gzipped
    into `dest`; returns its length."""
    n = 0
    with open(image, "rb") as src, gzip.open(dest, "wb", compresslevel=6) as out:
        while True:
            chunk = src.read(8 << 20)
            if not chunk:
                break
            end = chunk.find(b"\0")
            if end >= 0:
                out.write(chunk[:end])
                n += end
                break
            out.write(chunk)
            n += len(chunk)
    return n


def capture(kernel: str, memory: str, workload: str, out: str | Path, hugepages: str | None = None,
            smp: int = 1, timeout: float = 1800, trace_buffer_mb: int | None = None,
            append: str = "", accel: str = "auto", log=_say, virtio_mem: str | None = None) -> dict:
    """Boot `kernel` under qemu with `memory`, run `workload` in it and write the capture folder
    `out`. Returns {'folder', 'phases': [(name, seconds since qemu started)], 'kernel', ...}.
    With `virtio_mem` ('SIZE[,block=SIZE][,online=movable|normal][,request=SIZE]'): a virtio-mem
    device of SIZE besides the boot `memory`, plugged before the `before` snapshot and asked over
    QMP for `request` (default 0) after `mid`; the phase after that is `unplugged` (no compaction
    or hugetlb phases); the result then has 'virtio_mem' (virtio_mem_unplug's dict).
    Raises CaptureFailed with one line naming the problem."""
    t_start = time.monotonic()
    if accel not in ("auto", "kvm", "tcg"):
        raise CaptureFailed(f"--accel {accel}: expected auto, kvm or tcg")
    auto = accel == "auto"
    qemu = _need("qemu-system-x86_64", "apt-get install -y qemu-system-x86")
    memory_mib = parse_memory(memory)
    vm = parse_virtio_mem(virtio_mem, memory_mib) if virtio_mem else None
    if vm and hugepages:
        raise CaptureFailed("--hugepages: not used with --virtio-mem (its capture ends with the unplug)")
    # the workload's default sizes follow all the memory the guest has: with --virtio-mem, the
    # boot memory and the device's
    total_mib = memory_mib + (vm["region_bytes"] >> 20 if vm else 0)
    wname, wparams = parse_workload(workload, total_mib)
    huge = parse_hugepages(hugepages, memory_mib)
    if smp < 1:
        raise CaptureFailed(f"--smp {smp}: at least 1")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise CaptureFailed(f"{out}: exists and is not an empty folder")
    find_busybox()
    _need("gcc", "apt-get install -y gcc libc6-dev")
    k = resolve_kernel(kernel)
    out.mkdir(parents=True, exist_ok=True)
    if k["config"]:
        # the replay's initial state depends on it (deferred struct page init types pageblocks)
        (out / "config").write_text("".join(f"{key}={value}\n" for key, value in k["config"].items()))
    work = Path(tempfile.mkdtemp(prefix=".capture-", dir=out))
    qmp = None
    try:
        modules = needed_modules(k)
        vm_modules = virtio_mem_modules(k, [n for n, _ in modules]) if vm else []
        try:
            pageblock_ko = build_pageblock_module(module_build_tree(k), work)
            log("pageblock types: the pageblocktypes module is built for this kernel")
        except CaptureFailed as e:
            # the capture stays useful without them: the replay then infers the types
            pageblock_ko = None
            (out / "pageblocktypes.err").write_text(f"{e}\n")
            log(f"pageblock types: not recorded ({e})")
        if trace_buffer_mb:
            trace_kb = trace_buffer_mb * 1024
        elif vm:
            # an eighth of all the memory, but (allocated before the plug) at most a quarter of the boot memory
            trace_kb = max(16 << 10, min(total_mib * 1024 // 8, memory_mib * 1024 // 4) // smp)
        else:
            trace_kb = max(16 << 10, (memory_mib * 1024 // 8) // smp)
        initrd = build_initramfs(work, wname, [f"{k}={v}" for k, v in wparams.items()], huge, trace_kb,
                                 modules, pageblock_ko, vm, vm_modules)
        files_img, trace_img, scratch_img = work / "files.img", work / "trace.img", work / "scratch.img"
        with open(files_img, "wb") as f:
            f.truncate(max(256, total_mib // 2) << 20)
        with open(trace_img, "wb") as f:
            f.truncate(64 << 30)                       # sparse: only what the guest writes is stored
        with open(scratch_img, "wb") as f:             # /mnt: ext2, for page cache that can be reclaimed
            f.truncate(max(256, memory_mib) << 20)
        accel = accel if accel != "auto" else ("kvm" if kvm_usable() else "tcg")
        cmdline = f"console=ttyS0 quiet transparent_hugepage=madvise panic=-1 {append}".strip()
        unplug = None
        if vm:
            # a unix socket's path has at most 107 bytes
            qmp = work / "qmp.sock"
            if len(str(qmp)) > 100:
                qmp = Path(tempfile.mkdtemp(prefix="buddyfarm-qmp-")) / "qmp.sock"

            def unplug():
                vm_result.update(virtio_mem_unplug(qmp, vm, out, log, t_start))
        vm_result: dict = {}
        cmd = qemu_command(qemu, accel, memory_mib, smp, k["bzimage"], initrd, cmdline,
                           [files_img, trace_img, scratch_img], vm, qmp)
        mods = [n for n, _ in modules + vm_modules]
        log(f"kernel {k['package'] or k['bzimage']}{' (modules: ' + ', '.join(mods) + ')' if mods else ''}")
        log(f"workload {wname} {' '.join(f'{a}={b}' for a, b in wparams.items())}; "
            + (f"virtio-mem {vm['region_bytes'] >> 20} MiB online={vm['online']} "
               f"request={vm['requested'] >> 20} MiB" if vm else f"hugepages 2M={huge['2m']} 1G={huge['1g']}")
            + f"; trace buffer {trace_kb} KiB per cpu; qemu -accel {accel} -m {cmd[cmd.index('-m') + 1]} -smp {smp}")
        try:
            phases, errors, panic = _run_qemu(cmd, out / "console.log", timeout, log, t_start, unplug)
        except _KvmBroken:
            if not auto:
                raise CaptureFailed(f"KVM cannot run this guest (see "
                                    f"{out / 'console.log'}): use --accel tcg") from None
            log("KVM cannot run this guest (see the console log): again with -accel tcg")
            accel = "tcg"
            cmd[cmd.index("-accel") + 1], cmd[cmd.index("-cpu") + 1] = "tcg", "max"
            if qmp is not None:
                qmp.unlink(missing_ok=True)
            phases, errors, panic = _run_qemu(cmd, out / "console.log", timeout, log, t_start, unplug)
        t0 = time.monotonic()
        if phases and phases[-1][0] == "done":       # keep what the guest wrote, even on an error
            with tarfile.open(files_img, "r:") as tar:
                tar.extractall(out, filter="data")
        if panic:
            raise CaptureFailed(f"the guest kernel panicked: {panic} (see {out / 'console.log'})")
        if errors:
            raise CaptureFailed(f"in the guest: {errors[0]} (see {out / 'console.log'})")
        if not phases or phases[-1][0] != "done":
            last = phases[-1][0] if phases else "none (did the kernel boot?)"
            raise CaptureFailed(f"the guest stopped before writing its files out; last phase {last} "
                                f"(see {out / 'console.log'})")
        size = _copy_trace(trace_img, out / "trace.txt.gz")
        if size == 0:
            raise CaptureFailed("the guest wrote no trace text")
        (out / "trace_stats").write_text(_trace_stats(out))
        if vm:
            (out / "trace_stats.mid").write_text(_trace_stats(out, "trace_stats_mid.d"))
        for p in out.glob("kpageflags.*"):
            if p.suffix != ".gz":
                with open(p, "rb") as src, gzip.open(p.with_name(p.name + ".gz"), "wb") as dst:
                    shutil.copyfileobj(src, dst)
                p.unlink()
        (out / "trace.dd").unlink(missing_ok=True)
        phases.append(("host-unpack", time.monotonic() - t_start))
        log(f"{time.monotonic() - t_start:7.1f}s  host: unpacked, trace text {size / 1e6:.1f} MB "
            f"({time.monotonic() - t0:.1f}s)")
        lost = _lost_events(out / "trace_stats")
        if lost and vm and not _lost_events(out / "trace_stats.mid"):
            # the unplug's events filled the buffer after mid: the trace up to mid is whole
            note = ("trace events were lost after phase=mid, during the unplug ("
                    + ", ".join(f"{a} {b}" for a, b in lost.items()) + "): the trace is whole up to "
                    "phase=mid and stops where the buffer filled, maybe before phase=unplugged; "
                    "raise --trace-buffer-mb for all of it\n")
            (out / "trace_lost_after_mid").write_text(note)
            log(f"note: {note.strip()}")
        elif lost:
            raise CaptureFailed("trace events were lost (" + ", ".join(f"{a} {b}" for a, b in lost.items())
                                + "): raise --trace-buffer-mb")
        result = {"folder": str(out), "phases": phases, "kernel": k, "accel": accel,
                  "workload": (wname, wparams), "hugepages": huge, "trace_bytes": size}
        if vm:
            result["virtio_mem"] = vm_result
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if qmp is not None and qmp.parent != work:
            shutil.rmtree(qmp.parent, ignore_errors=True)


def _lost_events(path: Path) -> dict:
    """The nonzero lost-event counters of a trace_stats file."""
    stats = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition(":")
        stats[key.strip()] = value.strip()
    return {k: stats.get(k) for k in ("overrun", "commit overrun", "dropped events")
            if stats.get(k) not in (None, "0")}


# --- virtio-mem: the host's side of the unplug --------------------------------------------------

VIRTIO_MEM_QOM = "/machine/peripheral/vm0"     # the device's id is vm0


def qemu_command(qemu: str, accel: str, memory_mib: int, smp: int, bzimage: str, initrd: Path, cmdline: str,
                 drives: list[Path], virtio_mem: dict | None = None, qmp: Path | None = None) -> list[str]:
    """The qemu command line of a capture. With `virtio_mem` (parse_virtio_mem's dict): the boot
    memory with a maxmem, a virtio-mem-pci device `vm0` of the region's size asking for all of it,
    the kernel told how to online hotplugged memory, and a QMP socket at `qmp`."""
    memory = f"{memory_mib}M"
    if virtio_mem:
        memory += f",maxmem={virtio_mem['maxmem_mib']}M"
        cmdline = f"{cmdline} memhp_default_state={VIRTIO_MEM_ONLINE[virtio_mem['online']]}"
    cmd = [qemu, "-accel", accel, "-cpu", "host" if accel == "kvm" else "max", "-m", memory, "-smp", str(smp),
           "-nographic", "-no-reboot", "-kernel", bzimage, "-initrd", str(initrd), "-append", cmdline]
    for d in drives:
        cmd += ["-drive", f"file={d},format=raw,if=virtio,cache=unsafe"]
    if virtio_mem:
        region = virtio_mem["region_bytes"]
        dev = f"virtio-mem-pci,id=vm0,memdev=vmem0,requested-size={region}"
        if virtio_mem["block_bytes"]:
            dev += f",block-size={virtio_mem['block_bytes']}"
        cmd += ["-object", f"memory-backend-ram,id=vmem0,size={region}", "-device", dev,
                "-qmp", f"unix:{qmp},server=on,wait=off"]
    return cmd


class _Qmp:
    """A QMP client on a unix socket: the greeting, qmp_capabilities, then one command at a time
    (events in between are logged and skipped)."""

    def __init__(self, path: Path, log, timeout: float = 30):
        self.log = log
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock.connect(str(path))
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        self.f = self.sock.makefile("rw", encoding="utf-8", newline="\n")
        if "QMP" not in self._read():
            raise ConnectionError("no QMP greeting")
        self.cmd("qmp_capabilities")

    def _read(self) -> dict:
        line = self.f.readline()
        if not line:
            raise ConnectionError("qemu closed the QMP socket")
        self.log.write(f"{time.time():.3f} <- {line.rstrip()}\n")
        return json.loads(line)

    def cmd(self, name: str, **arguments):
        msg = json.dumps({"execute": name, **({"arguments": arguments} if arguments else {})})
        self.log.write(f"{time.time():.3f} -> {msg}\n")
        self.f.write(msg + "\n")
        self.f.flush()
        while True:
            r = self._read()
            if "return" in r:
                return r["return"]
            if "error" in r:
                raise RuntimeError(f"{name}: {r['error'].get('desc', r['error'])}")

    def close(self):
        self.f.close()
        self.sock.close()


def virtio_mem_unplug(qmp: Path, vm: dict, folder: Path, log=_say, t_start: float | None = None,
                      settle: float = 60, poll: float = 0.5, limit: float = 900) -> dict:
    """Ask the virtio-mem device vm0 for vm['requested'] bytes over QMP and follow its size every
    `poll` s until it reaches that, stays the same for `settle` s (more than the driver's 50 s
    retry timer) or `limit` s have passed. Writes virtio_mem_requested, virtio_mem_size_before,
    virtio_mem_size_after (bytes), virtio_mem.json and qmp.log into `folder`; returns the json's
    dict."""
    t_start = time.monotonic() if t_start is None else t_start
    with open(folder / "qmp.log", "w") as qlog:
        q = _Qmp(qmp, qlog)
        try:
            before = q.cmd("qom-get", path=VIRTIO_MEM_QOM, property="size")
            block = q.cmd("qom-get", path=VIRTIO_MEM_QOM, property="block-size")
            log(f"{time.monotonic() - t_start:7.1f}s  host: virtio-mem size {before >> 20} MiB, asking for "
                f"{vm['requested'] >> 20} MiB")
            t0 = time.monotonic()
            q.cmd("qom-set", path=VIRTIO_MEM_QOM, property="requested-size", value=vm["requested"])
            sizes, last, t_last, timed_out = [[0.0, before]], before, t0, False
            while last != vm["requested"]:
                time.sleep(poll)
                size = q.cmd("qom-get", path=VIRTIO_MEM_QOM, property="size")
                now = time.monotonic()
                if size != last:
                    sizes.append([round(now - t0, 2), size])
                    last, t_last = size, now
                if now - t_last >= settle:
                    break
                if now - t0 >= limit:
                    timed_out = True
                    break
            waited = time.monotonic() - t0
        finally:
            q.close()
    result = {"region_bytes": vm["region_bytes"], "block_bytes": block, "online": vm["online"],
              "requested": vm["requested"], "size_before": before, "size_after": last,
              "seconds_to_settle": round(t_last - t0, 2), "seconds_waited": round(waited, 2),
              "reached_request": last == vm["requested"], "timed_out": timed_out, "sizes": sizes}
    (folder / "virtio_mem_requested").write_text(f"{vm['requested']}\n")
    (folder / "virtio_mem_size_before").write_text(f"{before}\n")
    (folder / "virtio_mem_size_after").write_text(f"{last}\n")
    (folder / "virtio_mem.json").write_text(json.dumps(result, indent=1) + "\n")
    log(f"{time.monotonic() - t_start:7.1f}s  host: virtio-mem size {last >> 20} MiB "
        f"({(before - last) >> 20} MiB unplugged in {t_last - t0:.1f}s; followed for {waited:.1f}s)")
    return result


class _KvmBroken(Exception):
    """KVM stopped the guest with an internal error, or qemu's KVM code failed before the guest
    booted (both seen under nested virtualisation)."""


def _run_qemu(cmd, console_path: Path, timeout: float, log, t_start: float, unplug=None):
    """Run qemu, copying its console to `console_path` and logging each phase line as it comes.
    With `unplug` (a function of no arguments; --virtio-mem), qemu's stdin (the guest's console)
    is a pipe: at the phase unplug-request, `unplug` runs in a thread while the console is still
    followed, and then a line written to the guest lets it go on.
    Returns ([(phase, seconds)], [guest error lines], panic line or None)."""
    phases, errors, panic = [], [], None
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE if unplug else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    timed_out = threading.Event()
    worker, worker_error = None, []

    def run_unplug():
        try:
            unplug()
            proc.stdin.write(b"unplugged\n")
            proc.stdin.flush()
        except Exception as e:                   # noqa: BLE001 - named in CaptureFailed below
            worker_error.append(e)
            proc.kill()

    def kill():
        timed_out.set()
        proc.kill()
    timer = threading.Timer(timeout, kill)
    timer.start()
    log(f"{time.monotonic() - t_start:7.1f}s  qemu started")
    try:
        with open(console_path, "wb") as con:
            for raw in proc.stdout:
                con.write(raw)
                con.flush()
                line = raw.decode(errors="replace").strip().replace("\r", "")
                m = re.search(r"buddyfarm: (phase|error)=(.*)", line)
                if m and m[1] == "phase":
                    t = time.monotonic() - t_start
                    phases.append((m[2].split()[0], t))
                    log(f"{t:7.1f}s  {m[2]}")
                    if unplug is not None and worker is None and phases[-1][0] == "unplug-request":
                        worker = threading.Thread(target=run_unplug, daemon=True)
                        worker.start()
                elif m:
                    errors.append(m[2])
                elif panic is None and (p := PANIC.search(line)):
                    panic = p[0]
                elif "KVM internal error" in line:
                    proc.kill()
                    proc.wait()
                    raise _KvmBroken()
        proc.wait()
    finally:
        timer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if worker is not None:
            worker.join(60)
        if proc.stdin is not None:
            try:
                proc.stdin.close()
            except OSError:
                pass
    if worker_error and not timed_out.is_set():
        e = worker_error[0]
        raise CaptureFailed(f"the virtio-mem unplug over QMP failed: {type(e).__name__}: {e} "
                            f"(see {console_path.parent / 'qmp.log'})")
    if timed_out.is_set():
        last = phases[-1][0] if phases else "none"
        raise CaptureFailed(f"timed out after {timeout:.0f}s (last phase {last}; see {console_path})")
    if proc.returncode not in (0, None) and not phases and not panic:
        tail = console_path.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
        if cmd[cmd.index("-accel") + 1] == "kvm" and "kvm" in tail[0].lower():
            raise _KvmBroken()                      # e.g. an assertion in qemu's KVM code
        raise CaptureFailed(f"qemu-system-x86_64 failed (exit status {proc.returncode}): {tail[0]}")
    return phases, errors, panic


def main_args(args) -> int:
    """`farm capture` with parsed arguments."""
    try:
        r = capture(args.kernel, args.memory, args.workload, args.out, hugepages=args.hugepages,
                    smp=args.smp, timeout=args.timeout, trace_buffer_mb=args.trace_buffer_mb,
                    append=args.append or "", accel=args.accel,
                    virtio_mem=getattr(args, "virtio_mem", None))
    except CaptureFailed as e:
        print(f"farm capture: {e}", file=sys.stderr)
        return 1
    print(f"capture written to {r['folder']}")
    return 0
