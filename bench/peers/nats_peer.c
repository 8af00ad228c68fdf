/* nats_peer.c -- NATS JetStream driver for bench/log-peers.sh (the W2 and W3 peer).
 *
 *   nats_peer pub --url URL --inflight N --count N --size B [--time-limit S]
 *       (Re)creates the file-storage stream WB (subject wb.x) and publishes @count messages
 *       of @size bytes with js_PublishAsync, PublishAsync.MaxPending = @inflight. Latency per
 *       message is from the publish call to its ack callback: the message index travels in the
 *       first 8 bytes of the payload, so the send time is found whatever the ack order.
 *   nats_peer sub --url URL --count N [--time-limit S]
 *       Reads the stream back from the start with an ordered push consumer.
 *
 * Prints one JSON object on stdout. JetStream acknowledges once the message is written to
 * its file store, not after an fsync (it syncs every 2 minutes by default), so its acks are
 * not durable the way weir's fsync=always acks are. */
#include <inttypes.h>
#include <nats/nats.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NP_STREAM  "WB"
#define NP_SUBJECT "wb.x"

typedef struct np_opts {
    const char *mode;
    const char *url;
    int64_t inflight;
    uint64_t count;
    size_t size;
    double time_limit_s;
} np_opts;

typedef struct np_pub {
    uint64_t *sent_ns; /* per message: send time; owned */
    uint64_t *lat_ns;  /* per message: ack latency; owned */
    _Atomic uint64_t acked;
    _Atomic uint64_t errors;
} np_pub;

static uint64_t np_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * UINT64_C(1000000000) + (uint64_t)ts.tv_nsec;
}

static int np_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static double np_q_ms(const uint64_t *sorted, uint64_t n, double q)
{
    uint64_t i;

    if (n == 0)
        return 0;
    i = (uint64_t)(q * (double)n);
    if (i >= n)
        i = n - 1;
    return (double)sorted[i] / 1e6;
}

static void np_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
    np_pub *p = closure;
    const char *d = natsMsg_GetData(msg);
    uint64_t idx;

    (void)js;
    if (pa != NULL && pae == NULL && d != NULL && natsMsg_GetDataLength(msg) >= 8) {
        memcpy(&idx, d, 8);
        p->lat_ns[idx] = np_now_ns() - p->sent_ns[idx];
        atomic_fetch_add(&p->acked, 1);
    } else {
        atomic_fetch_add(&p->errors, 1);
    }
    natsMsg_Destroy(msg);
}

static int np_fail(const char *what, natsStatus s)
{
    fprintf(stderr, "nats_peer: %s: %s (%s)\n", what, natsStatus_GetText(s),
            nats_GetLastError(NULL));
    return 1;
}

static int np_pub_run(const np_opts *o, natsConnection *nc)
{
    jsOptions jo;
    jsStreamConfig sc;
    jsErrCode jerr = 0;
    jsCtx *js = NULL;
    np_pub p;
    char *buf = NULL;
    const char *subjects[] = {NP_SUBJECT};
    uint64_t t0, t1, sent = 0, deadline, n;
    natsStatus s;
    int rc = 1;

    memset(&p, 0, sizeof p);
    p.sent_ns = calloc(o->count, sizeof(uint64_t));
    p.lat_ns = calloc(o->count, sizeof(uint64_t));
    buf = malloc(o->size < 8 ? 8 : o->size);
    if (p.sent_ns == NULL || p.lat_ns == NULL || buf == NULL)
        goto out;
    for (size_t i = 0; i < o->size; i++)
        buf[i] = (char)('a' + i % 26);
    jsOptions_Init(&jo);
    jo.PublishAsync.MaxPending = o->inflight;
    jo.PublishAsync.AckHandler = np_ack;
    jo.PublishAsync.AckHandlerClosure = &p;
    jo.PublishAsync.StallWait = 10000;
    if ((s = natsConnection_JetStream(&js, nc, &jo)) != NATS_OK) {
        np_fail("JetStream", s);
        goto out;
    }
    js_DeleteStream(js, NP_STREAM, NULL, &jerr); /* a fresh stream per run; may not exist */
    jsStreamConfig_Init(&sc);
    sc.Name = NP_STREAM;
    sc.Subjects = subjects;
    sc.SubjectsLen = 1;
    sc.Storage = js_FileStorage;
    if ((s = js_AddStream(NULL, js, &sc, NULL, &jerr)) != NATS_OK) {
        np_fail("js_AddStream", s);
        goto out;
    }
    t0 = np_now_ns();
    deadline = t0 + (uint64_t)(o->time_limit_s * 1e9);
    for (; sent < o->count; sent++) {
        if ((sent & 255) == 0 && np_now_ns() > deadline)
            break;
        memcpy(buf, &sent, 8);
        p.sent_ns[sent] = np_now_ns();
        while ((s = js_PublishAsync(js, NP_SUBJECT, buf, (int)o->size, NULL)) == NATS_TIMEOUT)
            ; /* stalled on MaxPending for StallWait: keep waiting */
        if (s != NATS_OK) {
            np_fail("js_PublishAsync", s);
            break;
        }
    }
    {
        jsPubOptions po;
        jsPubOptions_Init(&po);
        po.MaxWait = 60000;
        if ((s = js_PublishAsyncComplete(js, &po)) != NATS_OK)
            np_fail("js_PublishAsyncComplete", s);
    }
    t1 = np_now_ns();
    n = atomic_load(&p.acked);
    {
        /* keep only the acknowledged messages' latencies */
        uint64_t k = 0;
        for (uint64_t i = 0; i < sent; i++)
            if (p.lat_ns[i])
                p.lat_ns[k++] = p.lat_ns[i];
        n = k;
    }
    qsort(p.lat_ns, n, sizeof(uint64_t), np_cmp_u64);
    printf("{\"peer\":\"nats\",\"mode\":\"pub\",\"client\":\"%s\",\"inflight\":%" PRId64
           ",\"size\":%zu,\"count\":%" PRIu64 ",\"acked\":%" PRIu64 ",\"errors\":%" PRIu64
           ",\"seconds\":%.4f,\"rps\":%.1f,\"p50_ms\":%.4f,\"p99_ms\":%.4f,\"p999_ms\":%.4f,"
           "\"max_ms\":%.4f,\"durable\":false}\n",
           nats_GetVersion(), o->inflight, o->size, o->count, n, atomic_load(&p.errors),
           (double)(t1 - t0) / 1e9, (double)n / ((double)(t1 - t0) / 1e9),
           np_q_ms(p.lat_ns, n, 0.50), np_q_ms(p.lat_ns, n, 0.99), np_q_ms(p.lat_ns, n, 0.999),
           n ? (double)p.lat_ns[n - 1] / 1e6 : 0.0);
    rc = n == o->count ? 0 : 1;
out:
    jsCtx_Destroy(js);
    free(buf);
    free(p.sent_ns);
    free(p.lat_ns);
    return rc;
}

static int np_sub_run(const np_opts *o, natsConnection *nc)
{
    jsSubOptions so;
    jsErrCode jerr = 0;
    jsCtx *js = NULL;
    natsSubscription *sub = NULL;
    natsMsg *m;
    uint64_t t0, t1, n = 0, bytes = 0, deadline;
    natsStatus s;
    int rc = 1;

    if ((s = natsConnection_JetStream(&js, nc, NULL)) != NATS_OK)
        return np_fail("JetStream", s);
    jsSubOptions_Init(&so);
    so.Stream = NP_STREAM;
    so.Ordered = true;
    t0 = np_now_ns();
    deadline = t0 + (uint64_t)(o->time_limit_s * 1e9);
    if ((s = js_SubscribeSync(&sub, js, NP_SUBJECT, NULL, &so, &jerr)) != NATS_OK) {
        np_fail("js_SubscribeSync", s);
        goto out;
    }
    natsSubscription_SetPendingLimits(sub, -1, -1);
    while (n < o->count && np_now_ns() < deadline) {
        s = natsSubscription_NextMsg(&m, sub, 5000);
        if (s == NATS_TIMEOUT)
            break;
        if (s != NATS_OK) {
            np_fail("NextMsg", s);
            break;
        }
        n++;
        bytes += (uint64_t)natsMsg_GetDataLength(m);
        natsMsg_Destroy(m);
    }
    t1 = np_now_ns();
    printf("{\"peer\":\"nats\",\"mode\":\"sub\",\"client\":\"%s\",\"count\":%" PRIu64
           ",\"read\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"seconds\":%.4f,\"rps\":%.1f}\n",
           nats_GetVersion(), o->count, n, bytes, (double)(t1 - t0) / 1e9,
           (double)n / ((double)(t1 - t0) / 1e9));
    rc = n == o->count ? 0 : 1;
out:
    natsSubscription_Destroy(sub);
    jsCtx_Destroy(js);
    return rc;
}

static void np_usage(void)
{
    fprintf(stderr, "usage: nats_peer pub --url URL --inflight N --count N --size B "
                    "[--time-limit S]\n"
                    "       nats_peer sub --url URL --count N [--time-limit S]\n");
}

int main(int argc, char **argv)
{
    np_opts o = {NULL, "nats://127.0.0.1:4222", 64, 100000, 100, 120.0};
    natsConnection *nc = NULL;
    natsStatus s;
    int rc;

    if (argc < 2) {
        np_usage();
        return 2;
    }
    o.mode = argv[1];
    for (int i = 2; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--url") == 0)
            o.url = argv[i + 1];
        else if (strcmp(argv[i], "--inflight") == 0)
            o.inflight = strtoll(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--count") == 0)
            o.count = strtoull(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--size") == 0)
            o.size = strtoull(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--time-limit") == 0)
            o.time_limit_s = strtod(argv[i + 1], NULL);
        else {
            np_usage();
            return 2;
        }
    }
    if (o.count == 0 || o.inflight < 1 || o.size < 8) {
        np_usage();
        return 2;
    }
    if ((s = natsConnection_ConnectTo(&nc, o.url)) != NATS_OK)
        return np_fail("connect", s);
    if (strcmp(o.mode, "pub") == 0)
        rc = np_pub_run(&o, nc);
    else if (strcmp(o.mode, "sub") == 0)
        rc = np_sub_run(&o, nc);
    else {
        np_usage();
        rc = 2;
    }
    natsConnection_Destroy(nc);
    nats_Close();
    return rc;
}
