/*
 * `bvtool report`: the results tables of a database (analysis/report.c) as
 * Markdown, CSV or JSON, on stdout or, with --out, in a file written
 * atomically (the whole report is built in memory first: a failure leaves no
 * file, and an earlier one as it was).
 */
#include "cli.h"

#include <string.h>

#include "analysis.h"

int cmd_report(const cli_cmd *cmd, int argc, char **argv)
{
	const char *db_path = "runs.db", *format = "md", *out_path = NULL;
	const cli_opt opts[] = {
		{"--db", OPT_STR, &db_path, "FILE", "the database of a collect"},
		{"--format", OPT_STR, &format, "F", "md, csv or json"},
		{"--out", OPT_STR, &out_path, "FILE", "write the report to FILE (atomically) instead of stdout"},
		{0},
	};
	cli_cmd local = *cmd;
	local.opts = opts;
	bv_db *db = NULL;
	bv_buf buf;
	int rc = cli_parse(&local, argc, argv);
	if (rc)
		return rc < 0 ? BV_EXIT_OK : rc;
	if (strcmp(format, "md") != 0 && strcmp(format, "csv") != 0 && strcmp(format, "json") != 0)
		return cli_fail(bv_error_set(BV_EINVAL, "--format: unknown format '%s' (expected md, csv or json)",
					     format));
	/* refuse a device, FIFO or directory as --out before any work */
	if (out_path && (rc = bv_check_output(out_path)) != 0)
		return cli_fail(rc);
	bv_buf_init(&buf);
	if ((rc = bv_db_open(&db, db_path, BV_DB_READONLY)) == 0)
		rc = bv_report_db(db, &buf, format);
	bv_db_close(db);
	if (rc == 0 && out_path) {
		rc = bv_write_file_atomic(out_path, buf.data, buf.len);
	} else if (rc == 0) {
		if (fwrite(buf.data, 1, buf.len, stdout) != buf.len || fflush(stdout) != 0)
			rc = bv_error_set(BV_EIO, "cannot write the report to stdout");
	}
	bv_buf_release(&buf);
	return rc ? cli_fail(rc) : BV_EXIT_OK;
}
