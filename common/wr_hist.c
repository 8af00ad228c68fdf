/* wr_hist.c -- log-linear latency histogram (HdrHistogram-like).
 *
 * Bucket layout (WR_HIST_SUB = 64):
 *
 *   value v          bucket                              width
 *   v < 64           v (exact)                           1
 *   v >= 64          (e - 5) * 64 + ((v >> (e-6)) & 63)  2^(e-6), where e = floor(log2 v)
 *
 * so the bucket holds the exponent and the top 6 bits of the mantissa below the leading one.
 * e = 6 continues the exact range (buckets 64..127 hold 64..127); the largest bucket index
 * is (63 - 5) * 64 + 63 = 3775 < WR_HIST_BUCKETS. A bucket's width is at most 1/64 of its
 * lower bound, which bounds the relative error of a quantile at 1.6%.
 *
 * Invariants: (1) cnt == sum of b[]; (2) when cnt > 0, min <= max and both were recorded;
 * (3) an empty histogram has min = UINT64_MAX and max = 0; (4) sum wraps on overflow
 * (nanosecond sums overflow after 584 years of samples). */
#include <math.h>

#include "wr.h"

static unsigned wr_hist_bucket(uint64_t v)
{
    unsigned e;

    if (v < WR_HIST_SUB)
        return (unsigned)v;
    e = 63u - (unsigned)__builtin_clzll(v);
    return (e - 5) * WR_HIST_SUB + (unsigned)((v >> (e - 6)) & (WR_HIST_SUB - 1));
}

/* The largest value that lands in bucket @i. */
static uint64_t wr_hist_upper(unsigned i)
{
    unsigned e, sub;

    if (i < WR_HIST_SUB)
        return i;
    e = i / WR_HIST_SUB + 5;
    sub = i % WR_HIST_SUB;
    /* e = 63, sub = 63 gives (127 << 57) + 2^57 - 1 = UINT64_MAX exactly: no overflow */
    return ((uint64_t)(WR_HIST_SUB + sub) << (e - 6)) + ((uint64_t)1 << (e - 6)) - 1;
}

void wr_hist_init(wr_hist *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

void wr_hist_record(wr_hist *h, uint64_t v)
{
    h->b[wr_hist_bucket(v)]++;
    h->cnt++;
    h->sum += v;
    if (v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
}

void wr_hist_merge(wr_hist *dst, const wr_hist *src)
{
    for (unsigned i = 0; i < WR_HIST_BUCKETS; i++)
        dst->b[i] += src->b[i];
    dst->cnt += src->cnt;
    dst->sum += src->sum;
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
}

uint64_t wr_hist_quantile(const wr_hist *h, double q)
{
    uint64_t rank, seen = 0;

    if (h->cnt == 0)
        return 0;
    if (!(q > 0.0)) /* also catches NaN */
        return h->min;
    if (q >= 1.0)
        return h->max;
    /* the smallest rank r (1-based) with r >= q * cnt */
    rank = (uint64_t)ceil(q * (double)h->cnt);
    if (rank == 0)
        rank = 1;
    if (rank > h->cnt)
        rank = h->cnt;
    for (unsigned i = 0; i < WR_HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= rank) {
            uint64_t up = wr_hist_upper(i);
            if (up > h->max)
                up = h->max;
            return up < h->min ? h->min : up;
        }
    }
    return h->max; /* unreachable while cnt == sum of b[] */
}

double wr_hist_mean(const wr_hist *h)
{
    return h->cnt ? (double)h->sum / (double)h->cnt : 0.0;
}
