/*
 * `bvtool status`: the cells of a collection and where each stands — done
 * (with its test accuracy), running (a collect holds the database), interrupted
 * (marked running, but no collect is at work: the next collect redoes it), or
 * pending (not started yet).
 */
#include "cli.h"

#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "db.h"

/* 1 when another process (a collect) holds the database's lock. */
static int collect_active(const char *path)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return 0;
	int busy = flock(fd, LOCK_SH | LOCK_NB) != 0;
	close(fd);
	return busy;
}

int cmd_status(const cli_cmd *cmd, int argc, char **argv)
{
	const char *db_path = "runs.db";
	const cli_opt opts[] = {
		{"--db", OPT_STR, &db_path, "FILE", "the database of a collect"},
		{0},
	};
	cli_cmd local = *cmd;
	local.opts = opts;
	bv_db *db = NULL;
	bv_run *runs = NULL;
	int n = 0, rc = cli_parse(&local, argc, argv);
	if (rc)
		return rc < 0 ? BV_EXIT_OK : rc;
	if ((rc = bv_db_open(&db, db_path, BV_DB_READONLY)) != 0 ||
	    (rc = bv_db_runs_list(db, &runs, &n)) != 0) {
		rc = cli_fail(rc);
		goto done;
	}
	const int active = collect_active(db_path);
	int n_done = 0, n_running = 0, n_interrupted = 0, n_pending = 0, n_failed = 0;
	printf("%-10s %6s %5s  %-11s %7s  %9s\n", "method", "temp", "seed", "status", "epochs", "test acc");
	for (int i = 0; i < n; i++) {
		const bv_run *r = &runs[i];
		const char *st = r->status;
		if (strcmp(st, "running") == 0 && !active)
			st = "interrupted";
		n_done += strcmp(st, "done") == 0;
		n_running += strcmp(st, "running") == 0;
		n_interrupted += strcmp(st, "interrupted") == 0;
		n_pending += strcmp(st, "pending") == 0;
		n_failed += strcmp(st, "failed") == 0;
		char temp[16] = "-", acc[16] = "-";
		if (!isnan(r->temperature))
			snprintf(temp, sizeof temp, "%g", r->temperature);
		if (!isnan(r->test_acc))
			snprintf(acc, sizeof acc, "%.2f%%", 100 * r->test_acc);
		printf("%-10s %6s %5d  %-11s %3d/%-3d  %9s\n", r->method, temp, r->seed, st,
		       r->epochs_done, r->epochs, acc);
	}
	printf("%d runs: %d done, %d running, %d interrupted, %d pending, %d failed%s\n", n, n_done,
	       n_running, n_interrupted, n_pending, n_failed,
	       n_interrupted + n_pending + n_failed && !active
		       ? " (run the same collect again to finish them)"
		       : "");
	rc = BV_EXIT_OK;
done:
	free(runs);
	bv_db_close(db);
	return rc;
}
