/*
 * Shards of a grid: which cells a `collect --shard I/N` runs. The cells are
 * listed in grid order (seed, init, then method, then temperature: the order of the
 * run rows), each with a cost, and dealt out by the longest-processing-time
 * rule: costliest first (ties in grid order), each to the shard with the least
 * cost so far (ties to the lowest shard). The rule depends on nothing but the
 * grid, so every shard of a cluster job computes the same assignment on its
 * own; with equal costs it is round robin, cell j to shard j mod N.
 * docs/cluster.md states the rule for users.
 */
#include "collect.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int bv_grid_cells(const bv_collect_cfg *cfg, bv_cell **out, int *n)
{
	const bv_grid *g = &cfg->grid;
	int per_seed = 0, k = 0;
	for (int mi = 0; mi < g->n_methods; mi++)
		per_seed += g->methods[mi] == BV_METHOD_CE ? 1 : g->n_temps;
	*out = NULL;
	*n = 0;
	const int inits = cfg->inits > 0 ? cfg->inits : 1;
	bv_cell *c = calloc((size_t)cfg->seeds * (size_t)inits * (size_t)(per_seed ? per_seed : 1),
			    sizeof *c);
	if (!c)
		return bv_error_set(BV_ENOMEM, "out of memory for the grid");
	for (int seed = 1; seed <= cfg->seeds; seed++)
		for (int init = 1; init <= inits; init++)
			for (int mi = 0; mi < g->n_methods; mi++) {
				const bv_method m = g->methods[mi];
				const int nt = m == BV_METHOD_CE ? 1 : g->n_temps;
				for (int ti = 0; ti < nt; ti++)
					c[k++] = (bv_cell){0, m, m == BV_METHOD_CE ? NAN : g->temps[ti],
							   seed, init};
			}
	*out = c;
	*n = k;
	return 0;
}

/* Trainable parameters of spec on a 28x28 image of 10 classes (the probe
 * bv_plan_init validates specs on), or 0 when it does not build. */
static double params_of(const char *spec)
{
	bv_model *m = NULL;
	bv_shape probe = {1, 28, 28};
	if (bv_model_new(&m, spec, probe, 10) != 0)
		return 0;
	const double p = (double)m->n_params;
	bv_model_free(m);
	return p;
}

/*
 * A student's training is one unit. A soft cell whose teacher runs on every
 * batch (augmentation, or the teacher's batch norm on batch statistics) adds
 * the teacher's forward passes: a third of a training step (forward and
 * backward) of a model of the teacher's size, in proportion of parameters.
 * Otherwise the teacher's logits are computed once and a soft cell costs what
 * a ce cell does.
 */
double bv_cell_cost(const bv_collect_cfg *cfg, const bv_cell *c)
{
	if (c->method == BV_METHOD_CE || (!cfg->augment && !cfg->teacher_bn_train))
		return 1;
	const double ps = params_of(cfg->student_spec), pt = params_of(cfg->teacher_spec);
	return ps > 0 ? 1 + pt / (3 * ps) : 1;
}

void bv_cell_costs(double *out, const bv_collect_cfg *cfg, const bv_cell *cells, int n)
{
	/* a cost depends on the cell's method being ce or soft only: each is
	 * computed once (a soft one may build two probe models) */
	double ce_cost = -1, soft_cost = -1;
	for (int i = 0; i < n; i++) {
		double *known = cells[i].method == BV_METHOD_CE ? &ce_cost : &soft_cost;
		if (*known < 0)
			*known = bv_cell_cost(cfg, &cells[i]);
		out[i] = *known;
	}
}

int bv_shard_assign(int *shard_of, const bv_collect_cfg *cfg, const bv_cell *cells, int n,
		    int n_shards)
{
	double *cost = malloc(sizeof(double) * (size_t)(n ? n : 1));
	double *load = calloc((size_t)n_shards, sizeof(double));
	int *order = malloc(sizeof(int) * (size_t)(n ? n : 1));
	if (!cost || !load || !order) {
		free(cost);
		free(load);
		free(order);
		return bv_error_set(BV_ENOMEM, "out of memory for the shards");
	}
	bv_cell_costs(cost, cfg, cells, n);
	for (int i = 0; i < n; i++)
		order[i] = i;
	/* insertion sort, stable: costliest first, grid order among equals (grids
	 * are thousands of cells at most, and mostly of one or two costs) */
	for (int i = 1; i < n; i++) {
		const int v = order[i];
		int j = i;
		while (j > 0 && cost[order[j - 1]] < cost[v]) {
			order[j] = order[j - 1];
			j--;
		}
		order[j] = v;
	}
	for (int i = 0; i < n; i++) {
		int best = 0;
		for (int s = 1; s < n_shards; s++)
			if (load[s] < load[best])
				best = s;
		shard_of[order[i]] = best;
		load[best] += cost[order[i]];
	}
	free(cost);
	free(load);
	free(order);
	return 0;
}

int bv_shard_parse(int *index, int *count, const char *s)
{
	long i, n;
	const char *slash = strchr(s, '/');
	char head[32];
	if (!slash || slash == s || (size_t)(slash - s) >= sizeof head)
		return bv_error_set(BV_EINVAL, "--shard: expected I/N (0 <= I < N) or auto, got '%s'", s);
	memcpy(head, s, (size_t)(slash - s));
	head[slash - s] = '\0';
	if (bv_parse_long(&n, slash + 1, 1, 1000000, "--shard") != 0 ||
	    bv_parse_long(&i, head, 0, n - 1, "--shard") != 0)
		return bv_error_set(BV_EINVAL, "--shard: expected I/N (0 <= I < N) or auto, got '%s'", s);
	*index = (int)i;
	*count = (int)n;
	return 0;
}

/* An environment variable as a number in [lo, hi]; 0 when set and valid,
 * 1 when unset, BV_EINVAL naming it otherwise. */
static int env_long(long *out, const char *name, long lo, long hi)
{
	const char *v = getenv(name);
	if (!v)
		return 1;
	if (bv_parse_long(out, v, lo, hi, name) != 0)
		return bv_error_set(BV_EINVAL, "--shard auto: %s is '%s', not a number in [%ld, %ld]",
				    name, v, lo, hi);
	return 0;
}

int bv_shard_auto(int *index, int *count, char *used, size_t size)
{
	long id, nt, lo = 0, rank, ranks;
	int rc;
	/* a Slurm job array: its task ids run from SLURM_ARRAY_TASK_MIN, whatever
	 * --array's first index was */
	if ((rc = env_long(&id, "SLURM_ARRAY_TASK_ID", 0, 1L << 30)) <= 0) {
		if (rc < 0)
			return rc;
		if ((rc = env_long(&nt, "SLURM_ARRAY_TASK_COUNT", 1, 1000000)) != 0)
			return rc < 0 ? rc
				      : bv_error_set(BV_EINVAL, "--shard auto: SLURM_ARRAY_TASK_ID is "
								"set but SLURM_ARRAY_TASK_COUNT is not");
		if ((rc = env_long(&lo, "SLURM_ARRAY_TASK_MIN", 0, 1L << 30)) < 0)
			return rc;
		if (id - lo < 0 || id - lo >= nt)
			return bv_error_set(BV_EINVAL,
					    "--shard auto: SLURM_ARRAY_TASK_ID %ld - SLURM_ARRAY_TASK_MIN "
					    "%ld is not below SLURM_ARRAY_TASK_COUNT %ld (an --array "
					    "with a step or gaps: use --array=0-%ld, or --shard I/N)",
					    id, lo, nt, nt - 1);
		*index = (int)(id - lo);
		*count = (int)nt;
		snprintf(used, size, "SLURM_ARRAY_TASK_ID=%ld, SLURM_ARRAY_TASK_MIN=%ld, "
				     "SLURM_ARRAY_TASK_COUNT=%ld",
			 id, lo, nt);
		return 0;
	}
	/* the rank variables of Open MPI, of PMI launchers (MPICH, Intel MPI), then
	 * of srun's tasks */
	static const char *const vars[][2] = {
		{"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"},
		{"PMI_RANK", "PMI_SIZE"},
		{"SLURM_PROCID", "SLURM_NTASKS"}, /* srun -n N without an array */
	};
	for (size_t v = 0; v < BV_ARRAY_LEN(vars); v++) {
		if ((rc = env_long(&ranks, vars[v][1], 1, 1000000)) < 0)
			return rc;
		if (rc == 1)
			continue;
		if ((rc = env_long(&rank, vars[v][0], 0, ranks - 1)) != 0)
			return rc < 0 ? rc
				      : bv_error_set(BV_EINVAL, "--shard auto: %s is set but %s is not",
						     vars[v][1], vars[v][0]);
		*index = (int)rank;
		*count = (int)ranks;
		snprintf(used, size, "%s=%ld, %s=%ld", vars[v][0], rank, vars[v][1], ranks);
		return 0;
	}
	return bv_error_set(BV_EINVAL,
			    "--shard auto: neither SLURM_ARRAY_TASK_ID nor an MPI rank variable "
			    "(OMPI_COMM_WORLD_RANK, PMI_RANK) is set; give --shard I/N");
}
