"""Build a Linux kernel with another geometry (`farm kernel build`): the distribution's source
package and its cloud configuration, none of its modules (module support stays on, for the
capture's pageblocktypes module) and the virtio drivers a capture needs built in, debug info off,
and MAX_PAGE_ORDER / pageblock_order changed where the kernel defines them. The built tree stays
in OUT/src, with its Module.symvers, for `farm capture` to build its module against.

x86-64 has no Kconfig option for either: MAX_PAGE_ORDER is `#define MAX_PAGE_ORDER 10` in
include/linux/mmzone.h (CONFIG_ARCH_FORCE_MAX_ORDER exists on arm64, powerpc and others only), and
pageblock_order is `MIN_T(unsigned int, HUGETLB_PAGE_ORDER, MAX_PAGE_ORDER)` in
include/linux/pageblock-flags.h (HPAGE_PMD_ORDER without hugetlbfs). The limits:
MAX_PAGE_ORDER + PAGE_SHIFT <= SECTION_SIZE_BITS (mmzone.h: `#error Allocator MAX_PAGE_ORDER
exceeds SECTION_SIZE`), 27 on x86-64, so at most 15; above 14 the 32-bit vDSO image no longer links,
so IA32_EMULATION goes off. pageblock_order is at most MAX_PAGE_ORDER. Names before 6.4 differ
(MAX_ORDER counted the orders, one more than the largest): only releases with MAX_PAGE_ORDER (6.8+)
are handled here.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

PAGE_SHIFT = 12
SECTION_SIZE_BITS = 27          # arch/x86/include/asm/sparsemem.h, x86-64
IA32_VDSO_MAX_ORDER = 14

#: Kconfig changes on top of the distribution's config: (option, value); value None = off.
CONFIG_CHANGES = (
    ("MODULES", "y"),
    ("VIRTIO", "y"), ("VIRTIO_PCI", "y"), ("VIRTIO_BLK", "y"), ("VIRTIO_CONSOLE", "y"),
    ("VIRTIO_BALLOON", "y"), ("VIRTIO_MEM", "y"), ("MEMORY_HOTPLUG", "y"), ("MEMORY_HOTREMOVE", "y"),
    ("DEBUG_INFO", None), ("DEBUG_INFO_NONE", "y"), ("DEBUG_INFO_DWARF_TOOLCHAIN_DEFAULT", None),
    ("DEBUG_INFO_BTF", None),
    ("SYSTEM_TRUSTED_KEYS", '""'), ("SYSTEM_REVOCATION_KEYS", '""'),
)
BUILD_TOOLS = ("make", "gcc", "flex", "bison", "bc", "dpkg", "apt-get")


class KernelBuildError(RuntimeError):
    """A build that cannot go on: one line that names the cause."""


def check_geometry(max_page_order: int, pageblock_order: int | None) -> None:
    if not 1 <= max_page_order or max_page_order + PAGE_SHIFT > SECTION_SIZE_BITS:
        raise KernelBuildError(f"--max-page-order {max_page_order}: MAX_PAGE_ORDER + PAGE_SHIFT must not exceed "
                               f"SECTION_SIZE_BITS ({SECTION_SIZE_BITS} on x86-64): at most "
                               f"{SECTION_SIZE_BITS - PAGE_SHIFT}")
    if pageblock_order is not None and not 1 <= pageblock_order <= max_page_order:
        raise KernelBuildError(f"--pageblock-order {pageblock_order}: must be in 1..MAX_PAGE_ORDER ({max_page_order})")


def _run(cmd, cwd=None, log=None) -> None:
    r = subprocess.run(cmd, cwd=cwd, stdout=log or subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode:
        tail = (r.stdout or "").strip().splitlines()[-1:] if log is None else []
        raise KernelBuildError(f"{' '.join(map(str, cmd))} failed (exit {r.returncode})"
                               + (f": {tail[0]}" if tail else ""))


def fetch(package: str, into: Path) -> Path:
    """`apt-get download PACKAGE` into `into` (once) and `dpkg -x` it; -> the extracted folder."""
    into.mkdir(parents=True, exist_ok=True)
    debs = sorted(into.glob(f"{package}_*.deb"))
    if not debs:
        _run(["apt-get", "download", package], cwd=into)
        debs = sorted(into.glob(f"{package}_*.deb"))
        if not debs:
            raise KernelBuildError(f"apt-get download {package} gave no .deb")
    out = into / (package + ".x")
    if not out.exists():
        _run(["dpkg", "-x", str(debs[-1]), str(out)])
    return out


def cloud_image_package(release: str) -> str:
    """The newest linux-image-RELEASE.*-cloud-amd64-unsigned package apt knows."""
    r = subprocess.run(["apt-cache", "search", "--names-only", f"^linux-image-{re.escape(release)}\\.[0-9].*-cloud-amd64-unsigned$"],
                       capture_output=True, text=True)
    names = [line.split()[0] for line in r.stdout.splitlines() if line.strip()]
    if not names:
        raise KernelBuildError(f"no linux-image-{release}.*-cloud-amd64-unsigned package in apt's lists "
                               "(run apt-get update)")
    return max(names, key=lambda n: [int(x) for x in re.findall(r"\d+", n)])


def patch_geometry(src: Path, max_page_order: int, pageblock_order: int | None) -> None:
    """Set MAX_PAGE_ORDER (include/linux/mmzone.h) and pageblock_order
    (include/linux/pageblock-flags.h) in the source tree."""
    mmzone = src / "include/linux/mmzone.h"
    text = mmzone.read_text()
    new, n = re.subn(r"^#define MAX_PAGE_ORDER \d+$", f"#define MAX_PAGE_ORDER {max_page_order}", text,
                     count=1, flags=re.M)
    if n != 1:
        raise KernelBuildError(f"{mmzone}: no '#define MAX_PAGE_ORDER N' line (a release before 6.8?)")
    mmzone.write_text(new)
    if pageblock_order is None:
        return
    flags = src / "include/linux/pageblock-flags.h"
    text = flags.read_text()
    new, n = re.subn(r"^#define pageblock_order\s+MIN_T\(unsigned int, (HUGETLB_PAGE_ORDER|HPAGE_PMD_ORDER), "
                     r"MAX_PAGE_ORDER\)$", f"#define pageblock_order\t\t{pageblock_order}", text, flags=re.M)
    if n == 0:
        raise KernelBuildError(f"{flags}: no pageblock_order definition of the expected form")
    flags.write_text(new)


def _drop_modules(config: Path, out: Path) -> None:
    lines = [f"# {line.split('=')[0]} is not set" if line.endswith("=m") else line
             for line in config.read_text().splitlines()]
    out.write_text("\n".join(lines) + "\n")


def configure(src: Path, base_config: Path, max_page_order: int) -> None:
    """The distribution's config without its modules, with CONFIG_CHANGES, then `make
    olddefconfig`; checks that the changes held."""
    # the distribution's thousands of modules would take hours on few cores: they go, and
    # CONFIG_CHANGES turns on what a capture needs
    _drop_modules(base_config, src / ".config")
    changes = list(CONFIG_CHANGES)
    if max_page_order > IA32_VDSO_MAX_ORDER:
        changes += [("IA32_EMULATION", None), ("X86_X32_ABI", None)]
    args = []
    for opt, value in changes:
        if value is None:
            args += ["--disable", opt]
        elif value.startswith('"'):
            args += ["--set-str", opt, value.strip('"')]
        else:
            args += ["--enable", opt]
    _run([str(src / "scripts/config"), "--file", str(src / ".config"), *args])
    _run(["make", "-C", str(src), "olddefconfig"])
    # an option new to olddefconfig may default to m: drop those too
    _drop_modules(src / ".config", src / ".config")
    _run(["make", "-C", str(src), "olddefconfig"])
    config = (src / ".config").read_text()
    for opt, value in changes:
        if value == "y" and f"CONFIG_{opt}=y" not in config and opt not in ("DEBUG_INFO_NONE",):
            raise KernelBuildError(f"CONFIG_{opt}=y did not hold after olddefconfig")
        if value is None and f"CONFIG_{opt}=y" in config:
            raise KernelBuildError(f"CONFIG_{opt} is still on after olddefconfig")


def build_kernel(release: str, max_page_order: int, pageblock_order: int | None, out: Path,
                 jobs: int | None = None, cache: Path | None = None, prepare_only: bool = False,
                 say=print) -> Path:
    """Fetch, configure, patch and build; -> out/bzImage (or the prepared source tree)."""
    check_geometry(max_page_order, pageblock_order)
    missing = [t for t in BUILD_TOOLS if shutil.which(t) is None]
    if missing:
        raise KernelBuildError(f"missing build tools: {', '.join(missing)} (Debian: apt-get install make gcc "
                               "flex bison bc libelf-dev libssl-dev)")
    cache = cache or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "buddyfarm" / "kernels"
    t0 = time.monotonic()

    def phase(text):
        say(f"farm kernel build: [{time.monotonic() - t0:6.1f} s] {text}")

    phase(f"fetching linux-source-{release}")
    srcpkg = fetch(f"linux-source-{release}", cache)
    tarballs = glob.glob(str(srcpkg / "usr/src/linux-source-*.tar.xz"))
    if not tarballs:
        raise KernelBuildError(f"linux-source-{release}: no source tarball in the package")
    image = cloud_image_package(release)
    phase(f"fetching {image} for its config")
    configs = glob.glob(str(fetch(image, cache) / "boot/config-*"))
    if not configs:
        raise KernelBuildError(f"{image}: no /boot/config-* in the package")
    out.mkdir(parents=True, exist_ok=True)
    src = out / "src"
    if src.exists():
        shutil.rmtree(src)
    phase("unpacking the source")
    _run(["tar", "xf", tarballs[0], "-C", str(out)])
    unpacked = [p for p in out.iterdir() if p.is_dir() and p.name.startswith("linux-source-")]
    unpacked[0].rename(src)
    phase(f"MAX_PAGE_ORDER {max_page_order}, pageblock_order "
          f"{pageblock_order if pageblock_order is not None else 'min(HUGETLB_PAGE_ORDER, MAX_PAGE_ORDER)'}")
    patch_geometry(src, max_page_order, pageblock_order)
    phase("configuring (the cloud config without its modules, virtio built in, no debug info)")
    configure(src, Path(configs[0]), max_page_order)
    shutil.copy(src / ".config", out / "config")
    (out / "geometry").write_text(f"max_page_order {max_page_order}\n"
                                  f"pageblock_order {pageblock_order if pageblock_order is not None else 'default'}\n"
                                  f"release {release}\nconfig {Path(configs[0]).name}\n")
    if prepare_only:
        phase(f"prepared: {src}")
        return src
    jobs = jobs or os.cpu_count() or 1
    phase(f"building bzImage with {jobs} jobs (log: {out / 'build.log'}); this takes a long time on few cores")
    with open(out / "build.log", "w") as log:
        # `modules` builds none (there are none) but writes Module.symvers, which an external
        # module (the capture's pageblocktypes) is built against
        _run(["make", "-C", str(src), f"-j{jobs}", "bzImage", "modules"], log=log)
    shutil.copy(src / "arch/x86/boot/bzImage", out / "bzImage")
    phase(f"done: {out / 'bzImage'}")
    return out / "bzImage"


def main(args) -> int:
    try:
        build_kernel(args.release, args.max_page_order, args.pageblock_order, Path(args.out),
                     jobs=args.jobs, prepare_only=args.prepare_only)
    except KernelBuildError as e:
        print(f"farm kernel build: error: {e}", file=sys.stderr)
        return 2
    return 0
