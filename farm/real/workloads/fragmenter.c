/* Fragmenter: interleave movable memory (anon pages, tmpfs page cache) with unmovable kernel
 * memory (pipe buffers held by a long-lived holder process), then free most of the movable memory.
 *
 *   fragmenter MB PIPES [FILE_EVERY [KEEP_ONE_IN [DIR]]]
 *
 * MB: anon memory touched one 4 KiB mapping at a time; PIPES: pipes each holding one page, spread
 * evenly over the run and handed to a holder that outlives this process; FILE_EVERY: one tmpfs file
 * of 1-8 pages per that many anon pages (default 64); KEEP_ONE_IN: one file in that many is kept
 * (default 4); DIR: where the files go (default /tmp). Prints one line: pipes= files= holder=.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

static unsigned long rng = 0x9E3779B97F4A7C15UL;
static unsigned long xr(void) { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return rng; }

int main(int argc, char **argv) {
    long mb = argc > 1 ? atol(argv[1]) : 200;
    long holdfd = argc > 2 ? atol(argv[2]) : 300;
    long file_every = argc > 3 ? atol(argv[3]) : 64;
    long keep_one_in = argc > 4 ? atol(argv[4]) : 4;
    const char *dir = argc > 5 ? argv[5] : "/tmp";
    if (mb <= 0 || holdfd < 0 || file_every <= 0 || keep_one_in <= 0) {
        fprintf(stderr, "usage: fragmenter MB PIPES [FILE_EVERY [KEEP_ONE_IN [DIR]]]\n");
        return 2;
    }
    struct rlimit rl = {2 * holdfd + 64, 2 * holdfd + 64};
    setrlimit(RLIMIT_NOFILE, &rl);
    size_t pg = 4096, n = (size_t)mb * 256;
    size_t pipe_every = holdfd ? n / holdfd : n + 1;
    if (pipe_every == 0) pipe_every = 1;
    int (*pf)[2] = calloc(holdfd ? holdfd : 1, sizeof(int[2]));
    char **pages = calloc(n, sizeof(char *));
    if (!pf || !pages) { perror("calloc"); return 1; }
    char buf[4096]; memset(buf, 7, sizeof buf);
    char name[256]; long nf = 0, np = 0;
    for (size_t i = 0; i < n; i++) {
        pages[i] = mmap(0, pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (pages[i] == MAP_FAILED) { perror("mmap"); return 1; }
        pages[i][0] = 1;
        if (i % file_every == 0) {
            snprintf(name, sizeof name, "%s/g%ld", dir, nf++);
            int fd = open(name, O_CREAT | O_WRONLY, 0600);
            if (fd < 0) { perror(name); return 1; }
            int k = xr() % 8 + 1;
            for (int w = 0; w < k; w++) if (write(fd, buf, pg) != (ssize_t)pg) { perror("write"); return 1; }
            close(fd);
        }
        if (i % pipe_every == 0 && np < holdfd) {
            if (pipe(pf[np]) == 0) { if (write(pf[np][1], buf, pg) == (ssize_t)pg) np++; }
        }
    }
    /* delete all files but one in KEEP_ONE_IN, free every anon page */
    for (long f = 0; f < nf; f++)
        if (xr() % keep_one_in) { snprintf(name, sizeof name, "%s/g%ld", dir, f); unlink(name); }
    for (size_t i = 0; i < n; i++) munmap(pages[i], pg);
    /* hand the pipes to a holder that outlives us */
    fflush(stdout);
    pid_t h = fork();
    if (h == 0) { setsid(); for (;;) pause(); }
    printf("pipes=%ld files=%ld holder=%d\n", np, nf, (int)h);
    return 0;
}
