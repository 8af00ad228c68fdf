/* weir_util.h -- helpers shared by the subcommands of the weir CLI (tool-internal).
 *
 * Flags: each subcommand describes itself with a wt_cmd (usage line, description, examples)
 * and a table of wt_flag. wt_cmd_parse() fills the table from argv, accepts "--flag value"
 * and "--flag=value", and answers --help/-h from the same table, so the help text always
 * names every flag the parser accepts.
 *
 * Errors: wt_err() prints "<cmd>: <what>" to stderr and appends the library's detail
 * (wr_status_str and wr_errmsg()) when a status is given. Exit codes are WT_EXIT_*.
 *
 * Output: JSON helpers put byte strings into jansson objects as UTF-8 strings, or as base64
 * under "<field>_b64" when the bytes are not valid UTF-8. */
#ifndef WEIR_TOOLS_UTIL_H
#define WEIR_TOOLS_UTIL_H

#include <jansson.h>
#include <stdio.h>

#include "lg.h"
#include "wr.h"

enum {
    WT_EXIT_OK = 0,
    WT_EXIT_DATA = 1,  /* bad input data, I/O failure, corruption, not found */
    WT_EXIT_USAGE = 2, /* bad command line */
    WT_EXIT_HELP = -1  /* internal: --help was printed, exit 0 */
};

#define WT_DIR_HELP "log root directory (default: $WEIR_DIR, else ./weir-data)"

typedef struct wt_flag {
    const char *name;    /* without the leading "--" */
    const char *metavar; /* NULL: a switch that takes no value */
    const char *help;    /* one line, with the default */
    const char *val;     /* OUT: last value given ("" for a switch); NULL when absent */
    const char **all;    /* optional OUT: every value of a repeatable flag */
    uint32_t all_cap;    /* capacity of @all; 0 makes the flag non-repeatable */
    uint32_t cnt;        /* OUT: how many times the flag was given */
} wt_flag;

typedef struct wt_cmd {
    const char *name;     /* "weir produce", used as the prefix of every message */
    const char *synopsis; /* usage line(s) after "usage: " */
    const char *about;    /* what the command does, a few lines */
    const char *examples; /* example invocations, one per line */
    wt_flag *flags;       /* borrowed */
    size_t flag_cnt;
} wt_cmd;

/* Parse argv[0..argc) (argv[0] is the first flag, not the command name). Returns WT_EXIT_OK,
 * WT_EXIT_HELP after printing the help to stdout, or WT_EXIT_USAGE after printing the
 * problem and a pointer to --help to stderr. */
int wt_cmd_parse(const wt_cmd *cmd, int argc, char **argv);
void wt_cmd_help(const wt_cmd *cmd, FILE *f);
wt_flag *wt_flag_get(const wt_cmd *cmd, const char *name); /* NULL for an unknown name */
/* Usage error: prints "<cmd>: <msg>" and "run '<cmd> --help' for usage"; returns 2. */
int wt_usage_err(const wt_cmd *cmd, const char *fmt, ...) WR_PRINTF(2, 3);

/* "<cmd>: <msg>[ (<status>: <wr_errmsg()>)]\n" on stderr. st == WR_OK prints no detail. */
void wt_err(const char *cmd, wr_status st, const char *fmt, ...) WR_PRINTF(3, 4);

/* Flag value conversions. On a bad value they print a usage error naming the flag and the
 * accepted range and return false. Absent flags leave *out untouched and return true. */
bool wt_flag_u64(const wt_cmd *cmd, const char *name, uint64_t min, uint64_t max, uint64_t *out);
bool wt_flag_u32(const wt_cmd *cmd, const char *name, uint32_t min, uint32_t max, uint32_t *out);
/* Milliseconds since the epoch, or ISO-8601 UTC: 2024-05-01, 2024-05-01T12:00:00Z,
 * 2024-05-01T12:00:00.250Z (the "Z" is optional, offsets are not accepted). */
bool wt_parse_time_ms(const char *s, int64_t *out);
void wt_format_time_ms(int64_t ms, char *dst, size_t cap); /* 2024-05-01T12:00:00.250Z */

/* The log root: @given, else $WEIR_DIR, else "./weir-data". */
const char *wt_dir(const char *given);

/* Open a topic and turn every failure into a message with a remedy. Returns an exit code. */
int wt_topic_open(const char *cmd, const char *dir, const char *topic, bool readonly,
                  lg_topic **out);
/* The options wt_topic_open() uses, and its message for a failed open (returns 1). */
lg_open_opts wt_open_opts(bool readonly);
int wt_topic_open_err(const char *cmd, const char *dir, const char *topic, bool readonly,
                      wr_status st);

/* Print a topic configuration as "name=value" lines, each preceded by @indent. */
void wt_config_print(FILE *f, const lg_config *c, const char *indent);
json_t *wt_config_json(const lg_config *c);
/* A JSON integer, or null for UINT64_MAX (LG_NO_OFFSET). NULL when out of memory. */
json_t *wt_json_u64(uint64_t v);
const char *wt_cleaner_str(lg_cleaner_state s);

/* Print @j as compact JSON on one line of stdout. Does not release @j. */
bool wt_json_print(const json_t *j);
/* Set obj[field] to b as a string, or obj[field "_b64"] to its base64 if b is not UTF-8.
 * b.ptr == NULL sets obj[field] to null. Returns false when out of memory. */
bool wt_json_set_bytes(json_t *obj, const char *field, wr_bytes b);
/* Base64 (RFC 4648, padded) of @b into a new wr_malloc'd string; NULL when out of memory. */
char *wt_base64(wr_bytes b);
/* Print @b to @f with non-printable bytes, '"' and '\\' escaped (\n, \t, \xNN); at most
 * @max bytes of input, then "..." and the full length. */
void wt_print_escaped(FILE *f, wr_bytes b, size_t max);

/* Signals: wt_signals_install() makes SIGINT and SIGTERM set a flag (no SA_RESTART, so
 * blocking calls return early); wt_stop_requested() reads it. */
void wt_signals_install(void);
bool wt_stop_requested(void);

/* Subcommand entry points; @argv[0] is the first argument after the subcommand name. */
int wt_produce_main(int argc, char **argv);
int wt_consume_main(int argc, char **argv);
int wt_log_main(int argc, char **argv);
int wt_kv_main(int argc, char **argv);
int wt_vec_main(int argc, char **argv);    /* weir_vec.c: weir vec build|info|verify|retrain */
int wt_search_main(int argc, char **argv); /* weir_vec.c: weir search */

#endif
