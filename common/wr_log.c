/* wr_log.c -- leveled logging to stderr.
 *
 * Line format (UTC, millisecond precision, one line per call):
 *
 *   2026-12-03T07:49:12.123Z WARN message\n
 *
 * Invariants: (1) $WEIR_LOG (error|warn|info|debug, case-insensitive) is read once, on first
 * use; anything else means warn; (2) wr_log_set_level() wins over the environment; (3) each
 * line goes out in one write(2), so lines from concurrent threads never interleave (a short
 * write, possible only on a pipe that is nearly full, is continued); (4) a message longer
 * than the line buffer is cut and ends in "...". */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "wr.h"

#define WR_LOG_LINE_MAX 4096

static atomic_int wr_log_level_cur = WR_LOG_WARN;
static pthread_once_t wr_log_once = PTHREAD_ONCE_INIT;

static const char *const wr_log_names[] = {"ERROR", "WARN", "INFO", "DEBUG"};

static void wr_log_init(void)
{
    const char *e = getenv("WEIR_LOG");
    wr_log_level lvl = WR_LOG_WARN;

    if (e != NULL) {
        for (int i = WR_LOG_ERROR; i <= WR_LOG_DEBUG; i++)
            if (strcasecmp(e, wr_log_names[i]) == 0)
                lvl = (wr_log_level)i;
    }
    atomic_store(&wr_log_level_cur, (int)lvl);
}

void wr_log_set_level(wr_log_level lvl)
{
    pthread_once(&wr_log_once, wr_log_init); /* so a later first use cannot undo this */
    atomic_store(&wr_log_level_cur, (int)lvl);
}

bool wr_log_enabled(wr_log_level lvl)
{
    pthread_once(&wr_log_once, wr_log_init);
    return (int)lvl <= atomic_load(&wr_log_level_cur);
}

void wr_log(wr_log_level lvl, const char *fmt, ...)
{
    char line[WR_LOG_LINE_MAX];
    struct timespec ts;
    struct tm tm;
    size_t n, off;
    int k, saved = errno;
    va_list ap;

    if (lvl < WR_LOG_ERROR || lvl > WR_LOG_DEBUG || !wr_log_enabled(lvl))
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    k = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
                 wr_log_names[lvl]);
    n = k > 0 ? (size_t)k : 0;
    va_start(ap, fmt);
    k = vsnprintf(line + n, sizeof line - n - 1, fmt, ap); /* keep one byte for '\n' */
    va_end(ap);
    if (k > 0) {
        if ((size_t)k >= sizeof line - n - 1) {
            n = sizeof line - 1;
            memcpy(line + n - 3, "...", 3);
        } else {
            n += (size_t)k;
        }
    }
    line[n++] = '\n';
    for (off = 0; off < n;) {
        ssize_t w = write(STDERR_FILENO, line + off, n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break; /* nowhere left to report a logging failure */
        off += (size_t)w;
    }
    errno = saved;
}
