/* wb_util.h -- helpers shared by the bench drivers (private to bench/). */
#ifndef WEIR_WB_UTIL_H
#define WEIR_WB_UTIL_H

#include <stddef.h>

#include "wr.h"

/* Median, min, max and spread ((max - min) / median) of @cnt samples (copied, not changed);
 * all zero when @cnt is 0. */
typedef struct wb_summary {
    double median, min, max, spread;
} wb_summary;

wb_summary wb_summarize(const double *v, size_t cnt);

/* One progress or error line on stderr: "weir bench <family>: ...". */
void wb_say(const char *family, const char *fmt, ...) WR_PRINTF(2, 3);
/* "weir bench <family>: <what>: <status>: <wr_errmsg()>" on stderr. */
void wb_say_fail(const char *family, const char *what, wr_status st);

#endif
