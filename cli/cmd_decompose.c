/*
 * `bvtool decompose`: the per-sample bias/variance decomposition of a
 * collected database, the regularization samples and their correlation with
 * accuracy (analysis/decompose_db.c does the work; this file parses flags and
 * prints the summary).
 */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "analysis.h"

static void print_line(void *ctx, const char *line)
{
	(void)ctx;
	printf("%s\n", line);
	fflush(stdout);
}

static int parse_temps(bv_decompose_opts *o, const char *s)
{
	char buf[1024];
	if (!*s || strlen(s) >= sizeof buf)
		return bv_error_set(BV_EINVAL, "--temp: expected a temperature such as 4 (or a list 2,4), got '%s'", s);
	strcpy(buf, s);
	for (char *tok = buf, *next; tok; tok = next) {
		double t;
		next = strchr(tok, ',');
		if (next)
			*next++ = '\0';
		if (bv_parse_double(&t, tok, -1e308, 1e308, "--temp") != 0 || !(t > 0) ||
		    o->n_temps >= BV_MAX_TEMPS)
			return bv_error_set(BV_EINVAL, "--temp: bad temperature '%s' (expected a number > 0)", tok);
		o->temps[o->n_temps++] = t;
	}
	return 0;
}

int cmd_decompose(const cli_cmd *cmd, int argc, char **argv)
{
	const char *db_path = "runs.db", *temp = NULL, *epoch = "all", *split = "test",
		   *criterion = "bv";
	int n_boot = 200, boot_seed = 1;
	const cli_opt opts[] = {
		{"--db", OPT_STR, &db_path, "FILE", "the database of a collect"},
		{"--temp", OPT_STR, &temp, "T", "temperature(s) to analyse, e.g. 4 or 2,4 (default: all in the database)"},
		{"--epoch", OPT_STR, &epoch, "E", "an epoch, last, or all recorded epochs"},
		{"--split", OPT_STR, &split, "S", "test, train (needs --record-train) or oob (out-of-bag training samples)"},
		{"--criterion", OPT_STR, &criterion, "C", "regularization samples: bv, grad or teacher"},
		{"--bootstrap", OPT_INT, &n_boot, "N", "bootstrap resamples of seeds for the interval of r (0: none)", 0, 1000000},
		{"--boot-seed", OPT_INT, &boot_seed, "N", "seed of the bootstrap", 0, 2147483647},
		{0},
	};
	cli_cmd local = *cmd;
	local.opts = opts;
	bv_decompose_opts o = {0};
	bv_db *db = NULL;
	int rc = cli_parse(&local, argc, argv);
	if (rc)
		return rc < 0 ? BV_EXIT_OK : rc;
	if (temp && (rc = parse_temps(&o, temp)) != 0)
		return cli_fail(rc);
	if (strcmp(epoch, "all") == 0) {
		o.epoch = 0;
	} else if (strcmp(epoch, "last") == 0) {
		o.epoch = -1;
	} else {
		long e;
		if (bv_parse_long(&e, epoch, 1, 1000000, "--epoch") != 0)
			return cli_fail(bv_error_set(BV_EINVAL, "--epoch: expected an epoch number, last or all, got '%s'",
						     epoch));
		o.epoch = (int)e;
	}
	if (strcmp(split, "test") != 0 && strcmp(split, "train") != 0 && strcmp(split, "oob") != 0)
		return cli_fail(bv_error_set(BV_EINVAL, "--split: unknown split '%s' (expected test, train or oob)",
					     split));
	o.split = split;
	if ((rc = bv_criterion_parse(&o.criterion, criterion, "--criterion")) != 0)
		return cli_fail(rc);
	o.n_boot = n_boot;
	o.boot_seed = (unsigned long)boot_seed;
	/* an existing database only: decompose has nothing to analyse in a new one */
	if ((rc = bv_db_open(&db, db_path, BV_DB_WRITE)) == 0)
		rc = bv_decompose_db(db, &o, print_line, NULL);
	bv_db_close(db);
	return rc ? cli_fail(rc) : BV_EXIT_OK;
}
