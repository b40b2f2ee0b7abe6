/*
 * `bvtool dynamics`: the training dynamics of every sample of every done
 * student run, from its recorded epochs (analysis/dynamics.c does the work;
 * this file parses flags and prints the summary).
 */
#include "cli.h"

#include <string.h>

#include "analysis.h"

static void print_line(void *ctx, const char *line)
{
	(void)ctx;
	printf("%s\n", line);
	fflush(stdout);
}

int cmd_dynamics(const cli_cmd *cmd, int argc, char **argv)
{
	const char *db_path = "runs.db", *split = "test";
	const cli_opt opts[] = {
		{"--db", OPT_STR, &db_path, "FILE", "the database of a collect"},
		{"--split", OPT_STR, &split, "S", "test, or train (needs --record-train)"},
		{0},
	};
	cli_cmd local = *cmd;
	local.opts = opts;
	bv_db *db = NULL;
	int rc = cli_parse(&local, argc, argv);
	if (rc)
		return rc < 0 ? BV_EXIT_OK : rc;
	if (strcmp(split, "test") != 0 && strcmp(split, "train") != 0)
		return cli_fail(bv_error_set(BV_EINVAL, "--split: unknown split '%s' (expected test or train)",
					     split));
	/* an existing database only: a new one has no runs */
	if ((rc = bv_db_open(&db, db_path, BV_DB_WRITE)) == 0)
		rc = bv_dynamics_db(db, split, print_line, NULL);
	bv_db_close(db);
	return rc ? cli_fail(rc) : BV_EXIT_OK;
}
