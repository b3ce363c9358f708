/*
 * snapshot: a capture's /proc snapshots of one phase, taken by one process, so that nothing the
 * shell would start (a cat or a dd: fork, exec, exit, each allocating and freeing pages) runs
 * between the phase's trace marker, or the start of tracing, and the reads.
 *
 *     snapshot PHASE OUTDIR [--marker TRACE_MARKER] [--start TRACING_ON]
 *
 * 1. Opens /proc/buddyinfo, pagetypeinfo, zoneinfo, vmstat, meminfo, pageblocktypes (when the
 *    capture's module made it) and kpageflags, and reads each once: that sizes and touches its
 *    buffer, and gives the kernel's seq_file its buffer, kept while the file stays open.
 * 2. --marker: writes "phase=PHASE" to TRACE_MARKER.
 * 3. Reads every file again from the start into its buffer, buddyinfo first and kpageflags last.
 * 4. --start: writes 1 to TRACING_ON (the `before` phase: the trace starts at the snapshot).
 * 5. Writes OUTDIR/KIND.PHASE for each file, then exits. What these allocate and free comes after
 *    the marker or the start of tracing, where the trace has it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct snap {
    const char *kind;
    int optional;
    int fd;
    char *buf;
    size_t cap, len;
};

static struct snap snaps[] = {
    {"buddyinfo", 0}, {"pagetypeinfo", 0}, {"zoneinfo", 0}, {"vmstat", 0}, {"meminfo", 0},
    {"pageblocktypes", 1}, {"kpageflags", 0},
};
#define NSNAPS (sizeof(snaps) / sizeof(snaps[0]))

static void die(const char *what, const char *name)
{
    fprintf(stderr, "snapshot: error: %s %s: %s\n", what, name, strerror(errno));
    exit(1);
}

/* Read the whole file from its start into s->buf, growing it when `grow`; -> bytes read. */
static size_t read_all(struct snap *s, int grow)
{
    size_t len = 0;
    if (lseek(s->fd, 0, SEEK_SET) < 0)
        die("lseek", s->kind);
    for (;;) {
        if (len == s->cap) {
            if (!grow)
                break;
            s->cap = s->cap ? 2 * s->cap : 1 << 20;
            s->buf = realloc(s->buf, s->cap);
            if (!s->buf)
                die("realloc", s->kind);
            memset(s->buf + len, 0, s->cap - len);      /* touch it now, not after the marker */
        }
        ssize_t n = read(s->fd, s->buf + len, s->cap - len);
        if (n < 0)
            die("read", s->kind);
        if (n == 0)
            break;
        len += n;
    }
    return len;
}

static void write_text(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY);
    if (fd < 0)
        die("open", path);
    if (write(fd, text, strlen(text)) < 0)
        die("write", path);
    close(fd);
}

int main(int argc, char **argv)
{
    const char *marker = NULL, *start = NULL;
    char path[4096], text[256];
    if (argc < 3) {
        fprintf(stderr, "usage: snapshot PHASE OUTDIR [--marker TRACE_MARKER] [--start TRACING_ON]\n");
        return 2;
    }
    for (int i = 3; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--marker"))
            marker = argv[i + 1];
        else if (!strcmp(argv[i], "--start"))
            start = argv[i + 1];
    }
    for (size_t i = 0; i < NSNAPS; i++) {
        struct snap *s = &snaps[i];
        snprintf(path, sizeof(path), "/proc/%s", s->kind);
        s->fd = open(path, O_RDONLY);
        if (s->fd < 0) {
            if (s->optional && errno == ENOENT)
                continue;
            die("open", path);
        }
        read_all(s, 1);
    }
    if (marker) {
        snprintf(text, sizeof(text), "phase=%s\n", argv[1]);
        write_text(marker, text);
    }
    for (size_t i = 0; i < NSNAPS; i++)
        if (snaps[i].fd >= 0)
            snaps[i].len = read_all(&snaps[i], 0);
    if (start)
        write_text(start, "1\n");
    for (size_t i = 0; i < NSNAPS; i++) {
        struct snap *s = &snaps[i];
        if (s->fd < 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s.%s", argv[2], s->kind, argv[1]);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0)
            die("open", path);
        for (size_t off = 0; off < s->len;) {
            ssize_t n = write(fd, s->buf + off, s->len - off);
            if (n < 0)
                die("write", path);
            off += n;
        }
        close(fd);
    }
    return 0;
}
