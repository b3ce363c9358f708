/*
 * workload.h: what the workload programs share besides their parameters (header only; include
 * params.h first, with WORKLOAD defined).
 *
 *   fail(fmt, ...)     "NAME: error: WHAT: strerror(errno)" on stderr, exit status 1
 *   rng_seed/rng_next  a small xorshift64 generator, deterministic for a seed
 *   fd_room(want)      raise RLIMIT_NOFILE so `want` more descriptors fit; how many do
 *   start_holder()     fork a child that keeps every descriptor open after the workload exits
 *   pipe_page(n)       one pipe buffer page held (an unmovable kernel page); its read end
 *   map_base_pages(n)  n anonymous 4 KiB pages, kept in base pages, every one touched
 *   map_2m_aligned     an anonymous mapping that starts on a 2 MiB boundary
 *   anon_huge_kb()     AnonHugePages of this process, in kB
 *   thp_setting(name)  the selected value of /sys/kernel/mm/transparent_hugepage/NAME
 */
#ifndef FARM_WORKLOAD_H
#define FARM_WORKLOAD_H

#include "params.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <unistd.h>

#define PAGE 4096UL
#define HUGE_2M (2UL << 20)
#define THP_SYSFS "/sys/kernel/mm/transparent_hugepage/"

static inline void fail(const char *fmt, ...)
{
    int err = errno;
    va_list ap;
    fflush(stdout);
    fprintf(stderr, "%s: error: ", WORKLOAD);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, ": %s\n", strerror(err));
    exit(1);
}

/* xorshift64 (Marsaglia); the seed goes through one splitmix64 step so that small seeds and 0
   give a good, non-zero state. */
static uint64_t rng_state = 1;

static inline void rng_seed(uint64_t seed)
{
    uint64_t z = seed + 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    rng_state = z ? z : 0x9E3779B97F4A7C15ULL;
}

static inline uint64_t rng_next(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* A number in [0, n), n > 0. */
static inline uint64_t rng_below(uint64_t n)
{
    return rng_next() % n;
}

/* The number of open descriptors (entries of /proc/self/fd), or 64 when it cannot be read. */
static inline long fds_open(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return 64;
    long n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n; /* counts the directory's own descriptor: one spare */
}

/* Raise RLIMIT_NOFILE so that `want` more descriptors can be opened: the soft limit up to the
   hard one, and the hard one too where allowed (root; up to fs.nr_open). Returns how many more
   descriptors fit, `want` or fewer when the limit could not be raised that far. */
static inline long fd_room(long want)
{
    const long spare = 16; /* for files opened later: /proc, /dev/null, tmpfs files */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        fail("getrlimit RLIMIT_NOFILE");
    long need = fds_open() + spare + want;
    if ((long)rl.rlim_cur < need) {
        struct rlimit up = rl;
        up.rlim_cur = need;
        if ((long)up.rlim_max < need)
            up.rlim_max = need;
        if (setrlimit(RLIMIT_NOFILE, &up) != 0) {
            up.rlim_cur = rl.rlim_max; /* at least the soft limit up to the hard one */
            up.rlim_max = rl.rlim_max;
            if (setrlimit(RLIMIT_NOFILE, &up) != 0)
                fail("setrlimit RLIMIT_NOFILE");
        }
        if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
            fail("getrlimit RLIMIT_NOFILE");
    }
    long room = (long)rl.rlim_cur - fds_open() - spare;
    if (room < 0)
        room = 0;
    return room < want ? room : want;
}

/* One unmovable kernel page held: a new pipe with one page written into it (a pipe buffer page);
   the write end is closed, the read end returned (keep it open, or hand it to a holder). `n` is
   how many the caller holds already, for the error message. */
static inline int pipe_page(long n)
{
    static char page[PAGE];
    int fd[2];
    memset(page, 0x5a, sizeof page);
    if (pipe(fd) != 0)
        fail("pipe (%ld open)", n);
    if (write(fd[1], page, sizeof page) != (ssize_t)sizeof page)
        fail("write to pipe %ld", n);
    close(fd[1]);
    return fd[0];
}

/* Fork a holder: a child in its own session, stdin/stdout/stderr on /dev/null (so that whoever
   reads the workload's output sees it end), that pause()s forever and so keeps every descriptor
   the workload had open (and the kernel memory behind them) alive after the workload exits.
   Returns its pid; kill it to free that memory. */
static inline pid_t start_holder(void)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
        fail("fork holder");
    if (pid == 0) {
        setsid();
        int null = open("/dev/null", O_RDWR);
        for (int fd = 0; fd <= 2; fd++) {
            if (null >= 0)
                dup2(null, fd);
            else
                close(fd);
        }
        if (null > 2)
            close(null);
        for (;;)
            pause();
    }
    return pid;
}

/* An anonymous read-write mapping of `pages` 4 KiB pages kept in base pages (MADV_NOHUGEPAGE),
   every page touched so that it is allocated now. */
static inline char *map_base_pages(size_t pages)
{
    size_t size = pages * PAGE;
    char *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        fail("mmap %zu MiB", size >> 20);
    if (madvise(p, size, MADV_NOHUGEPAGE) != 0 && errno != EINVAL)
        fail("madvise MADV_NOHUGEPAGE");
    for (size_t i = 0; i < pages; i++)
        p[i * PAGE] = (char)(i | 1);
    return p;
}

/* An anonymous read-write mapping of `size` bytes (a multiple of 2 MiB) starting on a 2 MiB
   boundary: map 2 MiB more, unmap the ends. */
static inline char *map_2m_aligned(size_t size)
{
    size_t len = size + HUGE_2M;
    char *raw = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED)
        fail("mmap %zu bytes", len);
    uintptr_t start = ((uintptr_t)raw + HUGE_2M - 1) & ~(uintptr_t)(HUGE_2M - 1);
    size_t head = start - (uintptr_t)raw, tail = len - head - size;
    if (head && munmap(raw, head) != 0)
        fail("munmap");
    if (tail && munmap((char *)start + size, tail) != 0)
        fail("munmap");
    return (char *)start;
}

/* Sum of the "AnonHugePages: N kB" lines of `path`; -1 when it cannot be opened. */
static inline long sum_anon_huge_kb(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char line[256];
    long kb = 0, v;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "AnonHugePages: %ld kB", &v) == 1)
            kb += v;
    fclose(f);
    return kb;
}

/* AnonHugePages of this process (anonymous memory mapped by 2 MiB page-table entries), in kB:
   from /proc/self/smaps_rollup, else summed over /proc/self/smaps. */
static inline long anon_huge_kb(void)
{
    long kb = sum_anon_huge_kb("/proc/self/smaps_rollup");
    if (kb < 0)
        kb = sum_anon_huge_kb("/proc/self/smaps");
    if (kb < 0)
        fail("read /proc/self/smaps_rollup and /proc/self/smaps");
    return kb;
}

/* The selected value ("[madvise]") of THP_SYSFS/name into buf, or "-" when the file is missing. */
static inline const char *thp_setting(const char *name, char *buf, size_t size)
{
    char path[128], line[256];
    snprintf(path, sizeof path, THP_SYSFS "%s", name);
    snprintf(buf, size, "-");
    FILE *f = fopen(path, "r");
    if (!f)
        return buf;
    if (fgets(line, sizeof line, f)) {
        char *open = strchr(line, '['), *close = open ? strchr(open, ']') : NULL;
        if (open && close)
            snprintf(buf, size, "%.*s", (int)(close - open - 1), open + 1);
    }
    fclose(f);
    return buf;
}

#endif
