/* weir_consume.c -- `weir consume`: print the records of a topic.
 *
 * One lg_reader per selected partition, read round-robin: up to WT_ROUND_RECS records from
 * each partition per round, so a busy partition cannot starve the others. When a whole round
 * finds nothing, the command stops, unless it may wait (--follow, or --timeout-ms): then the
 * next rounds wait a short slice on each partition (lg_reader_next with a timeout) until a
 * record arrives, the idle time passes --timeout-ms, or SIGINT/SIGTERM arrives.
 *
 * With --group G each partition starts at G's committed offset (earliest if none), and the
 * command commits "next offset to read" per partition after the records are printed and
 * stdout is flushed: every WT_COMMIT_EVERY records, at the end and on a signal. A record is
 * therefore printed at least once per group; a crash between print and commit repeats it.
 * The topic is opened read-only (group commits do not need the writer's lock), so this works
 * beside a running producer. */
#include <inttypes.h>
#include <stdlib.h>

#include "weir_util.h"

#define WT_ROUND_RECS   256
#define WT_COMMIT_EVERY 1000
#define WT_ROUND_WAIT   100 /* ms a waiting round spends over all partitions, roughly */

typedef struct wt_cons {
    const wt_cmd *cmd;
    lg_topic *t;         /* owned */
    const char *dir;     /* borrowed: the log root */
    uint32_t first, cnt; /* selected partitions: first .. first+cnt-1 */
    lg_reader **rd;      /* owned; rd[i] reads partition first+i */
    uint64_t *next;      /* owned; next offset to commit, LG_NO_OFFSET: nothing read */
    const char *group;   /* borrowed from argv; NULL: no group */
    bool json;
    int64_t idle_ms; /* stop after this long without records; -1: never */
    uint64_t max;    /* stop after this many records; UINT64_MAX: no limit */
    uint64_t printed, since_commit;
} wt_cons;

/* ---------------------------------------------------------------- output */
static bool wt_cons_headers(json_t *obj, const lg_record *rec)
{
    json_t *arr = json_array(), *h;
    size_t pos = 0;
    lg_header hd;
    wr_status st;

    if (arr == NULL || json_object_set_new(obj, "headers", arr) != 0)
        return false;
    while ((st = lg_header_next(rec->hdrs, &pos, &hd)) == WR_OK) {
        if ((h = json_object()) == NULL || json_array_append_new(arr, h) != 0 ||
            !wt_json_set_bytes(h, "key", hd.key) || !wt_json_set_bytes(h, "value", hd.val))
            return false;
    }
    return st == WR_EOF;
}

static bool wt_cons_print_json(uint32_t part, const lg_record *rec)
{
    json_t *o;
    bool ok;

    o = json_pack("{s:I, s:I, s:I}", "partition", (json_int_t)part, "offset",
                  (json_int_t)rec->offset, "timestamp", (json_int_t)rec->ts_ms);
    ok = o && wt_json_set_bytes(o, "key", rec->key) &&
         wt_json_set_bytes(o, "value", rec->tombstone ? wr_bytes_of(NULL, 0) : rec->val) &&
         wt_cons_headers(o, rec) && wt_json_print(o);
    json_decref(o);
    return ok;
}

static bool wt_cons_print(const wt_cons *c, uint32_t part, const lg_record *rec)
{
    if (c->json)
        return wt_cons_print_json(part, rec);
    /* raw: the value and a newline; a tombstone prints as an empty line */
    if (!rec->tombstone && rec->val.len)
        fwrite(rec->val.ptr, 1, rec->val.len, stdout);
    return fputc('\n', stdout) != EOF;
}

/* ---------------------------------------------------------------- groups */
/* Flush stdout, then commit every partition read since the last commit. Nothing is committed
 * if stdout could not be written: those records were not delivered. */
static int wt_cons_commit(wt_cons *c)
{
    int rc = WT_EXIT_OK;

    if (fflush(stdout) != 0 || ferror(stdout)) {
        wt_err(c->cmd->name, WR_OK,
               "writing to standard output failed; offsets of group '%s' not committed",
               c->group ? c->group : "");
        return WT_EXIT_DATA;
    }
    c->since_commit = 0;
    for (uint32_t i = 0; c->group && i < c->cnt; i++) {
        uint32_t p = c->first + i;
        wr_status st;
        if (c->next[i] == LG_NO_OFFSET)
            continue;
        wr_err_clear();
        if ((st = lg_group_commit(c->t, c->group, p, c->next[i])) != WR_OK) {
            wt_err(c->cmd->name, st,
                   "committing offset %" PRIu64 " of group '%s' for partition %" PRIu32
                   " failed; the next run of this group re-reads from its previous commit",
                   c->next[i], c->group, p);
            rc = WT_EXIT_DATA;
        }
    }
    return rc;
}

/* ---------------------------------------------------------------- reading */
static int wt_cons_read_err(const wt_cons *c, uint32_t part, wr_status st)
{
    wt_err(c->cmd->name, st,
           "reading partition %" PRIu32 " of topic '%s' in %s near offset %" PRIu64
           " failed (check it with: weir log verify --dir %s --topic %s)",
           part, lg_topic_name(c->t), c->dir, lg_reader_position(c->rd[part - c->first]), c->dir,
           lg_topic_name(c->t));
    return WT_EXIT_DATA;
}

/* Read up to WT_ROUND_RECS records of reader @i, the first waiting up to @wait_ms.
 * *got_out counts the records printed. Returns an exit code. */
static int wt_cons_drain(wt_cons *c, uint32_t i, int wait_ms, uint32_t *got_out)
{
    lg_record rec;
    wr_status st;
    int rc;

    *got_out = 0;
    for (uint32_t k = 0; k < WT_ROUND_RECS && c->printed < c->max; k++) {
        if (wt_stop_requested())
            break;
        wr_err_clear();
        st = lg_reader_next(c->rd[i], &rec, k == 0 ? wait_ms : 0);
        if (st == WR_EOF)
            break;
        if (st != WR_OK)
            return wt_cons_read_err(c, c->first + i, st);
        if (!wt_cons_print(c, c->first + i, &rec)) {
            wt_err(c->cmd->name, WR_ERR_NOMEM, "printing offset %" PRIu64 " failed", rec.offset);
            return WT_EXIT_DATA;
        }
        c->next[i] = rec.offset + 1;
        c->printed++;
        (*got_out)++;
        if (++c->since_commit >= WT_COMMIT_EVERY && c->group &&
            (rc = wt_cons_commit(c)) != WT_EXIT_OK)
            return rc;
    }
    return WT_EXIT_OK;
}

static int wt_cons_run(wt_cons *c)
{
    uint64_t idle_since = wr_now_ns();
    int slice = 0, rc = WT_EXIT_OK;

    while (rc == WT_EXIT_OK && c->printed < c->max && !wt_stop_requested()) {
        uint64_t got = 0, idle;
        for (uint32_t i = 0; i < c->cnt && rc == WT_EXIT_OK; i++) {
            uint32_t n = 0;
            rc = wt_cons_drain(c, i, slice, &n);
            got += n;
        }
        if (got) {
            slice = 0;
            idle_since = wr_now_ns();
            continue;
        }
        idle = (wr_now_ns() - idle_since) / 1000000u;
        if (c->idle_ms >= 0 && idle >= (uint64_t)c->idle_ms)
            break;
        slice = (int)(WT_ROUND_WAIT / c->cnt);
        slice = slice < 1 ? 1 : slice;
        if (c->idle_ms >= 0 && (uint64_t)slice > (uint64_t)c->idle_ms - idle)
            slice = (int)((uint64_t)c->idle_ms - idle);
    }
    if (c->group) {
        int crc = wt_cons_commit(c);
        rc = rc == WT_EXIT_OK ? crc : rc;
    }
    fflush(stdout);
    return rc;
}

/* ---------------------------------------------------------------- setup */
typedef struct wt_start {
    lg_start how;
    int64_t arg;
} wt_start;

static int wt_cons_open_readers(wt_cons *c, wt_start s)
{
    c->rd = wr_calloc(c->cnt, sizeof *c->rd);
    c->next = wr_calloc(c->cnt, sizeof *c->next);
    if (c->rd == NULL || c->next == NULL) {
        wt_err(c->cmd->name, WR_ERR_NOMEM, "out of memory for %" PRIu32 " readers", c->cnt);
        return WT_EXIT_DATA;
    }
    for (uint32_t i = 0; i < c->cnt; i++) {
        uint32_t p = c->first + i;
        wt_start ps = s;
        uint64_t committed = LG_NO_OFFSET;
        wr_status st;

        c->next[i] = LG_NO_OFFSET;
        wr_err_clear();
        if (c->group && (st = lg_group_fetch(c->t, c->group, p, &committed)) != WR_OK) {
            wt_err(c->cmd->name, st,
                   "reading the offsets of group '%s' for partition %" PRIu32 " failed", c->group,
                   p);
            return WT_EXIT_DATA;
        }
        if (c->group) {
            ps.how = committed == LG_NO_OFFSET ? LG_FROM_EARLIEST : LG_FROM_OFFSET;
            ps.arg = committed == LG_NO_OFFSET ? 0 : (int64_t)committed;
        }
        if ((st = lg_reader_open(c->t, p, ps.how, ps.arg, &c->rd[i])) != WR_OK) {
            wt_err(c->cmd->name, st,
                   "opening a reader on partition %" PRIu32 " of topic '%s' "
                   "failed",
                   p, lg_topic_name(c->t));
            return WT_EXIT_DATA;
        }
    }
    return WT_EXIT_OK;
}

static wt_flag wt_consume_flags[] = {
    {.name = "dir", .metavar = "D", .help = WT_DIR_HELP},
    {.name = "topic", .metavar = "T", .help = "topic to read (required)"},
    {.name = "partition", .metavar = "N|all", .help = "partition to read (default: all)"},
    {.name = "from-offset",
     .metavar = "O",
     .help = "start at the first record with offset >= O in each partition"},
    {.name = "from-time",
     .metavar = "TIME",
     .help = "start at the first record with timestamp >= TIME: milliseconds since 1970, or "
             "ISO-8601 UTC such as 2024-05-01T12:00:00Z"},
    {.name = "from",
     .metavar = "WHERE",
     .help = "earliest: the oldest stored record; latest: only records appended from now "
             "(default: earliest)"},
    {.name = "group",
     .metavar = "G",
     .help = "consumer group: start at G's committed offsets (earliest if none) and commit "
             "after printing (opens the topic for writing)"},
    {.name = "follow",
     .metavar = NULL,
     .help = "keep waiting for new records until SIGINT/SIGTERM (or --timeout-ms of idle)"},
    {.name = "timeout-ms",
     .metavar = "MS",
     .help = "stop once no record arrived for MS ms (default: stop at the end without "
             "--follow, never with it)"},
    {.name = "max", .metavar = "N", .help = "stop after N records (default: no limit)"},
    {.name = "format",
     .metavar = "F",
     .help = "raw: each value on its own line (a tombstone is an empty line); json: "
             "{\"partition\",\"offset\",\"timestamp\",\"key\",\"value\",\"headers\"} per line, "
             "\"key_b64\"/\"value_b64\" for bytes that are not UTF-8, value null for a "
             "tombstone (default: raw)"},
};

static const wt_cmd wt_consume_cmd = {
    .name = "weir consume",
    .synopsis = "weir consume --topic T [--dir D] [--partition N|all] [--from-offset O | "
                "--from-time TIME | --from earliest|latest | --group G] [--follow] "
                "[--timeout-ms MS] [--max N] [--format raw|json]",
    .about = "Print the records of topic T, partitions read round-robin, in offset order "
             "within each partition.\n"
             "Exit status: 0 done (also after SIGINT/SIGTERM with --follow), 1 the topic or a "
             "record could not be read, 2 bad command line.",
    .examples = "  weir consume --topic events\n"
                "  weir consume --topic events --partition 0 --from-offset 100 --max 10 "
                "--format json\n"
                "  weir consume --topic events --from-time 2024-05-01T00:00:00Z\n"
                "  weir consume --topic events --group indexer --follow\n",
    .flags = wt_consume_flags,
    .flag_cnt = sizeof wt_consume_flags / sizeof wt_consume_flags[0],
};

static int wt_cons_start(const wt_cmd *cmd, wt_start *s)
{
    const char *from = wt_flag_get(cmd, "from")->val, *tm = wt_flag_get(cmd, "from-time")->val;
    uint64_t off = 0;
    int given = 0;

    given += wt_flag_get(cmd, "from-offset")->val != NULL;
    given += tm != NULL;
    given += from != NULL;
    given += wt_flag_get(cmd, "group")->val != NULL;
    if (given > 1)
        return wt_usage_err(cmd, "give one of --from-offset, --from-time, --from, --group");
    s->how = LG_FROM_EARLIEST;
    s->arg = 0;
    if (wt_flag_get(cmd, "from-offset")->val) {
        if (!wt_flag_u64(cmd, "from-offset", 0, INT64_MAX, &off))
            return WT_EXIT_USAGE;
        s->how = LG_FROM_OFFSET;
        s->arg = (int64_t)off;
    } else if (tm) {
        if (!wt_parse_time_ms(tm, &s->arg))
            return wt_usage_err(cmd,
                                "--from-time: '%s' is neither milliseconds since 1970 nor "
                                "an ISO-8601 UTC time like 2024-05-01T12:00:00Z",
                                tm);
        s->how = LG_FROM_TIME;
    } else if (from && strcmp(from, "latest") == 0) {
        s->how = LG_FROM_LATEST;
    } else if (from && strcmp(from, "earliest") != 0) {
        return wt_usage_err(cmd, "--from: '%s' is not one of earliest, latest", from);
    }
    return WT_EXIT_OK;
}

static int wt_cons_flags(wt_cons *c, const wt_cmd *cmd, wt_start *s)
{
    const char *fmt = wt_flag_get(cmd, "format")->val;
    uint64_t idle = 0;
    int rc;

    if (wt_flag_get(cmd, "topic")->val == NULL)
        return wt_usage_err(cmd, "--topic is required");
    if (fmt && strcmp(fmt, "json") != 0 && strcmp(fmt, "raw") != 0)
        return wt_usage_err(cmd, "--format: '%s' is not one of raw, json", fmt);
    c->json = fmt && strcmp(fmt, "json") == 0;
    c->group = wt_flag_get(cmd, "group")->val;
    if (c->group && *c->group == '\0')
        return wt_usage_err(cmd, "--group: the group name is empty");
    c->max = UINT64_MAX;
    if (!wt_flag_u64(cmd, "max", 0, UINT64_MAX - 1, &c->max) ||
        !wt_flag_u64(cmd, "timeout-ms", 0, INT32_MAX, &idle))
        return WT_EXIT_USAGE;
    if (wt_flag_get(cmd, "timeout-ms")->val)
        c->idle_ms = (int64_t)idle;
    else
        c->idle_ms = wt_flag_get(cmd, "follow")->cnt ? -1 : 0;
    if ((rc = wt_cons_start(cmd, s)) != WT_EXIT_OK)
        return rc;
    return WT_EXIT_OK;
}

/* Resolve --partition once the topic is open. */
static int wt_cons_partitions(wt_cons *c, const wt_cmd *cmd)
{
    const char *v = wt_flag_get(cmd, "partition")->val;
    uint32_t n = lg_topic_partitions(c->t);

    c->first = 0;
    c->cnt = n;
    if (v == NULL || strcmp(v, "all") == 0)
        return WT_EXIT_OK;
    if (!wt_flag_u32(cmd, "partition", 0, LG_MAX_PARTITIONS - 1, &c->first))
        return WT_EXIT_USAGE;
    if (c->first >= n)
        return wt_usage_err(
            cmd, "--partition %" PRIu32 ": topic '%s' has %" PRIu32 " partitions (0..%" PRIu32 ")",
            c->first, lg_topic_name(c->t), n, n - 1);
    c->cnt = 1;
    return WT_EXIT_OK;
}

int wt_consume_main(int argc, char **argv)
{
    const wt_cmd *cmd = &wt_consume_cmd;
    wt_cons c = {.cmd = &wt_consume_cmd};
    wt_start s;
    int rc;

    if ((rc = wt_cmd_parse(cmd, argc, argv)) != WT_EXIT_OK)
        return rc == WT_EXIT_HELP ? WT_EXIT_OK : rc;
    if ((rc = wt_cons_flags(&c, cmd, &s)) != WT_EXIT_OK)
        return rc;
    c.dir = wt_dir(wt_flag_get(cmd, "dir")->val);
    rc = wt_topic_open(cmd->name, c.dir, wt_flag_get(cmd, "topic")->val, true, &c.t);
    if (rc != WT_EXIT_OK)
        return rc;
    wt_signals_install();
    if ((rc = wt_cons_partitions(&c, cmd)) == WT_EXIT_OK &&
        (rc = wt_cons_open_readers(&c, s)) == WT_EXIT_OK)
        rc = wt_cons_run(&c);
    for (uint32_t i = 0; c.rd && i < c.cnt; i++)
        lg_reader_close(c.rd[i]);
    wr_free(c.rd);
    wr_free(c.next);
    lg_topic_close(c.t);
    return rc;
}
