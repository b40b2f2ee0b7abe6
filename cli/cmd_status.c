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
#include <sys/stat.h>
#include <unistd.h>

#include "db.h"
#include "train.h"

/* The database file, opened only to ask for its lock. A FIFO or device is
 * refused here, before SQLite's open could block on it for ever; a missing file
 * is left to bv_db_open to name (*out_fd = -1). */
static int open_lock_probe(int *out_fd, const char *path)
{
	struct stat st;
	size_t size;
	*out_fd = -1;
	if (stat(path, &st) != 0 || S_ISDIR(st.st_mode))
		return 0;
	return bv_open_input(out_fd, &size, path);
}

/* 1 when another process (a collect) holds the database's lock. */
static int collect_active(int fd)
{
	return fd >= 0 && flock(fd, LOCK_SH | LOCK_NB) != 0;
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
	int n = 0, lock_fd = -1, rc = cli_parse(&local, argc, argv);
	if (rc)
		return rc < 0 ? BV_EXIT_OK : rc;
	if ((rc = open_lock_probe(&lock_fd, db_path)) != 0 ||
	    (rc = bv_db_open(&db, db_path, BV_DB_READONLY)) != 0 ||
	    (rc = bv_db_runs_list(db, &runs, &n)) != 0) {
		rc = cli_fail(rc);
		goto done;
	}
	const int active = collect_active(lock_fd);
	int n_done = 0, n_running = 0, n_interrupted = 0, n_pending = 0, n_failed = 0;
	/* an init column only for a collection with inits (collect --inits M) */
	int inits = 0;
	for (int i = 0; i < n; i++)
		inits |= runs[i].init > 1;
	printf("%-10s %6s %5s%s  %-11s %7s  %9s\n", "method", "temp", "seed", inits ? "  init" : "",
	       "status", "epochs", "test acc");
	for (int i = 0; i < n; i++) {
		const bv_run *r = &runs[i];
		/* a running run without the collect that runs it was interrupted */
		const int interrupted = r->status == BV_RUN_RUNNING && !active;
		const char *st = interrupted ? "interrupted" : bv_db_status_name(r->status);
		n_done += r->status == BV_RUN_DONE;
		n_running += r->status == BV_RUN_RUNNING && !interrupted;
		n_interrupted += interrupted;
		n_pending += r->status == BV_RUN_PENDING;
		n_failed += r->status == BV_RUN_FAILED;
		char temp[32] = "-", acc[16] = "-";
		if (!isnan(r->temperature))
			bv_number_format(temp, sizeof temp, r->temperature);
		if (!isnan(r->test_acc))
			snprintf(acc, sizeof acc, "%.2f%%", 100 * r->test_acc);
		char init[16] = "";
		if (inits)
			snprintf(init, sizeof init, "  %4d", r->init);
		printf("%-10s %6s %5d%s  %-11s %3d/%-3d  %9s\n", bv_db_method_name(r->method), temp,
		       r->seed, init, st, r->epochs_done, r->epochs, acc);
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
	if (lock_fd >= 0)
		close(lock_fd);
	return rc;
}
