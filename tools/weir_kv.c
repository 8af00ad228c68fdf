/* weir_kv.c -- `weir kv ...`: read and write a standalone LSM key-value store (kv.h).
 *
 *   weir kv --dir D get KEY | put KEY VALUE | delete KEY | scan | stats | verify | compact
 *
 * The store is the directory D itself (SST files, MANIFEST, CURRENT, WAL, LOCK), so --dir is
 * required: the log root ($WEIR_DIR) is not a store. Flags may come before or after the
 * command word; wt_kv_main() moves the leading ones behind it and each command parses
 * everything against its own flag table, so its --help names every flag it accepts.
 * Positional words (KEY, VALUE) are separated from the flags here, because wt_cmd_parse()
 * takes flags only; "--" ends the flags, so a key may start with "--".
 *
 * Bytes on the command line and in the output: keys and values are taken verbatim unless
 * --escaped is given, and printed by scan (and by get --escaped) with wt_print_escaped():
 * a backslash becomes \\, a double quote \", newline \n, tab \t, and any other byte below 0x20
 * or from 0x7f up \xNN (two hex digits). The escaped form has no tab or newline, so scan's
 * "key<TAB>value" lines are unambiguous, and --escaped reads the same syntax back (wk_unescape()).
 *
 * Writes: put and delete open the store with a WAL (--wal, default always: an acknowledged
 * write is durable) and call kv_flush() before kv_close(), so the next open has no WAL to
 * replay. Reads open it with KV_WAL_OFF, which creates no WAL file. Every open replays and
 * flushes a WAL left by a crash (kv.h).
 *
 * Exit status: 0 ok, 1 not found / corrupt / I/O error, 2 bad command line. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "kv.h"
#include "weir_util.h"

#define WK_ARGS_MAX 64 /* words on one command line that we sort into flags and positionals */

/* ---------------------------------------------------------------- argument sorting */
typedef struct wk_args {
    char *flags[WK_ARGS_MAX]; /* borrowed from argv */
    int flag_cnt;
    char *pos[WK_ARGS_MAX]; /* borrowed from argv */
    int pos_cnt;
} wk_args;

/* Split @argv into flags (with their values) and positional words, using @c's table to know
 * which flags take a value. Unknown flags stay flags: wt_cmd_parse() reports them. */
static int wk_split(const wt_cmd *c, int argc, char **argv, wk_args *a)
{
    bool only_pos = false;

    memset(a, 0, sizeof *a);
    if (argc > WK_ARGS_MAX)
        return wt_usage_err(c, "too many arguments (at most %d)", WK_ARGS_MAX);
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];

        if (!only_pos && strcmp(s, "--") == 0) {
            only_pos = true;
        } else if (!only_pos && (strncmp(s, "--", 2) == 0 || strcmp(s, "-h") == 0)) {
            const char *eq = strchr(s, '=');
            size_t nlen = eq ? (size_t)(eq - s - 2) : strlen(s) - 2;
            const wt_flag *f = NULL;

            for (size_t k = 0; k < c->flag_cnt; k++)
                if (strlen(c->flags[k].name) == nlen && memcmp(c->flags[k].name, s + 2, nlen) == 0)
                    f = &c->flags[k];
            a->flags[a->flag_cnt++] = argv[i];
            if (f && f->metavar && !eq && i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0)
                a->flags[a->flag_cnt++] = argv[++i];
        } else {
            a->pos[a->pos_cnt++] = argv[i];
        }
    }
    return WT_EXIT_OK;
}

/* Parse a command's line: flags through wt_cmd_parse(), then exactly @npos positional words
 * (or @npos_alt when not -1). Returns WT_EXIT_OK, WT_EXIT_HELP or WT_EXIT_USAGE. */
static int wk_parse(const wt_cmd *c, int argc, char **argv, int npos, int npos_alt, wk_args *a)
{
    const wt_flag *dir;
    int rc;

    if ((rc = wk_split(c, argc, argv, a)) != WT_EXIT_OK)
        return rc;
    if ((rc = wt_cmd_parse(c, a->flag_cnt, a->flags)) != WT_EXIT_OK)
        return rc;
    if (a->pos_cnt != npos && a->pos_cnt != npos_alt) {
        if (a->pos_cnt > npos && a->pos_cnt > npos_alt)
            return wt_usage_err(c, "unexpected argument '%s'", a->pos[a->pos_cnt - 1]);
        return wt_usage_err(c, "missing argument (see the usage line)");
    }
    dir = wt_flag_get(c, "dir");
    if (dir->val == NULL || *dir->val == '\0')
        return wt_usage_err(c, "--dir D is required: the store's directory (its own, not the "
                               "log root)");
    return WT_EXIT_OK;
}

static const char *wk_val(const wt_cmd *c, const char *name)
{
    const wt_flag *f = wt_flag_get(c, name);
    return f ? f->val : NULL;
}

static bool wk_has(const wt_cmd *c, const char *name)
{
    return wk_val(c, name) != NULL;
}

/* ---------------------------------------------------------------- escaping */
static int wk_hex(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Decode @s (the syntax of wt_print_escaped) in place; *len_out gets the byte count. False
 * on a bad escape. */
static bool wk_unescape(char *s, size_t *len_out)
{
    size_t o = 0;

    for (size_t i = 0; s[i]; i++) {
        if (s[i] != '\\') {
            s[o++] = s[i];
            continue;
        }
        switch (s[++i]) {
        case '\\':
        case '"':
            s[o++] = s[i];
            break;
        case 'n':
            s[o++] = '\n';
            break;
        case 't':
            s[o++] = '\t';
            break;
        case 'x': {
            int h = wk_hex(s[i + 1]), l = h < 0 ? -1 : wk_hex(s[i + 2]);
            if (h < 0 || l < 0)
                return false;
            s[o++] = (char)(h << 4 | l);
            i += 2;
            break;
        }
        default:
            return false;
        }
    }
    *len_out = o;
    return true;
}

/* Decoded copies of --escaped words: owned here, released by wt_kv_main() after the
 * command returns, so that the commands need no cleanup path for them. */
static char *wk_owned[8];
static size_t wk_owned_cnt;

/* A command-line word as bytes: verbatim, or decoded when --escaped was given. */
static bool wk_arg_bytes(const wt_cmd *c, const char *what, const char *s, wr_bytes *out)
{
    char *d;
    size_t n;

    if (!wk_has(c, "escaped")) {
        *out = wr_bytes_str(s);
        return true;
    }
    if (wk_owned_cnt == sizeof wk_owned / sizeof wk_owned[0] || (d = wr_strdup(s)) == NULL) {
        wt_err(c->name, WR_ERR_NOMEM, "out of memory");
        return false;
    }
    wk_owned[wk_owned_cnt++] = d;
    if (!wk_unescape(d, &n)) {
        wt_usage_err(c,
                     "%s '%s' has a bad escape (--escaped accepts \\\\, \\\", \\n, \\t and "
                     "\\xNN with two hex digits)",
                     what, s);
        return false;
    }
    *out = wr_bytes_of(d, n);
    return true;
}

/* ---------------------------------------------------------------- open and close */
static bool wk_parse_wal(const wt_cmd *c, kv_wal_mode *out)
{
    const char *v = wk_val(c, "wal");

    *out = KV_WAL_ALWAYS;
    if (v == NULL || strcmp(v, "always") == 0)
        return true;
    if (strcmp(v, "interval") == 0)
        *out = KV_WAL_INTERVAL;
    else if (strcmp(v, "never") == 0)
        *out = KV_WAL_NEVER;
    else if (strcmp(v, "off") == 0)
        *out = KV_WAL_OFF;
    else {
        wt_usage_err(c, "--wal must be always, interval, never or off (got '%s')", v);
        return false;
    }
    return true;
}

/* Open the store in --dir. @write: the command writes (WAL per --wal; --create honoured).
 * Returns an exit code; every failure is explained on stderr with what to do. */
static int wk_open(const wt_cmd *c, bool write, kv_db **out)
{
    const char *dir = wk_val(c, "dir");
    bool create = write && wk_has(c, "create");
    char path[4200];
    struct stat sb;
    kv_options o;
    wr_status st;

    *out = NULL;
    kv_options_default(&o);
    o.create_if_missing = create;
    o.wal = KV_WAL_OFF;
    if (write && !wk_parse_wal(c, &o.wal))
        return WT_EXIT_USAGE;
    snprintf(path, sizeof path, "%s/CURRENT", dir);
    if (!create && stat(path, &sb) != 0) {
        if (write)
            wt_err(c->name, WR_OK, "no store at %s (use --create to make one there)", dir);
        else
            wt_err(c->name, WR_OK,
                   "no store at %s (make one with: weir kv --dir %s --create put KEY VALUE)", dir,
                   dir);
        return WT_EXIT_DATA;
    }
    wr_err_clear();
    if ((st = kv_open(dir, &o, out)) == WR_OK)
        return WT_EXIT_OK;
    switch (st) {
    case WR_ERR_NOTFOUND:
        wt_err(c->name, st, "no store at %s (use --create to make one there)", dir);
        break;
    case WR_ERR_BUSY:
        wt_err(c->name, st, "the store %s is open in another process (stop that process first)",
               dir);
        break;
    case WR_ERR_CORRUPT:
        wt_err(c->name, st,
               "the store %s is damaged and cannot be opened (restore the named file from a "
               "checkpoint or copy, or rebuild the store from its source)",
               dir);
        break;
    case WR_ERR_UNSUPPORTED:
        wt_err(c->name, st, "the store %s was written by a newer weir (use that version)", dir);
        break;
    default:
        wt_err(c->name, st,
               "cannot open the store %s (check that the directory is readable%s and the disk "
               "is not full)",
               dir, write ? " and writable" : "");
        break;
    }
    return WT_EXIT_DATA;
}

/* Close; after writes, flush first so that the next open has no WAL to replay. */
static int wk_close(const wt_cmd *c, kv_db *db, bool wrote)
{
    int rc = WT_EXIT_OK;
    wr_status st;

    if (db == NULL)
        return rc;
    if (wrote) {
        wr_err_clear();
        if ((st = kv_flush(db)) != WR_OK) {
            wt_err(c->name, st,
                   "flushing the store %s failed; what the WAL holds is replayed at the next "
                   "open (check free space and permissions)",
                   wk_val(c, "dir"));
            rc = WT_EXIT_DATA;
        }
    }
    kv_close(db);
    return rc;
}

static int wk_write_err(const wt_cmd *c, const char *what, wr_status st)
{
    if (st == WR_ERR_TOOBIG)
        wt_err(c->name, st, "%s refused: the key or value is over the store's limit", what);
    else
        wt_err(c->name, st, "%s into the store %s failed (nothing was written)", what,
               wk_val(c, "dir"));
    return WT_EXIT_DATA;
}

/* ---------------------------------------------------------------- flag tables */
#define WK_DIR_FLAG                                                                                \
    {                                                                                              \
        .name = "dir", .metavar = "D", .help = "the store's directory (required)"                  \
    }
#define WK_ESCAPED_FLAG                                                                            \
    {                                                                                              \
        .name = "escaped", .metavar = NULL,                                                        \
        .help = "key and value arguments use scan's escapes (\\\\ \\\" \\n \\t \\xNN)"             \
    }
#define WK_WAL_FLAG                                                                                \
    {                                                                                              \
        .name = "wal", .metavar = "always|interval|never|off",                                     \
        .help = "WAL mode of this write (default: always, fdatasync before the OK)"                \
    }
#define WK_EXIT_TEXT "Exit status: 0 done, 1 "
#define WK_FLAGS(t)  .flags = (t), .flag_cnt = sizeof(t) / sizeof((t)[0])

/* ---------------------------------------------------------------- get */
static wt_flag wk_get_flags[] = {
    WK_DIR_FLAG,
    WK_ESCAPED_FLAG,
    {.name = "raw",
     .metavar = NULL,
     .help = "print the value's exact bytes, no newline (for binary values)"},
};
static const wt_cmd wk_get_cmd = {
    .name = "weir kv get",
    .synopsis = "weir kv --dir D get KEY [--escaped] [--raw]",
    .about = "Print the value of KEY followed by a newline: its bytes as stored, or escaped "
             "like scan's output with --escaped, or exactly (no newline) with --raw.\n" WK_EXIT_TEXT
             "KEY not found (\"not found\" on stderr) or the store cannot be read, 2 bad "
             "command line.",
    .examples = "  weir kv --dir ./store get users/u1\n"
                "  weir kv --dir ./store get --raw blobs/1 > blob.bin\n"
                "  weir kv --dir ./store get --escaped 'bin\\x00key'\n",
    WK_FLAGS(wk_get_flags),
};

static int wk_get(int argc, char **argv)
{
    const wt_cmd *c = &wk_get_cmd;
    wr_buf val = {0};
    kv_db *db;
    wk_args a;
    wr_bytes key;
    wr_status st;
    int rc = wk_parse(c, argc, argv, 1, -1, &a);

    if (rc != WT_EXIT_OK)
        return rc == WT_EXIT_HELP ? WT_EXIT_OK : rc;
    if (!wk_arg_bytes(c, "KEY", a.pos[0], &key))
        return WT_EXIT_USAGE;
    if ((rc = wk_open(c, false, &db)) != WT_EXIT_OK)
        return rc;
    wr_err_clear();
    st = kv_get(db, NULL, key, &val);
    if (st == WR_OK) {
        if (wk_has(c, "raw")) {
            fwrite(val.ptr, 1, val.len, stdout);
        } else if (wk_has(c, "escaped")) {
            wt_print_escaped(stdout, wr_bytes_of(val.ptr, val.len), SIZE_MAX);
            putchar('\n');
        } else {
            fwrite(val.ptr, 1, val.len, stdout);
            putchar('\n');
        }
    } else if (st == WR_ERR_NOTFOUND) {
        fprintf(stderr, "%s: not found\n", c->name);
        rc = WT_EXIT_DATA;
    } else {
        wt_err(c->name, st, "reading the store %s failed (check it with: weir kv --dir %s verify)",
               wk_val(c, "dir"), wk_val(c, "dir"));
        rc = WT_EXIT_DATA;
    }
    wr_buf_fini(&val);
    kv_close(db);
    if (fflush(stdout) != 0 && rc == WT_EXIT_OK) {
        wt_err(c->name, WR_OK, "writing the value to standard output failed");
        rc = WT_EXIT_DATA;
    }
    return rc;
}

/* ---------------------------------------------------------------- put */
static wt_flag wk_put_flags[] = {
    WK_DIR_FLAG,
    {.name = "create", .metavar = NULL, .help = "create the store if D holds none"},
    WK_WAL_FLAG,
    {.name = "value-file",
     .metavar = "F",
     .help = "read the value from file F ('-' = standard input) instead of VALUE"},
    WK_ESCAPED_FLAG,
};
static const wt_cmd wk_put_cmd = {
    .name = "weir kv put",
    .synopsis = "weir kv --dir D put KEY VALUE|- [--create] [--wal MODE] [--escaped]\n"
                "       weir kv --dir D put KEY --value-file F [--create] [--wal MODE]",
    .about = "Set KEY to VALUE (or to standard input when VALUE is '-', or to the content of "
             "F), then flush the memtable, and print OK. Under --wal always (the default) the "
             "write is durable once OK is printed.\n" WK_EXIT_TEXT
             "the store cannot be opened or written, 2 bad command line.",
    .examples = "  weir kv --dir ./store --create put users/u1 '{\"name\":\"Ada\"}'\n"
                "  weir kv --dir ./store put blobs/1 --value-file blob.bin\n"
                "  echo hello | weir kv --dir ./store put greeting -\n",
    WK_FLAGS(wk_put_flags),
};

static wr_status wk_read_all(FILE *f, wr_buf *out)
{
    for (;;) {
        size_t n;
        WR_TRY(wr_buf_reserve(out, 65536));
        n = fread(out->ptr + out->len, 1, out->cap - out->len, f);
        out->len += n;
        if (n == 0)
            return ferror(f) ? wr_err(WR_ERR_IO, "read: %s", strerror(errno)) : WR_OK;
    }
}

static int wk_put(int argc, char **argv)
{
    const wt_cmd *c = &wk_put_cmd;
    const char *vf = NULL;
    wr_buf buf = {0};
    kv_db *db = NULL;
    wk_args a;
    wr_bytes key, val;
    wr_status st;
    int rc = wk_parse(c, argc, argv, 2, 1, &a);

    if (rc != WT_EXIT_OK)
        return rc == WT_EXIT_HELP ? WT_EXIT_OK : rc;
    vf = wk_val(c, "value-file");
    if (a.pos_cnt == 1 && vf == NULL)
        return wt_usage_err(c,
                            "missing VALUE (give it, '-' for standard input, or --value-file F)");
    if (a.pos_cnt == 2 && vf != NULL)
        return wt_usage_err(c, "give VALUE or --value-file F, not both");
    if (a.pos_cnt == 2 && strcmp(a.pos[1], "-") == 0)
        vf = "-";
    if (!wk_arg_bytes(c, "KEY", a.pos[0], &key))
        return WT_EXIT_USAGE;
    if (vf != NULL) {
        FILE *f = strcmp(vf, "-") == 0 ? stdin : fopen(vf, "rb");
        if (f == NULL) {
            wt_err(c->name, WR_OK, "cannot open --value-file %s: %s", vf, strerror(errno));
            return WT_EXIT_DATA;
        }
        wr_err_clear();
        st = wk_read_all(f, &buf);
        if (f != stdin)
            fclose(f);
        if (st != WR_OK) {
            wt_err(c->name, st, "reading the value from %s failed",
                   strcmp(vf, "-") == 0 ? "standard input" : vf);
            wr_buf_fini(&buf);
            return WT_EXIT_DATA;
        }
        val = wr_bytes_of(buf.ptr ? buf.ptr : (const uint8_t *)"", buf.len);
    } else if (!wk_arg_bytes(c, "VALUE", a.pos[1], &val)) {
        return WT_EXIT_USAGE;
    }
    if ((rc = wk_open(c, true, &db)) != WT_EXIT_OK) {
        wr_buf_fini(&buf);
        return rc;
    }
    wr_err_clear();
    if ((st = kv_put(db, key, val)) != WR_OK) {
        rc = wk_write_err(c, "put", st);
        kv_close(db);
    } else if ((rc = wk_close(c, db, true)) == WT_EXIT_OK) {
        printf("OK\n");
    }
    wr_buf_fini(&buf);
    return rc;
}

/* ---------------------------------------------------------------- delete */
static wt_flag wk_delete_flags[] = {
    WK_DIR_FLAG,
    WK_WAL_FLAG,
    WK_ESCAPED_FLAG,
};
static const wt_cmd wk_delete_cmd = {
    .name = "weir kv delete",
    .synopsis = "weir kv --dir D delete KEY [--wal MODE] [--escaped]",
    .about = "Delete KEY (write a tombstone), flush the memtable, and print OK. A KEY that has "
             "no value is left alone: \"not found\" on stderr.\n" WK_EXIT_TEXT
             "KEY not found or the store cannot be opened or written, 2 bad command line.",
    .examples = "  weir kv --dir ./store delete users/u1\n",
    WK_FLAGS(wk_delete_flags),
};

static int wk_delete(int argc, char **argv)
{
    const wt_cmd *c = &wk_delete_cmd;
    wr_buf val = {0};
    kv_db *db;
    wk_args a;
    wr_bytes key;
    wr_status st;
    int rc = wk_parse(c, argc, argv, 1, -1, &a);

    if (rc != WT_EXIT_OK)
        return rc == WT_EXIT_HELP ? WT_EXIT_OK : rc;
    if (!wk_arg_bytes(c, "KEY", a.pos[0], &key))
        return WT_EXIT_USAGE;
    if ((rc = wk_open(c, true, &db)) != WT_EXIT_OK)
        return rc;
    wr_err_clear();
    st = kv_get(db, NULL, key, &val);
    wr_buf_fini(&val);
    if (st == WR_ERR_NOTFOUND) {
        fprintf(stderr, "%s: not found (nothing deleted)\n", c->name);
        kv_close(db);
        return WT_EXIT_DATA;
    }
    if (st != WR_OK) {
        wt_err(c->name, st, "reading the store %s failed (check it with: weir kv --dir %s verify)",
               wk_val(c, "dir"), wk_val(c, "dir"));
        kv_close(db);
        return WT_EXIT_DATA;
    }
    if ((st = kv_delete(db, key)) != WR_OK) {
        rc = wk_write_err(c, "delete", st);
        kv_close(db);
    } else if ((rc = wk_close(c, db, true)) == WT_EXIT_OK) {
        printf("OK\n");
    }
    return rc;
}

/* ---------------------------------------------------------------- scan */
static wt_flag wk_scan_flags[] = {
    WK_DIR_FLAG,
    {.name = "prefix", .metavar = "P", .help = "only keys that start with P"},
    {.name = "from", .metavar = "K", .help = "only keys >= K"},
    {.name = "to", .metavar = "K", .help = "only keys < K"},
    {.name = "limit", .metavar = "N", .help = "print at most N entries (default: all)"},
    {.name = "reverse", .metavar = NULL, .help = "descending key order"},
    {.name = "keys-only", .metavar = NULL, .help = "print keys only, one per line"},
    {.name = "escaped",
     .metavar = NULL,
     .help = "P and K use the output's escapes (\\\\ \\\" \\n \\t \\xNN)"},
};
static const wt_cmd wk_scan_cmd = {
    .name = "weir kv scan",
    .synopsis = "weir kv --dir D scan [--prefix P] [--from K] [--to K] [--limit N] [--reverse] "
                "[--keys-only] [--escaped]",
    .about = "Print the live entries in key order (bytewise), one \"key<TAB>value\" line each "
             "(only the key with --keys-only), from one consistent view of the store. Bounds "
             "combine: --prefix P and [--from, --to).\n"
             "Escaping keeps one line per entry: in keys and values, '\\' is printed as \\\\, "
             "'\"' as \\\", newline as \\n, tab as \\t, and every other byte below 0x20 or from "
             "0x7f up (so also UTF-8 beyond ASCII) as \\xNN; --escaped on get, put, delete and "
             "scan reads this syntax back.\n" WK_EXIT_TEXT
             "the store cannot be read, 2 bad command line.",
    .examples = "  weir kv --dir ./store scan --prefix users/ --limit 10\n"
                "  weir kv --dir ./store scan --from a --to m --reverse --keys-only\n",
    WK_FLAGS(wk_scan_flags),
};

/* The smallest key greater than every key with prefix @p: @p with its last byte below 0xff
 * incremented and what follows dropped. False when there is none (all 0xff, or empty). */
static bool wk_prefix_end(wr_bytes p, uint8_t *dst, size_t *len)
{
    size_t n = p.len;

    while (n > 0 && p.ptr[n - 1] == 0xff)
        n--;
    if (n == 0)
        return false;
    memcpy(dst, p.ptr, n);
    dst[n - 1]++;
    *len = n;
    return true;
}

static int wk_scan(int argc, char **argv)
{
    const wt_cmd *c = &wk_scan_cmd;
    bool reverse, keys_only, has_lo = false, has_hi = false;
    uint64_t limit = UINT64_MAX, printed = 0;
    wr_bytes lo = {NULL, 0}, hi = {NULL, 0}, b;
    uint8_t *pend = NULL;
    kv_iter_opts io;
    kv_iter *it = NULL;
    kv_db *db = NULL;
    wk_args a;
    wr_status st;
    int rc = wk_parse(c, argc, argv, 0, -1, &a);

    if (rc != WT_EXIT_OK)
        return rc == WT_EXIT_HELP ? WT_EXIT_OK : rc;
    if (!wt_flag_u64(c, "limit", 0, UINT64_MAX, &limit))
        return WT_EXIT_USAGE;
    reverse = wk_has(c, "reverse");
    keys_only = wk_has(c, "keys-only");
    if (wk_has(c, "prefix")) {
        size_t n;
        if (!wk_arg_bytes(c, "--prefix", wk_val(c, "prefix"), &lo))
            return WT_EXIT_USAGE;
        has_lo = lo.len > 0;
        if ((pend = wr_malloc(lo.len + 1)) == NULL) {
            wt_err(c->name, WR_ERR_NOMEM, "out of memory");
            return WT_EXIT_DATA;
        }
        if (wk_prefix_end(lo, pend, &n)) {
            hi = wr_bytes_of(pend, n);
            has_hi = true;
        }
    }
    if (wk_has(c, "from")) {
        if (!wk_arg_bytes(c, "--from", wk_val(c, "from"), &b)) {
            rc = WT_EXIT_USAGE;
            goto out;
        }
        if (!has_lo || wr_bytes_cmp(b, lo) > 0)
            lo = b;
        has_lo = true;
    }
    if (wk_has(c, "to")) {
        if (!wk_arg_bytes(c, "--to", wk_val(c, "to"), &b)) {
            rc = WT_EXIT_USAGE;
            goto out;
        }
        if (!has_hi || wr_bytes_cmp(b, hi) < 0)
            hi = b;
        has_hi = true;
    }
    if ((rc = wk_open(c, false, &db)) != WT_EXIT_OK)
        goto out;
    memset(&io, 0, sizeof io);
    /* A present bound needs a non-NULL pointer even when empty (kv.h: "ptr != NULL"). */
    if (has_lo)
        io.lower = lo.ptr ? lo : wr_bytes_of("", 0);
    if (has_hi)
        io.upper = hi.ptr ? hi : wr_bytes_of("", 0);
    wr_err_clear();
    if ((st = kv_iter_open(db, &io, &it)) != WR_OK)
        goto err_read;
    st = reverse ? kv_iter_seek_last(it) : kv_iter_seek_first(it);
    while (st == WR_OK && kv_iter_valid(it) && printed < limit) {
        wr_bytes k = kv_iter_key(it);

        /* The iterator honours the bounds; checking again costs nothing and keeps the
         * output right whatever the iterator does at the edges. */
        bool before =
            reverse ? has_hi && wr_bytes_cmp(k, hi) >= 0 : has_lo && wr_bytes_cmp(k, lo) < 0;
        bool past =
            reverse ? has_lo && wr_bytes_cmp(k, lo) < 0 : has_hi && wr_bytes_cmp(k, hi) >= 0;

        if (past)
            break;
        if (before) {
            st = reverse ? kv_iter_prev(it) : kv_iter_next(it);
            continue;
        }
        wt_print_escaped(stdout, k, SIZE_MAX);
        if (!keys_only) {
            putchar('\t');
            wt_print_escaped(stdout, kv_iter_value(it), SIZE_MAX);
        }
        putchar('\n');
        printed++;
        st = reverse ? kv_iter_prev(it) : kv_iter_next(it);
    }
    if (st != WR_OK && st != WR_EOF)
        goto err_read;
    if (fflush(stdout) != 0) {
        wt_err(c->name, WR_OK, "writing to standard output failed");
        rc = WT_EXIT_DATA;
    }
    goto out;
err_read:
    fflush(stdout);
    wt_err(c->name, st, "reading the store %s failed (check it with: weir kv --dir %s verify)",
           wk_val(c, "dir"), wk_val(c, "dir"));
    rc = WT_EXIT_DATA;
out:
    kv_iter_close(it);
    kv_close(db);
    wr_free(pend);
    return rc;
}

/* ---------------------------------------------------------------- stats */
static wt_flag wk_stats_flags[] = {
    WK_DIR_FLAG,
    {.name = "json", .metavar = NULL, .help = "one JSON object instead of text"},
};
static const wt_cmd wk_stats_cmd = {
    .name = "weir kv stats",
    .synopsis = "weir kv --dir D stats [--json]",
    .about = "Print the store's state: last sequence number, SST files and bytes per level, "
             "bytes on disk, and the open's counters (flushes, compactions, cache and bloom "
             "hits; they count from this open, so mostly 0 here).\n" WK_EXIT_TEXT
             "the store cannot be opened, 2 bad command line.",
    .examples = "  weir kv --dir ./store stats\n  weir kv --dir ./store stats --json\n",
    WK_FLAGS(wk_stats_flags),
};

#define WK_LEVELS 7 /* levels shown: kv_stats has room for 8, the store uses 7 */

static int wk_stats(int argc, char **argv)
{
    const wt_cmd *c = &wk_stats_cmd;
    uint64_t files = 0, bytes = 0;
    kv_stats s;
    kv_db *db;
    wk_args a;
    int rc = wk_parse(c, argc, argv, 0, -1, &a);

    if (rc != WT_EXIT_OK)
        return rc == WT_EXIT_HELP ? WT_EXIT_OK : rc;
    if ((rc = wk_open(c, false, &db)) != WT_EXIT_OK)
        return rc;
    kv_stats_get(db, &s);
    kv_close(db);
    for (int l = 0; l < WK_LEVELS; l++) {
        files += s.files[l];
        bytes += s.level_bytes[l];
    }
    if (wk_has(c, "json")) {
        json_t *o = json_object(), *lv = json_array();
        bool ok = o && lv;

        for (int l = 0; ok && l < WK_LEVELS; l++)
            ok = json_array_append_new(lv, json_pack("{s:i, s:I, s:I}", "level", l, "files",
                                                     (json_int_t)s.files[l], "bytes",
                                                     (json_int_t)s.level_bytes[l])) == 0;
        ok = ok && json_object_set_new(o, "dir", json_string(wk_val(c, "dir"))) == 0 &&
             json_object_set_new(o, "seq", wt_json_u64(s.seq)) == 0 &&
             json_object_set_new(o, "sst_files", wt_json_u64(files)) == 0 &&
             json_object_set_new(o, "sst_bytes", wt_json_u64(bytes)) == 0 &&
             json_object_set(o, "levels", lv) == 0 &&
             json_object_set_new(o, "memtable_bytes", wt_json_u64(s.memtable_bytes)) == 0 &&
             json_object_set_new(o, "imm_memtables", wt_json_u64(s.imm_memtables)) == 0 &&
             json_object_set_new(o, "flushes", wt_json_u64(s.flushes)) == 0 &&
             json_object_set_new(o, "compactions", wt_json_u64(s.compactions)) == 0 &&
             json_object_set_new(o, "bytes_written", wt_json_u64(s.bytes_written)) == 0 &&
             json_object_set_new(o, "user_bytes", wt_json_u64(s.user_bytes)) == 0 &&
             json_object_set_new(o, "stall_count", wt_json_u64(s.stall_count)) == 0 &&
             json_object_set_new(o, "stall_us", wt_json_u64(s.stall_us)) == 0 &&
             json_object_set_new(o, "block_cache_hits", wt_json_u64(s.block_cache_hits)) == 0 &&
             json_object_set_new(o, "block_cache_misses", wt_json_u64(s.block_cache_misses)) == 0 &&
             json_object_set_new(o, "bloom_useful", wt_json_u64(s.bloom_useful)) == 0 &&
             json_object_set_new(o, "bg_error", json_string(s.bg_error)) == 0 && wt_json_print(o);
        json_decref(lv);
        json_decref(o);
        if (!ok) {
            wt_err(c->name, WR_ERR_NOMEM, "printing the JSON failed");
            return WT_EXIT_DATA;
        }
        return WT_EXIT_OK;
    }
    printf("store %s\n", wk_val(c, "dir"));
    printf("  last sequence: %" PRIu64 "\n", s.seq);
    printf("  SST files: %" PRIu64 ", %" PRIu64 " bytes\n", files, bytes);
    printf("  %-6s %8s %16s\n", "level", "files", "bytes");
    for (int l = 0; l < WK_LEVELS; l++)
        printf("  %-6d %8" PRIu32 " %16" PRIu64 "\n", l, s.files[l], s.level_bytes[l]);
    printf("  memtable: %" PRIu64 " bytes, %" PRIu64 " immutable\n", s.memtable_bytes,
           s.imm_memtables);
    printf("  since open: flushes=%" PRIu64 " compactions=%" PRIu64 " bytes_written=%" PRIu64
           " user_bytes=%" PRIu64 " stalls=%" PRIu64 " (%" PRIu64 " us)\n",
           s.flushes, s.compactions, s.bytes_written, s.user_bytes, s.stall_count, s.stall_us);
    printf("  since open: block_cache_hits=%" PRIu64 " block_cache_misses=%" PRIu64
           " bloom_useful=%" PRIu64 "\n",
           s.block_cache_hits, s.block_cache_misses, s.bloom_useful);
    if (s.bg_error[0])
        printf("  background error: %s\n", s.bg_error);
    return WT_EXIT_OK;
}

/* ---------------------------------------------------------------- verify */
static wt_flag wk_verify_flags[] = {WK_DIR_FLAG};
static const wt_cmd wk_verify_cmd = {
    .name = "weir kv verify",
    .synopsis = "weir kv --dir D verify",
    .about = "Check every block checksum and filter of every SST, and the MANIFEST. Each "
             "problem is printed on its own line naming the file and byte offset.\n"
             "Exit status: 0 no damage, 1 damage found or the store cannot be read, 2 bad "
             "command line.",
    .examples = "  weir kv --dir ./store verify\n",
    WK_FLAGS(wk_verify_flags),
};

static void wk_verify_line(void *ctx, const char *line)
{
    uint64_t *cnt = ctx;

    printf("%s\n", line);
    (*cnt)++;
}

static int wk_verify(int argc, char **argv)
{
    const wt_cmd *c = &wk_verify_cmd;
    const char *dir;
    uint64_t problems = 0, files = 0, bytes = 0;
    kv_stats s;
    kv_db *db;
    wk_args a;
    wr_status st;
    int rc = wk_parse(c, argc, argv, 0, -1, &a);

    if (rc != WT_EXIT_OK)
        return rc == WT_EXIT_HELP ? WT_EXIT_OK : rc;
    dir = wk_val(c, "dir");
    if ((rc = wk_open(c, false, &db)) != WT_EXIT_OK)
        return rc; /* a damaged MANIFEST or CURRENT: wk_open named it */
    wr_err_clear();
    st = kv_verify(db, wk_verify_line, &problems);
    kv_stats_get(db, &s);
    kv_close(db);
    for (int l = 0; l < WK_LEVELS; l++) {
        files += s.files[l];
        bytes += s.level_bytes[l];
    }
    if (st == WR_OK) {
        printf("store %s: OK (%" PRIu64 " SST files, %" PRIu64 " bytes verified)\n", dir, files,
               bytes);
        return WT_EXIT_OK;
    }
    if (st == WR_ERR_CORRUPT) {
        if (problems == 0 && *wr_errmsg())
            printf("%s\n", wr_errmsg());
        fflush(stdout);
        fprintf(stderr,
                "%s: the store %s is damaged: %" PRIu64 " problem(s)%s. Reads that reach a "
                "damaged block fail: restore the named files from a checkpoint or copy, or "
                "rebuild the store from its source.\n",
                c->name, dir, problems ? problems : 1, problems ? " listed above" : "");
        return WT_EXIT_DATA;
    }
    wt_err(c->name, st,
           "verifying the store %s could not finish (check that its files are readable)", dir);
    return WT_EXIT_DATA;
}

/* ---------------------------------------------------------------- compact */
static wt_flag wk_compact_flags[] = {WK_DIR_FLAG};
static const wt_cmd wk_compact_cmd = {
    .name = "weir kv compact",
    .synopsis = "weir kv --dir D compact",
    .about =
        "Compact the whole key range down to the deepest non-empty level now (dropping "
        "overwritten versions and tombstones), wait for it, and print the SST files and bytes per "
        "level before and after.\n" WK_EXIT_TEXT
        "the store cannot be opened or compacted, 2 bad command line.",
    .examples = "  weir kv --dir ./store compact\n",
    WK_FLAGS(wk_compact_flags),
};

/* "before: L0 2 files 402 B, L1 1 file 243 B; total 3 files 645 B" (empty levels left out). */
static void wk_levels_print(const char *when, const kv_stats *s)
{
    uint64_t files = 0, bytes = 0;
    bool first = true;

    printf("%s:", when);
    for (int l = 0; l < WK_LEVELS; l++) {
        if (s->files[l] == 0)
            continue;
        printf("%s L%d %" PRIu32 " file%s %" PRIu64 " B", first ? "" : ",", l, s->files[l],
               s->files[l] == 1 ? "" : "s", s->level_bytes[l]);
        files += s->files[l];
        bytes += s->level_bytes[l];
        first = false;
    }
    printf("%s total %" PRIu64 " files %" PRIu64 " B\n", first ? "" : ";", files, bytes);
}

static int wk_compact(int argc, char **argv)
{
    const wt_cmd *c = &wk_compact_cmd;
    kv_stats s;
    kv_db *db;
    wk_args a;
    wr_status st;
    int rc = wk_parse(c, argc, argv, 0, -1, &a);

    if (rc != WT_EXIT_OK)
        return rc == WT_EXIT_HELP ? WT_EXIT_OK : rc;
    if ((rc = wk_open(c, false, &db)) != WT_EXIT_OK)
        return rc;
    kv_stats_get(db, &s);
    wk_levels_print("before", &s);
    fflush(stdout);
    wr_err_clear();
    if ((st = kv_compact_all(db)) != WR_OK) {
        wt_err(c->name, st,
               "compacting the store %s failed; the files of a compaction that did not finish "
               "are not used (check free space, then run it again)",
               wk_val(c, "dir"));
        rc = WT_EXIT_DATA;
    }
    kv_stats_get(db, &s);
    wk_levels_print("after", &s);
    kv_close(db);
    return rc;
}

/* ---------------------------------------------------------------- dispatch */
typedef struct wk_sub {
    const char *name;
    int (*main)(int argc, char **argv);
    const wt_cmd *cmd;
    const char *about;
} wk_sub;

static const wk_sub wk_subs[] = {
    {"get", wk_get, &wk_get_cmd, "print the value of a key"},
    {"put", wk_put, &wk_put_cmd, "set a key to a value (durably, by default)"},
    {"delete", wk_delete, &wk_delete_cmd, "delete a key"},
    {"scan", wk_scan, &wk_scan_cmd, "print entries by prefix or range, in either order"},
    {"stats", wk_stats, &wk_stats_cmd, "files and bytes per level, counters"},
    {"verify", wk_verify, &wk_verify_cmd, "check every checksum of every file"},
    {"compact", wk_compact, &wk_compact_cmd, "compact everything down to the deepest level now"},
};
#define WK_SUB_CNT (sizeof wk_subs / sizeof wk_subs[0])

static void wk_help(FILE *f)
{
    fprintf(f, "usage: weir kv --dir D <command> [arguments] [flags]\n\n"
               "Read and write the LSM key-value store in directory D (D itself holds the store;\n"
               "--dir is required). Flags may come before or after the command; '--' ends the\n"
               "flags, for a KEY or VALUE that starts with '--'.\n\ncommands:\n");
    for (size_t i = 0; i < WK_SUB_CNT; i++)
        fprintf(f, "  %-8s  %s\n", wk_subs[i].name, wk_subs[i].about);
    fprintf(f, "\nExit status: 0 ok, 1 not found, damaged or I/O error, 2 bad command line.\n"
               "run 'weir kv <command> --help' for its arguments, flags and examples\n");
}

/* Flags of any command that take a value: to skip them while looking for the command word. */
static bool wk_takes_value(const char *s)
{
    size_t nlen;

    if (strncmp(s, "--", 2) != 0 || strchr(s, '=') != NULL)
        return false;
    nlen = strlen(s + 2);
    for (size_t i = 0; i < WK_SUB_CNT; i++) {
        const wt_cmd *c = wk_subs[i].cmd;
        for (size_t k = 0; k < c->flag_cnt; k++)
            if (c->flags[k].metavar && strlen(c->flags[k].name) == nlen &&
                memcmp(c->flags[k].name, s + 2, nlen) == 0)
                return true;
    }
    return false;
}

int wt_kv_main(int argc, char **argv)
{
    char *args[WK_ARGS_MAX];
    int cmd = -1, n = 0;

    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        if (strncmp(argv[i], "-", 1) != 0) {
            cmd = i;
            break;
        }
        if (wk_takes_value(argv[i]) && i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0)
            i++;
    }
    if (cmd < 0) {
        for (int i = 0; i < argc && strcmp(argv[i], "--") != 0; i++)
            if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
                wk_help(stdout);
                return WT_EXIT_OK;
            }
        fprintf(stderr, "weir kv: missing command\n");
        wk_help(stderr);
        return WT_EXIT_USAGE;
    }
    if (strcmp(argv[cmd], "help") == 0) {
        wk_help(stdout);
        return WT_EXIT_OK;
    }
    if (argc > WK_ARGS_MAX) {
        fprintf(stderr, "weir kv: too many arguments (at most %d)\n", WK_ARGS_MAX);
        return WT_EXIT_USAGE;
    }
    /* The command's arguments: the flags given before the command word, then the rest. */
    for (int i = 0; i < cmd; i++)
        args[n++] = argv[i];
    for (int i = cmd + 1; i < argc; i++)
        args[n++] = argv[i];
    for (size_t i = 0; i < WK_SUB_CNT; i++) {
        if (strcmp(argv[cmd], wk_subs[i].name) == 0) {
            int rc = wk_subs[i].main(n, args);
            while (wk_owned_cnt > 0)
                wr_free(wk_owned[--wk_owned_cnt]);
            return rc;
        }
    }
    fprintf(stderr, "weir kv: unknown command '%s'\n", argv[cmd]);
    wk_help(stderr);
    return WT_EXIT_USAGE;
}
