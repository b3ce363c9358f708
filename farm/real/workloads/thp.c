/*
 * thp: transparent huge page faults.
 *
 * Each of `rounds` rounds maps `mb` of anonymous memory on a 2 MiB boundary, madvise()s it
 * MADV_HUGEPAGE, and touches every 4 KiB page. Each first touch of a 2 MiB region asks the
 * kernel for an order-9 page (a THP fault): with defrag set to always / madvise (for this
 * madvised region) the fault does direct compaction and reclaim to get one; with defer it wakes
 * kcompactd and falls back to 4 KiB pages; with never it only takes a free order-9 block. The
 * round then reads AnonHugePages (/proc/self/smaps_rollup, else /proc/self/smaps summed) to see
 * how many regions got a huge page. With split=1 it then MADV_DONTNEEDs the second half of every
 * 2 MiB region: the kernel splits each huge mapping into 4 KiB page-table entries and queues the
 * huge page for a deferred split (its shrinker splits it under memory pressure and frees the
 * unmapped half as 4 KiB pages); AnonHugePages then drops to 0. The round ends by unmapping all.
 *
 * Parameters (key=value):
 *   mb=256        size of the region, MiB (rounded up to 2 MiB)
 *   rounds=3      rounds
 *   split=1       1: split the huge pages (MADV_DONTNEED of each second half) before unmapping;
 *                 0: unmap them whole
 *   defrag=       empty: leave the kernel's setting; else always, defer, defer+madvise, madvise
 *                 or never, written to /sys/kernel/mm/transparent_hugepage/defrag first
 *   enabled=      empty: leave it; else always, madvise or never, written to
 *                 /sys/kernel/mm/transparent_hugepage/enabled first
 *
 * Prints: thp: mb=M rounds=R regions=N thp=H split=S split_left=L per_round=H1/N,H2/N,...
 *         enabled=E defrag=D
 *   regions: 2 MiB regions touched over all rounds; thp: how many of them were huge pages after
 *   the faults; split_left: huge pages still mapped whole after the splits (0 when split=1
 *   worked); enabled, defrag: the kernel's settings during the run (- when the file is missing).
 */
#define _GNU_SOURCE
#define WORKLOAD "thp"
#include "workload.h"

static const char *const known[] = {"mb", "rounds", "split", "defrag", "enabled", NULL};
static const char *const defrag_values[] = {"always", "defer", "defer+madvise", "madvise",
                                            "never", NULL};
static const char *const enabled_values[] = {"always", "madvise", "never", NULL};

/* Write `value` (checked against `allowed`) to THP_SYSFS/name. */
static void thp_set(const char *name, const char *value, const char *const *allowed)
{
    int ok = 0;
    for (const char *const *a = allowed; *a; a++)
        ok |= strcmp(*a, value) == 0;
    if (!ok) {
        char list[128] = "";
        for (const char *const *a = allowed; *a; a++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s",
                     a == allowed ? "" : ", ", *a);
        param_usage_error("bad value for %s: '%s' (one of %s)", name, value, list);
    }
    char path[128];
    snprintf(path, sizeof path, THP_SYSFS "%s", name);
    int fd = open(path, O_WRONLY);
    if (fd < 0)
        fail(errno == ENOENT ? "open %s (a kernel without transparent huge pages?)" : "open %s",
             path);
    ssize_t n = write(fd, value, strlen(value));
    if (n != (ssize_t)strlen(value))
        fail("write '%s' to %s", value, path);
    close(fd);
}

int main(int argc, char **argv)
{
    params_check(argc, argv, known);
    long mb = param_long_min(argc, argv, "mb", 256, 1);
    long rounds = param_long_min(argc, argv, "rounds", 3, 0);
    long split = param_long(argc, argv, "split", 1);
    const char *defrag = param_str(argc, argv, "defrag", "");
    const char *enabled = param_str(argc, argv, "enabled", "");
    if (split != 0 && split != 1)
        param_usage_error("bad value for split: %ld (0 or 1)", split);

    if (*enabled)
        thp_set("enabled", enabled, enabled_values);
    if (*defrag)
        thp_set("defrag", defrag, defrag_values);

    size_t regions = (size_t)(mb + 1) / 2, size = regions * HUGE_2M;
    long base_kb = anon_huge_kb(); /* huge pages mapped before (none expected) */
    size_t thp_total = 0, left_total = 0;
    char per_round[4096] = "";
    for (long r = 0; r < rounds; r++) {
        char *region = map_2m_aligned(size);
        if (madvise(region, size, MADV_HUGEPAGE) != 0)
            fail("madvise MADV_HUGEPAGE");
        for (size_t off = 0; off < size; off += PAGE)
            region[off] = (char)(off >> 12 | 1);
        long kb = anon_huge_kb() - base_kb;
        size_t thp = kb > 0 ? (size_t)kb / 2048 : 0;
        thp_total += thp;
        if (split) {
            for (size_t i = 0; i < regions; i++)
                if (madvise(region + i * HUGE_2M + HUGE_2M / 2, HUGE_2M / 2, MADV_DONTNEED) != 0)
                    fail("madvise MADV_DONTNEED");
            kb = anon_huge_kb() - base_kb;
            left_total += kb > 0 ? (size_t)kb / 2048 : 0;
        } else {
            left_total += thp;
        }
        if (munmap(region, size) != 0)
            fail("munmap");
        size_t used = strlen(per_round);
        snprintf(per_round + used, sizeof per_round - used, "%s%zu/%zu", r ? "," : "", thp,
                 regions);
    }

    char e[32], d[32];
    printf("%s: mb=%ld rounds=%ld regions=%zu thp=%zu split=%ld split_left=%zu per_round=%s "
           "enabled=%s defrag=%s\n", WORKLOAD, mb, rounds, regions * (size_t)rounds, thp_total,
           split, left_total, *per_round ? per_round : "-", thp_setting("enabled", e, sizeof e),
           thp_setting("defrag", d, sizeof d));
    return 0;
}
