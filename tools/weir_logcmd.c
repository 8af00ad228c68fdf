/* weir_logcmd.c -- `weir log ...`: create, list, inspect, verify, dump and compact topics.
 *
 * Each subcommand is a wt_cmd with its own flag table and an entry function; wt_log_main()
 * dispatches on the first argument through wt_log_subs[]. Read-only subcommands (list, info,
 * verify, dump) open the topic with readonly set, so they work beside a running writer;
 * create and compact need the writer's lock. */
#include <inttypes.h>
#include <stdlib.h>

#include "weir_util.h"

#define WT_CONFIG_MAX 64 /* --config may be repeated this often */

static const char *wt_flag_val(const wt_cmd *c, const char *name)
{
    return wt_flag_get(c, name)->val;
}

/* Parse flags and require --topic. Returns an exit code; WT_EXIT_HELP becomes OK. */
static int wt_log_parse(const wt_cmd *c, int argc, char **argv, bool need_topic, bool *done)
{
    int rc = wt_cmd_parse(c, argc, argv);

    *done = rc != WT_EXIT_OK;
    if (rc == WT_EXIT_HELP)
        return WT_EXIT_OK;
    if (rc == WT_EXIT_OK && need_topic && wt_flag_val(c, "topic") == NULL) {
        *done = true;
        return wt_usage_err(c, "--topic is required");
    }
    return rc;
}

/* ---------------------------------------------------------------- partition info */
static json_t *wt_info_json(uint32_t part, const lg_partition_info *pi)
{
    return json_pack(
        "{s:I, s:o, s:o, s:o, s:o, s:I, s:b, s:s, s:s, s:f, s:o, s:o, s:o, s:o, "
        "s:s, s:I}",
        "partition", (json_int_t)part, "log_start_offset", wt_json_u64(pi->log_start_offset),
        "high_watermark", wt_json_u64(pi->high_watermark), "low_watermark",
        wt_json_u64(pi->low_watermark), "bytes", wt_json_u64(pi->bytes), "segments",
        (json_int_t)pi->segments, "failed", (int)pi->failed, "failure", pi->failure, "cleaner",
        wt_cleaner_str(pi->cleaner), "dirty_ratio", pi->dirty_ratio, "cleaned_offset",
        wt_json_u64(pi->cleaned_offset), "cleaner_runs", wt_json_u64(pi->cleaner_runs),
        "cleaner_bytes_in", wt_json_u64(pi->cleaner_bytes_in), "cleaner_bytes_out",
        wt_json_u64(pi->cleaner_bytes_out), "cleaner_error", pi->cleaner_error, "producers",
        (json_int_t)pi->producers);
}

static void wt_print_off(const char *name, uint64_t v)
{
    if (v == LG_NO_OFFSET)
        printf(" %s=none", name);
    else
        printf(" %s=%" PRIu64, name, v);
}

static void wt_info_print(uint32_t part, const lg_partition_info *pi)
{
    printf("partition %" PRIu32 ":\n  offsets:", part);
    wt_print_off("start", pi->log_start_offset);
    wt_print_off("high_watermark", pi->high_watermark);
    wt_print_off("low_watermark", pi->low_watermark);
    printf("\n  storage: bytes=%" PRIu64 " segments=%" PRIu32 " producers=%" PRIu32 "\n", pi->bytes,
           pi->segments, pi->producers);
    if (pi->failed)
        printf("  state: FAILED: %s (close every process using the topic and reopen)\n",
               pi->failure[0] ? pi->failure : "no reason recorded");
    else
        printf("  state: ok\n");
    printf("  cleaner: %s dirty_ratio=%.3f", wt_cleaner_str(pi->cleaner), pi->dirty_ratio);
    wt_print_off("cleaned_offset", pi->cleaned_offset);
    printf(" runs=%" PRIu64 " bytes_in=%" PRIu64 " bytes_out=%" PRIu64 "\n", pi->cleaner_runs,
           pi->cleaner_bytes_in, pi->cleaner_bytes_out);
    if (pi->cleaner_error[0])
        printf("  cleaner error: %s\n", pi->cleaner_error);
}

/* One line per partition: what compaction changes. */
static void wt_info_brief(uint32_t part, const lg_partition_info *pi)
{
    printf("  partition %" PRIu32 ": segments=%" PRIu32 " bytes=%" PRIu64 " dirty_ratio=%.3f", part,
           pi->segments, pi->bytes, pi->dirty_ratio);
    wt_print_off("cleaned_offset", pi->cleaned_offset);
    wt_print_off("start", pi->log_start_offset);
    wt_print_off("high_watermark", pi->high_watermark);
    printf("\n");
}

static int wt_info_get(const char *cmd, lg_topic *t, uint32_t part, lg_partition_info *pi)
{
    wr_status st;

    memset(pi, 0, sizeof *pi);
    wr_err_clear();
    if ((st = lg_partition_info_get(t, part, pi)) == WR_OK)
        return WT_EXIT_OK;
    wt_err(cmd, st, "reading the state of partition %" PRIu32 " of topic '%s' failed", part,
           lg_topic_name(t));
    return WT_EXIT_DATA;
}

/* ---------------------------------------------------------------- create */
static const char *wt_create_cfg[WT_CONFIG_MAX];
static wt_flag wt_create_flags[] = {
    {.name = "dir", .metavar = "D", .help = WT_DIR_HELP},
    {.name = "topic", .metavar = "T", .help = "name of the new topic (required)"},
    {.name = "partitions",
     .metavar = "N",
     .help = "number of partitions, fixed for the topic's life (default: 1)"},
    {.name = "config",
     .metavar = "NAME=VALUE",
     .help = "topic setting, applied in order after the defaults, e.g. segment.bytes=1048576, "
             "cleanup=compact, fsync=interval=100, retention.ms=-1, max.record.bytes=N",
     .all = wt_create_cfg,
     .all_cap = WT_CONFIG_MAX},
};
static const wt_cmd wt_create_cmd = {
    .name = "weir log create",
    .synopsis = "weir log create --topic T [--dir D] [--partitions N] [--config NAME=VALUE]...",
    .about = "Create topic T and print its configuration (the defaults with each --config "
             "applied).\nExit status: 0 created, 1 exists or cannot be created, 2 bad command "
             "line or setting.",
    .examples = "  weir log create --topic events --partitions 8\n"
                "  weir log create --topic users --config cleanup=compact --config "
                "segment.bytes=1048576\n",
    .flags = wt_create_flags,
    .flag_cnt = sizeof wt_create_flags / sizeof wt_create_flags[0],
};

static int wt_log_create(int argc, char **argv)
{
    const wt_cmd *c = &wt_create_cmd;
    const wt_flag *cf = wt_flag_get(c, "config");
    const char *dir, *topic;
    lg_config cfg;
    wr_status st;
    bool done;
    int rc = wt_log_parse(c, argc, argv, true, &done);

    if (done)
        return rc;
    dir = wt_dir(wt_flag_val(c, "dir"));
    topic = wt_flag_val(c, "topic");
    lg_config_default(&cfg);
    if (!wt_flag_u32(c, "partitions", 1, LG_MAX_PARTITIONS, &cfg.partitions))
        return WT_EXIT_USAGE;
    for (uint32_t i = 0; i < cf->cnt; i++) {
        wr_err_clear();
        if ((st = lg_config_set(&cfg, cf->all[i])) != WR_OK) {
            wt_err(c->name, st, "--config '%s' was not accepted", cf->all[i]);
            return WT_EXIT_USAGE;
        }
    }
    wr_err_clear();
    if ((st = wr_mkdir_p(dir)) != WR_OK) {
        wt_err(c->name, st, "cannot create the log directory %s (check its parent's permissions)",
               dir);
        return WT_EXIT_DATA;
    }
    if ((st = lg_topic_create(dir, topic, &cfg)) == WR_ERR_EXISTS) {
        wt_err(c->name, st,
               "topic '%s' already exists in %s (see it with: weir log info --dir "
               "%s --topic %s)",
               topic, dir, dir, topic);
        return WT_EXIT_DATA;
    } else if (st != WR_OK) {
        wt_err(c->name, st,
               "cannot create topic '%s' in %s (a name has 1..%d characters and "
               "no '/'; the directory must be writable)",
               topic, dir, LG_TOPIC_NAME_MAX);
        return WT_EXIT_DATA;
    }
    printf("created topic '%s' in %s\n", topic, dir);
    wt_config_print(stdout, &cfg, "  ");
    return WT_EXIT_OK;
}

/* ---------------------------------------------------------------- list */
typedef struct wt_names {
    char **v; /* owned, each wr_strdup'd */
    size_t cnt, cap;
    bool oom;
} wt_names;

static void wt_names_add(void *ctx, const char *name)
{
    wt_names *n = ctx;
    char **nv;

    if (n->cnt == n->cap) {
        size_t cap = n->cap ? n->cap * 2 : 16;
        if ((nv = wr_realloc(n->v, cap * sizeof *nv)) == NULL) {
            n->oom = true;
            return;
        }
        n->v = nv;
        n->cap = cap;
    }
    if ((n->v[n->cnt] = wr_strdup(name)) == NULL)
        n->oom = true;
    else
        n->cnt++;
}

static int wt_str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static wt_flag wt_list_flags[] = {
    {.name = "dir", .metavar = "D", .help = WT_DIR_HELP},
};
static const wt_cmd wt_list_cmd = {
    .name = "weir log list",
    .synopsis = "weir log list [--dir D]",
    .about = "Print the names of the topics in D, one per line, sorted.\n"
             "Exit status: 0 listed (possibly none), 1 D cannot be read, 2 bad command line.",
    .examples = "  weir log list\n  weir log list --dir /var/lib/weir\n",
    .flags = wt_list_flags,
    .flag_cnt = sizeof wt_list_flags / sizeof wt_list_flags[0],
};

static int wt_log_list(int argc, char **argv)
{
    const wt_cmd *c = &wt_list_cmd;
    wt_names n = {0};
    const char *dir;
    wr_status st;
    bool done;
    int rc = wt_log_parse(c, argc, argv, false, &done);

    if (done)
        return rc;
    dir = wt_dir(wt_flag_val(c, "dir"));
    wr_err_clear();
    st = lg_topic_list(dir, wt_names_add, &n);
    if (st == WR_OK && n.oom)
        st = WR_ERR_NOMEM;
    if (st == WR_ERR_NOTFOUND) {
        wt_err(c->name, st,
               "no log directory at %s (create a topic with: weir log create "
               "--dir %s --topic NAME)",
               dir, dir);
        rc = WT_EXIT_DATA;
    } else if (st != WR_OK) {
        wt_err(c->name, st,
               "cannot list the topics in %s (check that it is a readable "
               "directory)",
               dir);
        rc = WT_EXIT_DATA;
    } else {
        if (n.cnt)
            qsort(n.v, n.cnt, sizeof *n.v, wt_str_cmp);
        for (size_t i = 0; i < n.cnt; i++)
            printf("%s\n", n.v[i]);
    }
    for (size_t i = 0; i < n.cnt; i++)
        wr_free(n.v[i]);
    wr_free(n.v);
    return rc;
}

/* ---------------------------------------------------------------- info */
static wt_flag wt_info_flags[] = {
    {.name = "dir", .metavar = "D", .help = WT_DIR_HELP},
    {.name = "topic", .metavar = "T", .help = "topic to describe (required)"},
    {.name = "json",
     .metavar = NULL,
     .help = "print one JSON object {\"topic\",\"dir\",\"config\",\"partitions\":[...]}"},
};
static const wt_cmd wt_info_cmd = {
    .name = "weir log info",
    .synopsis = "weir log info --topic T [--dir D] [--json]",
    .about = "Print the configuration of topic T and, per partition: start offset, high and "
             "low watermark, bytes, segments, failure state and reason, compaction cleaner "
             "state, dirty ratio, cleaned offset, runs, bytes in/out, cleaner error, and the "
             "number of idempotent producers known.\n"
             "Exit status: 0 printed, 1 the topic cannot be read, 2 bad command line.",
    .examples = "  weir log info --topic events\n  weir log info --topic events --json | jq .\n",
    .flags = wt_info_flags,
    .flag_cnt = sizeof wt_info_flags / sizeof wt_info_flags[0],
};

static int wt_info_json_all(lg_topic *t, const char *dir)
{
    json_t *root, *parts = json_array();
    lg_partition_info pi;
    bool oom = parts == NULL;
    int rc = WT_EXIT_OK;

    /* "o" steals @parts, so it stays valid exactly as long as @root */
    root = json_pack("{s:s, s:s, s:o, s:o}", "topic", lg_topic_name(t), "dir", dir, "config",
                     wt_config_json(lg_topic_config(t)), "partitions", parts);
    for (uint32_t p = 0; root && !oom && p < lg_topic_partitions(t) && rc == WT_EXIT_OK; p++)
        if ((rc = wt_info_get(wt_info_cmd.name, t, p, &pi)) == WT_EXIT_OK)
            oom = json_array_append_new(parts, wt_info_json(p, &pi)) != 0;
    if (rc == WT_EXIT_OK && (root == NULL || oom || !wt_json_print(root))) {
        wt_err(wt_info_cmd.name, WR_ERR_NOMEM, "out of memory building the JSON answer");
        rc = WT_EXIT_DATA;
    }
    json_decref(root);
    return rc;
}

static int wt_log_info(int argc, char **argv)
{
    const wt_cmd *c = &wt_info_cmd;
    lg_partition_info pi;
    lg_topic *t = NULL;
    const char *dir;
    bool done;
    int rc = wt_log_parse(c, argc, argv, true, &done);

    if (done)
        return rc;
    dir = wt_dir(wt_flag_val(c, "dir"));
    if ((rc = wt_topic_open(c->name, dir, wt_flag_val(c, "topic"), true, &t)) != WT_EXIT_OK)
        return rc;
    if (wt_flag_get(c, "json")->cnt) {
        rc = wt_info_json_all(t, dir);
    } else {
        printf("topic '%s' in %s\nconfig:\n", lg_topic_name(t), dir);
        wt_config_print(stdout, lg_topic_config(t), "  ");
        for (uint32_t p = 0; p < lg_topic_partitions(t) && rc == WT_EXIT_OK; p++)
            if ((rc = wt_info_get(c->name, t, p, &pi)) == WT_EXIT_OK)
                wt_info_print(p, &pi);
    }
    lg_topic_close(t);
    return rc;
}

/* ---------------------------------------------------------------- verify */
static wt_flag wt_verify_flags[] = {
    {.name = "dir", .metavar = "D", .help = WT_DIR_HELP},
    {.name = "topic", .metavar = "T", .help = "topic to verify (required)"},
};
static const wt_cmd wt_verify_cmd = {
    .name = "weir log verify",
    .synopsis = "weir log verify --topic T [--dir D]",
    .about = "Check every batch checksum and every index entry of every segment of topic T. "
             "Each problem is printed on its own line with partition, file and byte offset.\n"
             "Exit status: 0 no damage, 1 damage found or the topic cannot be read, 2 bad "
             "command line.",
    .examples = "  weir log verify --topic events\n",
    .flags = wt_verify_flags,
    .flag_cnt = sizeof wt_verify_flags / sizeof wt_verify_flags[0],
};

static void wt_verify_line(void *ctx, const char *line)
{
    uint64_t *cnt = ctx;

    printf("%s\n", line);
    (*cnt)++;
}

static int wt_verify_damaged(const char *topic, const char *dir, uint64_t problems)
{
    fflush(stdout);
    fprintf(stderr,
            "%s: topic '%s' in %s is damaged: %" PRIu64 " problem(s)%s. Records in a damaged "
            "batch cannot be read, and readers stop there: restore the named segment files "
            "from a copy or checkpoint, or rebuild the topic from its source.\n",
            wt_verify_cmd.name, topic, dir, problems, problems ? " listed above" : "");
    return WT_EXIT_DATA;
}

static int wt_verify_ok(lg_topic *t, const char *dir)
{
    lg_partition_info pi;
    uint64_t bytes = 0, segs = 0;

    for (uint32_t p = 0; p < lg_topic_partitions(t); p++) {
        if (wt_info_get(wt_verify_cmd.name, t, p, &pi) != WT_EXIT_OK)
            return WT_EXIT_DATA;
        bytes += pi.bytes;
        segs += pi.segments;
    }
    printf("topic '%s' in %s: OK (%" PRIu32 " partitions, %" PRIu64 " segments, %" PRIu64
           " bytes verified)\n",
           lg_topic_name(t), dir, lg_topic_partitions(t), segs, bytes);
    return WT_EXIT_OK;
}

static int wt_log_verify(int argc, char **argv)
{
    const wt_cmd *c = &wt_verify_cmd;
    lg_open_opts o = wt_open_opts(true);
    const char *dir, *topic;
    lg_topic *t = NULL;
    uint64_t problems = 0;
    wr_status st;
    bool done;
    int rc = wt_log_parse(c, argc, argv, true, &done);

    if (done)
        return rc;
    dir = wt_dir(wt_flag_val(c, "dir"));
    topic = wt_flag_val(c, "topic");
    wr_err_clear();
    if ((st = lg_topic_open(dir, topic, &o, &t)) == WR_ERR_CORRUPT) {
        printf("%s\n", wr_errmsg()); /* the damage that stopped the open */
        return wt_verify_damaged(topic, dir, 1);
    } else if (st != WR_OK) {
        return wt_topic_open_err(c->name, dir, topic, true, st);
    }
    wr_err_clear();
    st = lg_topic_verify(t, wt_verify_line, &problems);
    if (st == WR_OK) {
        rc = wt_verify_ok(t, dir);
    } else if (st == WR_ERR_CORRUPT) {
        if (problems == 0 && *wr_errmsg())
            printf("%s\n", wr_errmsg());
        rc = wt_verify_damaged(topic, dir, problems);
    } else {
        wt_err(c->name, st,
               "verifying topic '%s' in %s could not finish (check that its files "
               "are readable)",
               topic, dir);
        rc = WT_EXIT_DATA;
    }
    lg_topic_close(t);
    return rc;
}

/* ---------------------------------------------------------------- dump */
static wt_flag wt_dump_flags[] = {
    {.name = "dir", .metavar = "D", .help = WT_DIR_HELP},
    {.name = "topic", .metavar = "T", .help = "topic to dump (required)"},
    {.name = "partition", .metavar = "N|all", .help = "partition to dump (default: all)"},
    {.name = "from-offset",
     .metavar = "O",
     .help = "start at the first record with offset >= O (default: the oldest stored)"},
    {.name = "max", .metavar = "N", .help = "at most N records per partition (default: no limit)"},
};
static const wt_cmd wt_dump_cmd = {
    .name = "weir log dump",
    .synopsis = "weir log dump --topic T [--dir D] [--partition N|all] [--from-offset O] "
                "[--max N]",
    .about = "Print one line per record: partition, offset, timestamp (UTC), key, value "
             "length, headers and producer id. Keys and headers are printed with "
             "non-printable bytes escaped (\\xNN) and cut after 64 bytes.\n"
             "Exit status: 0 printed, 1 the topic or a record cannot be read, 2 bad command "
             "line.",
    .examples = "  weir log dump --topic events --partition 0 --max 20\n",
    .flags = wt_dump_flags,
    .flag_cnt = sizeof wt_dump_flags / sizeof wt_dump_flags[0],
};

static void wt_dump_record(uint32_t part, const lg_record *r)
{
    char ts[48];
    lg_header h;
    size_t pos = 0;
    bool first = true;

    wt_format_time_ms(r->ts_ms, ts, sizeof ts);
    printf("partition=%" PRIu32 " offset=%" PRIu64 " time=%s key=", part, r->offset, ts);
    if (r->key.ptr == NULL) {
        fputs("none", stdout);
    } else {
        putchar('"');
        wt_print_escaped(stdout, r->key, 64);
        putchar('"');
    }
    if (r->tombstone)
        fputs(" value=tombstone", stdout);
    else
        printf(" value_len=%zu", r->val.len);
    fputs(" headers=[", stdout);
    while (lg_header_next(r->hdrs, &pos, &h) == WR_OK) {
        fputs(first ? "\"" : " \"", stdout);
        wt_print_escaped(stdout, h.key, 64);
        fputs("\"=\"", stdout);
        wt_print_escaped(stdout, h.val, 64);
        putchar('"');
        first = false;
    }
    if (r->producer_id == LG_NO_PRODUCER)
        fputs("] producer=none\n", stdout);
    else
        printf("] producer=%" PRIu64 "\n", r->producer_id);
}

static int wt_dump_part(lg_topic *t, uint32_t part, bool from_off, uint64_t off, uint64_t max)
{
    lg_reader *r = NULL;
    lg_record rec;
    wr_status st;
    uint64_t n = 0;

    wr_err_clear();
    st = lg_reader_open(t, part, from_off ? LG_FROM_OFFSET : LG_FROM_EARLIEST, (int64_t)off, &r);
    while (st == WR_OK && n < max && (st = lg_reader_next(r, &rec, 0)) == WR_OK) {
        wt_dump_record(part, &rec);
        n++;
    }
    if (st == WR_OK || st == WR_EOF) {
        lg_reader_close(r);
        return WT_EXIT_OK;
    }
    fflush(stdout);
    wt_err(wt_dump_cmd.name, st,
           "reading partition %" PRIu32 " of topic '%s' failed after %" PRIu64
           " records (find the damage with: weir log verify --topic %s)",
           part, lg_topic_name(t), n, lg_topic_name(t));
    lg_reader_close(r);
    return WT_EXIT_DATA;
}

static int wt_log_dump(int argc, char **argv)
{
    const wt_cmd *c = &wt_dump_cmd;
    const char *pv;
    lg_topic *t = NULL;
    uint64_t off = 0, max = UINT64_MAX;
    uint32_t first = 0, end;
    bool done;
    int rc = wt_log_parse(c, argc, argv, true, &done);

    if (done)
        return rc;
    pv = wt_flag_val(c, "partition");
    if (!wt_flag_u64(c, "from-offset", 0, INT64_MAX, &off) ||
        !wt_flag_u64(c, "max", 0, UINT64_MAX, &max) ||
        (pv && strcmp(pv, "all") != 0 &&
         !wt_flag_u32(c, "partition", 0, LG_MAX_PARTITIONS - 1, &first)))
        return WT_EXIT_USAGE;
    rc = wt_topic_open(c->name, wt_dir(wt_flag_val(c, "dir")), wt_flag_val(c, "topic"), true, &t);
    if (rc != WT_EXIT_OK)
        return rc;
    end = pv && strcmp(pv, "all") != 0 ? first + 1 : lg_topic_partitions(t);
    if (end > lg_topic_partitions(t))
        rc = wt_usage_err(c, "--partition %" PRIu32 ": topic '%s' has %" PRIu32 " partitions",
                          first, lg_topic_name(t), lg_topic_partitions(t));
    for (uint32_t p = first; p < end && rc == WT_EXIT_OK; p++)
        rc = wt_dump_part(t, p, wt_flag_val(c, "from-offset") != NULL, off, max);
    lg_topic_close(t);
    return rc;
}

/* ---------------------------------------------------------------- compact */
static wt_flag wt_compact_flags[] = {
    {.name = "dir", .metavar = "D", .help = WT_DIR_HELP},
    {.name = "topic", .metavar = "T", .help = "compacted topic to compact now (required)"},
};
static const wt_cmd wt_compact_cmd = {
    .name = "weir log compact",
    .synopsis = "weir log compact --topic T [--dir D]",
    .about = "Compact every partition of topic T now (keep the newest record per key), "
             "whatever the dirty ratio, and print each partition's state before and after. T "
             "must have cleanup=compact, and no other process may have it open for writing.\n"
             "Exit status: 0 compacted, 1 the topic cannot be compacted, 2 bad command line.",
    .examples = "  weir log compact --topic users\n",
    .flags = wt_compact_flags,
    .flag_cnt = sizeof wt_compact_flags / sizeof wt_compact_flags[0],
};

static int wt_compact_show(lg_topic *t, const char *when)
{
    lg_partition_info pi;

    printf("%s:\n", when);
    for (uint32_t p = 0; p < lg_topic_partitions(t); p++) {
        if (wt_info_get(wt_compact_cmd.name, t, p, &pi) != WT_EXIT_OK)
            return WT_EXIT_DATA;
        wt_info_brief(p, &pi);
    }
    return WT_EXIT_OK;
}

static int wt_log_compact(int argc, char **argv)
{
    const wt_cmd *c = &wt_compact_cmd;
    const char *dir, *topic;
    lg_topic *t = NULL;
    wr_status st;
    bool done;
    int rc = wt_log_parse(c, argc, argv, true, &done);

    if (done)
        return rc;
    dir = wt_dir(wt_flag_val(c, "dir"));
    topic = wt_flag_val(c, "topic");
    if ((rc = wt_topic_open(c->name, dir, topic, false, &t)) != WT_EXIT_OK)
        return rc;
    if (lg_topic_config(t)->cleanup != LG_CLEANUP_COMPACT) {
        wt_err(c->name, WR_OK,
               "topic '%s' in %s has cleanup=delete; only topics created with "
               "--config cleanup=compact are compacted",
               topic, dir);
        rc = WT_EXIT_DATA;
    } else if ((rc = wt_compact_show(t, "before")) == WT_EXIT_OK) {
        wr_err_clear();
        if ((st = lg_topic_compact(t)) != WR_OK) {
            wt_err(c->name, st,
                   "compacting topic '%s' in %s failed; the log is unchanged "
                   "where compaction did not finish (see: weir log info --dir %s --topic %s)",
                   topic, dir, dir, topic);
            rc = WT_EXIT_DATA;
        }
        if (wt_compact_show(t, "after") != WT_EXIT_OK)
            rc = WT_EXIT_DATA;
    }
    lg_topic_close(t);
    return rc;
}

/* ---------------------------------------------------------------- dispatch */
typedef struct wt_log_sub {
    const char *name;
    int (*main)(int argc, char **argv);
    const char *about;
} wt_log_sub;

static const wt_log_sub wt_log_subs[] = {
    {"create", wt_log_create, "create a topic"},
    {"list", wt_log_list, "list the topics in a directory"},
    {"info", wt_log_info, "print a topic's configuration and partition state"},
    {"verify", wt_log_verify, "check every checksum and index of a topic"},
    {"dump", wt_log_dump, "print one line of metadata per record"},
    {"compact", wt_log_compact, "compact a cleanup=compact topic now"},
};

static void wt_log_help(FILE *f)
{
    fprintf(f, "usage: weir log <command> [flags]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof wt_log_subs / sizeof wt_log_subs[0]; i++)
        fprintf(f, "  %-8s  %s\n", wt_log_subs[i].name, wt_log_subs[i].about);
    fprintf(f, "\nrun 'weir log <command> --help' for its flags and examples\n");
}

int wt_log_main(int argc, char **argv)
{
    if (argc < 1) {
        fprintf(stderr, "weir log: missing command\n");
        wt_log_help(stderr);
        return WT_EXIT_USAGE;
    }
    if (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0 ||
        strcmp(argv[0], "help") == 0) {
        wt_log_help(stdout);
        return WT_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof wt_log_subs / sizeof wt_log_subs[0]; i++)
        if (strcmp(argv[0], wt_log_subs[i].name) == 0)
            return wt_log_subs[i].main(argc - 1, argv + 1);
    fprintf(stderr, "weir log: unknown command '%s'\n", argv[0]);
    wt_log_help(stderr);
    return WT_EXIT_USAGE;
}
