/* wr_clock.c -- monotonic and wall clocks, and a sleep that survives signals. */
#include <errno.h>
#include <time.h>

#include "wr.h"

uint64_t wr_now_ns(void)
{
    struct timespec ts;

    WR_VERIFY(clock_gettime(CLOCK_MONOTONIC, &ts) == 0);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int64_t wr_wall_ms(void)
{
    struct timespec ts;

    WR_VERIFY(clock_gettime(CLOCK_REALTIME, &ts) == 0);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void wr_sleep_ns(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};

    /* nanosleep leaves the remainder in ts when a signal interrupts it */
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

void wr_abstime(struct timespec *ts, uint64_t ns)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += (time_t)(ns / 1000000000u);
    ts->tv_nsec += (long)(ns % 1000000000u);
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}
