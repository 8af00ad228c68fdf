/* weir_main.c -- entry point of the weir command-line tool: dispatches to a subcommand.
 *
 *   weir produce ...        weir_produce.c
 *   weir consume ...        weir_consume.c
 *   weir log <cmd> ...      weir_logcmd.c
 *   weir kv <cmd> ...       weir_kv.c
 *   weir vec <cmd> ...      weir_vec.c
 *   weir search ...         weir_vec.c
 *   weir bench log|kv|vec|vec-gen ...   the bench library (wb.h)
 *
 * Exit status everywhere: 0 success, 1 data or I/O error, 2 usage error. */
#include "wb.h"
#include "weir_util.h"

static void wt_main_help(FILE *f)
{
    fprintf(f, "usage: weir <command> [flags]\n"
               "       weir --version\n\n"
               "commands:\n"
               "  produce   append standard input to a topic, one record per line\n"
               "  consume   print the records of a topic, optionally as a consumer group\n"
               "  log       create, list, inspect, verify, dump and compact topics\n"
               "  kv        get, put, delete, scan, verify and compact a key-value store\n"
               "  vec       build, inspect, verify and retrain an IVF-PQ vector index\n"
               "  search    the nearest keys of a vector index to query vectors\n"
               "  bench     run a bundled benchmark (weir bench log|kv|vec ...)\n\n"
               "The log directory is --dir, else $WEIR_DIR, else ./weir-data.\n"
               "run 'weir <command> --help' for its flags and examples\n");
}

static void wt_bench_help(FILE *f)
{
    fprintf(f, "usage: weir bench <family> [flags]\n\n"
               "families:\n"
               "  log       append and read throughput and latency of the log\n"
               "  kv        db_bench workloads against the key-value store\n"
               "  vec       recall and queries/s of the vector index over an nprobe sweep\n"
               "  vec-gen   write clustered synthetic .fvecs data with exact ground truth\n\n"
               "run 'weir bench <family> --help' for its flags\n");
}

static int wt_bench_main(int argc, char **argv)
{
    if (argc < 1) {
        fprintf(stderr, "weir bench: missing benchmark family\n");
        wt_bench_help(stderr);
        return WT_EXIT_USAGE;
    }
    if (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0) {
        wt_bench_help(stdout);
        return WT_EXIT_OK;
    }
    if (strcmp(argv[0], "log") == 0)
        return wb_log_main(argc, argv); /* argv[0] is the family, as wb.h expects */
    if (strcmp(argv[0], "kv") == 0)
        return wb_kv_main(argc, argv);
    if (strcmp(argv[0], "vec") == 0)
        return wb_vec_main(argc, argv);
    if (strcmp(argv[0], "vec-gen") == 0)
        return wb_vecgen_main(argc, argv);
    fprintf(stderr, "weir bench: unknown benchmark family '%s'\n", argv[0]);
    wt_bench_help(stderr);
    return WT_EXIT_USAGE;
}

int main(int argc, char **argv)
{
    const char *cmd;

    json_set_alloc_funcs(wr_malloc, wr_free); /* one allocator (STYLE.md 6) */
    if (argc < 2) {
        wt_main_help(stderr);
        return WT_EXIT_USAGE;
    }
    cmd = argv[1];
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        printf("weir " WR_VERSION "\n");
        return WT_EXIT_OK;
    }
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        wt_main_help(stdout);
        return WT_EXIT_OK;
    }
    if (strcmp(cmd, "produce") == 0)
        return wt_produce_main(argc - 2, argv + 2);
    if (strcmp(cmd, "consume") == 0)
        return wt_consume_main(argc - 2, argv + 2);
    if (strcmp(cmd, "log") == 0)
        return wt_log_main(argc - 2, argv + 2);
    if (strcmp(cmd, "kv") == 0)
        return wt_kv_main(argc - 2, argv + 2);
    if (strcmp(cmd, "vec") == 0)
        return wt_vec_main(argc - 2, argv + 2);
    if (strcmp(cmd, "search") == 0)
        return wt_search_main(argc - 2, argv + 2);
    if (strcmp(cmd, "bench") == 0)
        return wt_bench_main(argc - 2, argv + 2);
    fprintf(stderr, "weir: unknown command '%s'\n", cmd);
    wt_main_help(stderr);
    return WT_EXIT_USAGE;
}
