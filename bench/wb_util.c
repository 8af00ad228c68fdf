/* wb_util.c -- helpers shared by the bench drivers (wb_util.h). */
#include "wb_util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WB_STATS_MAX 64 /* more runs than any driver allows */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

wb_summary wb_summarize(const double *v, size_t cnt)
{
    double s[WB_STATS_MAX];
    wb_summary out = {0, 0, 0, 0};

    if (cnt == 0)
        return out;
    if (cnt > WB_STATS_MAX)
        cnt = WB_STATS_MAX;
    memcpy(s, v, cnt * sizeof(double));
    qsort(s, cnt, sizeof(double), cmp_double);
    out.min = s[0];
    out.max = s[cnt - 1];
    out.median = (cnt % 2) ? s[cnt / 2] : (s[cnt / 2 - 1] + s[cnt / 2]) / 2.0;
    out.spread = out.median != 0.0 ? (out.max - out.min) / out.median : 0.0;
    return out;
}

void wb_say(const char *family, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "weir bench %s: ", family);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void wb_say_fail(const char *family, const char *what, wr_status st)
{
    const char *msg = wr_errmsg();
    wb_say(family, "%s: %s%s%s", what, wr_status_str(st), *msg ? ": " : "", msg);
}
