/*
 * manifest: the manifest.json of the import/export layout (docs/import.md),
 * read and written with jansson. Reading checks every key's type and range,
 * so that import can rely on what it gets; it opens none of the array files
 * the manifest names (import.c checks those).
 *
 * The minimal form (issue 12) stays valid:
 *   {"format": "bvtool-import", "version": 1, "dataset": "cifar100", "classes": 100,
 *    "labels": {"test": "labels_test.npy", "train": "labels_train.npy"},
 *    "teacher": {"model": "resnet56", "logits": {"test": "teacher_test.npy"}},
 *    "runs": [{"method": "kd", "temperature": 4, "alpha": 2.25, "seed": 1,
 *              "model": "resnet20", "epochs": [60, 120, 240],
 *              "logits": {"test": "kd_T4_s1_test.npy"}, "inbag": "inbag_s1.npy",
 *              "test_acc": [61.2, 68.9, 73.1]}]}
 * Keys bvtool does not know are kept (extras) for the database's config.
 *
 * Errors: BV_EIO the manifest cannot be read; BV_EFORMAT, one line naming the
 * file and the key: "'d/manifest.json': runs[2].seed: expected a whole number
 * 1..2147483647, got -3"; "'d/manifest.json': not JSON: line 3, column 5:
 * <jansson's text>"; "'d/manifest.json': runs[3] repeats the cell kd T=4 seed 1
 * of runs[0]".
 */
#ifndef BV_MANIFEST_H
#define BV_MANIFEST_H

#include <stddef.h>

#include "db.h"

#define BV_MANIFEST_FORMAT "bvtool-import"
#define BV_MANIFEST_VERSION 1
#define BV_MANIFEST_NAME "manifest.json"
#define BV_MANIFEST_MAX_CLASSES 100000

enum { BV_SPLIT_TEST = 0, BV_SPLIT_TRAIN = 1, BV_N_SPLITS = 2 };
extern const char *const bv_split_names[BV_N_SPLITS]; /* "test", "train" */

/* A run's (or the teacher's) logits of one split. For a run: n_paths == 1 is
 * one (E, N, K) array; n_paths == E is one (N, K) array per recorded epoch,
 * in the order of `epochs`. For the teacher: one (N, K) array. n_paths == 0:
 * the split is absent. Paths as written in the manifest ("f.npz:member"),
 * relative to the manifest's directory unless absolute. */
typedef struct bv_mf_logits {
	int n_paths;
	char **paths;
} bv_mf_logits;

/* Per-epoch metrics (optional key "metrics": {"epoch": [...], "test_acc":
 * [...], ...}, the arrays of one length, numbers or null): what export writes
 * so that an import reproduces the database's metrics rows exactly. Fractions
 * 0..1 as the database stores them (not percent). n == 0: absent. NAN where
 * null or the array is absent. */
typedef struct bv_mf_metrics {
	int n;
	int *epoch;                                   /* ascending, distinct */
	double *lr, *train_loss, *train_acc, *test_acc, *wsl_weight, *filtered, *seconds;
} bv_mf_metrics;

typedef struct bv_mf_run {
	char where[32];        /* "runs[3]" or "teacher", for messages */
	bv_run_method method;  /* ce, kd, wsl, kd-filter (BV_RUN_TEACHER for the teacher) */
	double temperature;    /* > 0 for kd, wsl, kd-filter; NAN for ce and the teacher */
	double alpha, gamma;   /* NAN when absent */
	int seed;              /* 1..2^31-1; 0 for the teacher */
	int init;              /* 1..64, the initialisation of seed's draw (default 1; 1 for the teacher) */
	char *model;           /* NULL when absent */
	int n_epochs;          /* the recorded epochs (teacher: 1, its "epoch", default 0) */
	int *epochs;           /* ascending, distinct, 0..BV_DB_MAX_EPOCH */
	int planned_epochs;    /* "planned_epochs", default the last recorded epoch */
	bv_mf_logits logits[BV_N_SPLITS]; /* at least one split present */
	char *inbag;           /* the (N_train,) in-bag counts; NULL when absent (teacher: always) */
	double *test_acc;      /* n_epochs values, percent 0..100 ("test_acc"); NULL when absent.
				* The teacher's is one number, not a list. */
	bv_mf_metrics metrics; /* "metrics", n == 0 when absent */
	double seconds;        /* "seconds": wall time of the training; NAN when absent */
	char *extras;          /* the keys bvtool does not know, as a compact JSON object; NULL if none */
} bv_mf_run;

typedef struct bv_manifest {
	char path[1100];       /* the manifest file, for messages */
	char dir[1024];        /* its directory: paths are relative to it */
	char *dataset;
	int classes;           /* 1..BV_MANIFEST_MAX_CLASSES */
	char *labels[BV_N_SPLITS]; /* integer (N,) arrays; "test" required, "train" optional */
	int has_teacher;
	bv_mf_run teacher;
	int n_runs;
	bv_mf_run *runs;
	char *extras;          /* unknown top-level keys as a compact JSON object; NULL if none */
} bv_manifest;

/* Read `dir`/manifest.json. On error *m is left empty (nothing to free). */
int bv_manifest_read(bv_manifest *m, const char *dir);
/* The same from text (len bytes, not NUL-terminated) that `path` names in
 * messages; paths are relative to `dir`. For the fuzz target and tests. */
int bv_manifest_parse(bv_manifest *m, const char *text, size_t len, const char *path,
		      const char *dir);
void bv_manifest_free(bv_manifest *m); /* NULL-safe; leaves *m empty */

/* A path of the manifest as a file path: relative ones joined to m->dir. */
int bv_manifest_file(char *out, size_t size, const bv_manifest *m, const char *path);

/* Write m as `path` (indented, keys in the order above, numbers with 17
 * significant digits so that they read back exactly, extras merged back in),
 * atomically (bv_write_file_atomic). m->path and m->dir are not written. */
int bv_manifest_write(const bv_manifest *m, const char *path);

/* 0 when a and b hold the same manifest field by field (doubles bit for bit,
 * -0 is not 0, NaN equals NaN; a metrics column NULL is all NAN; extras as JSON
 * values; path, dir and where aside); else 1 and the first difference in out
 * ("runs[0].alpha: 0.10000000000000001 vs 0.20000000000000001"). For
 * bv_manifest_write's check that its text reads back, and for tests. */
int bv_manifest_compare(const bv_manifest *a, const bv_manifest *b, char *out, size_t size);

#endif
