/*
 * Loading what a decomposition reads (decompose_int.h): snapshots into
 * (B, N, K) arrays, every logit checked finite; K, the classes, from the
 * snapshots (db.h's contract), config n_classes only checked against it; the
 * teacher's logits and their cross-entropy at the labels; the out-of-bag
 * masks of the seeds from their in-bag counts.
 */
#include "decompose_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- snapshots ---------------------------------------------------------------- */

/* "run 7 (kd T=4 seed 2)" */
static void run_name(char *out, size_t size, const bv_run *r)
{
	if (isnan(r->temperature))
		snprintf(out, size, "run %lld (%s seed %d)", (long long)r->id,
			 bv_db_method_name(r->method), r->seed);
	else
		snprintf(out, size, "run %lld (%s T=%g seed %d)", (long long)r->id,
			 bv_db_method_name(r->method), r->temperature, r->seed);
}

int dc_load(float *buf, bv_db *db, const bv_run *const *runs, int B, int epoch, const char *split,
	    int N, int K)
{
	int rc;
	for (int b = 0; b < B; b++) {
		float *dst = buf + (size_t)b * N * K;
		char name[128];
		run_name(name, sizeof name, runs[b]);
		if ((rc = bv_db_logits_get(db, runs[b]->id, epoch, split, dst, N, K)) != 0)
			return bv_error_prefix(rc, "%s epoch %d", name, epoch);
		const size_t i = bv_first_nonfinite(dst, (size_t)N * K);
		if (i < (size_t)N * K)
			return bv_error_set(BV_EFORMAT,
					    "%s epoch %d: non-finite logit (%g) for %s sample %zu; "
					    "the run diverged or the database is damaged",
					    name, epoch, (double)dst[i], split, i / (size_t)K);
	}
	return 0;
}

/* ---- K, the classes --------------------------------------------------------- */

int dc_n_classes(long *out, bv_db *db)
{
	char text[64], safe[80];
	int rc;
	*out = 0;
	if ((rc = bv_db_config_get(db, "n_classes", text, sizeof text)) <= 0)
		return rc;
	if (bv_parse_long(out, text, 2, MAX_CLASSES, "n_classes") != 0) {
		bv_db_safe_text(safe, sizeof safe, (const unsigned char *)text);
		return bv_error_set(BV_EFORMAT,
				    "'%s': config n_classes is '%s', expected a whole number 2..%d" DAMAGED,
				    bv_db_path(db), safe, MAX_CLASSES);
	}
	return 0;
}

int dc_classes(int *out_k, bv_db *db, const dc_plan *p, const int *epochs, int n_epochs,
	       const char *snap, int64_t teacher_id, int teacher_epoch, long n_classes)
{
	bv_db_snapshot_ref *refs = malloc(sizeof *refs * ((size_t)p->n_runs * n_epochs + 1));
	int n = 0, rc;
	if (!refs)
		return bv_error_set(BV_ENOMEM, "out of memory");
	for (int i = 0; i < p->n_runs; i++)
		for (int e = 0; e < n_epochs; e++)
			if (p->runs[i].status == BV_RUN_DONE && p->runs[i].method != BV_RUN_TEACHER)
				refs[n++] = (bv_db_snapshot_ref){p->runs[i].id, epochs[e]};
	if (teacher_id)
		refs[n++] = (bv_db_snapshot_ref){teacher_id, teacher_epoch};
	rc = bv_db_snapshots_k(db, out_k, snap, refs, n, "this decomposition");
	free(refs);
	if (rc)
		return rc;
	if (*out_k < 2 || *out_k > MAX_CLASSES)
		return bv_error_set(BV_EFORMAT,
				    "'%s': the %s snapshots have k = %d, expected 2..%d classes"
				    DAMAGED, bv_db_path(db), snap, *out_k, MAX_CLASSES);
	if (n_classes > 0 && n_classes != *out_k)
		return bv_error_set(BV_EFORMAT,
				    "'%s': config n_classes is %ld, the snapshots of this "
				    "decomposition have k = %d" DAMAGED,
				    bv_db_path(db), n_classes, *out_k);
	return 0;
}

/* ---- the teacher and the in-bag counts ----------------------------------------- */

int dc_teacher_epoch(int *out, bv_db *db, const dc_plan *p, const char *snap)
{
	int *te = NULL, nte = 0, rc;
	*out = -1;
	if (!p->teacher_id)
		return 0;
	if ((rc = bv_db_epochs(db, p->teacher_id, snap, &te, &nte)) != 0)
		return rc;
	*out = nte > 0 ? te[nte - 1] : -1;
	free(te);
	return 0;
}

int dc_load_teacher(float **out, double **out_ce, bv_db *db, const dc_plan *p, int epoch,
		    const char *snap, const int *labels, int N, int K)
{
	float *teacher = malloc(sizeof(float) * (size_t)N * K);
	double *ce = malloc(sizeof(double) * (size_t)N);
	int rc = 0;
	*out = NULL;
	*out_ce = NULL;
	if (!teacher || !ce)
		rc = bv_error_set(BV_ENOMEM, "out of memory");
	else
		rc = bv_db_logits_get(db, p->teacher_id, epoch, snap, teacher, N, K);
	if (rc) {
		free(teacher);
		free(ce);
		return rc;
	}
	for (int i = 0; i < N; i++)
		ce[i] = bv_math_ce(teacher + (size_t)i * K, K, labels[i]);
	*out = teacher;
	*out_ce = ce;
	return 0;
}

int dc_load_oob(int **out, bv_db *db, const dc_rep_t *reps, int B, int N)
{
	int rc, *oob = malloc(sizeof(int) * (size_t)B * N);
	*out = NULL;
	if (!oob)
		return bv_error_set(BV_ENOMEM, "out of memory");
	for (int b = 0; b < B; b++) {
		const int seed = dc_rep_seed(reps[b]);
		if ((rc = bv_db_check_inbag(db, seed)) != 0 ||
		    (rc = bv_db_inbag_get(db, seed, oob + (size_t)b * N, N)) != 0) {
			free(oob);
			return rc;
		}
		for (int i = 0; i < N; i++)
			oob[(size_t)b * N + i] = oob[(size_t)b * N + i] == 0;
	}
	*out = oob;
	return 0;
}
