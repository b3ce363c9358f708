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

Every failure raises `CaptureFailed` with one line naming the problem; the console log stays in
the output folder.
"""

from __future__ import annotations

import fcntl
import glob
import gzip
import lzma
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

from .captures import parse_config

__all__ = ["CaptureFailed", "WORKLOADS", "capture", "parse_memory", "parse_workload", "parse_hugepages",
           "resolve_kernel", "build_initramfs", "kvm_usable"]

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
    files = {}
    for p in Path(kernel["modules"]).rglob("*.ko*"):
        files[p.name.split(".ko")[0].replace("-", "_")] = p
    order: list[tuple[str, bytes]] = []
    seen: set[str] = set()

    def visit(name, chain=()):
        if name in seen:
            return
        if name not in files:
            raise CaptureFailed(f"module {name} (needed for the virtio disks) is not in {kernel['modules']}")
        seen.add(name)
        data = _read_module(files[name])
        m = re.search(rb"(?:^|\0)depends=([^\0]*)\0", data)
        for dep in filter(None, (m[1].decode().split(",") if m else [])):
            visit(dep.replace("-", "_"), chain + (name,))
        order.append((name, data))
    for name in wanted:
        visit(name)
    return order


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


def init_script(workload: str, argv: list, hugepages: dict, trace_kb: int, modules: list[str]) -> str:
    events = " ".join(f"kmem/{e}" for e in KMEM_EVENTS)
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
for e in {events}; do echo 1 > $T/events/$e/enable || fail "no trace event $e"; done
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
echo 1 > /proc/sys/vm/compact_memory
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
echo 0 > $T/tracing_on
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
                    modules: list[tuple[str, bytes]], pageblock_ko: bytes | None = None) -> Path:
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
    for name, data in modules:
        c.file(f"lib/modules/{name}.ko", data, 0o644)
    if pageblock_ko is not None:
        c.file("lib/modules/pageblocktypes.ko", pageblock_ko, 0o644)
    c.file("init", init_script(workload, argv, hugepages, trace_kb, [n for n, _ in modules]).encode())
    path = out / "initramfs.cpio.gz"
    path.write_bytes(gzip.compress(c.bytes(), compresslevel=6))
    return path


# --- the run ----------------------------------------------------------------------------------

def _trace_stats(folder: Path) -> str:
    """trace_stats as the shared captures have it (per_cpu/cpu0/stats), summed over the cpus."""
    d = folder / "trace_stats.d"
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
            append: str = "", accel: str = "auto", log=_say) -> dict:
    """Boot `kernel` under qemu with `memory`, run `workload` in it and write the capture folder
    `out`. Returns {'folder', 'phases': [(name, seconds since qemu started)], 'kernel', ...}.
    Raises CaptureFailed with one line naming the problem."""
    t_start = time.monotonic()
    if accel not in ("auto", "kvm", "tcg"):
        raise CaptureFailed(f"--accel {accel}: expected auto, kvm or tcg")
    auto = accel == "auto"
    qemu = _need("qemu-system-x86_64", "apt-get install -y qemu-system-x86")
    memory_mib = parse_memory(memory)
    wname, wparams = parse_workload(workload, memory_mib)
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
    try:
        modules = needed_modules(k)
        try:
            pageblock_ko = build_pageblock_module(module_build_tree(k), work)
            log("pageblock types: the pageblocktypes module is built for this kernel")
        except CaptureFailed as e:
            # the capture stays useful without them: the replay then infers the types
            pageblock_ko = None
            (out / "pageblocktypes.err").write_text(f"{e}\n")
            log(f"pageblock types: not recorded ({e})")
        trace_kb = (trace_buffer_mb * 1024 if trace_buffer_mb
                    else max(16 << 10, (memory_mib * 1024 // 8) // smp))
        initrd = build_initramfs(work, wname, [f"{k}={v}" for k, v in wparams.items()], huge, trace_kb,
                                 modules, pageblock_ko)
        files_img, trace_img, scratch_img = work / "files.img", work / "trace.img", work / "scratch.img"
        with open(files_img, "wb") as f:
            f.truncate(max(256, memory_mib // 2) << 20)
        with open(trace_img, "wb") as f:
            f.truncate(64 << 30)                       # sparse: only what the guest writes is stored
        with open(scratch_img, "wb") as f:             # /mnt: ext2, for page cache that can be reclaimed
            f.truncate(max(256, memory_mib) << 20)
        accel = accel if accel != "auto" else ("kvm" if kvm_usable() else "tcg")
        cmdline = f"console=ttyS0 quiet transparent_hugepage=madvise panic=-1 {append}".strip()
        cmd = [qemu, "-accel", accel, "-cpu", "host" if accel == "kvm" else "max", "-m", f"{memory_mib}M", "-smp", str(smp), "-nographic", "-no-reboot",
               "-kernel", k["bzimage"], "-initrd", str(initrd), "-append", cmdline,
               "-drive", f"file={files_img},format=raw,if=virtio,cache=unsafe",
               "-drive", f"file={trace_img},format=raw,if=virtio,cache=unsafe",
               "-drive", f"file={scratch_img},format=raw,if=virtio,cache=unsafe"]
        log(f"kernel {k['package'] or k['bzimage']}{' (modules: ' + ', '.join(n for n, _ in modules) + ')' if modules else ''}")
        log(f"workload {wname} {' '.join(f'{a}={b}' for a, b in wparams.items())}; "
            f"hugepages 2M={huge['2m']} 1G={huge['1g']}; trace buffer {trace_kb} KiB per cpu; "
            f"qemu -accel {accel} -m {memory_mib}M -smp {smp}")
        try:
            phases, errors, panic = _run_qemu(cmd, out / "console.log", timeout, log, t_start)
        except _KvmBroken:
            if not auto:
                raise CaptureFailed(f"KVM cannot run this guest (see "
                                    f"{out / 'console.log'}): use --accel tcg") from None
            log("KVM cannot run this guest (see the console log): again with -accel tcg")
            accel = "tcg"
            cmd[cmd.index("-accel") + 1], cmd[cmd.index("-cpu") + 1] = "tcg", "max"
            phases, errors, panic = _run_qemu(cmd, out / "console.log", timeout, log, t_start)
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
        for p in out.glob("kpageflags.*"):
            if p.suffix != ".gz":
                with open(p, "rb") as src, gzip.open(p.with_name(p.name + ".gz"), "wb") as dst:
                    shutil.copyfileobj(src, dst)
                p.unlink()
        (out / "trace.dd").unlink(missing_ok=True)
        phases.append(("host-unpack", time.monotonic() - t_start))
        log(f"{time.monotonic() - t_start:7.1f}s  host: unpacked, trace text {size / 1e6:.1f} MB "
            f"({time.monotonic() - t0:.1f}s)")
        stats = {}
        for line in (out / "trace_stats").read_text().splitlines():
            key, _, value = line.partition(":")
            stats[key.strip()] = value.strip()
        lost = {k2: stats.get(k2) for k2 in ("overrun", "commit overrun", "dropped events")
                if stats.get(k2) not in (None, "0")}
        if lost:
            raise CaptureFailed("trace events were lost (" + ", ".join(f"{a} {b}" for a, b in lost.items())
                                + "): raise --trace-buffer-mb")
        return {"folder": str(out), "phases": phases, "kernel": k, "accel": accel,
                "workload": (wname, wparams), "hugepages": huge, "trace_bytes": size}
    finally:
        shutil.rmtree(work, ignore_errors=True)


class _KvmBroken(Exception):
    """KVM stopped the guest with an internal error, or qemu's KVM code failed before the guest
    booted (both seen under nested virtualisation)."""


def _run_qemu(cmd, console_path: Path, timeout: float, log, t_start: float):
    """Run qemu, copying its console to `console_path` and logging each phase line as it comes.
    Returns ([(phase, seconds)], [guest error lines], panic line or None)."""
    phases, errors, panic = [], [], None
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    timed_out = threading.Event()

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
                    append=args.append or "", accel=args.accel)
    except CaptureFailed as e:
        print(f"farm capture: {e}", file=sys.stderr)
        return 1
    print(f"capture written to {r['folder']}")
    return 0
