/* wb_stats.c -- summaries of repeated runs for the bench drivers (wb_stats.h). */
#include "wb_stats.h"

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
