/* lg_config.c -- topic configuration: defaults, "name=value" parsing, and topic.meta.
 *
 * topic.meta is text, one "name=value" per line, in a fixed order, ending with a line
 * "checksum=<16 hex digits>" holding XXH3-64 of every byte before that line
 * (docs/formats/log.md). Text keeps it readable with cat; the checksum keeps it honest. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "lg_int.h"

#define LG_META_VERSION 1

void lg_config_default(lg_config *c)
{
    memset(c, 0, sizeof(*c));
    c->partitions = 1;
    c->fsync = LG_FSYNC_ALWAYS;
    c->fsync_interval_ms = 100;
    c->segment_bytes = 256ull << 20;
    c->segment_ms = 7ull * 24 * 3600 * 1000;
    c->retention_ms = 7ll * 24 * 3600 * 1000;
    c->retention_bytes = -1;
    c->cleanup = LG_CLEANUP_DELETE;
    c->delete_retention_ms = 24ll * 3600 * 1000;
    c->min_cleanable_ratio = 0.5;
    c->max_record_bytes = 1u << 20;
    c->index_interval_bytes = 4096;
    c->compression = LG_COMP_NONE;
    c->producer_expiration_ms = 7ll * 24 * 3600 * 1000;
}

const char *lg_fsync_name(lg_fsync f)
{
    switch (f) {
    case LG_FSYNC_ALWAYS:
        return "always";
    case LG_FSYNC_INTERVAL:
        return "interval";
    case LG_FSYNC_NEVER:
        return "never";
    }
    return "?";
}

bool lg_name_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > LG_TOPIC_NAME_MAX || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-'))
            return false;
    }
    return true;
}

static bool parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    char *end;
    long long v;

    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static wr_status bad(const char *name, const char *val, const char *want)
{
    return wr_err(WR_ERR_INVAL, "bad value '%s' for %s: expected %s", val, name, want);
}

wr_status lg_config_set(lg_config *c, const char *assignment)
{
    char name[64];
    const char *eq = strchr(assignment, '=');
    const char *val;
    int64_t v;

    if (eq == NULL || eq == assignment || (size_t)(eq - assignment) >= sizeof(name))
        return wr_err(WR_ERR_INVAL, "bad setting '%s': expected name=value", assignment);
    memcpy(name, assignment, (size_t)(eq - assignment));
    name[eq - assignment] = '\0';
    val = eq + 1;

    if (strcmp(name, "partitions") == 0) {
        if (!parse_i64(val, 1, LG_MAX_PARTITIONS, &v))
            return bad(name, val, "an integer in 1..4096");
        c->partitions = (uint32_t)v;
    } else if (strcmp(name, "fsync") == 0) {
        if (strcmp(val, "always") == 0) {
            c->fsync = LG_FSYNC_ALWAYS;
        } else if (strcmp(val, "never") == 0) {
            c->fsync = LG_FSYNC_NEVER;
        } else if (strncmp(val, "interval=", 9) == 0 && parse_i64(val + 9, 1, 3600000, &v)) {
            c->fsync = LG_FSYNC_INTERVAL;
            c->fsync_interval_ms = (uint32_t)v;
        } else {
            return bad(name, val, "always, never or interval=<ms> (1..3600000)");
        }
    } else if (strcmp(name, "segment.bytes") == 0) {
        if (!parse_i64(val, 4096, 1ll << 31, &v))
            return bad(name, val, "bytes in 4096..2147483648");
        c->segment_bytes = (uint64_t)v;
    } else if (strcmp(name, "segment.ms") == 0) {
        if (!parse_i64(val, 1, INT64_MAX, &v))
            return bad(name, val, "milliseconds >= 1");
        c->segment_ms = (uint64_t)v;
    } else if (strcmp(name, "retention.ms") == 0) {
        if (!parse_i64(val, -1, INT64_MAX, &v))
            return bad(name, val, "milliseconds, or -1 to keep forever");
        c->retention_ms = v;
    } else if (strcmp(name, "retention.bytes") == 0) {
        if (!parse_i64(val, -1, INT64_MAX, &v))
            return bad(name, val, "bytes per partition, or -1 for no limit");
        c->retention_bytes = v;
    } else if (strcmp(name, "cleanup.policy") == 0 || strcmp(name, "cleanup") == 0) {
        if (strcmp(val, "delete") == 0)
            c->cleanup = LG_CLEANUP_DELETE;
        else if (strcmp(val, "compact") == 0)
            c->cleanup = LG_CLEANUP_COMPACT;
        else
            return bad(name, val, "delete or compact");
    } else if (strcmp(name, "delete.retention.ms") == 0) {
        if (!parse_i64(val, 0, INT64_MAX, &v))
            return bad(name, val, "milliseconds >= 0");
        c->delete_retention_ms = v;
    } else if (strcmp(name, "min.cleanable.ratio") == 0) {
        char *end;
        double d = strtod(val, &end);
        if (end == val || *end != '\0' || !(d >= 0.0 && d <= 1.0))
            return bad(name, val, "a ratio in 0..1");
        c->min_cleanable_ratio = d;
    } else if (strcmp(name, "max.record.bytes") == 0) {
        if (!parse_i64(val, 16, 32ll << 20, &v))
            return bad(name, val, "bytes in 16..33554432");
        c->max_record_bytes = (uint32_t)v;
    } else if (strcmp(name, "index.interval.bytes") == 0) {
        if (!parse_i64(val, 1, 1ll << 24, &v))
            return bad(name, val, "bytes in 1..16777216");
        c->index_interval_bytes = (uint32_t)v;
    } else if (strcmp(name, "producer.expiration.ms") == 0) {
        if (!parse_i64(val, 1000, INT64_MAX, &v))
            return bad(name, val, "milliseconds >= 1000");
        c->producer_expiration_ms = v;
    } else if (strcmp(name, "compression") == 0) {
        if (strcmp(val, "none") == 0)
            c->compression = LG_COMP_NONE;
        else if (strcmp(val, "zstd") == 0)
            c->compression = LG_COMP_ZSTD;
        else
            return bad(name, val, "none or zstd");
    } else {
        return wr_err(WR_ERR_INVAL,
                      "unknown setting '%s' (known: partitions, fsync, segment.bytes, segment.ms, "
                      "retention.ms, retention.bytes, cleanup.policy, delete.retention.ms, "
                      "min.cleanable.ratio, max.record.bytes, index.interval.bytes, compression, "
                      "producer.expiration.ms)",
                      name);
    }
    return WR_OK;
}

size_t lg_config_format(const lg_config *c, char *dst, size_t cap)
{
    char fs[32];
    int n;

    if (c->fsync == LG_FSYNC_INTERVAL)
        snprintf(fs, sizeof(fs), "interval=%" PRIu32, c->fsync_interval_ms);
    else
        snprintf(fs, sizeof(fs), "%s", lg_fsync_name(c->fsync));
    n = snprintf(
        dst, cap,
        "partitions=%" PRIu32 "\nfsync=%s\nsegment.bytes=%" PRIu64 "\nsegment.ms=%" PRIu64
        "\nretention.ms=%" PRId64 "\nretention.bytes=%" PRId64
        "\ncleanup.policy=%s\ndelete.retention.ms=%" PRId64
        "\nmin.cleanable.ratio=%.6f\nmax.record.bytes=%" PRIu32 "\nindex.interval.bytes=%" PRIu32
        "\ncompression=%s\nproducer.expiration.ms=%" PRId64 "\n",
        c->partitions, fs, c->segment_bytes, c->segment_ms, c->retention_ms, c->retention_bytes,
        c->cleanup == LG_CLEANUP_COMPACT ? "compact" : "delete", c->delete_retention_ms,
        c->min_cleanable_ratio, c->max_record_bytes, c->index_interval_bytes,
        c->compression == LG_COMP_ZSTD ? "zstd" : "none", c->producer_expiration_ms);
    return n < 0 ? 0 : (size_t)n;
}

wr_status lg_config_encode(const lg_config *c, wr_buf *out)
{
    char txt[1024];
    int n = snprintf(txt, sizeof(txt), "version=%d\n", LG_META_VERSION);
    size_t m = lg_config_format(c, txt + n, sizeof(txt) - (size_t)n);

    if (m >= sizeof(txt) - (size_t)n - 40)
        return WR_ERR_INTERNAL;
    n += (int)m;
    n += snprintf(txt + n, sizeof(txt) - (size_t)n, "checksum=%016" PRIx64 "\n",
                  wr_xxh3(txt, (size_t)n));
    out->len = 0;
    return wr_buf_append(out, txt, (size_t)n);
}

wr_status lg_config_decode(const uint8_t *p, size_t n, lg_config *c)
{
    char line[256];
    size_t i = 0;
    bool have_sum = false, have_parts = false;

    lg_config_default(c);
    while (i < n) {
        size_t start = i, len;
        while (i < n && p[i] != '\n')
            i++;
        if (i == n)
            return wr_err(WR_ERR_CORRUPT, "topic.meta: line at byte %zu is not terminated", start);
        len = i - start;
        i++;
        if (len >= sizeof(line))
            return wr_err(WR_ERR_CORRUPT, "topic.meta: line at byte %zu is too long", start);
        memcpy(line, p + start, len);
        line[len] = '\0';
        if (strncmp(line, "checksum=", 9) == 0) {
            char want[17];
            snprintf(want, sizeof(want), "%016" PRIx64, wr_xxh3(p, start));
            if (strcmp(line + 9, want) != 0)
                return wr_err(WR_ERR_CORRUPT,
                              "topic.meta: checksum mismatch (stored %s, computed %s)", line + 9,
                              want);
            have_sum = true;
            break;
        }
        if (strncmp(line, "version=", 8) == 0) {
            if (strcmp(line + 8, "1") != 0)
                return wr_err(WR_ERR_UNSUPPORTED,
                              "topic.meta: format version %s is not supported (this weir "
                              "reads version 1)",
                              line + 8);
            continue;
        }
        if (strncmp(line, "partitions=", 11) == 0)
            have_parts = true;
        if (lg_config_set(c, line) != WR_OK) {
            char why[256];
            snprintf(why, sizeof(why), "%s", wr_errmsg());
            return wr_err(WR_ERR_CORRUPT, "topic.meta: byte %zu: %s", start, why);
        }
    }
    if (!have_sum || !have_parts)
        return wr_err(WR_ERR_CORRUPT, "topic.meta: missing %s line",
                      have_sum ? "partitions" : "checksum");
    return WR_OK;
}
