/* weir_util.c -- flag parsing, error printing, time and JSON/base64 helpers of the weir CLI.
 *
 * Flag grammar (wt_cmd_parse):
 *   --name value | --name=value    a flag with a value (metavar set)
 *   --name                         a switch (metavar NULL); "--name=x" is an error
 *   -h | --help                    print the help generated from the flag table, exit 0
 * A value given as a separate word may not start with "--" (so "--dir --topic t" is caught);
 * "--dir=--odd" still works. A flag given twice is an error unless it is repeatable
 * (all_cap > 0). Positional arguments are errors: every input is named. */
#include "weir_util.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <time.h>

/* ---------------------------------------------------------------- errors */
void wt_err(const char *cmd, wr_status st, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    if (st != WR_OK) {
        const char *m = wr_errmsg();
        fprintf(stderr, " [%s%s%s]", wr_status_str(st), *m ? ": " : "", m);
    }
    fputc('\n', stderr);
}

int wt_usage_err(const wt_cmd *cmd, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s: ", cmd->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nusage: %s\nrun '%s --help' for every flag and examples\n", cmd->synopsis,
            cmd->name);
    return WT_EXIT_USAGE;
}

/* ---------------------------------------------------------------- flags */
static wt_flag *wt_flag_find(const wt_cmd *cmd, const char *name, size_t len)
{
    for (size_t i = 0; i < cmd->flag_cnt; i++) {
        wt_flag *f = &cmd->flags[i];
        if (strlen(f->name) == len && memcmp(f->name, name, len) == 0)
            return f;
    }
    return NULL;
}

wt_flag *wt_flag_get(const wt_cmd *cmd, const char *name)
{
    return wt_flag_find(cmd, name, strlen(name));
}

void wt_cmd_help(const wt_cmd *cmd, FILE *f)
{
    int width = 12;

    for (size_t i = 0; i < cmd->flag_cnt; i++) {
        const wt_flag *fl = &cmd->flags[i];
        int w = (int)(2 + strlen(fl->name) + (fl->metavar ? 1 + strlen(fl->metavar) : 0));
        if (w > width)
            width = w;
    }
    fprintf(f, "usage: %s\n\n%s\n\nflags:\n", cmd->synopsis, cmd->about);
    for (size_t i = 0; i < cmd->flag_cnt; i++) {
        const wt_flag *fl = &cmd->flags[i];
        char left[128];
        snprintf(left, sizeof left, "--%s%s%s", fl->name, fl->metavar ? " " : "",
                 fl->metavar ? fl->metavar : "");
        fprintf(f, "  %-*s  %s%s\n", width, left, fl->help, fl->all_cap ? " (repeatable)" : "");
    }
    fprintf(f, "  %-*s  %s\n", width, "-h, --help", "show this help and exit");
    if (cmd->examples && *cmd->examples)
        fprintf(f, "\nexamples:\n%s", cmd->examples);
}

static int wt_flag_store(const wt_cmd *cmd, wt_flag *f, const char *v)
{
    if (f->cnt > 0 && f->all_cap == 0)
        return wt_usage_err(cmd, "--%s given twice (give it once)", f->name);
    if (f->all_cap) {
        if (f->cnt >= f->all_cap)
            return wt_usage_err(cmd, "--%s given more than %" PRIu32 " times", f->name, f->all_cap);
        f->all[f->cnt] = v;
    }
    f->val = v;
    f->cnt++;
    return WT_EXIT_OK;
}

int wt_cmd_parse(const wt_cmd *cmd, int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *eq, *v;
        size_t nlen;
        wt_flag *f;
        int rc;

        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            wt_cmd_help(cmd, stdout);
            return WT_EXIT_HELP;
        }
        if (strncmp(a, "--", 2) != 0 || a[2] == '\0')
            return wt_usage_err(cmd, "unexpected argument '%s' (every input is a --flag)", a);
        eq = strchr(a + 2, '=');
        nlen = eq ? (size_t)(eq - (a + 2)) : strlen(a + 2);
        if ((f = wt_flag_find(cmd, a + 2, nlen)) == NULL)
            return wt_usage_err(cmd, "unknown flag '--%.*s'", (int)nlen, a + 2);
        if (f->metavar == NULL) {
            if (eq)
                return wt_usage_err(cmd, "--%s is a switch and takes no value", f->name);
            v = "";
        } else if (eq) {
            v = eq + 1;
        } else if (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) {
            v = argv[++i];
        } else {
            return wt_usage_err(cmd, "--%s needs a value: --%s %s", f->name, f->name, f->metavar);
        }
        if ((rc = wt_flag_store(cmd, f, v)) != WT_EXIT_OK)
            return rc;
    }
    return WT_EXIT_OK;
}

static bool wt_parse_u64(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;

    if (*s < '0' || *s > '9')
        return false; /* strtoull would accept " 5" and "-5" */
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return false;
    *out = v;
    return true;
}

bool wt_flag_u64(const wt_cmd *cmd, const char *name, uint64_t min, uint64_t max, uint64_t *out)
{
    const wt_flag *f = wt_flag_get(cmd, name);
    uint64_t v;

    if (f == NULL || f->val == NULL)
        return true;
    if (!wt_parse_u64(f->val, &v) || v < min || v > max) {
        wt_usage_err(cmd, "--%s: '%s' is not a whole number in %" PRIu64 "..%" PRIu64, name, f->val,
                     min, max);
        return false;
    }
    *out = v;
    return true;
}

bool wt_flag_u32(const wt_cmd *cmd, const char *name, uint32_t min, uint32_t max, uint32_t *out)
{
    uint64_t v = *out;

    if (!wt_flag_u64(cmd, name, min, max, &v))
        return false;
    *out = (uint32_t)v;
    return true;
}

/* ---------------------------------------------------------------- time */
/* Reads exactly @n digits at *p into *out. */
static bool wt_digits(const char **p, int n, int *out)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return true;
}

static bool wt_parse_clock(const char **p, struct tm *tm, int *ms)
{
    const char *s = *p;

    if (!wt_digits(&s, 2, &tm->tm_hour) || *s++ != ':' || !wt_digits(&s, 2, &tm->tm_min))
        return false;
    if (*s == ':') {
        s++;
        if (!wt_digits(&s, 2, &tm->tm_sec))
            return false;
        if (*s == '.') {
            int scale = 100;
            s++;
            if (*s < '0' || *s > '9')
                return false;
            for (; *s >= '0' && *s <= '9'; s++, scale /= 10)
                *ms += (*s - '0') * scale; /* digits beyond milliseconds add 0 */
        }
    }
    *p = s;
    return tm->tm_hour < 24 && tm->tm_min < 60 && tm->tm_sec < 61;
}

bool wt_parse_time_ms(const char *s, int64_t *out)
{
    struct tm tm = {0};
    uint64_t v;
    int ms = 0;
    time_t secs;

    if (wt_parse_u64(s, &v)) {
        if (v > INT64_MAX)
            return false;
        *out = (int64_t)v;
        return true;
    }
    if (!wt_digits(&s, 4, &tm.tm_year) || *s++ != '-' || !wt_digits(&s, 2, &tm.tm_mon) ||
        *s++ != '-' || !wt_digits(&s, 2, &tm.tm_mday))
        return false;
    if (tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31)
        return false;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    if (*s == 'T' || *s == ' ') {
        s++;
        if (!wt_parse_clock(&s, &tm, &ms))
            return false;
    }
    if (*s == 'Z')
        s++;
    if (*s != '\0')
        return false;
    if ((secs = timegm(&tm)) == (time_t)-1)
        return false;
    *out = (int64_t)secs * 1000 + ms;
    return true;
}

void wt_format_time_ms(int64_t ms, char *dst, size_t cap)
{
    int64_t sec = ms / 1000, rem = ms % 1000;
    time_t t;
    struct tm tm;
    char day[40];

    if (rem < 0) { /* floor division, so times before 1970 print correctly */
        rem += 1000;
        sec -= 1;
    }
    t = (time_t)sec;
    if (gmtime_r(&t, &tm) == NULL || strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
        snprintf(dst, cap, "%" PRId64 "ms", ms);
        return;
    }
    snprintf(dst, cap, "%s.%03dZ", day, (int)rem);
}

/* ---------------------------------------------------------------- topics */
const char *wt_dir(const char *given)
{
    const char *env;

    if (given && *given)
        return given;
    env = getenv("WEIR_DIR");
    return env && *env ? env : "./weir-data";
}

lg_open_opts wt_open_opts(bool readonly)
{
    lg_open_opts o;

    memset(&o, 0, sizeof o);
    o.readonly = readonly;
    o.max_inflight_bytes = 64u << 20;
    o.no_cleaner = true; /* a CLI run is short; maintenance belongs to the server */
    return o;
}

int wt_topic_open(const char *cmd, const char *dir, const char *topic, bool readonly,
                  lg_topic **out)
{
    lg_open_opts o = wt_open_opts(readonly);
    wr_status st;

    wr_err_clear();
    if ((st = lg_topic_open(dir, topic, &o, out)) == WR_OK)
        return WT_EXIT_OK;
    return wt_topic_open_err(cmd, dir, topic, readonly, st);
}

int wt_topic_open_err(const char *cmd, const char *dir, const char *topic, bool readonly,
                      wr_status st)
{
    switch (st) {
    case WR_ERR_NOTFOUND:
        wt_err(cmd, st,
               "topic '%s' not found in %s (create it with: weir log create --dir %s --topic %s)",
               topic, dir, dir, topic);
        break;
    case WR_ERR_BUSY:
        wt_err(cmd, st,
               "topic '%s' in %s is open for writing by another process (stop it first; "
               "reading without --group works beside a writer)",
               topic, dir);
        break;
    case WR_ERR_CORRUPT:
        wt_err(cmd, st,
               "topic '%s' in %s is damaged (list the damage with: weir log verify --dir %s "
               "--topic %s)",
               topic, dir, dir, topic);
        break;
    case WR_ERR_INVAL:
        wt_err(cmd, st,
               "cannot open topic '%s' in %s (a topic name has 1..%d characters and no '/')", topic,
               dir, LG_TOPIC_NAME_MAX);
        break;
    default:
        wt_err(cmd, st,
               "cannot open topic '%s' in %s (check that the directory is readable%s and the "
               "disk is not full)",
               topic, dir, readonly ? "" : " and writable");
        break;
    }
    return WT_EXIT_DATA;
}

/* ---------------------------------------------------------------- configuration */
const char *wt_cleaner_str(lg_cleaner_state s)
{
    switch (s) {
    case LG_CLEANER_IDLE:
        return "idle";
    case LG_CLEANER_RUNNING:
        return "running";
    case LG_CLEANER_FAILED:
        return "failed";
    case LG_CLEANER_OFF:
        return "off";
    }
    return "?";
}

/* Both forms come from lg_config_format(), so they always show what topic.meta holds, in the
 * names --config accepts. */
void wt_config_print(FILE *f, const lg_config *c, const char *in)
{
    char txt[1024];
    const char *line = txt;
    lg_config_format(c, txt, sizeof(txt));
    while (*line) {
        const char *nl = strchr(line, '\n');
        fprintf(f, "%s%.*s\n", in, (int)(nl - line), line);
        line = nl + 1;
    }
}

json_t *wt_json_u64(uint64_t v)
{
    return v == UINT64_MAX ? json_null() : json_integer((json_int_t)v);
}

json_t *wt_config_json(const lg_config *c)
{
    char txt[1024], *line = txt;
    json_t *o = json_object();
    lg_config_format(c, txt, sizeof(txt));
    while (o && *line) {
        char *nl = strchr(line, '\n'), *eq = strchr(line, '='), *end;
        double d;
        *nl = *eq = '\0';
        d = strtod(eq + 1, &end);
        /* numbers as numbers (integers exactly), everything else as text */
        if (end != eq + 1 && *end == '\0' && strchr(eq + 1, '.') == NULL)
            json_object_set_new(o, line, json_integer((json_int_t)strtoll(eq + 1, NULL, 10)));
        else if (end != eq + 1 && *end == '\0')
            json_object_set_new(o, line, json_real(d));
        else
            json_object_set_new(o, line, json_string(eq + 1));
        line = nl + 1;
    }
    return o;
}

/* ---------------------------------------------------------------- JSON and bytes */
bool wt_json_print(const json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);

    if (s == NULL)
        return false;
    fputs(s, stdout);
    fputc('\n', stdout);
    wr_free(s); /* main() routes jansson's allocations through wr_malloc */
    return true;
}

char *wt_base64(wr_bytes b)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = wr_malloc((b.len + 2) / 3 * 4 + 1), *o = out;
    size_t i = 0;

    if (out == NULL)
        return NULL;
    for (; i + 3 <= b.len; i += 3) {
        uint32_t v = (uint32_t)b.ptr[i] << 16 | (uint32_t)b.ptr[i + 1] << 8 | b.ptr[i + 2];
        *o++ = tab[v >> 18];
        *o++ = tab[(v >> 12) & 63];
        *o++ = tab[(v >> 6) & 63];
        *o++ = tab[v & 63];
    }
    if (i < b.len) {
        uint32_t v = (uint32_t)b.ptr[i] << 16;
        if (i + 1 < b.len)
            v |= (uint32_t)b.ptr[i + 1] << 8;
        *o++ = tab[v >> 18];
        *o++ = tab[(v >> 12) & 63];
        *o++ = i + 1 < b.len ? tab[(v >> 6) & 63] : '=';
        *o++ = '=';
    }
    *o = '\0';
    return out;
}

bool wt_json_set_bytes(json_t *obj, const char *field, wr_bytes b)
{
    char name[64], *enc;
    json_t *s;
    int rc;

    if (b.ptr == NULL)
        return json_object_set_new(obj, field, json_null()) == 0;
    /* json_stringn refuses invalid UTF-8, which is exactly the test for the base64 fallback. */
    if ((s = json_stringn((const char *)b.ptr, b.len)) != NULL)
        return json_object_set_new(obj, field, s) == 0;
    snprintf(name, sizeof name, "%s_b64", field);
    if ((enc = wt_base64(b)) == NULL)
        return false;
    rc = json_object_set_new(obj, name, json_string(enc));
    wr_free(enc);
    return rc == 0;
}

void wt_print_escaped(FILE *f, wr_bytes b, size_t max)
{
    size_t n = b.len < max ? b.len : max;

    for (size_t i = 0; i < n; i++) {
        uint8_t c = b.ptr[i];
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", f);
        else if (c == '\t')
            fputs("\\t", f);
        else if (c < 0x20 || c >= 0x7f)
            fprintf(f, "\\x%02x", c);
        else
            fputc(c, f);
    }
    if (n < b.len)
        fprintf(f, "...(%zu bytes)", b.len);
}

/* ---------------------------------------------------------------- signals */
static volatile sig_atomic_t wt_stop;

static void wt_on_signal(int sig)
{
    (void)sig;
    wt_stop = 1;
}

void wt_signals_install(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = wt_on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: a blocking read returns EINTR and the loop sees wt_stop */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

bool wt_stop_requested(void)
{
    return wt_stop != 0;
}
