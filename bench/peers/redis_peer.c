/* redis_peer.c -- Redis Streams read-back driver for bench/log-peers.sh (the W3 peer).
 *
 *   redis_peer xrange --host H --port P --key K [--page 10000] [--time-limit S]
 *
 * Reads the whole stream K from the start with XRANGE K <start> + COUNT <page>, continuing
 * each page after the last ID of the previous one ("(" exclusive ranges, Redis >= 6.2). It
 * speaks RESP over a plain socket (no hiredis in Debian's default install) and touches every
 * field, as a consumer would. Prints one JSON object on stdout. */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RP_BUF (4u << 20)

typedef struct rp_conn {
    int fd;
    char *buf; /* owned */
    size_t pos, len;
} rp_conn;

static uint64_t rp_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * UINT64_C(1000000000) + (uint64_t)ts.tv_nsec;
}

/* Make at least @need unread bytes available; false on EOF or error. */
static bool rp_fill(rp_conn *c, size_t need)
{
    if (c->len - c->pos >= need)
        return true;
    if (need > RP_BUF)
        return false;
    memmove(c->buf, c->buf + c->pos, c->len - c->pos);
    c->len -= c->pos;
    c->pos = 0;
    while (c->len < need) {
        ssize_t n = read(c->fd, c->buf + c->len, RP_BUF - c->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        c->len += (size_t)n;
    }
    return true;
}

/* Read one "<type><text>\r\n" line; returns a pointer into the buffer (valid until the next
 * read) and its length without CRLF, or NULL. */
static const char *rp_line(rp_conn *c, size_t *len)
{
    for (;;) {
        char *s = c->buf + c->pos;
        char *e = memchr(s, '\n', c->len - c->pos);
        if (e != NULL) {
            *len = (size_t)(e - s) - 1;
            c->pos += (size_t)(e - s) + 1;
            return s;
        }
        if (!rp_fill(c, c->len - c->pos + 1))
            return NULL;
    }
}

/* Parse one RESP value. For a bulk string, *bulk / *bulk_len point at its bytes. */
static bool rp_value(rp_conn *c, const char **bulk, size_t *bulk_len, uint64_t *touch)
{
    size_t len;
    const char *l = rp_line(c, &len);
    long long n;

    if (l == NULL)
        return false;
    n = strtoll(l + 1, NULL, 10);
    switch (l[0]) {
    case '*':
        for (long long i = 0; i < n; i++)
            if (!rp_value(c, NULL, NULL, touch))
                return false;
        return true;
    case '$':
        if (n < 0)
            return true;
        if (!rp_fill(c, (size_t)n + 2))
            return false;
        if (bulk) {
            *bulk = c->buf + c->pos;
            *bulk_len = (size_t)n;
        }
        if (n > 0)
            *touch += (unsigned char)c->buf[c->pos + (size_t)n - 1];
        c->pos += (size_t)n + 2;
        return true;
    case '-':
        fprintf(stderr, "redis_peer: server error: %.*s\n", (int)len, l);
        return false;
    default:
        return true;
    }
}

static bool rp_send(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *key = "s";
    int port = 6379, page = 10000;
    double limit_s = 120;
    char start[72] = "-", cmd[256], lastid[64];
    struct sockaddr_in sa;
    rp_conn c = {-1, NULL, 0, 0};
    uint64_t n = 0, touch = 0, t0, t1, deadline;
    int one = 1;

    if (argc < 2 || strcmp(argv[1], "xrange") != 0) {
        fprintf(stderr, "usage: redis_peer xrange --host H --port P --key K [--page N] "
                        "[--time-limit S]\n");
        return 2;
    }
    for (int i = 2; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--host") == 0)
            host = argv[i + 1];
        else if (strcmp(argv[i], "--port") == 0)
            port = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--key") == 0)
            key = argv[i + 1];
        else if (strcmp(argv[i], "--page") == 0)
            page = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--time-limit") == 0)
            limit_s = strtod(argv[i + 1], NULL);
    }
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1 || page < 1)
        return 2;
    if ((c.buf = malloc(RP_BUF)) == NULL)
        return 1;
    c.fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c.fd < 0 || connect(c.fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        perror("redis_peer: connect");
        return 1;
    }
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    t0 = rp_now_ns();
    deadline = t0 + (uint64_t)(limit_s * 1e9);
    for (;;) {
        char pagebuf[16];
        int plen = snprintf(pagebuf, sizeof pagebuf, "%d", page);
        int m = snprintf(cmd, sizeof cmd,
                         "*6\r\n$6\r\nXRANGE\r\n$%zu\r\n%s\r\n$%zu\r\n%s\r\n$1\r\n+\r\n"
                         "$5\r\nCOUNT\r\n$%d\r\n%s\r\n",
                         strlen(key), key, strlen(start), start, plen, pagebuf);
        size_t len;
        const char *l;
        long long cnt;

        if (m <= 0 || (size_t)m >= sizeof cmd || !rp_send(c.fd, cmd, (size_t)m))
            return 1;
        if ((l = rp_line(&c, &len)) == NULL || l[0] != '*') {
            fprintf(stderr, "redis_peer: unexpected reply\n");
            return 1;
        }
        cnt = strtoll(l + 1, NULL, 10);
        for (long long i = 0; i < cnt; i++) {
            const char *id = NULL;
            size_t id_len = 0;

            /* entry: *2, the ID, then the field/value array */
            if ((l = rp_line(&c, &len)) == NULL || l[0] != '*' ||
                !rp_value(&c, &id, &id_len, &touch) || id_len + 2 > sizeof lastid) {
                fprintf(stderr, "redis_peer: bad entry\n");
                return 1;
            }
            memcpy(lastid, id, id_len); /* before the next read moves the buffer */
            lastid[id_len] = '\0';
            if (!rp_value(&c, NULL, NULL, &touch)) {
                fprintf(stderr, "redis_peer: bad entry\n");
                return 1;
            }
            n++;
        }
        if (cnt < page || rp_now_ns() > deadline)
            break;
        snprintf(start, sizeof start, "(%s", lastid);
    }
    t1 = rp_now_ns();
    printf("{\"peer\":\"redis\",\"mode\":\"xrange\",\"page\":%d,\"read\":%" PRIu64
           ",\"seconds\":%.4f,\"rps\":%.1f,\"touch\":%" PRIu64 "}\n",
           page, n, (double)(t1 - t0) / 1e9, (double)n / ((double)(t1 - t0) / 1e9), touch & 1);
    close(c.fd);
    free(c.buf);
    return 0;
}
