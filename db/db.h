/*
 * db: bvtool's SQLite store, the public interface for SQL users.
 *
 * One database file holds one collection: its configuration, its runs (the
 * teacher and one student per (method, temperature, seed) cell), every
 * sample's label, every recorded snapshot of logits, per-epoch metrics and
 * the bootstrap in-bag counts. The schema (docs/schema.md) is versioned with
 * PRAGMA user_version and marked with PRAGMA application_id so that a foreign
 * SQLite file is never mistaken for (or written as) a bvtool database.
 *
 * Logits are stored one BLOB per (run, epoch, split) snapshot, K little-endian
 * float32 per sample in sample order; the view `predictions(run_id, epoch,
 * split, sample_idx, logits)` cuts it into one K-float BLOB per sample, the
 * contract of SPEC.md. Every snapshot is written in one transaction together
 * with its metrics row, so a reader never sees half a snapshot.
 *
 * Connections use WAL mode and a busy timeout, so that several processes
 * (collect --jobs) write to one file.
 *
 * THE CONTRACT: what a database holds, what makes a run complete and what
 * makes it analysable. Writers keep it (collect through the functions below),
 * readers rely on it only after the checks of checks.c (bv_db_check_*), since
 * a database is untrusted input; an importer or a merge writes the same.
 *   - A run is one cell: a method of names.c (bv_run_method) and a seed (a
 *     whole number 0..2^31-1; 0 for the teacher); teacher and ce have no
 *     temperature, kd, wsl and kd-filter one > 0 (bv_db_method_soft). One run
 *     per (method, temperature, seed), one teacher (bv_db_check_runs).
 *   - Its status (bv_run_status) goes pending -> running -> done, or failed
 *     (redone by the next collect, which resets a run before it retrains it).
 *     A run is COMPLETE when it is done: then its test_acc is a number in 0..1
 *     (bv_db_run_finish).
 *   - A snapshot is a run's logits of one split (test, train) at one epoch
 *     (a whole number 0..BV_DB_MAX_EPOCH): n x k float32, n the split's
 *     sample count, written in one transaction with the run's metrics row of
 *     that epoch (bv_db_snapshot_put). Every snapshot a decomposition reads
 *     has the same k, the number of classes (bv_db_snapshots_k); labels are
 *     whole numbers 0..k-1 (bv_db_check_labels), config n_classes, when
 *     present, says k too.
 *   - A run is ANALYSABLE at (split, epoch) when it is complete and has a
 *     snapshot of the split and a metrics row at the epoch
 *     (bv_db_runs_analysable, bv_db_epochs_analysable), whose test_acc is a
 *     number 0..1 (checked as it is read: bv_db_run_test_acc). decompose
 *     reads only analysable runs.
 *   - In-bag counts: one whole number >= 0 per training sample and seed
 *     (bv_db_check_inbag, bv_db_inbag_get).
 *   - sample_stats, decompositions and correlations are decompose's, replaced
 *     per selection in one transaction; their numbers are numbers
 *     (bv_db_check_stats, bv_db_check_numbers).
 */
#ifndef BV_DB_H
#define BV_DB_H

#include <stddef.h>
#include <stdint.h>

#include "base.h"

typedef struct sqlite3 sqlite3;
typedef struct sqlite3_stmt sqlite3_stmt;

#define BV_DB_SCHEMA_VERSION 5
#define BV_DB_APPLICATION_ID 0x62765462 /* "bvTb" */

typedef struct bv_db bv_db;

enum {
	BV_DB_READONLY = 0, /* open an existing bvtool database for reading */
	BV_DB_CREATE = 1,   /* open for writing; create the file and schema if missing */
	BV_DB_WRITE = 2,    /* open an existing bvtool database for writing (migrating it) */
};

/*
 * Open `path`. The file is checked before SQLite sees it and before anything
 * is written to it (docs/schema.md, "Which files bvtool opens"); a refused
 * file is left byte for byte as it was, with no -wal, -shm or journal beside.
 * Only CREATE makes a database, and only of a missing path or a 0-byte file.
 * Errors:
 *   BV_EIO      the directory does not exist; the path is not a regular file
 *               ("'x' is not a regular file": a FIFO, device or directory); the
 *               file is missing (READONLY, WRITE); the file is not writable
 *               (CREATE, WRITE: "database 'x' is read-only") or its directory is
 *               not ("cannot write database 'x': directory 'd' is not writable"),
 *               or a -wal/-shm beside it is not; a reader of a WAL file without
 *               its -shm in a directory it cannot write ("cannot read ...")
 *   BV_EFORMAT  an empty file (READONLY, WRITE); not a SQLite database (shorter
 *               than a page, or no "SQLite format 3" header); a SQLite file
 *               without bvtool's application_id ("'x' is not a bvtool database",
 *               empty or not); a schema version below 0 ("... (the database is
 *               damaged)") or newer than this bvtool reads ("... upgrade bvtool");
 *               a table or view of the schema missing or without all its columns
 *               ("'x' is a damaged bvtool database: ..."); a page SQLite finds
 *               damaged ("database 'x' is damaged: ...", here or on any later
 *               call)
 * An older schema version is migrated in one transaction (CREATE, WRITE; READONLY
 * refuses with BV_EFORMAT asking to run a writing command first).
 */
int bv_db_open(bv_db **out, const char *path, int flags);

/* ---- merging shards (merge.c; bvtool merge is train/merge.c) ------------- */

typedef struct bv_db_setting {
	char key[64];
	char value[1600];
} bv_db_setting;
/* Every config row, by key (caller frees *out). */
int bv_db_config_all(bv_db *db, bv_db_setting **out, int *n);
/* Attach the database at path as the schema "shard" (outside a transaction;
 * the caller opened it with bv_db_open first, which checked it), and detach it. */
int bv_db_attach(bv_db *db, const char *path);
int bv_db_detach(bv_db *db);
/* *out_same = 1 when run main_id of main and run shard_id of the shard hold
 * the same snapshots: the same (epoch, split, n, k, logits), byte for byte. */
int bv_db_merge_same(bv_db *db, int64_t main_id, int64_t shard_id, int *out_same);
/* The shard's samples and in-bag counts of the splits and seeds main has none
 * of, copied (the caller compares those both hold). */
int bv_db_merge_plan(bv_db *db);
/* For a merge, which appends far more pages than it changes: on, the rollback
 * journal (when no other connection holds the file: else the WAL stays) with
 * a full sync at each commit; off, back to the journal mode of
 * bv_db_set_journal. */
int bv_db_copy_mode(bv_db *db, int on);
/* The seeds that have in-bag counts, ascending (caller frees *out). */
int bv_db_inbag_seeds(bv_db *db, int **out, int *n);
/* Copy the shard's run shard_id (its row but the checkpoint, its snapshots and
 * metrics) into main: over run main_id (its snapshots and metrics deleted) when
 * main_id > 0, else as a new run; *out_id its id in main; the snapshots' bytes
 * are added to *bytes. Inside the caller's transaction. */
int bv_db_merge_run(bv_db *db, int64_t shard_id, int64_t main_id, int64_t *out_id,
		    long long *bytes);
/* A run's checkpoint path (relative to the database's directory; NULL for none). */
int bv_db_run_set_checkpoint(bv_db *db, int64_t id, const char *checkpoint);

/* The journal mode every writing connection of this process sets (collect and
 * merge --journal; inherited by forked workers): auto is WAL, except on a
 * network file system (bv_db_fs_is_network of the database's directory),
 * where WAL cannot work (its index is one host's shared memory) and the
 * rollback journal (delete) is used. */
typedef enum bv_journal { BV_JOURNAL_AUTO, BV_JOURNAL_WAL, BV_JOURNAL_DELETE } bv_journal;
void bv_db_set_journal(bv_journal mode);
/* "auto", "wal" or "delete" (BV_EINVAL naming flag). */
int bv_db_journal_parse(bv_journal *out, const char *s, const char *flag);
/* 1 when statfs's f_type is a file system shared between hosts (NFS, SMB/CIFS,
 * Lustre, GPFS, CephFS, BeeGFS, PanFS, AFS, 9P, FUSE). */
int bv_db_fs_is_network(long f_type);
void bv_db_close(bv_db *db); /* NULL is a no-op */
/* For filling a new file no other connection has open (import writes a new
 * database under a temporary name, renamed into place when complete): on, a
 * rollback journal and no fsync, which writes appended pages once (WAL writes
 * them twice; measured 1.4x faster for 1.9 GB of snapshots); off, back to WAL
 * and synchronous NORMAL, the file complete on disk once the caller fsyncs it
 * after bv_db_close. Not for a database others may be using. */
int bv_db_bulk(bv_db *db, int on);
sqlite3 *bv_db_handle(bv_db *db);
const char *bv_db_path(const bv_db *db);

/* For readers that run their own SQL on the documented tables and views
 * (report, plot): prepare `sql` on the connection, and turn the connection's
 * last SQLite error into BV_EDB "database '<path>': <message>". */
int bv_db_prepare(bv_db *db, sqlite3_stmt **out, const char *sql);
int bv_db_error(bv_db *db);

/* Transactions (BEGIN IMMEDIATE / COMMIT / ROLLBACK). */
int bv_db_begin(bv_db *db);
int bv_db_commit(bv_db *db);
void bv_db_rollback(bv_db *db);

/* ---- configuration: key/value text, what the collection was made with ---- */

/* Returns 1 and fills out when found, 0 when the key is absent, < 0 on error. */
int bv_db_config_get(bv_db *db, const char *key, char *out, size_t size);
int bv_db_config_set(bv_db *db, const char *key, const char *value);

/* ---- the vocabulary: methods and statuses (names.c) ------------------------ */

/* What trained a run. Its name (bv_db_method_name) is the runs.method text;
 * nn's bv_method names the training methods alike. */
typedef enum bv_run_method {
	BV_RUN_TEACHER = 0,
	BV_RUN_CE,
	BV_RUN_KD,
	BV_RUN_WSL,
	BV_RUN_KD_FILTER,
	BV_RUN_N_METHODS
} bv_run_method;

/* Where a run is: pending (not started, or reset), running, done (complete),
 * failed (diverged or errored; redone by the next collect). */
typedef enum bv_run_status {
	BV_RUN_PENDING = 0,
	BV_RUN_RUNNING,
	BV_RUN_DONE,
	BV_RUN_FAILED,
	BV_RUN_N_STATUSES
} bv_run_status;

#define BV_RUN_ALL_STATUSES ((1u << BV_RUN_N_STATUSES) - 1)

/* The name of a method or status ("kd", "done"; "?" out of range), and the
 * value of a name: 0, or BV_EINVAL "unknown method 'x' (expected teacher, ce,
 * kd, wsl or kd-filter)" (statuses alike). */
const char *bv_db_method_name(bv_run_method m);
const char *bv_db_status_name(bv_run_status s);
int bv_db_method_parse(bv_run_method *out, const char *s);
int bv_db_status_parse(bv_run_status *out, const char *s);
/* 1 for the methods trained from the teacher at a temperature (kd, wsl,
 * kd-filter: their runs have one), 0 for teacher and ce (temperature NULL). */
int bv_db_method_soft(bv_run_method m);
/* Those methods in the table's order into out (BV_RUN_N_METHODS); their number. */
int bv_db_soft_methods(bv_run_method *out);
/* The methods as a bit mask (bit m for method m): soft 1 the soft ones, 0 the
 * others, -1 all. */
unsigned bv_db_methods_mask(int soft);
/* The names of the methods (statuses) of mask, in the table's order, each
 * between quote marks, joined by sep and the last two by last, into out; out.
 * ("'", ", ", ", ") makes a SQL list 'teacher', 'ce', ...; ("", ", ", " or ")
 * a message's "teacher, ce, kd, wsl or kd-filter". */
const char *bv_db_methods_text(char *out, size_t size, unsigned mask, const char *quote,
			       const char *sep, const char *last);
const char *bv_db_statuses_text(char *out, size_t size, unsigned mask, const char *quote,
				const char *sep, const char *last);

/* ---- runs ----------------------------------------------------------------- */

typedef struct bv_run {
	int64_t id;
	bv_run_method method;
	double temperature;  /* NAN when NULL (ce, teacher) */
	double alpha, gamma;
	int seed;            /* the replica number (the bootstrap draw); 0 for the teacher */
	int init;            /* the initialisation of that draw, 1..M (collect --inits M) */
	bv_run_status status;
	double test_acc;     /* NAN until done */
	int epochs;          /* planned epochs */
	int epochs_done;     /* the last epoch with a metrics row (0 if none) */
	char model[128];     /* model spec */
	char checkpoint[512];/* path relative to the database's directory, "" if none */
	double seconds;      /* training wall time, NAN until done */
} bv_run;

/* Find the run of (method, temperature (NAN for NULL), seed, init), or insert
 * it as `pending` with the given alpha, gamma, model and planned epochs.
 * *out_id is its id; *out_created is 1 when it was inserted (may be NULL). */
int bv_db_run_ensure(bv_db *db, int64_t *out_id, int *out_created, bv_run_method method,
		     double temperature, int seed, int init, double alpha, double gamma,
		     const char *model, int epochs);
/* The id of the run of (method, temperature (NAN for NULL), seed, init), 0
 * when there is none. */
int bv_db_run_find(bv_db *db, int64_t *out_id, bv_run_method method, double temperature, int seed,
		   int init);
/* One run, or all runs ordered by method name, temperature, seed, init (caller frees
 * *out). A method or status the table does not know is BV_EFORMAT naming the
 * database and the run ("... (the database is damaged)"). */
int bv_db_run_get(bv_db *db, bv_run *out, int64_t id);
int bv_db_runs_list(bv_db *db, bv_run **out, int *n);
/* pending, running (sets started_at) or failed; done is bv_db_run_finish's */
int bv_db_run_set_status(bv_db *db, int64_t id, bv_run_status status);
/* Delete a run's snapshots and metrics and set it back to pending, in one transaction. */
int bv_db_run_reset(bv_db *db, int64_t id);
/* Delete a run with its snapshots and metrics, in one transaction (import's
 * --replace, whose run may change its alpha, model or epochs). */
int bv_db_run_delete(bv_db *db, int64_t id);
/* Mark done with its final test accuracy, checkpoint path (relative, may be NULL)
 * and wall time. */
int bv_db_run_finish(bv_db *db, int64_t id, double test_acc, const char *checkpoint,
		     double seconds);

/* ---- samples and bootstrap ---------------------------------------------- */

/* Store the labels of a split ("test" | "train"); if the split is already
 * stored, verify it is identical (BV_EMISMATCH naming the first difference). */
int bv_db_samples_put(bv_db *db, const char *split, const int *labels, int n);
/* Number of stored samples of a split (0 if none), and their labels (labels may be NULL). */
int bv_db_samples_get(bv_db *db, const char *split, int *labels, int cap, int *out_n);

/* In-bag counts of every training sample for replica `seed` (inbag table);
 * put replaces, get returns BV_ESTATE when the seed has none. */
int bv_db_inbag_put(bv_db *db, int seed, const int *counts, int n);
int bv_db_inbag_get(bv_db *db, int seed, int *counts, int n);

/* ---- what makes a run analysable (the contract above) --------------------- */

/* The complete (done) runs with a snapshot of `split` and a metrics row at
 * `epoch`, ordered as bv_db_runs_list; caller frees *out. */
int bv_db_runs_analysable(bv_db *db, const char *split, int epoch, bv_run **out, int *n);
/* The epochs, ascending, at which every one of the runs `run_ids` (n > 0) is
 * analysable for `split`; caller frees *out. */
int bv_db_epochs_analysable(bv_db *db, const char *split, const int64_t *run_ids, int n,
			    int **out, int *n_out);
/* The test accuracy of a run at an epoch, from its metrics row: BV_ESTATE
 * "run 7 has no metrics for epoch 3"; BV_EFORMAT when it is not a number 0..1
 * ("'x.db': run 7 epoch 3 has test_acc NULL in metrics, expected a number
 * 0..1 (the database is damaged)"). */
int bv_db_run_test_acc(bv_db *db, int64_t run_id, int epoch, double *out);

/* ---- the range checks of the contract (checks.c) --------------------------- */

#define BV_DB_MAX_EPOCH 1000000

/* The runs table holds what collect writes: a known method and status, a
 * whole-number seed, a temperature > 0 for kd/wsl/kd-filter and none for
 * ce/teacher, a test_acc in 0..1 when done, one run per (method, temperature,
 * seed) and one teacher. Else BV_EFORMAT naming the database and the run.
 * decompose and report check this before reading a run. */
int bv_db_check_runs(bv_db *db);

/* More of what a database may hold, each BV_EFORMAT naming the database and
 * the first row out of range, "... (the database is damaged)":
 *   labels     the labels of `split` (test or train) whole numbers in 0..k-1,
 *              sample_idx whole numbers
 *   snapshots  epochs whole numbers 0..BV_DB_MAX_EPOCH, splits test or train
 *   inbag      the in-bag counts of `seed` whole numbers >= 0 (that they number
 *              the training split from 0, one per sample, bv_db_inbag_get checks)
 *   stats      sample_stats' bias, variance and loss numbers (an integer or a
 *              real), regularization 0, 1 or NULL (what the
 *              regularization_counts view averages)
 *   numbers    no text or BLOB in a number column of the tables the figures
 *              read (runs, metrics, sample_stats, decompositions,
 *              correlations), where SQL arithmetic would take it for 0; a NULL,
 *              an infinity or an odd value is left to the reader (plot draws
 *              around it)
 * plot runs numbers; report runs and stats; decompose runs, labels,
 * snapshots and inbag. */
int bv_db_check_labels(bv_db *db, const char *split, int k);
int bv_db_check_snapshots(bv_db *db);
int bv_db_check_inbag(bv_db *db, int seed);
int bv_db_check_stats(bv_db *db);
int bv_db_check_numbers(bv_db *db);

/* Database text for a one-line message: printable ASCII kept, any other byte
 * (a line break, a control character, UTF-8) as '?', at most 64 bytes. */
void bv_db_safe_text(char *out, size_t size, const unsigned char *s);

/* The complete runs' condition as SQL text, for queries that are text (plot
 * writes its queries into the data files, for a user to re-run): `status =
 * 'done'` (tests/test_contract.c holds it to names.c). */
#define BV_DB_SQL_DONE "status = 'done'"

/* ---- snapshots and metrics ---------------------------------------------- */

typedef struct bv_db_metrics {
	int epoch;          /* 1-based */
	double lr, train_loss, train_acc, test_acc, wsl_weight, filtered, seconds;
} bv_db_metrics;

/*
 * One epoch of one run, in ONE transaction: the metrics row, and when the
 * logits pointers are non-NULL the snapshots (test: n_test x k, train:
 * n_train x k). Replaces an earlier row of the same (run, epoch).
 */
int bv_db_snapshot_put(bv_db *db, int64_t run_id, const bv_db_metrics *m,
		       const float *test_logits, int n_test, const float *train_logits,
		       int n_train, int k);
/* Read one snapshot into out (n x k floats); BV_ESTATE if it was not recorded,
 * BV_EFORMAT if its size is not n x k. */
int bv_db_logits_get(bv_db *db, int64_t run_id, int epoch, const char *split, float *out,
		     int n, int k);
/* One snapshot: a run at an epoch. */
typedef struct bv_db_snapshot_ref {
	int64_t run_id;
	int epoch;
} bv_db_snapshot_ref;
/* The class count K the snapshots of `split` at refs (n) share, those not
 * recorded left out: *out_k (0 when none is). K is what most of them have;
 * the first whose k differs is BV_EFORMAT naming the run and epoch: "'x.db':
 * run 7 epoch 3 has k = 12, the other snapshots of <what> have 10 (the
 * database is damaged)"; a k that is not a whole number > 0 too. */
int bv_db_snapshots_k(bv_db *db, int *out_k, const char *split, const bv_db_snapshot_ref *refs,
		      int n, const char *what);
/* The recorded epochs of a run for a split, ascending; caller frees *out. */
int bv_db_epochs(bv_db *db, int64_t run_id, const char *split, int **out, int *n);
/* The metrics rows of a run, ascending by epoch; caller frees *out. */
int bv_db_metrics_get(bv_db *db, int64_t run_id, bv_db_metrics **out, int *n);

/* ---- decompositions (schema 2; written by bvtool decompose) -------------- */

/* One sample_stats row; NAN stores NULL. */
typedef struct bv_stat_row {
	int sample_idx;
	double bias, variance, loss;
	int regularization; /* 0 or 1; -1 stores NULL (ce rows) */
	int n_seeds;
	double p_true, acc, wsl_weight, teacher_p_true;
	/* the variance by its source (schema 5), stored when has_split is 1 (NULL
	 * otherwise, so that a row built without them stores none) */
	int has_split;
	double var_init, var_data;
} bv_stat_row;

/* Delete the sample_stats and decompositions rows of one selection. Run these
 * and the puts below inside the caller's transaction (bv_db_begin). */
int bv_db_stats_clear(bv_db *db, double temperature, int epoch, const char *split);
int bv_db_stats_put(bv_db *db, double temperature, int epoch, const char *split,
		    bv_run_method method, const bv_stat_row *rows, int n);

typedef struct bv_db_decomposition {
	double temperature;
	int epoch;
	const char *split, *criterion, *seeds; /* seeds: e.g. "1,2,3,4" */
	int n_samples;
	double max_identity_error;
} bv_db_decomposition;
int bv_db_decomposition_put(bv_db *db, const bv_db_decomposition *d);

typedef struct bv_db_correlation {
	const char *split;
	bv_run_method method;
	const char *criterion;
	int epoch, n_points, n_boot;
	double r, r_p, rho, rho_p, r_lo, r_hi; /* NAN = NULL */
} bv_db_correlation;
/* Replace the row of (split, epoch, method). */
int bv_db_correlation_put(bv_db *db, const bv_db_correlation *c);

/* ---- training dynamics (schema 4; written by bvtool dynamics, dynamics.c) -- */

/* One dynamics row: a sample of one run and split over its n_epochs recorded
 * epochs (SPEC.md, "Training dynamics"). */
typedef struct bv_dyn_row {
	int sample_idx;
	int first_learned;  /* the epoch from which it stays correct; -1 stores NULL */
	int forgetting;     /* correct -> wrong transitions between recorded epochs */
	double correctness; /* share of the recorded epochs it is correct */
	double confidence;  /* mean over them of softmax(z)[y] */
	double variability; /* its population standard deviation */
	int n_epochs;
} bv_dyn_row;

/* Replace the dynamics rows of (run_id, split) by rows (n; n = 0 deletes
 * them), in one transaction of its own (or a savepoint inside the caller's). */
int bv_db_dynamics_put(bv_db *db, int64_t run_id, const char *split, const bv_dyn_row *rows,
		       int n);
/* Delete the dynamics rows of `split` whose run is not in run_ids (n): the
 * rows of runs deleted, reset or not done any more; *out_runs (may be NULL)
 * the number of such runs. */
int bv_db_dynamics_prune(bv_db *db, const char *split, const int64_t *run_ids, int n,
			 int *out_runs);
/* The dynamics table holds numbers where it should (what the view and the
 * data_map figure average): sample_idx, forgetting and n_epochs integers,
 * first_learned an integer or NULL, correctness, confidence and variability
 * numbers. Else BV_EFORMAT naming the database and the first row out of
 * range, "... (the database is damaged)". */
int bv_db_check_dynamics(bv_db *db);

#endif
