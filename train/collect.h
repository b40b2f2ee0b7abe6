/*
 * collect: the engine of `bvtool collect`, as a library. A front end (the CLI
 * today; a shard, an MPI rank or an importer next) drives it in four steps:
 *
 *   bv_plan_init     validate, open and lock the database, write the plan:
 *                    the fingerprint (config rows), the samples, the in-bag
 *                    counts and one run row per cell (plan.c, fingerprint.c)
 *   bv_plan_teacher  make sure the teacher is done (teacher.c)
 *   bv_plan_run      hand the cells that are not done to a runner (run.c)
 *   bv_plan_release  close the database and the runner's helpers, unlock
 *
 * The engine never prints: what happens is reported as bv_collect_event's to
 * the caller's callback, and every failure as a BV_E* code with a message
 * (bv_error_set). Runners: one interface (bv_runner, below), one file each;
 * runner_local.c is the forked local workers of --jobs N.
 */
#ifndef BV_COLLECT_H
#define BV_COLLECT_H

#include <signal.h>
#include <stdint.h>

#include "train.h"

/* ---- the grid: which cells a collection holds ----------------------------- */

#define BV_GRID_MAX_TEMPS 64

typedef struct bv_grid {
	int n_methods;
	bv_method methods[4];           /* of ce, kd, wsl, kd-filter, each once */
	int n_temps;
	double temps[BV_GRID_MAX_TEMPS]; /* > 0, each once; ce cells take none */
} bv_grid;

/* Parse --methods "ce,kd,wsl" and --temps "1,2,4,8" into g (BV_EINVAL with the
 * flag's message on a bad, unknown or repeated entry). */
int bv_grid_parse_methods(bv_grid *g, const char *s);
int bv_grid_parse_temps(bv_grid *g, const char *s);

/* "kd T=4 seed 2", "ce seed 1", "ce seed 1 init 2": a cell as messages and
 * displays name it (init 1 is not named). */
void bv_cell_label(char *out, size_t size, const bv_cell *c);

/* ---- shards: a grid spread over machines (shard.c) ------------------------ */

typedef struct bv_collect_cfg bv_collect_cfg;

/* Every cell of cfg's grid in grid order (seed, init, then method, then temperature;
 * run_id 0): the order of the run rows. *out is malloc'ed. */
int bv_grid_cells(const bv_collect_cfg *cfg, bv_cell **out, int *n);
/* The relative cost of a cell: 1 for a student's training; a soft cell whose
 * teacher runs on every batch (augmentation, teacher batch norm on batch
 * statistics) adds a third of the teacher's parameters over the student's.
 * The key of shard balancing and of "costliest first". */
double bv_cell_cost(const bv_collect_cfg *cfg, const bv_cell *c);
/* bv_cell_cost of each of n cells into out, each kind of cost computed once. */
void bv_cell_costs(double *out, const bv_collect_cfg *cfg, const bv_cell *cells, int n);
/* shard_of[i] in [0, n_shards) for cells[i] (n of them, in grid order): the
 * costliest first, each to the least loaded shard, ties to the first in grid
 * order and to the lowest shard. Deterministic: it depends on the grid only. */
int bv_shard_assign(int *shard_of, const bv_collect_cfg *cfg, const bv_cell *cells, int n,
		    int n_shards);
/* "I/N" (0 <= I < N) into index and count (BV_EINVAL naming --shard). */
int bv_shard_parse(int *index, int *count, const char *s);
/* --shard auto: I/N from a Slurm job array (SLURM_ARRAY_TASK_ID minus
 * SLURM_ARRAY_TASK_MIN, of SLURM_ARRAY_TASK_COUNT), else from the rank
 * variables of Open MPI (OMPI_COMM_WORLD_RANK/_SIZE), PMI (PMI_RANK/PMI_SIZE)
 * or srun (SLURM_PROCID/SLURM_NTASKS), in that order; `used` says which, as
 * "NAME=V, NAME=V". BV_EINVAL when none is set or a value is bad. */
int bv_shard_auto(int *index, int *count, char *used, size_t size);

/* ---- what a collection is made with --------------------------------------- */

struct bv_collect_cfg {
	const char *db_path;       /* the database; checkpoints go to "<db>.ckpt/" beside it */
	const char *data_spec;     /* bv_data_load's NAME[:DIR] */
	int subset;                /* train on the first N training samples; 0 = all */
	const char *teacher_spec, *student_spec; /* model specs */
	const char *teacher_ckpt;  /* a trained teacher to use instead of training one, or NULL */
	int teacher_epochs, teacher_seed;
	double teacher_lr;
	int seeds;                 /* bootstrap replicas 1..seeds */
	int inits;                 /* initialisations 1..inits of each replica (0 or 1: one) */
	bv_grid grid;
	/* the students' training; the teacher shares batch, augment and threads */
	int epochs, batch, nesterov;
	double lr, momentum, wd, alpha, gamma;
	bv_schedule schedule;
	int augment;               /* BV_AUG_NONE or BV_AUG_CROP_FLIP */
	int teacher_bn_train;      /* for the students, the teacher's batch norm on batch statistics */
	bv_record_cfg rec;         /* the epochs (and splits) recorded */
	int threads;               /* BLAS threads of the teacher step and of each cell */
	int shard_index, shard_count; /* collect only the cells of shard I of N (count 0: all) */
	int teacher_only;          /* the plan and the teacher, no cell */
	/* Set (by a signal handler) to stop soon: no new cell starts, the running
	 * ones are stopped, and bv_plan_teacher / bv_plan_run return BV_EINTR. May be NULL. */
	const volatile sig_atomic_t *stop;
};

/* The students' training configuration of cfg (bv_train_cfg_default, then the
 * settings above; seed and method are set per cell by bv_cell_train). */
void bv_collect_student_cfg(bv_train_cfg *out, const bv_collect_cfg *cfg);

/* ---- the fingerprint: the settings every collect of one database shares ---- */

/*
 * Stored as config rows (key, value). Numbers are written as the shortest text
 * that reads back exactly (bv_number_format) and compared as text, so two
 * settings that differ in the 17th digit differ. The config key `numbers` =
 * `exact` marks a database written so; one without it (bvtool before issue 10
 * stored %g, 6 significant digits) is compared at the 6 digits it holds, and
 * its stored values are kept.
 */
#define BV_FINGERPRINT_MAX 32

typedef struct bv_setting {
	const char *key;    /* the config key */
	const char *flag;   /* the option named in the message when it differs */
	char value[1600];
	char legacy[32];    /* a number: its %g text, as an older bvtool stored it; else "" */
} bv_setting;

typedef struct bv_fingerprint {
	int n;
	bv_setting s[BV_FINGERPRINT_MAX];
} bv_fingerprint;

/* The settings of cfg on the loaded data d (its name, directory, training
 * samples and classes). */
void bv_fingerprint_make(bv_fingerprint *out, const bv_collect_cfg *cfg, const bv_data *d);
/* Compare fp with what db stores; BV_EMISMATCH "database 'x' was collected with
 * --flag A, not B (use another --db)" on the first difference, db untouched.
 * Otherwise store the settings that are missing (and the mark of exact numbers)
 * in one transaction. */
int bv_fingerprint_check(bv_db *db, const bv_fingerprint *fp);
/* The option a fingerprint's config key comes from ("lr" -> "--lr"), NULL for
 * a key that is not a setting. */
const char *bv_fingerprint_flag(const char *key);

/* ---- events: what the engine reports -------------------------------------- */

typedef enum bv_collect_event_kind {
	BV_EV_TEACHER_LOADED,   /* spec, path: the teacher is --teacher-ckpt's */
	BV_EV_TEACHER_TRAINING, /* spec, n_epochs: the teacher's training starts */
	BV_EV_TEACHER_EPOCH,    /* stats: one epoch of the teacher */
	BV_EV_TEACHER_READY,    /* spec, test_acc: the teacher is done (now, or by an earlier run) */
	BV_EV_CELL_START,       /* slot, cell, n_epochs: a cell starts in a slot */
	BV_EV_CELL_EPOCH,       /* slot, cell, epoch, n_epochs, test_acc, seconds: recorded */
	BV_EV_CELL_DONE,        /* slot, cell, test_acc (its last epoch's): the run is done */
	BV_EV_CELL_FAILED,      /* slot, cell, code, message: the cell failed (diverged, an
				 * error, its worker died); the others go on */
	BV_EV_CELL_STOPPED,     /* slot, cell: ended by cfg.stop; the next collect redoes it */
	BV_EV_IDLE,             /* the runner waits for its cells (every tick, and once at the
				 * end): the moment a display redraws */
} bv_collect_event_kind;

typedef struct bv_collect_event {
	bv_collect_event_kind kind;
	int slot;                    /* in [0, runner->n_slots): where the cell runs; else -1 */
	const bv_cell *cell;         /* valid during the callback */
	const char *spec, *path;     /* teacher: its model spec; the checkpoint it came from */
	int epoch, n_epochs;
	double test_acc, seconds;
	const bv_epoch_stats *stats; /* BV_EV_TEACHER_EPOCH */
	int code;                    /* BV_EV_CELL_FAILED: the BV_E* code ... */
	const char *message;         /* ... and its message, "training diverged at ..." */
} bv_collect_event;

/* Called in the process that called bv_plan_teacher / bv_plan_run, on its thread. */
typedef void (*bv_collect_event_fn)(void *ctx, const bv_collect_event *ev);

/* What the cells' events say, for the one result of a collect (run.c; the
 * MPI runner keeps its own). */
typedef struct bv_cell_tally {
	int done, failures, first_code;
	char first_msg[720]; /* "<cell>: <message>" of the first failure */
} bv_cell_tally;
void bv_cell_tally_add(bv_cell_tally *t, const bv_collect_event *ev);
/* 0 when no cell failed; else the first failure's code, "<cell>: <message>;
 * the other cells are recorded in '<db>'" (or "...; F of N cells failed
 * (listed above); the others are recorded in '<db>'"). */
int bv_cell_tally_result(const bv_cell_tally *t, int n_cells, const char *db_path);

/* ---- the plan --------------------------------------------------------------- */

typedef struct bv_runner bv_runner;

typedef struct bv_plan {
	bv_collect_cfg cfg;       /* a copy (the strings are the caller's) */
	bv_train_cfg student;     /* bv_collect_student_cfg(cfg) */
	bv_data data;             /* loaded once, truncated to cfg.subset */
	char db_dir[1024];        /* the database's directory ("." for a bare name) ... */
	char db_base[512];        /* ... and its file name: checkpoints are db_dir/db_base.ckpt/ */
	bv_db *db;                /* the coordinator's connection; NULL once a runner closed it */
	int lock_fd;              /* flock on the database file, or -1 */
	bv_runner *runner;        /* attached by bv_plan_init, detached by bv_plan_release */
	bv_cell *cells;           /* (n_cells) the cells not done, by seed, then method, then temp */
	int n_cells;
	int n_total;              /* cells in the grid */
	int n_stale;              /* of those, `running` rows: left by an interrupted collect */
	int n_failed;             /* of those, `failed` rows */
	float *teacher_logits;    /* (data.train.n, n_classes) eval-mode, after bv_plan_teacher */
} bv_plan;

/*
 * Validate the model specs, attach the runner (which may fork helpers now,
 * before any connection exists), open the database (created if missing) and
 * lock it against a second collect (BV_ESTATE), load the data, check and store
 * the fingerprint, the samples' labels, each seed's in-bag counts (drawn once)
 * and a `pending` run row per cell of the grid (one transaction), and create
 * the checkpoint directory (dropping temporary files a kill left). Fills
 * cells with the cells whose row is not `done`: a `running` row seen here
 * belongs to an interrupted collect (the lock keeps out a live one), and is
 * redone from scratch like a `failed` one. runner may be NULL (nothing to run).
 * Call bv_plan_release afterwards, whether this succeeded or not.
 */
int bv_plan_init(bv_plan *plan, const bv_collect_cfg *cfg, bv_runner *runner);
/*
 * The teacher run: when done, its stored training-split logits; else the
 * --teacher-ckpt (copied to "<db>.ckpt/teacher.ckpt") or a teacher trained
 * here (seed, lr, epochs of cfg; it depends on neither --jobs nor the grid),
 * recorded as the snapshot of epoch cfg.teacher_epochs. Sets teacher_logits.
 * BV_EINTR "interrupted" when cfg.stop is set during its training.
 */
int bv_plan_teacher(bv_plan *plan, bv_collect_event_fn on_event, void *ctx);
/*
 * Run plan->cells through plan->runner, passing its events on. Returns 0 when
 * every cell is done; BV_EINTR "interrupted: D of N cells done; run the same
 * command again to resume" when stopped; else the first failed cell's code,
 * "<cell>: <message>; the other cells are recorded in '<db>'" (or "...; F of N
 * cells failed (listed above); the others are recorded in '<db>'").
 */
int bv_plan_run(bv_plan *plan, bv_collect_event_fn on_event, void *ctx);
/* Close the connection, detach the runner, release the lock, free. NULL-safe
 * fields: a plan that bv_plan_init left half made is released as well. */
void bv_plan_release(bv_plan *plan);

/* A cell's checkpoint, relative to db_dir: "<db_base>.ckpt/run-<id>-<method>
 * [-T<temp>]-s<seed>.ckpt", unique by the run's id (the rest is for people). */
void bv_plan_ckpt_name(char *out, size_t size, const bv_plan *plan, const bv_cell *c);
void bv_ckpt_name(char *out, size_t size, const char *db_base, const bv_cell *c);
/* "dir/name.db" into its directory ("." for a bare name, "/" at the root) and file name. */
void bv_path_split(char *dir, size_t dsize, char *base, size_t bsize, const char *path);
/* flock the database file: one collect (or merge) per database. Forked workers
 * inherit the descriptor, so the lock lasts until the last of them is gone.
 * BV_ESTATE "another bvtool collect or merge is writing 'x'; ..." when held. */
int bv_collect_lock(int *out_fd, const char *path);

/* ---- merge: shard databases into one (merge.c) ----------------------------- */

typedef struct bv_merge_stats {
	int shards;       /* shard databases merged */
	int added;        /* cells copied into the target */
	int same;         /* cells the target held already, identical */
	int not_done;     /* cells of shards that are not done there (not copied) */
	long long bytes;  /* snapshot bytes copied */
	double seconds;   /* wall time of the copying (second pass) */
} bv_merge_stats;

/*
 * bvtool merge: the shards (paths, n >= 1) into target (created when missing).
 * First every shard is checked, before the target is touched: a bvtool
 * database of this schema, the fingerprint identical to the target's (or the
 * first shard's) but for bvtool_version and shard (else BV_EMISMATCH naming
 * the flag that differs), and a cell (method, temperature, seed) done in two
 * of them (or in a shard and the target) must hold the same snapshots (else
 * BV_EMISMATCH naming both). Then, one transaction per shard: the samples and
 * in-bag counts (checked equal where present), every `done` run copied with
 * its snapshots, metrics and checkpoint (the run id remapped; the teacher
 * once; an identical cell already there skipped), a cell not done in the shard
 * recorded as pending when the target lacks it. An interrupted merge keeps
 * the shards it committed; the same command again finishes. say (may be NULL)
 * gets one line per shard and notes. st may be NULL.
 */
int bv_merge(const char *target, const char *const *shards, int n, bv_merge_stats *st,
	     void (*say)(void *ctx, const char *line), void *ctx);

/*
 * The work of one cell, in whatever process a runner gives it, on a connection
 * `db` to the plan's database (or a shard's copy of the plan) that the caller
 * opened in that process: sets the BLAS threads, loads the teacher's checkpoint
 * when the students need it per batch (augmentation, teacher batch norm on
 * batch statistics), then bv_cell_train (the run is reset, trained, recorded
 * epoch by epoch, its checkpoint written, marked done). A training failure
 * marks the run `failed` and returns its code with its message. progress (may
 * be NULL) sees every recorded epoch.
 */
int bv_plan_cell_run(const bv_plan *plan, bv_db *db, const bv_cell *cell,
		     bv_cell_progress_fn progress, void *ctx);

/* ---- runners: how cells run ----------------------------------------------- */

/*
 * One interface, several implementations: today's forked local workers
 * (bv_runner_local_new); next a shard runner (a runner that passes on only the
 * cells of shard I/N to an inner runner), an MPI runner (rank 0 hands out
 * cells as ranks finish) and an importer (runs whose logits come from files).
 * An implementation embeds bv_runner as its first member and fills in the
 * hooks; a NULL hook does nothing.
 *
 * The contract:
 *  - The database. bv_plan_init opens the coordinator's connection (plan->db)
 *    after attach and writes every plan row: config, samples, in-bag counts,
 *    the pending run rows; bv_plan_teacher writes the teacher's run. run() may
 *    use plan->db in this process (an in-process runner, the importer), or
 *    close it (bv_db_close, plan->db = NULL) before it forks or hands cells
 *    elsewhere: an SQLite connection must never cross a fork. Every other
 *    process opens its own connection, to the plan's database (local workers)
 *    or to one of its own that carries the same plan (an MPI rank or a shard:
 *    bv_plan_init on that path).
 *  - Who writes which rows. A cell's rows (its run's status, metrics and
 *    snapshots, and its checkpoint file bv_plan_ckpt_name) are written only
 *    by the one process that runs it, through bv_plan_cell_run (or, for an
 *    importer, bv_db_run_reset, bv_db_snapshot_put per epoch and
 *    bv_db_run_finish), one transaction per epoch. No two processes run one
 *    cell at once: the plan's lock keeps a second collect off the database.
 *  - Events. run() reports through on_event, in the coordinating process, on
 *    the thread that called it: each cell it starts gets BV_EV_CELL_START, then
 *    BV_EV_CELL_EPOCH per recorded epoch, then exactly one of BV_EV_CELL_DONE,
 *    BV_EV_CELL_FAILED or BV_EV_CELL_STOPPED, which frees its slot; a slot
 *    holds one cell at a time. BV_EV_IDLE whenever it waits and once at the
 *    end. A cell without an event (not started) stays as its row says.
 *  - Interrupt (SIGINT, SIGTERM). The caller's handler sets cfg.stop; run()
 *    starts no new cell, stops the running ones (a local worker gets SIGTERM
 *    and dies of it, with the default action), waits for them and returns
 *    BV_EINTR. A stopped cell's row stays `running` (or `pending`): the next
 *    collect redoes it from scratch, its partial snapshots dropped.
 *  - A worker's death (kill -9, a crash) while not stopping: BV_EV_CELL_FAILED
 *    with code BV_EINTR and "worker killed by signal N"; the other cells go on.
 *    Its row stays `running`, redone by the next collect. So does everything
 *    after a kill -9 of the whole collect: each epoch is one transaction, and
 *    a checkpoint is written atomically before its run is marked done.
 *  - Returns 0 when it ran every cell it was given (whether each ended done or
 *    failed), BV_EINTR when it stopped early (cfg.stop; the local runner also
 *    when it cannot fork a worker, as bvtool always did: bv_plan_run reports
 *    either as interrupted), another BV_E* code when it could not run at all.
 */
struct bv_runner {
	const char *name;  /* "local" */
	int n_slots;       /* cells at once (the display's rows) */
	/* Before bv_plan_init opens the database (the file may not exist yet). */
	int (*attach)(bv_runner *r, const char *db_path);
	/* The plan's rows are committed: the database and its schema exist. */
	void (*planned)(bv_runner *r, const bv_plan *plan);
	/* Run cells (n > 0) of plan, per the contract above. */
	int (*run)(bv_runner *r, bv_plan *plan, const bv_cell *cells, int n,
		   bv_collect_event_fn on_event, void *ctx);
	/* In bv_plan_release, after the plan's connection is closed and before the
	 * lock is released. */
	void (*detach)(bv_runner *r);
	void (*free)(bv_runner *r);
};

/* NULL is a no-op. */
void bv_runner_free(bv_runner *r);

/*
 * The local runner: up to `jobs` forked worker processes, one per cell, each
 * with its own connection; progress comes back over a pipe as lines (E epoch,
 * D done, F failed), and a keeper process holds one more connection open for
 * the whole collect, so that readers without a busy timeout never find the
 * database locked (runner_local.c). tick_ms: at most this long between
 * BV_EV_IDLE events while cells run.
 */
int bv_runner_local_new(bv_runner **out, int jobs, int tick_ms);

#endif
