/* wb.h -- weir's bundled load tools (public API of the bench library).
 * Each entry point is a subcommand of `weir bench`, given the arguments after the workload
 * family name (argv[0] is the family, e.g. "log"). Returns a process exit code. */
#ifndef WEIR_WB_H
#define WEIR_WB_H

int wb_log_main(int argc, char **argv);
int wb_kv_main(int argc, char **argv);
int wb_vec_main(int argc, char **argv);
int wb_vecgen_main(int argc, char **argv);

#endif
