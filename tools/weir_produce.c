/* weir_produce.c -- `weir produce`: append stdin to a topic, one record per line.
 *
 * Input lines are collected into a batch of up to --batch records (and at most
 * WT_BATCH_BYTES bytes). Every line is checked as it joins the batch (JSON syntax, key, size
 * against the topic's max_record_bytes); the batch is appended only once all its lines passed,
 * so on the first bad line nothing from the start of its batch on is written, while earlier
 * batches are already stored and their offsets printed. A batch is split by partition into
 * one lg_append per partition; offsets are printed afterwards in input order.
 *
 * A batch is flushed when it is full, at end of input, or when no complete line has arrived
 * for --linger-ms after its first record (so interactive input is acknowledged promptly).
 * With --producer-id the linger rule is off: batch boundaries then depend only on the input
 * and --batch, so re-running the same input with the same producer id, epoch and base
 * sequence is deduplicated by the log (the sequence advances per partition).
 *
 * Input is read with read(2) into our own buffer rather than stdio, because poll(2) on fd 0
 * cannot see bytes already sitting in a FILE buffer. */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

#include "weir_util.h"

#define WT_BATCH_BYTES   (4u << 20) /* flush before a batch grows past this */
#define WT_READ_CHUNK    (64u << 10)
#define WT_AGAIN_WAIT_NS (60ull * 1000 * 1000 * 1000) /* give up after 60 s of back-pressure */

enum { WT_FMT_LINES, WT_FMT_NDJSON };

/* ---------------------------------------------------------------- line reader */
typedef struct wt_lines {
    int fd;
    wr_buf buf; /* owned; bytes [pos, buf.len) are not yet returned */
    size_t pos;
    bool eof;
    uint64_t lineno; /* number of the line returned last (1-based) */
    size_t max_line; /* a longer line is WR_ERR_TOOBIG */
} wt_lines;

/* Fill the buffer once. WR_AGAIN when nothing arrived within @timeout_ms (-1: wait). */
static wr_status wt_lines_fill(wt_lines *lr, int timeout_ms)
{
    struct pollfd pfd = {.fd = lr->fd, .events = POLLIN};
    ssize_t n;

    if (lr->pos > 0) {
        memmove(lr->buf.ptr, lr->buf.ptr + lr->pos, lr->buf.len - lr->pos);
        lr->buf.len -= lr->pos;
        lr->pos = 0;
    }
    if (timeout_ms >= 0 && poll(&pfd, 1, timeout_ms) <= 0)
        return WR_AGAIN; /* timeout or EINTR: let the caller flush and come back */
    WR_TRY(wr_buf_reserve(&lr->buf, WT_READ_CHUNK));
    n = read(lr->fd, lr->buf.ptr + lr->buf.len, lr->buf.cap - lr->buf.len);
    if (n < 0) {
        if (errno == EINTR || errno == EAGAIN)
            return WR_AGAIN;
        return wr_err(wr_status_from_errno(errno), "read from standard input: %s", strerror(errno));
    }
    if (n == 0)
        lr->eof = true;
    lr->buf.len += (size_t)n;
    return WR_OK;
}

/* Next line without its '\n' (borrowed until the next call). WR_EOF at the end of input,
 * WR_AGAIN when no complete line arrived within @timeout_ms (-1: wait forever). */
static wr_status wt_lines_next(wt_lines *lr, int timeout_ms, wr_bytes *line)
{
    uint64_t deadline = wr_now_ns() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms) * 1000000u;

    for (;;) {
        const uint8_t *start = lr->buf.ptr + lr->pos;
        size_t avail = lr->buf.len - lr->pos;
        const uint8_t *nl = avail ? memchr(start, '\n', avail) : NULL;
        int wait = timeout_ms;

        if (nl || (lr->eof && avail > 0)) {
            size_t len = nl ? (size_t)(nl - start) : avail;
            *line = wr_bytes_of(start, len);
            lr->pos += nl ? len + 1 : len;
            lr->lineno++;
            return WR_OK;
        }
        if (lr->eof)
            return WR_EOF;
        if (avail > lr->max_line)
            return WR_ERR_TOOBIG;
        if (timeout_ms >= 0) {
            uint64_t now = wr_now_ns();
            wait = now >= deadline ? 0 : (int)((deadline - now) / 1000000u);
        }
        WR_TRY(wt_lines_fill(lr, wait));
    }
}

/* ---------------------------------------------------------------- the producer */
typedef struct wt_rec {
    size_t key_off, key_len, val_off, val_len; /* in wt_prod.arena */
    bool has_key, tombstone, sent, dup;
    uint32_t part;
    uint64_t line;
    uint64_t offset; /* LG_NO_OFFSET until appended */
} wt_rec;

typedef struct wt_prod {
    const wt_cmd *cmd;
    lg_topic *t;          /* owned */
    const lg_config *cfg; /* borrowed from t */
    uint32_t nparts;
    int fmt;               /* WT_FMT_* */
    const char *key;       /* --key, borrowed from argv; NULL: none */
    const char *key_field; /* --key-field; NULL: none */
    bool tombstone_null, json_out, fixed_part;
    uint32_t part;        /* --partition when fixed_part */
    uint64_t producer_id; /* LG_NO_PRODUCER: not idempotent */
    uint16_t epoch;
    uint32_t *seq; /* owned; next sequence per partition */
    uint32_t batch_max;
    int linger_ms; /* -1: off */
    wt_rec *recs;  /* owned; the batch being built, batch_max slots */
    uint32_t cnt;
    lg_rec_in *ins;    /* owned; scratch for one partition's lg_batch_in */
    wr_buf arena;      /* owned; keys and values of the batch */
    uint64_t batch_no; /* batches flushed so far; spreads unkeyed batches */
    uint64_t batch_start_ns;
    uint64_t written;
} wt_prod;

static int wt_prod_bad_line(wt_prod *p, uint64_t line, const char *what)
{
    uint64_t from = p->cnt ? p->recs[0].line : line;

    fflush(stdout);
    fprintf(stderr,
            "%s: line %" PRIu64 ": %s; nothing from line %" PRIu64 " on was written "
            "(records before it: offsets printed above)\n",
            p->cmd->name, line, what, from);
    return WT_EXIT_DATA;
}

static void wt_prod_print(const wt_prod *p)
{
    for (uint32_t i = 0; i < p->cnt; i++) {
        const wt_rec *r = &p->recs[i];
        json_t *j;

        if (r->offset == LG_NO_OFFSET)
            continue;
        if (!p->json_out) {
            printf("%" PRIu32 " %" PRIu64 "\n", r->part, r->offset);
            continue;
        }
        j = json_pack("{s:I, s:I, s:I}", "line", (json_int_t)r->line, "partition",
                      (json_int_t)r->part, "offset", (json_int_t)r->offset);
        if (j && r->dup)
            json_object_set_new(j, "duplicate", json_true());
        if (j == NULL || !wt_json_print(j))
            wt_err(p->cmd->name, WR_ERR_NOMEM, "out of memory printing line %" PRIu64, r->line);
        json_decref(j);
    }
    fflush(stdout);
}

/* lg_append, retrying back-pressure with a growing sleep. */
static wr_status wt_append_retry(lg_topic *t, uint32_t part, const lg_batch_in *b, lg_ack *ack)
{
    uint64_t give_up = wr_now_ns() + WT_AGAIN_WAIT_NS, delay = 1000000;
    wr_status st;

    for (;;) {
        wr_err_clear();
        st = lg_append(t, part, b, ack);
        if (st != WR_AGAIN || wr_now_ns() > give_up)
            return st;
        wr_sleep_ns(delay);
        if (delay < 100000000)
            delay *= 2;
    }
}

static const char *wt_append_hint(wr_status st)
{
    switch (st) {
    case WR_AGAIN:
        return "the log stayed busy for 60 s; retry later or lower --batch";
    case WR_ERR_TOOBIG:
        return "the batch is over a log limit; retry with a smaller --batch";
    case WR_ERR_SEQUENCE:
        return "the producer sequence is out of order; give the --base-seq the log expects "
               "(see 'weir log info') or a new --producer-id";
    case WR_ERR_FENCED:
        return "a newer epoch of this producer id exists; use a higher --epoch";
    case WR_ERR_FAILED:
        return "the partition failed earlier; check the disk, then reopen (run the command "
               "again)";
    default:
        return "check the disk and 'weir log info', then retry the lines not written";
    }
}

/* Bytes of the batch arena; never a NULL pointer, which would mean "no key" to the log. */
static wr_bytes wt_arena_bytes(const wt_prod *p, size_t off, size_t len)
{
    return p->arena.ptr ? wr_bytes_of(p->arena.ptr + off, len) : wr_bytes_of("", 0);
}

/* Append the records of partition @part, starting at recs[first]. */
static wr_status wt_prod_send_part(wt_prod *p, uint32_t first, uint32_t part)
{
    lg_batch_in b = {0};
    lg_ack ack;
    uint32_t n = 0, j = 0;
    wr_status st;

    for (uint32_t i = first; i < p->cnt; i++) {
        wt_rec *r = &p->recs[i];
        lg_rec_in *in = &p->ins[n];
        if (r->sent || r->part != part)
            continue;
        memset(in, 0, sizeof *in);
        in->key = r->has_key ? wt_arena_bytes(p, r->key_off, r->key_len) : wr_bytes_of(NULL, 0);
        in->val = wt_arena_bytes(p, r->val_off, r->val_len);
        in->tombstone = r->tombstone;
        r->sent = true;
        n++;
    }
    b.recs = p->ins;
    b.rec_cnt = n;
    b.producer_id = p->producer_id;
    b.producer_epoch = p->epoch;
    b.base_seq = p->seq ? p->seq[part] : 0;
    b.compression = p->cfg->compression;
    st = wt_append_retry(p->t, part, &b, &ack);
    for (uint32_t i = first; st == WR_OK && i < p->cnt; i++) {
        wt_rec *r = &p->recs[i];
        if (r->part != part)
            continue;
        r->offset = ack.base_offset + j++; /* the batch keeps input order */
        r->dup = ack.duplicate;
    }
    if (st == WR_OK && p->seq)
        p->seq[part] += n;
    if (st == WR_OK)
        p->written += n;
    else
        wt_err(p->cmd->name, st,
               "appending %" PRIu32 " records (lines %" PRIu64 "..) to partition %" PRIu32
               " of topic '%s' failed; records of this batch without an offset above were "
               "not written (%s)",
               n, p->recs[first].line, part, lg_topic_name(p->t), wt_append_hint(st));
    return st;
}

static int wt_prod_flush(wt_prod *p)
{
    wr_status st = WR_OK;

    for (uint32_t i = 0; i < p->cnt && st == WR_OK; i++)
        if (!p->recs[i].sent)
            st = wt_prod_send_part(p, i, p->recs[i].part);
    wt_prod_print(p);
    p->cnt = 0;
    p->arena.len = 0;
    p->batch_no++;
    return st == WR_OK ? WT_EXIT_OK : WT_EXIT_DATA;
}

static bool wt_blank(wr_bytes b)
{
    for (size_t i = 0; i < b.len; i++)
        if (b.ptr[i] != ' ' && b.ptr[i] != '\t' && b.ptr[i] != '\r')
            return false;
    return true;
}

static const char *wt_json_type(const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "?";
}

/* Parse an ndjson line: copies the --key-field value into @key (a wr_buf so it outlives the
 * json_t) and sets *tomb for {"value": null} under --tombstone-null. Returns an exit code. */
static int wt_prod_parse_json(wt_prod *p, wr_bytes line, uint64_t lineno, wr_buf *key,
                              bool *has_key, bool *tomb)
{
    char what[300];
    json_error_t e;
    json_t *o, *k, *v;
    int rc = WT_EXIT_OK;

    o = json_loadb((const char *)line.ptr, line.len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &e);
    if (o == NULL) {
        snprintf(what, sizeof what, "invalid JSON: %s at column %d", e.text, e.column);
        return wt_prod_bad_line(p, lineno, what);
    }
    if (!json_is_object(o)) {
        snprintf(what, sizeof what, "expected a JSON object, got %s", wt_json_type(o));
        rc = wt_prod_bad_line(p, lineno, what);
    } else if (p->key_field) {
        k = json_object_get(o, p->key_field);
        if (k == NULL || !json_is_string(k)) {
            snprintf(what, sizeof what, "key field \"%s\" (--key-field) is %s, not a string",
                     p->key_field, k ? wt_json_type(k) : "missing");
            rc = wt_prod_bad_line(p, lineno, what);
        } else {
            key->len = 0;
            if (wr_buf_append(key, json_string_value(k), json_string_length(k)) != WR_OK)
                rc = wt_prod_bad_line(p, lineno, "out of memory");
            *has_key = true;
            v = json_object_get(o, "value");
            *tomb = p->tombstone_null && v != NULL && json_is_null(v);
        }
    }
    json_decref(o);
    return rc;
}

/* Check one input line and add it to the batch (flushing first if it would not fit). */
static int wt_prod_line(wt_prod *p, wr_bytes line, uint64_t lineno, wr_buf *keybuf)
{
    wr_bytes key = wr_bytes_of(NULL, 0);
    bool has_key = false, tomb = false;
    size_t size;
    wt_rec *r;
    char what[300];
    int rc;

    if (p->fmt == WT_FMT_NDJSON) {
        if (wt_blank(line))
            return WT_EXIT_OK; /* blank lines separate nothing in NDJSON; skip them */
        rc = wt_prod_parse_json(p, line, lineno, keybuf, &has_key, &tomb);
        if (rc != WT_EXIT_OK)
            return rc;
        if (has_key)
            key = wr_bytes_of(keybuf->ptr ? keybuf->ptr : (const uint8_t *)"", keybuf->len);
    }
    if (!has_key && p->key) {
        key = wr_bytes_str(p->key);
        has_key = true;
    }
    if (!has_key && p->cfg->cleanup == LG_CLEANUP_COMPACT)
        return wt_prod_bad_line(p, lineno,
                                "no key, and this topic is compacted (cleanup=compact), which "
                                "needs one per record (give --key or --key-field)");
    size = key.len + (tomb ? 0 : line.len);
    if (size > p->cfg->max_record_bytes) {
        snprintf(what, sizeof what,
                 "record is %zu bytes (key %zu + value %zu), over the topic's limit "
                 "max.record.bytes=%" PRIu32 " (shorten it, or create the topic with "
                 "--config max.record.bytes=N)",
                 size, key.len, tomb ? 0 : line.len, p->cfg->max_record_bytes);
        return wt_prod_bad_line(p, lineno, what);
    }
    if (p->cnt > 0 && p->arena.len + size > WT_BATCH_BYTES && (rc = wt_prod_flush(p)) != WT_EXIT_OK)
        return rc;
    if (p->cnt == 0)
        p->batch_start_ns = wr_now_ns();
    r = &p->recs[p->cnt];
    memset(r, 0, sizeof *r);
    r->line = lineno;
    r->offset = LG_NO_OFFSET;
    r->has_key = has_key;
    r->tombstone = tomb;
    r->key_off = p->arena.len;
    r->key_len = key.len;
    r->val_off = p->arena.len + key.len;
    r->val_len = tomb ? 0 : line.len;
    if ((key.len && wr_buf_append(&p->arena, key.ptr, key.len) != WR_OK) ||
        (r->val_len && wr_buf_append(&p->arena, line.ptr, line.len) != WR_OK))
        return wt_prod_bad_line(p, lineno, "out of memory");
    if (p->fixed_part)
        r->part = p->part;
    else if (has_key)
        r->part = lg_partition_for_key(key, p->nparts);
    else
        r->part = (uint32_t)(p->batch_no % p->nparts); /* sticky per batch, then rotate */
    p->cnt++;
    return p->cnt == p->batch_max ? wt_prod_flush(p) : WT_EXIT_OK;
}

/* How long to wait for the next line before flushing the batch; -1: no limit. */
static int wt_prod_wait_ms(const wt_prod *p)
{
    uint64_t waited;

    if (p->cnt == 0 || p->linger_ms < 0)
        return -1;
    waited = (wr_now_ns() - p->batch_start_ns) / 1000000u;
    return waited >= (uint64_t)p->linger_ms ? 0 : p->linger_ms - (int)waited;
}

static int wt_prod_run(wt_prod *p)
{
    wt_lines lr = {.fd = STDIN_FILENO};
    wr_buf keybuf = {0};
    wr_bytes line;
    wr_status st;
    int rc = WT_EXIT_OK;

    lr.max_line = (size_t)p->cfg->max_record_bytes + 1;
    while (rc == WT_EXIT_OK) {
        st = wt_lines_next(&lr, wt_prod_wait_ms(p), &line);
        if (st == WR_AGAIN) {
            rc = wt_prod_flush(p);
        } else if (st == WR_EOF) {
            break;
        } else if (st == WR_ERR_TOOBIG) {
            char what[200];
            snprintf(what, sizeof what,
                     "line is longer than the topic's limit max.record.bytes=%" PRIu32
                     " (shorten it, or create the topic with --config max.record.bytes=N)",
                     p->cfg->max_record_bytes);
            rc = wt_prod_bad_line(p, lr.lineno + 1, what);
        } else if (st != WR_OK) {
            fflush(stdout);
            wt_err(p->cmd->name, st, "reading line %" PRIu64 " of standard input failed",
                   lr.lineno + 1);
            rc = WT_EXIT_DATA;
        } else {
            rc = wt_prod_line(p, line, lr.lineno, &keybuf);
        }
    }
    if (rc == WT_EXIT_OK)
        rc = wt_prod_flush(p);
    wr_buf_fini(&keybuf);
    wr_buf_fini(&lr.buf);
    return rc;
}

/* ---------------------------------------------------------------- command line */
static wt_flag wt_produce_flags[] = {
    {.name = "dir", .metavar = "D", .help = WT_DIR_HELP},
    {.name = "topic", .metavar = "T", .help = "topic to append to (required)"},
    {.name = "format",
     .metavar = "F",
     .help = "lines: each line is a value; ndjson: each line is a JSON object, stored as "
             "given (default: lines)"},
    {.name = "key", .metavar = "K", .help = "the same key for every record (default: no key)"},
    {.name = "key-field",
     .metavar = "F",
     .help = "ndjson: the key is the string value of field F of each object"},
    {.name = "tombstone-null",
     .metavar = NULL,
     .help = "ndjson with --key-field: an object with \"value\": null is stored as a "
             "tombstone (a delete)"},
    {.name = "partition",
     .metavar = "N",
     .help = "append everything to partition N (default: hash of the key; records without a "
             "key rotate over partitions batch by batch)"},
    {.name = "producer-id",
     .metavar = "N",
     .help = "idempotent producer id: a re-run with the same id, epoch, base sequence, input "
             "and --batch is stored once (default: none)"},
    {.name = "epoch", .metavar = "E", .help = "producer epoch, 0..65535 (default: 0)"},
    {.name = "base-seq",
     .metavar = "S",
     .help = "sequence of the first record in each partition (default: 0)"},
    {.name = "batch", .metavar = "N", .help = "records per batch, 1..100000 (default: 1000)"},
    {.name = "linger-ms",
     .metavar = "MS",
     .help = "append a partial batch when no line arrives for MS ms (default: 10; ignored "
             "with --producer-id)"},
    {.name = "json",
     .metavar = NULL,
     .help = "print {\"line\",\"partition\",\"offset\"} per record instead of "
             "\"partition offset\""},
};

static const wt_cmd wt_produce_cmd = {
    .name = "weir produce",
    .synopsis = "weir produce --topic T [--dir D] [--format lines|ndjson] [--key K | "
                "--key-field F] [--partition N] [--producer-id N --epoch E --base-seq S] "
                "[--batch N] [--linger-ms MS] [--json] < input",
    .about =
        "Append standard input to topic T, one record per line, and print \"partition offset\" "
        "for each record in input order. Lines are appended in batches; each batch is checked "
        "whole (JSON syntax, key, size against max.record.bytes) before it is written, so on "
        "the first bad line nothing from the start of its batch on is stored.\n"
        "Exit status: 0 all lines written, 1 bad input or a log error, 2 bad command line.",
    .examples = "  printf 'a\\nb\\n' | weir produce --topic events\n"
                "  weir produce --topic users --format ndjson --key-field id < users.ndjson\n"
                "  weir produce --topic users --format ndjson --key-field id --tombstone-null "
                "< changes.ndjson\n"
                "  weir produce --topic t --producer-id 7 --epoch 1 --base-seq 0 < file\n",
    .flags = wt_produce_flags,
    .flag_cnt = sizeof wt_produce_flags / sizeof wt_produce_flags[0],
};

/* Check flags that do not need the topic. Returns an exit code. */
static int wt_prod_flags(wt_prod *p, const wt_cmd *c)
{
    const char *fmt = wt_flag_get(c, "format")->val;
    uint64_t pid = LG_NO_PRODUCER, linger = 10;
    uint32_t epoch = 0;

    if (wt_flag_get(c, "topic")->val == NULL)
        return wt_usage_err(c, "--topic is required");
    if (fmt == NULL || strcmp(fmt, "lines") == 0)
        p->fmt = WT_FMT_LINES;
    else if (strcmp(fmt, "ndjson") == 0)
        p->fmt = WT_FMT_NDJSON;
    else
        return wt_usage_err(c, "--format: '%s' is not one of lines, ndjson", fmt);
    p->key = wt_flag_get(c, "key")->val;
    p->key_field = wt_flag_get(c, "key-field")->val;
    p->tombstone_null = wt_flag_get(c, "tombstone-null")->cnt > 0;
    p->json_out = wt_flag_get(c, "json")->cnt > 0;
    if (p->key && p->key_field)
        return wt_usage_err(c, "give --key or --key-field, not both");
    if (p->key_field && p->fmt != WT_FMT_NDJSON)
        return wt_usage_err(c, "--key-field needs --format ndjson");
    if (p->tombstone_null && p->key_field == NULL)
        return wt_usage_err(c, "--tombstone-null needs --format ndjson and --key-field");
    p->batch_max = 1000;
    p->fixed_part = wt_flag_get(c, "partition")->val != NULL;
    if (!wt_flag_u32(c, "batch", 1, 100000, &p->batch_max) ||
        !wt_flag_u32(c, "partition", 0, LG_MAX_PARTITIONS - 1, &p->part) ||
        !wt_flag_u64(c, "producer-id", 0, LG_NO_PRODUCER - 1, &pid) ||
        !wt_flag_u32(c, "epoch", 0, UINT16_MAX, &epoch) ||
        !wt_flag_u64(c, "linger-ms", 0, 60000, &linger))
        return WT_EXIT_USAGE;
    if (pid == LG_NO_PRODUCER && (wt_flag_get(c, "epoch")->val || wt_flag_get(c, "base-seq")->val))
        return wt_usage_err(c, "--epoch and --base-seq need --producer-id");
    p->producer_id = pid;
    p->epoch = (uint16_t)epoch;
    p->linger_ms = pid == LG_NO_PRODUCER ? (int)linger : -1;
    return WT_EXIT_OK;
}

/* Allocate the per-topic state once the partition count is known. */
static int wt_prod_setup(wt_prod *p, const wt_cmd *c)
{
    uint32_t base_seq = 0;

    p->cfg = lg_topic_config(p->t);
    p->nparts = lg_topic_partitions(p->t);
    if (p->fixed_part && p->part >= p->nparts)
        return wt_usage_err(
            c, "--partition %" PRIu32 ": topic '%s' has %" PRIu32 " partitions (0..%" PRIu32 ")",
            p->part, lg_topic_name(p->t), p->nparts, p->nparts - 1);
    if (!wt_flag_u32(c, "base-seq", 0, UINT32_MAX, &base_seq))
        return WT_EXIT_USAGE;
    p->recs = wr_calloc(p->batch_max, sizeof *p->recs);
    p->ins = wr_calloc(p->batch_max, sizeof *p->ins);
    if (p->producer_id != LG_NO_PRODUCER && (p->seq = wr_calloc(p->nparts, 4)) != NULL)
        for (uint32_t i = 0; i < p->nparts; i++)
            p->seq[i] = base_seq;
    if (!p->recs || !p->ins || (p->producer_id != LG_NO_PRODUCER && !p->seq)) {
        wt_err(c->name, WR_ERR_NOMEM, "out of memory for a batch of %" PRIu32 " records",
               p->batch_max);
        return WT_EXIT_DATA;
    }
    return WT_EXIT_OK;
}

int wt_produce_main(int argc, char **argv)
{
    const wt_cmd *c = &wt_produce_cmd;
    wt_prod p = {.cmd = &wt_produce_cmd};
    int rc;

    if ((rc = wt_cmd_parse(c, argc, argv)) != WT_EXIT_OK)
        return rc == WT_EXIT_HELP ? WT_EXIT_OK : rc;
    if ((rc = wt_prod_flags(&p, c)) != WT_EXIT_OK)
        return rc;
    rc = wt_topic_open(c->name, wt_dir(wt_flag_get(c, "dir")->val), wt_flag_get(c, "topic")->val,
                       false, &p.t);
    if (rc != WT_EXIT_OK)
        return rc;
    if ((rc = wt_prod_setup(&p, c)) == WT_EXIT_OK)
        rc = wt_prod_run(&p);
    lg_topic_close(p.t);
    wr_free(p.recs);
    wr_free(p.ins);
    wr_free(p.seq);
    wr_buf_fini(&p.arena);
    return rc;
}
