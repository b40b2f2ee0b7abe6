/*
 * bvtool import's private seam, shared by its files and by nothing else (not
 * installed, not included outside interop/):
 *   import.c     each run's plan, reading the arrays, the whole import (bv_import)
 *   import_db.c  what the database holds, and the writing
 * Names start with imp_.
 */
#ifndef BV_IMPORT_INT_H
#define BV_IMPORT_INT_H

#include <stdint.h>

#include "interop.h"
#include "manifest.h"
#include "npy.h"

/* One run of the import (the teacher's too): its plan, then what the database holds of it. */
typedef struct imp_run {
	const bv_mf_run *mf;
	char label[80];           /* "kd T=4 seed 1", "teacher" */
	char key[64];             /* "kd-T4-s1": its config key for extras */
	int n_rows;               /* metrics rows: the union of recorded and metrics epochs */
	bv_db_metrics *rows;      /* ascending by epoch */
	int *rec;                 /* per row: its index in mf->epochs, or -1 */
	double *acc;              /* per recorded epoch: the test accuracy from the logits, or NAN */
	double final_acc;         /* the run's test_acc */
	int *inbag;               /* (n_train) or NULL */
	int64_t existing;         /* its id in the database, 0 when absent */
	int inbag_differs;        /* the database holds other in-bag counts for its seed */
	bv_import_action action;
} imp_run;

/* The whole import: the manifest, its labels, the runs, the database. */
typedef struct imp {
	bv_manifest m;
	int n[BV_N_SPLITS];       /* samples per split; 0: no labels */
	int *labels[BV_N_SPLITS];
	int k;                    /* classes */
	int n_runs;               /* the teacher first when there is one */
	imp_run *runs;
	float *buf[2];            /* one epoch of one split each (the larger split's size) */
	bv_db *db;
	bv_import_summary sum;
} imp;

/*
 * The logits of one split of one run, an epoch at a time: one (E, N, K)
 * array (or (N, K) when E is 1), or one (N, K) array per epoch.
 */
typedef struct src {
	const imp *im;
	const imp_run *r;
	int split, epoch;         /* the next epoch to read (an index in mf->epochs) */
	bv_npy a;
	int open;
} src;

/* ---- import.c ----------------------------------------------------------------- */

/* "test" or "train": the name of split s */
const char *imp_split_name(int s);
/* Open the logits of split `split` of r (a file per epoch: opened as each is read). */
int imp_src_open(src *s, const imp *im, const imp_run *r, int split);
/* The next epoch's (N, K) logits into out, checked finite. */
int imp_src_next(src *s, float *out);
/* Close what imp_src_open or imp_src_next left open; idempotent. */
void imp_src_close(src *s);

/* ---- import_db.c -------------------------------------------------------------- */

/* The database is empty, or an import of the same collection (dataset, classes, labels). */
int imp_check_collection(imp *im);
/* Each run's action (added, unchanged, replaced) and whether its seed's in-bag counts differ. */
int imp_check_runs(imp *im);
/* The configuration and samples in one transaction, then each changed run in its own. */
int imp_write_all(imp *im, const bv_import_opts *o);

#endif
