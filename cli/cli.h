/*
 * cli: the `bvtool` command line. One table of commands (main.c) drives
 * dispatch and help; one file per command (cmd_<name>.c); one option table per
 * command, parsed by cli_parse (opts.c), which also prints the help with the
 * defaults read from the variables themselves.
 *
 * Exit statuses (docs/cli.md):
 *   0 success          1 internal error, out of memory
 *   2 usage: an unknown flag or a bad value
 *   3 a file cannot be read or written
 *   4 bad input: corrupt or malformed data, a mismatched checkpoint or database
 *   5 training diverged (NaN/Inf loss)
 *   6 database error    7 partial result    8 an earlier step has not run
 *   130 interrupted
 */
#ifndef BV_CLI_H
#define BV_CLI_H

#include <stdio.h>

enum {
	BV_EXIT_OK = 0,
	BV_EXIT_INTERNAL = 1,
	BV_EXIT_USAGE = 2,
	BV_EXIT_IO = 3,
	BV_EXIT_INPUT = 4,
	BV_EXIT_DIVERGED = 5,
	BV_EXIT_DB = 6,
	BV_EXIT_PARTIAL = 7,
	BV_EXIT_STATE = 8,
	BV_EXIT_INTERRUPTED = 130,
};

typedef struct cli_cmd {
	const char *name;
	int (*fn)(const struct cli_cmd *cmd, int argc, char **argv);
	const char *summary;
	const char *usage; /* after "bvtool NAME " */
	const struct cli_opt *opts;
} cli_cmd;

typedef enum { OPT_STR, OPT_INT, OPT_DOUBLE, OPT_FLAG } cli_opt_type;

typedef struct cli_opt {
	const char *name;    /* "--lr" */
	cli_opt_type type;
	void *ptr;           /* const char **, int *, double *, int * */
	const char *metavar; /* "X" in "--lr X" */
	const char *help;
	double lo, hi;       /* range for numbers (inclusive) */
	int positive;        /* numbers: must be > 0 (lo is then ignored) */
	int cpus_default;    /* OPT_INT: its default is the CPUs this process may use */
} cli_opt;

/*
 * Messages (docs/cli.md, "Messages"): every failure prints exactly one line on
 * stderr, "bvtool CMD: <message>"; a misuse (an unknown flag, a missing or bad
 * value: exit 2) adds one more, the command's short usage line. main() sets the
 * command that runs, whose name and usage these use.
 */
void cli_set_command(const cli_cmd *cmd);
/* Parse argv[1..] against opts (terminated by a NULL name). Returns 0 to go on,
 * -1 after printing --help (the command then exits 0), or BV_EXIT_USAGE after
 * printing the error line and the short usage to stderr. */
int cli_parse(const cli_cmd *cmd, int argc, char **argv);
/* The same for a command that takes arguments besides its options (import's
 * DIR, merge's shards): up to max_pos of them, in order, into pos (pointers
 * into argv), their number in *n_pos; more is a misuse. "--" ends the options. */
int cli_parse_args(const cli_cmd *cmd, int argc, char **argv, char **pos, int max_pos, int *n_pos);
/* A misuse found after parsing (a missing argument): the error line and the
 * short usage to stderr; returns BV_EXIT_USAGE. */
int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cli_help(FILE *f, const cli_cmd *cmd);
/* The error line (bv_error_last) to stderr, the short usage too when the code
 * is a usage error, then the exit status for a BV_E* code. */
int cli_fail(int code);
int cli_exit_code(int code);

const cli_cmd *cli_commands(int *n);

int cmd_train(const cli_cmd *cmd, int argc, char **argv);
int cmd_collect(const cli_cmd *cmd, int argc, char **argv);
int cmd_status(const cli_cmd *cmd, int argc, char **argv);
int cmd_decompose(const cli_cmd *cmd, int argc, char **argv);
int cmd_dynamics(const cli_cmd *cmd, int argc, char **argv);
int cmd_report(const cli_cmd *cmd, int argc, char **argv);
int cmd_plot(const cli_cmd *cmd, int argc, char **argv);
int cmd_import(const cli_cmd *cmd, int argc, char **argv);
int cmd_export(const cli_cmd *cmd, int argc, char **argv);
int cmd_merge(const cli_cmd *cmd, int argc, char **argv);

#endif
