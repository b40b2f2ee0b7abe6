/*
 * What the database targets (fuzz_db, fuzz_db_sql, fuzz_writers) share: the
 * commands that read a database from someone else, run on a file through the
 * public API exactly as bvtool runs them —
 *   report:    bv_db_open(READONLY), bv_report_db in md, csv and json
 *   plot:      bv_db_open(READONLY), bv_plot_write (scripts and data files
 *              only: plots never runs gnuplot)
 *   decompose: bv_db_open(WRITE), bv_decompose_db of every split and epoch
 *              with each criterion and a small bootstrap, then report and
 *              plot on its result
 * and the seed database a target starts from (BV_FUZZ_SEED_DB, a committed
 * file of the corpus of fuzz_db, read once).
 */
#ifndef BV_FUZZ_DB_H
#define BV_FUZZ_DB_H

#include "fuzz_common.h"

#include <math.h>

#include "analysis.h"
#include "plots.h"

static inline void fz_say(void *ctx, const char *line)
{
	(void)ctx;
	(void)line;
}

/* bv_report_db in the three formats, into a buffer that is dropped. */
static inline void fz_report_all(bv_db *db)
{
	static const char *const formats[] = {"md", "csv", "json"};
	for (int i = 0; i < 3; i++) {
		bv_buf b;
		bv_buf_init(&b);
		bv_report_db(db, &b, formats[i]);
		bv_buf_release(&b);
	}
}

static inline void fz_plot(bv_db *db, const char *name)
{
	char out[512];
	bv_plot_result res;
	fz_path(out, sizeof out, name);
	if (bv_plot_write(&res, db, out, NAN, "png") == 0) {
		bv_plot_commit(&res, out, 0); /* the scripts into place, no images */
		bv_plot_result_release(&res);
	}
}

/* `path` is a scratch copy of the database under test; it is opened
 * read-only first, then for writing (decompose changes it). */
static inline void fz_analyse(const char *path)
{
	bv_db *db = NULL;
	if (bv_db_open(&db, path, BV_DB_READONLY) == 0) {
		fz_report_all(db);
		fz_plot(db, "plot-ro");
		bv_db_close(db);
	}
	db = NULL;
	if (bv_db_open(&db, path, BV_DB_WRITE) == 0) {
		static const char *const splits[] = {"test", "oob", "train"};
		for (int i = 0; i < 3; i++) {
			bv_decompose_opts o;
			memset(&o, 0, sizeof o);
			o.n_temps = 0;
			o.epoch = i == 0 ? 0 : -1;
			o.split = splits[i];
			o.criterion = (bv_criterion)i; /* bv, grad, teacher */
			o.n_boot = i == 0 ? 3 : 0;
			o.boot_seed = 1;
			bv_decompose_db(db, &o, fz_say, NULL);
		}
		fz_report_all(db);
		fz_plot(db, "plot-rw");
		bv_db_close(db);
	}
}

/* The bytes of the seed database, read once. */
static inline const unsigned char *fz_seed_db(size_t *len)
{
	static unsigned char *seed;
	static size_t seed_len;
	if (!seed) {
		const char *p = getenv("BV_FUZZ_SEED_DB");
#ifdef BV_FUZZ_SEED_DB
		if (!p)
			p = BV_FUZZ_SEED_DB;
#endif
		if (!p) {
			fprintf(stderr, "fuzz: set BV_FUZZ_SEED_DB to a bvtool database\n");
			abort();
		}
		seed = fz_slurp(p, &seed_len);
	}
	*len = seed_len;
	return seed;
}

#endif
