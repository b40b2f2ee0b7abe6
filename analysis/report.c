/*
 * bvtool report: the "WSL training results" table of the paper for one
 * database — teacher accuracy; each method's test accuracy (mean ± std over
 * seeds) at the last and at the best epoch; paired per-seed differences
 * WSL − KD and KD − CE with 95% t intervals; regularization-sample counts per
 * temperature; the correlation table — printed as Markdown, CSV (long format:
 * one value per row) or JSON. Everything is read through SQL on the documented
 * tables and views, so each number can be re-derived by a user.
 */
#include "analysis.h"

#include <math.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#define MAX_GROUPS 256
#define MAX_SEEDS 1024

typedef struct acc_group {
	char method[16];
	double T;                  /* NAN for ce / teacher */
	int n;                     /* seeds */
	int seeds[MAX_SEEDS];
	double last[MAX_SEEDS];    /* per seed: final test accuracy */
	double best[MAX_SEEDS];    /* per seed: best test accuracy over epochs */
} acc_group;

typedef struct report {
	int n_groups;
	acc_group *groups;
} report;

static int same_T(double a, double b)
{
	return isnan(a) ? isnan(b) : a == b;
}

static acc_group *group_of(report *r, const char *method, double T)
{
	for (int i = 0; i < r->n_groups; i++)
		if (strcmp(r->groups[i].method, method) == 0 && same_T(r->groups[i].T, T))
			return &r->groups[i];
	if (r->n_groups >= MAX_GROUPS)
		return NULL;
	acc_group *g = &r->groups[r->n_groups++];
	memset(g, 0, sizeof *g);
	snprintf(g->method, sizeof g->method, "%s", method);
	g->T = T;
	return g;
}

static int load_accuracy(report *r, bv_db *db)
{
	sqlite3_stmt *st = NULL;
	const char *sql = "SELECT method, temperature, seed, final_acc, best_acc FROM run_accuracy "
			  "WHERE status = 'done' ORDER BY CASE method WHEN 'teacher' THEN 0 WHEN 'ce' "
			  "THEN 1 WHEN 'kd' THEN 2 WHEN 'wsl' THEN 3 ELSE 4 END, temperature, seed";
	int rc;
	if ((rc = bv_db_prepare(db, &st, sql)) != 0)
		return rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *m = (const char *)sqlite3_column_text(st, 0);
		double T = sqlite3_column_type(st, 1) == SQLITE_NULL ? NAN : sqlite3_column_double(st, 1);
		acc_group *g = group_of(r, m, T);
		if (!g || g->n >= MAX_SEEDS)
			continue;
		g->seeds[g->n] = sqlite3_column_int(st, 2);
		g->last[g->n] = sqlite3_column_double(st, 3);
		g->best[g->n] = sqlite3_column_type(st, 4) == SQLITE_NULL ? g->last[g->n]
									   : sqlite3_column_double(st, 4);
		g->n++;
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : bv_db_error(db);
}

/* Per-seed differences a - b over the seeds both groups have. */
static int paired(double *d, const acc_group *a, const acc_group *b)
{
	int n = 0;
	for (int i = 0; i < a->n; i++)
		for (int j = 0; j < b->n; j++)
			if (a->seeds[i] == b->seeds[j])
				d[n++] = 100.0 * (a->last[i] - b->last[j]);
	return n;
}

/* ---- output helpers ------------------------------------------------------- */

typedef enum { FMT_MD, FMT_CSV, FMT_JSON } fmt;

/* a JSON string, escaped */
static void jstr(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fprintf(f, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			fprintf(f, "\\u%04x", (unsigned char)*s);
		else
			fputc(*s, f);
	}
	fputc('"', f);
}

static void jnum(FILE *f, double v)
{
	if (isnan(v) || isinf(v))
		fputs("null", f);
	else
		fprintf(f, "%.10g", v);
}

static void temp_text(char *out, size_t size, double T)
{
	if (isnan(T))
		snprintf(out, size, "-");
	else
		snprintf(out, size, "%g", T);
}

/* CSV long format: table,method,temperature,quantity,value */
static void csv_row(FILE *f, const char *table, const char *method, double T, const char *q, double v)
{
	fprintf(f, "%s,%s,", table, method);
	if (!isnan(T))
		fprintf(f, "%g", T);
	fprintf(f, ",%s,", q);
	if (!isnan(v))
		fprintf(f, "%.10g", v);
	fputc('\n', f);
}

int bv_report_db(bv_db *db, FILE *f, const char *format)
{
	report r = {0};
	fmt fm;
	int rc = 0;
	sqlite3_stmt *st = NULL;
	double d[MAX_SEEDS];
	char cfg_teacher[256] = "?", cfg_student[256] = "?", cfg_data[1100] = "?", cfg_epochs[32] = "?";

	if (strcmp(format, "md") == 0 || strcmp(format, "markdown") == 0)
		fm = FMT_MD;
	else if (strcmp(format, "csv") == 0)
		fm = FMT_CSV;
	else if (strcmp(format, "json") == 0)
		fm = FMT_JSON;
	else
		return bv_error_set(BV_EINVAL, "--format: unknown format '%s' (expected md, csv or json)", format);
	r.groups = calloc(MAX_GROUPS, sizeof *r.groups);
	if (!r.groups)
		return bv_error_set(BV_ENOMEM, "out of memory for the report");
	if ((rc = load_accuracy(&r, db)) != 0)
		goto done;
	if (r.n_groups == 0) {
		rc = bv_error_set(BV_ESTATE, "'%s' has no finished runs: run bvtool collect first", bv_db_path(db));
		goto done;
	}
	bv_db_config_get(db, "teacher", cfg_teacher, sizeof cfg_teacher);
	bv_db_config_get(db, "student", cfg_student, sizeof cfg_student);
	bv_db_config_get(db, "data", cfg_data, sizeof cfg_data);
	bv_db_config_get(db, "epochs", cfg_epochs, sizeof cfg_epochs);

	/* ---- accuracy table */
	if (fm == FMT_MD) {
		fprintf(f, "# bvtool report: %s\n\n", bv_db_path(db));
		fprintf(f, "Data `%s`; teacher `%s`; students `%s`, %s epochs. Test accuracy in %%, "
			   "mean ± standard deviation over seeds (bootstrap replicas); *best* is each "
			   "run's best epoch.\n\n",
			cfg_data, cfg_teacher, cfg_student, cfg_epochs);
		fprintf(f, "## Test accuracy\n\n| method | T | seeds | last epoch | best epoch |\n|---|---|---|---|---|\n");
	} else if (fm == FMT_CSV) {
		fprintf(f, "table,method,temperature,quantity,value\n");
	} else {
		fprintf(f, "{\n  \"database\": ");
		jstr(f, bv_db_path(db));
		fprintf(f, ",\n  \"accuracy\": [");
	}
	for (int i = 0; i < r.n_groups; i++) {
		const acc_group *g = &r.groups[i];
		double lm, ls, lh, bm, bs, bh, tmp[MAX_SEEDS];
		char tt[32];
		for (int j = 0; j < g->n; j++)
			tmp[j] = 100 * g->last[j];
		bv_mean_ci(&lm, &ls, &lh, tmp, g->n);
		for (int j = 0; j < g->n; j++)
			tmp[j] = 100 * g->best[j];
		bv_mean_ci(&bm, &bs, &bh, tmp, g->n);
		temp_text(tt, sizeof tt, g->T);
		if (fm == FMT_MD) {
			fprintf(f, "| %s | %s | %d | %.2f", g->method, tt, g->n, lm);
			if (g->n > 1)
				fprintf(f, " ± %.2f", ls);
			fprintf(f, " | %.2f", bm);
			if (g->n > 1)
				fprintf(f, " ± %.2f", bs);
			fprintf(f, " |\n");
		} else if (fm == FMT_CSV) {
			csv_row(f, "accuracy", g->method, g->T, "seeds", g->n);
			csv_row(f, "accuracy", g->method, g->T, "last_mean", lm);
			csv_row(f, "accuracy", g->method, g->T, "last_sd", ls);
			csv_row(f, "accuracy", g->method, g->T, "best_mean", bm);
			csv_row(f, "accuracy", g->method, g->T, "best_sd", bs);
		} else {
			fprintf(f, "%s\n    {\"method\": \"%s\", \"temperature\": ", i ? "," : "", g->method);
			jnum(f, g->T);
			fprintf(f, ", \"seeds\": %d, \"last_mean\": ", g->n);
			jnum(f, lm);
			fprintf(f, ", \"last_sd\": ");
			jnum(f, ls);
			fprintf(f, ", \"best_mean\": ");
			jnum(f, bm);
			fprintf(f, ", \"best_sd\": ");
			jnum(f, bs);
			fprintf(f, "}");
		}
	}

	/* ---- paired differences */
	if (fm == FMT_MD)
		fprintf(f, "\n## Paired differences at the last epoch\n\nPer seed (the same bootstrap replica, "
			   "initial weights and batch order), in percentage points; 95%% t interval of the "
			   "mean.\n\n| comparison | T | seeds | mean | 95%% interval |\n|---|---|---|---|---|\n");
	else if (fm == FMT_JSON)
		fprintf(f, "\n  ],\n  \"paired\": [");
	int n_out = 0;
	const acc_group *ce = NULL;
	for (int i = 0; i < r.n_groups; i++)
		if (strcmp(r.groups[i].method, "ce") == 0)
			ce = &r.groups[i];
	for (int i = 0; i < r.n_groups; i++) {
		const acc_group *g = &r.groups[i];
		const acc_group *other[2] = {NULL, NULL};
		const char *names[2] = {NULL, NULL};
		if (strcmp(g->method, "wsl") == 0) {
			for (int j = 0; j < r.n_groups; j++)
				if (strcmp(r.groups[j].method, "kd") == 0 && same_T(r.groups[j].T, g->T))
					other[0] = &r.groups[j];
			names[0] = "wsl - kd";
			other[1] = ce;
			names[1] = "wsl - ce";
		} else if (strcmp(g->method, "kd") == 0 || strcmp(g->method, "kd-filter") == 0) {
			other[0] = ce;
			names[0] = strcmp(g->method, "kd") == 0 ? "kd - ce" : "kd-filter - ce";
		}
		for (int c = 0; c < 2; c++) {
			if (!other[c])
				continue;
			int n = paired(d, g, other[c]);
			if (n == 0)
				continue;
			double mean, sd, h;
			char tt[32];
			bv_mean_ci(&mean, &sd, &h, d, n);
			temp_text(tt, sizeof tt, g->T);
			if (fm == FMT_MD) {
				fprintf(f, "| %s | %s | %d | %+.2f | ", names[c], tt, n, mean);
				if (n > 1)
					fprintf(f, "[%+.2f, %+.2f] |\n", mean - h, mean + h);
				else
					fprintf(f, "(one seed) |\n");
			} else if (fm == FMT_CSV) {
				csv_row(f, "paired", names[c], g->T, "seeds", n);
				csv_row(f, "paired", names[c], g->T, "mean", mean);
				csv_row(f, "paired", names[c], g->T, "ci_low", mean - h);
				csv_row(f, "paired", names[c], g->T, "ci_high", mean + h);
			} else {
				fprintf(f, "%s\n    {\"comparison\": \"%s\", \"temperature\": ", n_out ? "," : "", names[c]);
				jnum(f, g->T);
				fprintf(f, ", \"seeds\": %d, \"mean\": ", n);
				jnum(f, mean);
				fprintf(f, ", \"ci_low\": ");
				jnum(f, mean - h);
				fprintf(f, ", \"ci_high\": ");
				jnum(f, mean + h);
				fprintf(f, "}");
			}
			n_out++;
		}
	}
	if (fm == FMT_MD && n_out == 0)
		fprintf(f, "| (no paired runs) | | | | |\n");

	/* ---- regularization samples: the last decomposed epoch of each split */
	const char *reg_sql =
		"SELECT c.split, c.epoch, c.temperature, c.method, c.n_regularization, c.n_samples, "
		"c.share, c.mean_bias, c.mean_variance, d.criterion FROM regularization_counts c "
		"JOIN decompositions d ON d.temperature = c.temperature AND d.epoch = c.epoch AND d.split = c.split "
		"WHERE c.method != 'ce' AND c.epoch = (SELECT max(epoch) FROM decompositions d2 WHERE d2.split = c.split) "
		"ORDER BY CASE c.split WHEN 'test' THEN 0 WHEN 'train' THEN 1 ELSE 2 END, c.temperature, c.method";
	if ((rc = bv_db_prepare(db, &st, reg_sql)) != 0)
		goto done;
	if (fm == FMT_MD)
		fprintf(f, "\n## Regularization samples\n\nSamples whose bias rises and variance falls "
			   "against the paired ce students (or the criterion named), at the last decomposed "
			   "epoch.\n\n| split | epoch | T | method | criterion | count | share | mean bias | mean variance |\n"
			   "|---|---|---|---|---|---|---|---|---|\n");
	else if (fm == FMT_JSON)
		fprintf(f, "\n  ],\n  \"regularization\": [");
	n_out = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *split = (const char *)sqlite3_column_text(st, 0);
		const int E = sqlite3_column_int(st, 1);
		const double T = sqlite3_column_double(st, 2);
		const char *m = (const char *)sqlite3_column_text(st, 3);
		const int cnt = sqlite3_column_int(st, 4), n = sqlite3_column_int(st, 5);
		const double share = sqlite3_column_double(st, 6), mb = sqlite3_column_double(st, 7),
			     mv = sqlite3_column_double(st, 8);
		const char *crit = (const char *)sqlite3_column_text(st, 9);
		if (fm == FMT_MD) {
			fprintf(f, "| %s | %d | %g | %s | %s | %d of %d | %.2f%% | %.4f | %.4f |\n", split, E, T, m,
				crit, cnt, n, 100 * share, mb, mv);
		} else if (fm == FMT_CSV) {
			char q[64];
			snprintf(q, sizeof q, "%s_epoch%d_count", split, E);
			csv_row(f, "regularization", m, T, q, cnt);
			snprintf(q, sizeof q, "%s_epoch%d_share", split, E);
			csv_row(f, "regularization", m, T, q, share);
		} else {
			fprintf(f, "%s\n    {\"split\": \"%s\", \"epoch\": %d, \"temperature\": %g, \"method\": \"%s\", "
				   "\"criterion\": \"%s\", \"count\": %d, \"samples\": %d, \"share\": ",
				n_out ? "," : "", split, E, T, m, crit, cnt, n);
			jnum(f, share);
			fprintf(f, ", \"mean_bias\": ");
			jnum(f, mb);
			fprintf(f, ", \"mean_variance\": ");
			jnum(f, mv);
			fprintf(f, "}");
		}
		n_out++;
	}
	sqlite3_finalize(st);
	st = NULL;
	if (rc != SQLITE_DONE) {
		rc = bv_db_error(db);
		goto done;
	}
	rc = 0;
	if (fm == FMT_MD && n_out == 0)
		fprintf(f, "| (not decomposed yet: run bvtool decompose) | | | | | | | | |\n");

	/* ---- correlations */
	const char *corr_sql = "SELECT method, split, epoch, criterion, n_points, pearson_r, pearson_p, "
			       "spearman_rho, spearman_p, r_ci_low, r_ci_high, n_boot FROM correlations "
			       "ORDER BY CASE split WHEN 'test' THEN 0 WHEN 'train' THEN 1 ELSE 2 END, method";
	if ((rc = bv_db_prepare(db, &st, corr_sql)) != 0)
		goto done;
	if (fm == FMT_MD)
		fprintf(f, "\n## Correlation: regularization samples vs accuracy\n\nAcross temperatures: "
			   "the number of regularization samples against the students' mean test accuracy "
			   "at the same epoch.\n\n| method | split | epoch | criterion | temperatures | "
			   "Pearson r (p) | Spearman rho (p) | bootstrap 95%% interval of r |\n"
			   "|---|---|---|---|---|---|---|---|\n");
	else if (fm == FMT_JSON)
		fprintf(f, "\n  ],\n  \"correlation\": [");
	n_out = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *m = (const char *)sqlite3_column_text(st, 0);
		const char *split = (const char *)sqlite3_column_text(st, 1);
		const int E = sqlite3_column_int(st, 2);
		const char *crit = (const char *)sqlite3_column_text(st, 3);
		const int np = sqlite3_column_int(st, 4), nb = sqlite3_column_int(st, 11);
		double v[6];
		for (int j = 0; j < 6; j++)
			v[j] = sqlite3_column_type(st, 5 + j) == SQLITE_NULL ? NAN : sqlite3_column_double(st, 5 + j);
		if (fm == FMT_MD) {
			fprintf(f, "| %s | %s | %d | %s | %d | %.3f (%.3g) | %.3f (%.3g) | ", m, split, E, crit, np, v[0],
				v[1], v[2], v[3]);
			if (nb > 0 && !isnan(v[4]))
				fprintf(f, "[%.3f, %.3f] (%d resamples) |\n", v[4], v[5], nb);
			else
				fprintf(f, "- |\n");
		} else if (fm == FMT_CSV) {
			char q[64];
			const char *names[6] = {"pearson_r", "pearson_p", "spearman_rho", "spearman_p", "r_ci_low",
						"r_ci_high"};
			for (int j = 0; j < 6; j++) {
				snprintf(q, sizeof q, "%s_epoch%d_%s", split, E, names[j]);
				csv_row(f, "correlation", m, NAN, q, v[j]);
			}
		} else {
			fprintf(f, "%s\n    {\"method\": \"%s\", \"split\": \"%s\", \"epoch\": %d, \"criterion\": \"%s\", "
				   "\"temperatures\": %d, \"pearson_r\": ",
				n_out ? "," : "", m, split, E, crit, np);
			jnum(f, v[0]);
			fprintf(f, ", \"pearson_p\": ");
			jnum(f, v[1]);
			fprintf(f, ", \"spearman_rho\": ");
			jnum(f, v[2]);
			fprintf(f, ", \"spearman_p\": ");
			jnum(f, v[3]);
			fprintf(f, ", \"r_ci_low\": ");
			jnum(f, v[4]);
			fprintf(f, ", \"r_ci_high\": ");
			jnum(f, v[5]);
			fprintf(f, ", \"n_boot\": %d}", nb);
		}
		n_out++;
	}
	sqlite3_finalize(st);
	st = NULL;
	if (rc != SQLITE_DONE) {
		rc = bv_db_error(db);
		goto done;
	}
	rc = 0;
	if (fm == FMT_MD && n_out == 0)
		fprintf(f, "| (none: needs bvtool decompose and >= 3 temperatures) | | | | | | | |\n");
	if (fm == FMT_JSON)
		fprintf(f, "\n  ]\n}\n");
done:
	if (st)
		sqlite3_finalize(st);
	free(r.groups);
	return rc;
}
