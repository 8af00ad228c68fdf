/* wb_stats.h -- summaries shared by the bench drivers (private to bench/). */
#ifndef WEIR_WB_STATS_H
#define WEIR_WB_STATS_H

#include <stddef.h>

/* Median, min, max and spread ((max - min) / median) of @cnt samples (copied, not changed);
 * all zero when @cnt is 0. */
typedef struct wb_summary {
    double median, min, max, spread;
} wb_summary;

wb_summary wb_summarize(const double *v, size_t cnt);

#endif
