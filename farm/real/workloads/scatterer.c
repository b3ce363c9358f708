/*
 * scatterer: unmovable kernel pages dropped into the holes of movable memory.
 *
 * Fills `fill_mb` of anonymous memory (4 KiB pages: the region is MADV_NOHUGEPAGE), then for
 * `rounds` rounds frees 1..`free_per_round` (picked at random) random pages of it, one 4 KiB
 * page each with MADV_DONTNEED, and allocates one unmovable kernel page: a new pipe with 4 KiB
 * written into it, a pipe buffer page (alloc_page(GFP_HIGHUSER | __GFP_ACCOUNT), not movable).
 * With memory tight (size fill_mb to leave little of the guest free), the allocator serves the
 * pipe pages from the movable pageblocks the frees punch holes into (fallback, stealing, mixed
 * pageblocks), scattering unmovable pages over them. The write end of each pipe is closed after
 * the write (the page stays, unread); the read ends go to a holder process that outlives the
 * workload, so the pipe pages stay allocated until the holder is killed. Finally the anonymous
 * memory is unmapped, which leaves the pipe pages behind in otherwise free pageblocks.
 * Deterministic for a seed (which pages are freed, how many per round).
 *
 * Parameters (key=value):
 *   fill_mb=300        anonymous memory filled first, MiB
 *   rounds=20000       rounds of free-then-allocate; one pipe each
 *   free_per_round=2   each round frees 1..this many pages (at random)
 *   seed=1             random seed
 *
 * One descriptor is kept per pipe: RLIMIT_NOFILE is raised to fit; when it cannot be raised
 * enough, the first rounds get pipes and the rest only free pages (pipes= says how many).
 *
 * Prints: scatterer: fill_mb=M pages=N rounds=R freed=F pipes=P pipes_wanted=R seed=S holder=PID
 *   pages: pages filled; freed: distinct pages freed by the rounds (a page is freed once; when
 *   every page has been freed, the rounds free nothing more).
 */
#define _GNU_SOURCE
#define WORKLOAD "scatterer"
#include "workload.h"

static const char *const known[] = {"fill_mb", "rounds", "free_per_round", "seed", NULL};

int main(int argc, char **argv)
{
    params_check(argc, argv, known);
    long fill_mb = param_long_min(argc, argv, "fill_mb", 300, 1);
    long rounds = param_long_min(argc, argv, "rounds", 20000, 0);
    long free_per_round = param_long_min(argc, argv, "free_per_round", 2, 1);
    long seed = param_long(argc, argv, "seed", 1);
    rng_seed((uint64_t)seed);

    long pipes_wanted = rounds;
    long pipes_room = fd_room(pipes_wanted);

    size_t pages = (size_t)fill_mb << 8, size = pages * PAGE;
    char *region = map_base_pages(pages);

    unsigned char *gone = calloc(pages, 1); /* freed already */
    int *readers = malloc(sizeof(int) * (size_t)(pipes_room ? pipes_room : 1));
    if (!gone || !readers)
        fail("malloc");

    size_t freed = 0;
    long pipes = 0;
    for (long r = 0; r < rounds; r++) {
        long n = 1 + (long)rng_below((uint64_t)free_per_round);
        for (long k = 0; k < n && freed < pages; k++) {
            size_t i = rng_below(pages);
            while (gone[i]) /* the next page not freed yet, wrapping */
                i = (i + 1) % pages;
            if (madvise(region + i * PAGE, PAGE, MADV_DONTNEED) != 0)
                fail("madvise MADV_DONTNEED");
            gone[i] = 1;
            freed++;
        }
        if (pipes < pipes_room) {
            readers[pipes] = pipe_page(pipes);
            pipes++;
        }
    }

    if (munmap(region, size) != 0)
        fail("munmap");
    pid_t holder = start_holder();
    printf("%s: fill_mb=%ld pages=%zu rounds=%ld freed=%zu pipes=%ld pipes_wanted=%ld seed=%ld "
           "holder=%d\n", WORKLOAD, fill_mb, pages, rounds, freed, pipes, pipes_wanted, seed,
           (int)holder);
    return 0;
}
