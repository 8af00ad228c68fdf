/* kvt_util.h -- scratch directory for the KV unit tests (tests/kv/). Include after cmocka.h;
 * define KVT_NAME (e.g. "sst") first: directories are $TMPDIR/weir-<KVT_NAME>-XXXXXX. */
#ifndef WEIR_KVT_UTIL_H
#define WEIR_KVT_UTIL_H

#include <stdio.h>
#include <stdlib.h>

static char g_dir[4096];

static int setup(void **state)
{
    const char *base = getenv("TMPDIR");
    (void)state;
    snprintf(g_dir, sizeof g_dir, "%s/weir-" KVT_NAME "-XXXXXX", base ? base : "/tmp");
    return mkdtemp(g_dir) == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    char cmd[4200];
    (void)state;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* @name inside the scratch directory (a static buffer: one path at a time). */
static const char *tpath(const char *name)
{
    static char p[4400];
    snprintf(p, sizeof p, "%s/%s", g_dir, name);
    return p;
}

#endif
