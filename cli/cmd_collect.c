/*
 * `bvtool collect`: the run grid. Trains the teacher once (or takes a given
 * checkpoint), then one student per (method, temperature, seed) cell on the
 * seed's bootstrap replica, recording every sample's logits at the recorded
 * epochs into the SQLite database.
 *
 * This file is options and wiring: the engine (train/collect.h) makes the
 * plan, the teacher and runs the cells through the local runner (--jobs
 * forked workers); the display (progress.c) shows the engine's events; the
 * engine's BV_E* codes become exit statuses here. Ctrl-C or SIGTERM sets the
 * engine's stop flag: the running cells are stopped, and the next collect
 * redoes them (the engine's lock keeps a second collect off the database, so
 * a `running` row seen at start-up belongs to an interrupted collect).
 */
#include "cli.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "collect.h"
#include "collect_mpi.h"
#include "progress.h"

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

/* The options that the engine takes parsed. */
typedef struct list_opts {
	const char *methods, *temps, *record_epochs, *schedule, *augment, *teacher_bn;
	const char *shard, *shard_dir, *journal;
	int jobs, mpi;
} list_opts;

/* Parse the list options into cfg, in the order their errors are reported. */
static int parse_lists(bv_collect_cfg *cfg, const list_opts *l)
{
	int rc;
	if ((rc = bv_grid_parse_methods(&cfg->grid, l->methods)) != 0 ||
	    (rc = bv_grid_parse_temps(&cfg->grid, l->temps)) != 0 ||
	    (rc = bv_schedule_parse(&cfg->schedule, l->schedule, "--schedule")) != 0 ||
	    (rc = bv_record_parse(&cfg->rec, l->record_epochs, cfg->epochs, "--record-epochs")) != 0 ||
	    (rc = bv_augment_parse(&cfg->augment, l->augment, "--augment")) != 0)
		return rc;
	if (strcmp(l->teacher_bn, "eval") != 0 && strcmp(l->teacher_bn, "train") != 0)
		return bv_error_set(BV_EINVAL, "--teacher-bn: expected eval or train, got '%s'",
				    l->teacher_bn);
	cfg->teacher_bn_train = strcmp(l->teacher_bn, "train") == 0;
	bv_journal j;
	if ((rc = bv_db_journal_parse(&j, l->journal, "--journal")) != 0)
		return rc;
	bv_db_set_journal(j);
	if (l->mpi && (l->shard || cfg->teacher_only))
		return bv_error_set(BV_EINVAL, "--mpi: the ranks share the grid out themselves; "
					       "drop %s",
				    l->shard ? "--shard" : "--teacher-only");
	if (l->shard && cfg->teacher_only)
		return bv_error_set(BV_EINVAL, "--shard: a --teacher-only collect runs no cell; drop one "
					       "of them");
	if (l->shard && strcmp(l->shard, "auto") == 0) {
		char used[256];
		if ((rc = bv_shard_auto(&cfg->shard_index, &cfg->shard_count, used, sizeof used)) != 0)
			return rc;
		printf("shard %d/%d (--shard auto: %s)\n", cfg->shard_index, cfg->shard_count, used);
	} else if (l->shard && (rc = bv_shard_parse(&cfg->shard_index, &cfg->shard_count, l->shard)) != 0) {
		return rc;
	}
	return 0;
}

/* collect --mpi: every rank runs this; rank 0 shows the events, one line each. */
static int collect_mpi(const bv_collect_cfg *cfg, const char *shard_dir)
{
	cli_progress p;
	int rank = 0;
	cli_progress_init(&p, 0);
	int rc = bv_mpi_collect(cfg, shard_dir, &rank, cli_progress_event, &p);
	/* every rank that fails says so, on the stderr mpirun gathers: which rank */
	if (rc && rank > 0)
		bv_error_prefix(rc, "rank %d", rank);
	if (rc == 0 && rank == 0)
		cli_progress_say(&p, "collected the grid in %.0fs: %s\n", bv_now() - p.t0, cfg->db_path);
	cli_progress_release(&p);
	return rc;
}

/* Plan, teacher, cells, with the display on stdout. */
static int collect(const bv_collect_cfg *cfg, int jobs)
{
	bv_runner *runner = NULL;
	bv_plan plan;
	cli_progress p;
	const int tty = isatty(STDOUT_FILENO);
	int rc;
	cli_progress_init(&p, tty);
	/* a terminal's display redraws every second; elsewhere a finished worker is
	 * reaped within 0.2 s */
	if ((rc = bv_runner_local_new(&runner, jobs, tty ? 1000 : 200)) != 0)
		return rc;
	if ((rc = bv_plan_init(&plan, cfg, runner)) != 0 ||
	    (rc = bv_plan_teacher(&plan, cli_progress_event, &p)) != 0)
		goto done;
	if (cfg->teacher_only) {
		cli_progress_say(&p, "teacher ready in '%s': shards take --teacher-ckpt %s/%s.ckpt/teacher.ckpt\n",
				 cfg->db_path, plan.db_dir, plan.db_base);
		goto done;
	}
	if (plan.n_cells == 0) {
		cli_progress_say(&p, "all %d cells are done (%s)\n", plan.n_total, cfg->db_path);
		goto done;
	}
	char of_shard[48] = "";
	if (cfg->shard_count > 0)
		snprintf(of_shard, sizeof of_shard, " of shard %d/%d", cfg->shard_index, cfg->shard_count);
	cli_progress_say(&p, "%d of %d cells%s to train (%d jobs)%s\n", plan.n_cells, plan.n_total,
			 of_shard, jobs,
			 plan.n_stale ? "; interrupted cells are redone from scratch" : "");
	if (plan.n_failed)
		cli_progress_say(&p, "%d cell%s that failed before %s tried again\n", plan.n_failed,
				 plan.n_failed == 1 ? "" : "s", plan.n_failed == 1 ? "is" : "are");
	if ((rc = cli_progress_start(&p, runner->n_slots, plan.n_cells, cfg->epochs)) != 0 ||
	    (rc = bv_plan_run(&plan, cli_progress_event, &p)) != 0)
		goto done;
	cli_progress_say(&p, "collected %d cells in %.0fs: %s\n", plan.n_cells, bv_now() - p.t0,
			 cfg->db_path);
done:
	bv_plan_release(&plan);
	bv_runner_free(runner);
	cli_progress_release(&p);
	return rc;
}

int cmd_collect(const cli_cmd *cmd, int argc, char **argv)
{
	bv_collect_cfg c = {
		.db_path = "runs.db", .data_spec = "fashion-mnist", .teacher_spec = "mlp:1200-1200",
		.student_spec = "mlp:64", .seeds = 8, .inits = 1, .teacher_epochs = 10, .teacher_seed = 1,
		.epochs = 10, .batch = 128, .threads = 1, .teacher_lr = 0.05, .lr = 0.01,
		.momentum = 0.9, .wd = 5e-4, .alpha = 2.25, .gamma = 1, .stop = &interrupted,
	};
	list_opts l = {
		.methods = "ce,kd,wsl", .temps = "1,2,4,8", .record_epochs = "all",
		.schedule = "cosine", .augment = "none", .teacher_bn = "eval",
		/* every CPU, one cell each: the bytes depend on --threads (1), never
		 * on --jobs, so the machine's default changes no result */
		.jobs = bv_cpus_available(),
		.shard_dir = "shards", .journal = "auto",
	};
	const cli_opt opts[] = {
		{"--db", OPT_STR, &c.db_path, "FILE", "the SQLite database to create or extend"},
		{"--data", OPT_STR, &c.data_spec, "NAME[:DIR]", "fashion-mnist[:DIR], mnist:DIR, idx:DIR, cifar10:DIR or cifar100:DIR"},
		{"--train-subset", OPT_INT, &c.subset, "N", "use only the first N training samples (0 = all)", 0, 100000000},
		{"--teacher", OPT_STR, &c.teacher_spec, "SPEC", "the teacher's model spec"},
		{"--teacher-epochs", OPT_INT, &c.teacher_epochs, "N", "the teacher's training epochs", 1, 100000},
		{"--teacher-lr", OPT_DOUBLE, &c.teacher_lr, "LR", "the teacher's learning rate", 0, 100, 1},
		{"--teacher-seed", OPT_INT, &c.teacher_seed, "N", "the teacher's seed", 0, 2147483647},
		{"--teacher-ckpt", OPT_STR, &c.teacher_ckpt, "CKPT", "use this trained teacher instead of training one"},
		{"--student", OPT_STR, &c.student_spec, "SPEC", "the students' model spec"},
		{"--seeds", OPT_INT, &c.seeds, "B", "bootstrap replicas (seeds 1..B)", 1, 100000},
		{"--inits", OPT_INT, &c.inits, "M", "initialisations per replica (inits 1..M): decompose then splits the variance by source", 1, 64},
		{"--methods", OPT_STR, &l.methods, "LIST", "student methods: ce, kd, wsl, kd-filter"},
		{"--temps", OPT_STR, &l.temps, "LIST", "temperatures of the kd/wsl/kd-filter cells"},
		{"--alpha", OPT_DOUBLE, &c.alpha, "A", "weight of the soft term", 0, 1e6},
		{"--gamma", OPT_DOUBLE, &c.gamma, "G", "weight of the hard term in kd/wsl", 0, 1e6},
		{"--epochs", OPT_INT, &c.epochs, "N", "the students' training epochs", 1, 100000},
		{"--lr", OPT_DOUBLE, &c.lr, "LR", "the students' learning rate", 0, 100, 1},
		{"--momentum", OPT_DOUBLE, &c.momentum, "M", "SGD momentum", 0, 0.999},
		{"--nesterov", OPT_FLAG, &c.nesterov, NULL, "use Nesterov momentum"},
		{"--wd", OPT_DOUBLE, &c.wd, "WD", "weight decay", 0, 1},
		{"--schedule", OPT_STR, &l.schedule, "S", "const, cosine or step:E1,E2,...:GAMMA"},
		{"--batch", OPT_INT, &c.batch, "N", "mini-batch size", 1, 65536},
		{"--record-epochs", OPT_STR, &l.record_epochs, "E", "all, last, or a list such as 1,5,10"},
		{"--record-train", OPT_FLAG, &c.rec.train, NULL, "also record the training split's logits"},
		{"--augment", OPT_STR, &l.augment, "A", "none, or crop-flip (random 4-pixel padded crop and horizontal flip)"},
		{"--teacher-bn", OPT_STR, &l.teacher_bn, "M", "the teacher's batch norm for the students: eval or train"},
		{"--jobs", OPT_INT, &l.jobs, "J", "cells trained at once (processes)", 1, 4096, 0, 1},
		{"--threads", OPT_INT, &c.threads, "N", "BLAS threads per job", 1, 4096},
		{"--teacher-only", OPT_FLAG, &c.teacher_only, NULL, "write the plan and train the teacher, no cell (the first job of a cluster run)"},
		{"--shard", OPT_STR, &l.shard, "I/N", "run only shard I (0-based) of N of the grid; auto: from SLURM_ARRAY_TASK_ID or the MPI rank"},
		{"--mpi", OPT_FLAG, &l.mpi, NULL, "under mpirun: the ranks share the grid, rank 0 merges into --db"},
		{"--shard-dir", OPT_STR, &l.shard_dir, "DIR", "--mpi: where each rank writes its shard database"},
		{"--journal", OPT_STR, &l.journal, "J", "auto, wal or delete (network file systems; docs/cluster.md)"},
		{0},
	};
	cli_cmd local = *cmd;
	local.opts = opts;
	int rc = cli_parse(&local, argc, argv);
	if (rc)
		return rc < 0 ? BV_EXIT_OK : rc;
	if ((rc = parse_lists(&c, &l)) != 0)
		return cli_fail(rc);

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	rc = l.mpi ? collect_mpi(&c, l.shard_dir) : collect(&c, l.jobs);
	return rc ? cli_fail(rc) : BV_EXIT_OK;
}
