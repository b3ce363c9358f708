/*
 * params.h: key=value parameters for the workload programs (header only).
 *
 * A workload defines WORKLOAD (its name, as it prints it) before including this file:
 *
 *     #define WORKLOAD "scatterer"
 *     #include "params.h"
 *
 *     static const char *const known[] = {"fill_mb", "rounds", NULL};
 *     params_check(argc, argv, known);
 *     long fill_mb = param_long(argc, argv, "fill_mb", 300);
 *
 * Every argument is key=value; a key given twice takes its last value. params_check exits with
 * status 2 and one line on stderr, "NAME: unknown parameter KEY (known: a, b, c)", for a key not
 * in the list or an argument without '='. param_long exits the same way (status 2, one line) for
 * a value that is not a whole decimal number.
 */
#ifndef FARM_WORKLOAD_PARAMS_H
#define FARM_WORKLOAD_PARAMS_H

#ifndef WORKLOAD
#error "define WORKLOAD (the program's name) before including params.h"
#endif

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A usage error: "NAME: message" on stderr, exit status 2. */
static inline void param_usage_error(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", WORKLOAD);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(2);
}

/* The value of `key` (the text after '=' of its last key=value argument), or NULL. */
static inline const char *param_raw(int argc, char **argv, const char *key)
{
    size_t n = strlen(key);
    const char *value = NULL;
    for (int i = 1; i < argc; i++)
        if (strncmp(argv[i], key, n) == 0 && argv[i][n] == '=')
            value = argv[i] + n + 1;
    return value;
}

static inline const char *param_str(int argc, char **argv, const char *key, const char *dflt)
{
    const char *value = param_raw(argc, argv, key);
    return value ? value : dflt;
}

static inline long param_long(int argc, char **argv, const char *key, long dflt)
{
    const char *value = param_raw(argc, argv, key);
    if (!value)
        return dflt;
    char *end;
    errno = 0;
    long v = strtol(value, &end, 10);
    if (errno || end == value || *end)
        param_usage_error("bad value for %s: '%s' (a whole number)", key, value);
    return v;
}

/* param_long, and a usage error when the value is below `min`. */
static inline long param_long_min(int argc, char **argv, const char *key, long dflt, long min)
{
    long v = param_long(argc, argv, key, dflt);
    if (v < min)
        param_usage_error("bad value for %s: %ld (at least %ld)", key, v, min);
    return v;
}

/* `known` ends with NULL. */
static inline void params_check(int argc, char **argv, const char *const *known)
{
    for (int i = 1; i < argc; i++) {
        const char *eq = strchr(argv[i], '=');
        size_t n = eq ? (size_t)(eq - argv[i]) : strlen(argv[i]);
        int ok = 0;
        for (const char *const *k = known; eq && *k; k++)
            if (strlen(*k) == n && strncmp(*k, argv[i], n) == 0)
                ok = 1;
        if (ok)
            continue;
        fprintf(stderr, "%s: unknown parameter %.*s (known: ", WORKLOAD, (int)n, argv[i]);
        for (const char *const *k = known; *k; k++)
            fprintf(stderr, "%s%s", k == known ? "" : ", ", *k);
        fprintf(stderr, ")\n");
        exit(2);
    }
}

#endif
