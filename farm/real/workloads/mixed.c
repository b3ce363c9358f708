/*
 * mixed: a bit of everything, round after round.
 *
 * Each of `rounds` rounds:
 *   1. touches `anon_mb` of anonymous memory page by page (4 KiB pages: MADV_NOHUGEPAGE):
 *      movable pages;
 *   2. writes `tmpfs_mb` into files of 1 to 16 pages (random sizes) in `dir`: page cache, movable
 *      (tmpfs pages are not reclaimable without swap), plus inodes and dentries (reclaimable
 *      slab);
 *   3. opens `pipes` pipes with 4 KiB written into each: unmovable pipe buffer pages, kept;
 *   4. forks `forks` children that each touch 1 MiB of anonymous memory and exit: kernel stacks,
 *      page tables, task structures (unmovable), copied page tables of the parent;
 *   5. frees a random half of the anonymous pages (MADV_DONTNEED, one page at a time) and deletes
 *      a random half of the files: holes in movable pageblocks;
 *   6. faults a `thp_mb` region (2 MiB aligned, MADV_HUGEPAGE) page by page: order-9 allocations,
 *      compaction; counts the huge pages it got (AnonHugePages) and unmaps it;
 *   7. unmaps the rest of the anonymous memory.
 * The files not deleted stay in `dir`; the pipes (read ends; the write ends are closed after the
 * write, the page stays unread) go to a holder process that outlives the workload, so the pipe
 * pages stay allocated until it is killed. Deterministic for a seed.
 *
 * Parameters (key=value):
 *   rounds=3      rounds
 *   anon_mb=100   anonymous memory per round, MiB
 *   tmpfs_mb=50   file data per round, MiB
 *   dir=/tmp      directory for the files (a tmpfs in the guest); names mixed-ROUND-N
 *   pipes=200     pipes per round, all held
 *   forks=8       children per round
 *   thp_mb=32     THP region per round, MiB (rounded up to 2 MiB; 0: none)
 *   seed=1        random seed (file sizes, which pages and files are freed)
 *
 * One descriptor is kept per pipe: RLIMIT_NOFILE is raised to fit; when it cannot be raised
 * enough, pipes are opened while descriptors remain (pipes= says how many).
 *
 * Prints: mixed: rounds=R anon_pages=A files=F files_kept=K tmpfs_bytes=B pipes=P
 *         pipes_wanted=W forks=N thp=H thp_regions=M seed=S holder=PID
 *   counts summed over the rounds: anon_pages touched, files written and kept, bytes written to
 *   them (tmpfs_mb MiB a round), pipes held (W = pipes x rounds), children forked, huge pages
 *   got out of thp_regions 2 MiB regions.
 */
#define _GNU_SOURCE
#define WORKLOAD "mixed"
#include "workload.h"

#include <sys/wait.h>

static const char *const known[] = {"rounds", "anon_mb", "tmpfs_mb", "dir", "pipes", "forks",
                                    "thp_mb", "seed", NULL};

#define CHILD_BYTES (1UL << 20)

static void child(void)
{
    char *m = mmap(NULL, CHILD_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        _exit(errno ? errno : 1); /* the parent reports it */
    for (size_t off = 0; off < CHILD_BYTES; off += PAGE)
        m[off] = 1;
    usleep(1000);
    _exit(0);
}

int main(int argc, char **argv)
{
    params_check(argc, argv, known);
    long rounds = param_long_min(argc, argv, "rounds", 3, 0);
    long anon_mb = param_long_min(argc, argv, "anon_mb", 100, 0);
    long tmpfs_mb = param_long_min(argc, argv, "tmpfs_mb", 50, 0);
    const char *dir = param_str(argc, argv, "dir", "/tmp");
    long pipes_per_round = param_long_min(argc, argv, "pipes", 200, 0);
    long forks = param_long_min(argc, argv, "forks", 8, 0);
    long thp_mb = param_long_min(argc, argv, "thp_mb", 32, 0);
    long seed = param_long(argc, argv, "seed", 1);
    rng_seed((uint64_t)seed);

    long pipes_wanted = pipes_per_round * rounds;
    long pipes_room = fd_room(pipes_wanted), pipes = 0;

    size_t anon_pages = (size_t)anon_mb << 8, anon_size = anon_pages * PAGE;
    size_t file_pages = (size_t)tmpfs_mb << 8;
    size_t thp_regions = (size_t)(thp_mb + 1) / 2, thp_size = thp_regions * HUGE_2M;
    /* at most one file per page */
    unsigned char *kept = malloc(file_pages ? file_pages : 1);
    char buf[PAGE], path[4096];
    memset(buf, 0x3c, sizeof buf);
    if (!kept)
        fail("malloc");

    unsigned long long tmpfs_bytes = 0;
    size_t anon_total = 0, files_total = 0, files_kept = 0, thp_total = 0;
    long forked = 0;
    long base_kb = anon_huge_kb();

    for (long r = 0; r < rounds; r++) {
        /* 1. anonymous pages */
        char *anon = NULL;
        if (anon_size) {
            anon = map_base_pages(anon_pages);
            anon_total += anon_pages;
        }

        /* 2. files of 1..16 pages */
        size_t nfiles = 0;
        for (size_t done = 0; done < file_pages; nfiles++) {
            size_t n = 1 + rng_below(16);
            if (n > file_pages - done)
                n = file_pages - done;
            snprintf(path, sizeof path, "%s/mixed-%ld-%zu", dir, r, nfiles);
            int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
            if (fd < 0)
                fail("open %s", path);
            for (size_t k = 0; k < n; k++)
                if (write(fd, buf, PAGE) != (ssize_t)PAGE) {
                    if (errno == 0)
                        errno = ENOSPC;
                    fail("write %s", path);
                }
            if (close(fd) != 0)
                fail("close %s", path);
            done += n;
            tmpfs_bytes += n * PAGE;
        }
        files_total += nfiles;

        /* 3. pipes, kept */
        for (long p = 0; p < pipes_per_round && pipes < pipes_room; p++) {
            pipe_page(pipes);
            pipes++;
        }

        /* 4. short-lived children */
        fflush(stdout);
        for (long k = 0; k < forks; k++) {
            pid_t pid = fork();
            if (pid < 0)
                fail("fork");
            if (pid == 0)
                child();
            forked++;
        }
        for (long k = 0; k < forks; k++) {
            int status;
            if (wait(&status) < 0)
                fail("wait");
            if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
                errno = WEXITSTATUS(status);
                fail("mmap in a child");
            }
            if (!WIFEXITED(status)) {
                errno = EINTR;
                fail("a child, killed by signal %d", WTERMSIG(status));
            }
        }

        /* 5. a random half of the anonymous pages and of the files */
        for (size_t i = 0; i < anon_pages; i++)
            if (rng_next() & 1)
                if (madvise(anon + i * PAGE, PAGE, MADV_DONTNEED) != 0)
                    fail("madvise MADV_DONTNEED");
        for (size_t f = 0; f < nfiles; f++) {
            kept[f] = rng_next() & 1;
            if (kept[f]) {
                files_kept++;
                continue;
            }
            snprintf(path, sizeof path, "%s/mixed-%ld-%zu", dir, r, f);
            if (unlink(path) != 0)
                fail("unlink %s", path);
        }

        /* 6. THP faults */
        if (thp_size) {
            char *h = map_2m_aligned(thp_size);
            if (madvise(h, thp_size, MADV_HUGEPAGE) != 0)
                fail("madvise MADV_HUGEPAGE");
            for (size_t off = 0; off < thp_size; off += PAGE)
                h[off] = 2;
            long kb = anon_huge_kb() - base_kb;
            thp_total += kb > 0 ? (size_t)kb / 2048 : 0;
            if (munmap(h, thp_size) != 0)
                fail("munmap");
        }

        /* 7. the rest of the anonymous memory */
        if (anon && munmap(anon, anon_size) != 0)
            fail("munmap");
    }

    pid_t holder = start_holder();
    printf("%s: rounds=%ld anon_pages=%zu files=%zu files_kept=%zu tmpfs_bytes=%llu pipes=%ld "
           "pipes_wanted=%ld forks=%ld thp=%zu thp_regions=%zu seed=%ld holder=%d\n", WORKLOAD,
           rounds, anon_total, files_total, files_kept, tmpfs_bytes, pipes, pipes_wanted, forked,
           thp_total, thp_regions * (size_t)rounds, seed, (int)holder);
    return 0;
}
