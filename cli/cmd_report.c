/*
 * `bvtool report`: the results tables of a database (analysis/report.c) as
 * Markdown, CSV or JSON on stdout.
 */
#include "cli.h"

#include <string.h>

#include "analysis.h"

int cmd_report(const cli_cmd *cmd, int argc, char **argv)
{
	const char *db_path = "runs.db", *format = "md";
	const cli_opt opts[] = {
		{"--db", OPT_STR, &db_path, "FILE", "the database of a collect"},
		{"--format", OPT_STR, &format, "F", "md, csv or json"},
		{0},
	};
	cli_cmd local = *cmd;
	local.opts = opts;
	bv_db *db = NULL;
	int rc = cli_parse(&local, argc, argv);
	if (rc)
		return rc < 0 ? BV_EXIT_OK : rc;
	if (strcmp(format, "md") != 0 && strcmp(format, "csv") != 0 && strcmp(format, "json") != 0)
		return cli_fail(bv_error_set(BV_EINVAL, "--format: unknown format '%s' (expected md, csv or json)",
					     format));
	if ((rc = bv_db_open(&db, db_path, BV_DB_READONLY)) == 0)
		rc = bv_report_db(db, stdout, format);
	bv_db_close(db);
	return rc ? cli_fail(rc) : BV_EXIT_OK;
}
