/*
 * fragmenter: movable memory interleaved with long-lived unmovable pages, then mostly freed (the
 * shape of the shared captures' work2.c and of mmtests' stress-highalloc).
 *
 * Touches `mb` MiB of anonymous memory one 4 KiB mapping at a time; every `file_every` pages it
 * writes a tmpfs file of 1..8 pages (page cache, movable) into `dir`; `pipes` times, spread
 * evenly over the run, it creates a pipe and writes one page into it (a pipe buffer page:
 * unmovable). The allocator places the pipe pages among the movable pages of the same moment,
 * so after the movable memory goes, each of them pins its pageblock. At the end every anonymous
 * mapping is unmapped and all files but one in `keep_one_in` are deleted; the pipes go to a
 * holder process that outlives the workload.
 *
 * Parameters (key=value):
 *   mb=200            anonymous memory, MiB, in 4 KiB mappings
 *   pipes=300         pipe buffer pages held
 *   file_every=64     one tmpfs file per this many anonymous pages
 *   keep_one_in=4     one file in this many is kept, the others deleted
 *   dir=/tmp          where the files go (a tmpfs in the guest)
 *   seed=1            random seed (file sizes, which files are kept)
 *
 * Prints: fragmenter: mb=M pages=N files=F files_kept=K pipes=P pipes_wanted=W seed=S holder=PID
 */
#define _GNU_SOURCE
#define WORKLOAD "fragmenter"
#include "workload.h"

static const char *const known[] = {"mb", "pipes", "file_every", "keep_one_in", "dir", "seed", NULL};

int main(int argc, char **argv)
{
    params_check(argc, argv, known);
    long mb = param_long_min(argc, argv, "mb", 200, 1);
    long pipes_wanted = param_long_min(argc, argv, "pipes", 300, 0);
    long file_every = param_long_min(argc, argv, "file_every", 64, 1);
    long keep_one_in = param_long_min(argc, argv, "keep_one_in", 4, 1);
    const char *dir = param_str(argc, argv, "dir", "/tmp");
    long seed = param_long(argc, argv, "seed", 1);
    rng_seed((uint64_t)seed);

    long pipes_room = fd_room(pipes_wanted);
    size_t pages = (size_t)mb << 8;
    size_t pipe_every = pipes_wanted ? pages / (size_t)pipes_wanted : pages + 1;
    if (pipe_every == 0)
        pipe_every = 1;
    char **maps = malloc(sizeof(char *) * pages);
    int *readers = malloc(sizeof(int) * (size_t)(pipes_room ? pipes_room : 1));
    if (!maps || !readers)
        fail("malloc");
    char buf[PAGE], name[4096];
    memset(buf, 0x3c, sizeof buf);

    long files = 0, pipes = 0;
    for (size_t i = 0; i < pages; i++) {
        maps[i] = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (maps[i] == MAP_FAILED)
            fail("mmap page %zu", i);
        maps[i][0] = 1;
        if (i % (size_t)file_every == 0) {
            snprintf(name, sizeof name, "%s/frag%ld", dir, files);
            int fd = open(name, O_CREAT | O_TRUNC | O_WRONLY, 0600);
            if (fd < 0)
                fail("open %s", name);
            long n = 1 + (long)rng_below(8);
            for (long w = 0; w < n; w++)
                if (write(fd, buf, sizeof buf) != (ssize_t)sizeof buf)
                    fail("write %s", name);
            close(fd);
            files++;
        }
        if (i % pipe_every == 0 && pipes < pipes_wanted && pipes < pipes_room) {
            readers[pipes] = pipe_page(pipes);
            pipes++;
        }
    }

    long kept = 0;
    for (long f = 0; f < files; f++) {
        if (rng_below((uint64_t)keep_one_in) == 0) {
            kept++;
            continue;
        }
        snprintf(name, sizeof name, "%s/frag%ld", dir, f);
        if (unlink(name) != 0)
            fail("unlink %s", name);
    }
    for (size_t i = 0; i < pages; i++)
        if (munmap(maps[i], PAGE) != 0)
            fail("munmap page %zu", i);
    pid_t holder = start_holder();
    printf("%s: mb=%ld pages=%zu files=%ld files_kept=%ld pipes=%ld pipes_wanted=%ld seed=%ld holder=%d\n",
           WORKLOAD, mb, pages, files, kept, pipes, pipes_wanted, seed, (int)holder);
    return 0;
}
