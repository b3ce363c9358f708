"""farm kernel build: the geometry limits and the header edits (the build itself takes an hour on
two cores: docs/traces.md records one)."""

import pytest

from farm.cli import main
from farm.real.kernel import KernelBuildError, check_geometry, patch_geometry

# the lines as Linux 6.12 has them
MMZONE = """/* Free memory management - zoned buddy allocator.  */
#ifndef CONFIG_ARCH_FORCE_MAX_ORDER
#define MAX_PAGE_ORDER 10
#else
#define MAX_PAGE_ORDER CONFIG_ARCH_FORCE_MAX_ORDER
#endif
#define MAX_ORDER_NR_PAGES (1 << MAX_PAGE_ORDER)
"""
PAGEBLOCK = """#if defined(CONFIG_HUGETLB_PAGE)
#ifdef CONFIG_HUGETLB_PAGE_SIZE_VARIABLE
extern unsigned int pageblock_order;
#else /* CONFIG_HUGETLB_PAGE_SIZE_VARIABLE */
#define pageblock_order		MIN_T(unsigned int, HUGETLB_PAGE_ORDER, MAX_PAGE_ORDER)
#endif /* CONFIG_HUGETLB_PAGE_SIZE_VARIABLE */
#elif defined(CONFIG_TRANSPARENT_HUGEPAGE)
#define pageblock_order		MIN_T(unsigned int, HPAGE_PMD_ORDER, MAX_PAGE_ORDER)
#else /* CONFIG_TRANSPARENT_HUGEPAGE */
#define pageblock_order		MAX_PAGE_ORDER
#endif /* CONFIG_HUGETLB_PAGE */
"""


def tree(tmp_path):
    (tmp_path / "include/linux").mkdir(parents=True)
    (tmp_path / "include/linux/mmzone.h").write_text(MMZONE)
    (tmp_path / "include/linux/pageblock-flags.h").write_text(PAGEBLOCK)
    return tmp_path


def test_max_page_order_and_pageblock_order_are_set(tmp_path):
    src = tree(tmp_path)
    patch_geometry(src, 13, 11)
    mmzone = (src / "include/linux/mmzone.h").read_text()
    assert "#define MAX_PAGE_ORDER 13\n" in mmzone and "#define MAX_PAGE_ORDER 10" not in mmzone
    assert "#define MAX_PAGE_ORDER CONFIG_ARCH_FORCE_MAX_ORDER" in mmzone
    flags = (src / "include/linux/pageblock-flags.h").read_text()
    assert flags.count("#define pageblock_order\t\t11\n") == 2       # hugetlb and THP branches
    assert "#define pageblock_order\t\tMAX_PAGE_ORDER" in flags       # no huge pages: untouched


def test_default_pageblock_order_is_left_alone(tmp_path):
    src = tree(tmp_path)
    patch_geometry(src, 12, None)
    assert (src / "include/linux/pageblock-flags.h").read_text() == PAGEBLOCK


def test_a_tree_without_max_page_order_is_refused(tmp_path):
    src = tree(tmp_path)
    (src / "include/linux/mmzone.h").write_text(MMZONE.replace("MAX_PAGE_ORDER 10", "MAX_ORDER 11"))
    with pytest.raises(KernelBuildError, match="before 6.8"):
        patch_geometry(src, 12, None)


@pytest.mark.parametrize("order,pb,ok", [(10, None, True), (15, 9, True), (16, None, False), (12, 13, False),
                                         (12, 0, False)])
def test_geometry_limits(order, pb, ok):
    if ok:
        check_geometry(order, pb)
    else:
        with pytest.raises(KernelBuildError):
            check_geometry(order, pb)


def test_cli_error_names_the_limit(tmp_path, capsys):
    assert main(["kernel", "build", "--max-page-order", "16", "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "SECTION_SIZE_BITS" in err and "at most 15" in err
