/*
 * pagecache: page cache left behind for reclaim.
 *
 * Writes `mb` MiB as `files` files (dir/pagecache-NNNN, sizes as equal as whole pages allow)
 * with write(2), fsync()ing each (fsync=1) so that its pages are clean, then reads them all back
 * `passes` times, checking the contents. Writing allocates page cache pages (movable,
 * __GFP_MOVABLE mapping gfp; on a block-backed file system also the buffer heads and journal
 * work of writeback); reading them again marks them accessed, so that the second pass moves them
 * to the active LRU list. The files stay: the process exits with its clean page cache still in
 * memory, which the kernel can reclaim (and which compaction can migrate) when it needs memory.
 * `dir` must be on a block-backed file system: files on tmpfs or the initramfs (ramfs) are not
 * reclaimable; fs= in the summary says which kind it was.
 *
 * Parameters (key=value):
 *   dir=/mnt     directory to write in (must exist)
 *   mb=200       total size, MiB
 *   files=50     number of files
 *   passes=2     read-back passes over all files
 *   fsync=1      1: fsync each file after writing it; 0: leave the pages dirty for writeback
 *
 * Prints: pagecache: dir=D fs=T files=N written=BYTES read=BYTES passes=P fsync=F
 *   written is mb MiB exactly; read is passes times that.
 */
#define _GNU_SOURCE
#define WORKLOAD "pagecache"
#include "workload.h"

#include <sys/stat.h>
#include <sys/vfs.h>

static const char *const known[] = {"dir", "mb", "files", "passes", "fsync", NULL};

#define CHUNK (64UL << 10)

/* The byte at `offset` of file `f`: a pattern that differs from page to page and file to file. */
static inline unsigned char pattern(long f, size_t offset)
{
    return (unsigned char)((size_t)f * 131 + (offset >> 12) * 7 + 1);
}

static void fill(unsigned char *buf, long f, size_t offset, size_t n)
{
    for (size_t i = 0; i < n; i += PAGE)
        memset(buf + i, pattern(f, offset + i), n - i < PAGE ? n - i : PAGE);
}

static const char *fs_name(const char *dir, char *buf, size_t size)
{
    struct statfs st;
    if (statfs(dir, &st) != 0)
        fail("statfs %s", dir);
    switch ((unsigned long)st.f_type) {
    case 0xEF53: return "ext2/3/4";
    case 0x01021994: return "tmpfs";
    case 0x858458F6: return "ramfs";
    case 0x58465342: return "xfs";
    case 0x9123683E: return "btrfs";
    case 0x4d44: return "vfat";
    case 0xF2F52010: return "f2fs";
    }
    snprintf(buf, size, "0x%lx", (unsigned long)st.f_type);
    return buf;
}

int main(int argc, char **argv)
{
    params_check(argc, argv, known);
    const char *dir = param_str(argc, argv, "dir", "/mnt");
    long mb = param_long_min(argc, argv, "mb", 200, 0);
    long files = param_long_min(argc, argv, "files", 50, 1);
    long passes = param_long_min(argc, argv, "passes", 2, 0);
    long do_fsync = param_long(argc, argv, "fsync", 1);
    if (do_fsync != 0 && do_fsync != 1)
        param_usage_error("bad value for fsync: %ld (0 or 1)", do_fsync);

    struct stat st;
    if (stat(dir, &st) != 0)
        fail("stat %s", dir);
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        fail("dir=%s", dir);
    }
    char fsbuf[32];
    const char *fs = fs_name(dir, fsbuf, sizeof fsbuf);

    /* sizes: the total in whole pages, shared out; the first files take the spare pages */
    size_t total_pages = (size_t)mb << 8;
    size_t each = total_pages / (size_t)files, spare = total_pages % (size_t)files;
    unsigned char *buf = malloc(CHUNK), *want = malloc(CHUNK);
    char path[4096];
    if (!buf || !want)
        fail("malloc");

    unsigned long long written = 0, read_bytes = 0;
    for (long f = 0; f < files; f++) {
        size_t size = (each + ((size_t)f < spare)) * PAGE;
        snprintf(path, sizeof path, "%s/pagecache-%04ld", dir, f);
        int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
        if (fd < 0)
            fail("open %s", path);
        for (size_t off = 0; off < size; off += CHUNK) {
            size_t n = size - off < CHUNK ? size - off : CHUNK;
            fill(buf, f, off, n);
            ssize_t w = write(fd, buf, n);
            if (w != (ssize_t)n) {
                if (w >= 0)
                    errno = ENOSPC;
                fail("write %s", path);
            }
            written += n;
        }
        if (do_fsync && fsync(fd) != 0)
            fail("fsync %s", path);
        if (close(fd) != 0)
            fail("close %s", path);
    }

    for (long p = 0; p < passes; p++) {
        for (long f = 0; f < files; f++) {
            size_t size = (each + ((size_t)f < spare)) * PAGE;
            snprintf(path, sizeof path, "%s/pagecache-%04ld", dir, f);
            int fd = open(path, O_RDONLY);
            if (fd < 0)
                fail("open %s", path);
            for (size_t off = 0; off < size; off += CHUNK) {
                size_t n = size - off < CHUNK ? size - off : CHUNK;
                ssize_t got = read(fd, buf, n);
                if (got != (ssize_t)n) {
                    if (got >= 0)
                        errno = EIO;
                    fail("read %s (short read at %zu)", path, off);
                }
                fill(want, f, off, n);
                if (memcmp(buf, want, n) != 0) {
                    errno = EIO;
                    fail("read %s (contents differ at %zu)", path, off);
                }
                read_bytes += n;
            }
            close(fd);
        }
    }

    printf("%s: dir=%s fs=%s files=%ld written=%llu read=%llu passes=%ld fsync=%ld\n", WORKLOAD,
           dir, fs, files, written, read_bytes, passes, do_fsync);
    return 0;
}
