/*
 * interop: runs trained elsewhere in, bvtool's data out (docs/import.md).
 *
 * The layout is a directory holding manifest.json (manifest.h) and the NumPy
 * arrays it names (npy.h). bv_import reads one into a database through the
 * same db/ functions collect writes with, so that every command works on an
 * imported database unchanged; bv_export writes a database as that layout,
 * plus each decomposition's per-sample statistics.
 *
 * Import checks everything before it writes anything: the manifest, every
 * array's header, shape and dtype, every logit finite, every label in range,
 * the in-bag counts, and the database's own state (what it already holds).
 * A new database is then written under a temporary name beside it,
 * "<db>.import-<pid>", in bulk mode (bv_db_bulk), and linked into place when
 * complete: a failure or a kill leaves no database under the name asked for.
 * An existing one gets one transaction for the samples and configuration and
 * one per run, so an interrupted import leaves whole runs and resumes. A run
 * already in the database with the same content is skipped; with other
 * content it is refused, or rewritten with replace. Memory holds at most one
 * epoch of logits per split at a time, whatever the number of epochs.
 */
#ifndef BV_INTEROP_H
#define BV_INTEROP_H

#include <stdint.h>

#include "db.h"

typedef enum bv_import_action {
	BV_IMPORT_ADDED,     /* the run was not in the database */
	BV_IMPORT_UNCHANGED, /* it was, with the same content: skipped */
	BV_IMPORT_REPLACED,  /* it was, with other content, and replace was set */
} bv_import_action;

typedef struct bv_import_event {
	const char *label;   /* "kd T=4 seed 1", "teacher" */
	bv_import_action action;
	int n_epochs;        /* recorded epochs */
	double test_acc;     /* the run's final test accuracy, 0..1 */
} bv_import_event;

typedef struct bv_import_opts {
	int replace;         /* rewrite runs whose content changed (else refused) */
	void (*on_run)(void *ctx, const bv_import_event *ev); /* after each run's commit; may be NULL */
	void *ctx;
} bv_import_opts;

typedef struct bv_import_summary {
	int added, unchanged, replaced;
	int64_t bytes;       /* logit bytes written */
	int64_t bytes_read;  /* logit bytes read (checked, compared, written) */
} bv_import_summary;

/*
 * Import the layout in `dir` into the database `db_path` (created if
 * missing). Errors, each one line naming the file (and manifest key), the
 * database as it was:
 *   BV_EIO       the manifest or an array it names is missing or unreadable
 *   BV_EFORMAT   a malformed manifest or array, a shape, dtype or class count
 *                that disagrees, a NaN or infinite logit (its index), a label
 *                out of range, bad in-bag counts
 *   BV_EMISMATCH the database holds another collection (a collect, another
 *                dataset or class count, other labels), or a run of the
 *                manifest with other content (without replace)
 *   BV_EDB       SQLite refused a write (earlier runs stay, this one rolled back)
 */
int bv_import(const char *db_path, const char *dir, const bv_import_opts *o,
	      bv_import_summary *out);

typedef struct bv_export_summary {
	int runs;            /* complete runs written, the teacher included */
	int stats;           /* (decomposition, method) statistics files written */
	int dynamics;        /* (run, split) training dynamics files written */
	int64_t bytes;       /* logit bytes written */
} bv_export_summary;

/*
 * Write the complete runs of `db_path` as the layout in `out_dir` (which must
 * not exist, or be an empty directory): manifest.json, labels, the teacher's
 * and every run's logits ((E, N, K) float32 per split), the in-bag counts,
 * and under stats/ each decomposition's per-sample statistics as .npy and
 * .csv. The directory is built beside out_dir and renamed into place when
 * complete. bv_import of it reproduces every snapshot byte for byte, the runs
 * and their metrics.
 */
int bv_export(const char *db_path, const char *out_dir, bv_export_summary *out);

#endif
