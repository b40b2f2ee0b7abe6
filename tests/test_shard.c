/*
 * Shards of a grid (train/shard.c) and the journal mode's pieces (db/open.c):
 * the grid's cells in row order, the longest-processing-time assignment
 * against a brute-force reading of its rule, balance, determinism, "I/N" and
 * --shard auto from the environment, and which file systems count as shared.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "collect.h"

static void grid_cfg(bv_collect_cfg *c, int seeds, const char *methods, const char *temps)
{
	memset(c, 0, sizeof *c);
	c->seeds = seeds;
	c->student_spec = "mlp:64";
	c->teacher_spec = "mlp:1200-1200";
	bv_grid_parse_methods(&c->grid, methods);
	bv_grid_parse_temps(&c->grid, temps);
}

/* The rule, read literally: for each cell in order of cost (descending,
 * stable), the shard of least load, the lowest among equals. */
static void reference_assign(int *out, const double *cost, int n, int shards)
{
	double load[64] = {0};
	int done[256] = {0};
	for (int step = 0; step < n; step++) {
		int pick = -1;
		for (int i = 0; i < n; i++)
			if (!done[i] && (pick < 0 || cost[i] > cost[pick]))
				pick = i;
		int best = 0;
		for (int s = 1; s < shards; s++)
			if (load[s] < load[best])
				best = s;
		out[pick] = best;
		load[best] += cost[pick];
		done[pick] = 1;
	}
}

static void test_grid_order(void)
{
	bv_collect_cfg c;
	bv_cell *cells = NULL;
	int n = 0;
	grid_cfg(&c, 2, "ce,kd,wsl", "2,4");
	CHECK(bv_grid_cells(&c, &cells, &n) == 0 && n == 10, "2 seeds x (1 + 2 + 2) cells: %d", n);
	if (n != 10)
		return;
	/* seed, then method in --methods order, then temperature */
	CHECK(cells[0].seed == 1 && cells[0].method == BV_METHOD_CE && isnan(cells[0].temp), "ce first");
	CHECK(cells[1].method == BV_METHOD_KD && cells[1].temp == 2 && cells[2].temp == 4, "kd T=2, T=4");
	CHECK(cells[3].method == BV_METHOD_WSL && cells[4].method == BV_METHOD_WSL, "then wsl");
	CHECK(cells[5].seed == 2 && cells[5].method == BV_METHOD_CE, "then seed 2");
	for (int i = 0; i < n; i++)
		CHECK(cells[i].run_id == 0, "no run id yet");
	free(cells);
}

static void test_assign(void)
{
	bv_collect_cfg c;
	bv_cell *cells = NULL;
	int n = 0, shard_of[256], again[256], want[256];
	double cost[256];
	grid_cfg(&c, 5, "ce,kd,wsl,kd-filter", "1,2,4,8");
	bv_grid_cells(&c, &cells, &n);
	CHECK(n == 65, "65 cells: %d", n);

	/* equal costs: round robin in grid order */
	CHECK(bv_shard_assign(shard_of, &c, cells, n, 3) == 0, "assign");
	int rr = 1;
	for (int i = 0; i < n; i++)
		rr &= shard_of[i] == i % 3;
	CHECK(rr, "equal costs: cell j to shard j mod 3");
	CHECK(bv_cell_cost(&c, &cells[1]) == 1, "a kd cell without a per-batch teacher costs 1");

	/* with a per-batch teacher, soft cells cost more: the rule as stated */
	c.augment = 1;
	const double soft = bv_cell_cost(&c, &cells[1]);
	CHECK(soft > 1 && bv_cell_cost(&c, &cells[0]) == 1,
	      "augmented: soft cells cost more (%g), ce 1", soft);
	for (int s = 1; s <= 7; s++) {
		for (int i = 0; i < n; i++)
			cost[i] = bv_cell_cost(&c, &cells[i]);
		reference_assign(want, cost, n, s);
		bv_shard_assign(shard_of, &c, cells, n, s);
		bv_shard_assign(again, &c, cells, n, s);
		int same = 1, det = 1;
		double load[8] = {0}, lo = 1e300, hi = 0, biggest = 0;
		for (int i = 0; i < n; i++) {
			same &= shard_of[i] == want[i];
			det &= shard_of[i] == again[i];
			load[shard_of[i]] += cost[i];
			biggest = cost[i] > biggest ? cost[i] : biggest;
		}
		for (int k = 0; k < s; k++) {
			lo = load[k] < lo ? load[k] : lo;
			hi = load[k] > hi ? load[k] : hi;
		}
		CHECK(same, "%d shards: the assignment follows the stated rule", s);
		CHECK(det, "%d shards: deterministic", s);
		/* LPT: no shard is more than one cell heavier than the lightest */
		CHECK(hi - lo <= biggest + 1e-12, "%d shards: loads %g..%g within one cell (%g)", s, lo,
		      hi, biggest);
	}
	/* more shards than cells: each cell alone, the last shards empty */
	bv_shard_assign(shard_of, &c, cells, 3, 5);
	CHECK(shard_of[0] != shard_of[1] && shard_of[1] != shard_of[2] && shard_of[0] != shard_of[2],
	      "3 cells over 5 shards: one each");
	free(cells);
}

static void test_parse(void)
{
	int i = -1, n = -1;
	CHECK(bv_shard_parse(&i, &n, "2/5") == 0 && i == 2 && n == 5, "2/5");
	CHECK(bv_shard_parse(&i, &n, "0/1") == 0 && i == 0 && n == 1, "0/1");
	static const char *const bad[] = {"5/5", "-1/3", "1/0", "1", "/3", "1/", "a/b", "1/3/4",
					  "1 /3", "0x1/3", ""};
	for (size_t k = 0; k < BV_ARRAY_LEN(bad); k++)
		CHECK_ERR(bv_shard_parse(&i, &n, bad[k]), BV_EINVAL);
}

static void clear_env(void)
{
	static const char *const vars[] = {"SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN",
					   "SLURM_ARRAY_TASK_COUNT", "OMPI_COMM_WORLD_RANK",
					   "OMPI_COMM_WORLD_SIZE", "PMI_RANK", "PMI_SIZE",
					   "SLURM_PROCID", "SLURM_NTASKS"};
	for (size_t k = 0; k < BV_ARRAY_LEN(vars); k++)
		unsetenv(vars[k]);
}

static void test_auto(void)
{
	char used[256];
	int i = -1, n = -1;
	clear_env();
	CHECK_ERR(bv_shard_auto(&i, &n, used, sizeof used), BV_EINVAL);
	setenv("SLURM_ARRAY_TASK_ID", "12", 1);
	setenv("SLURM_ARRAY_TASK_MIN", "10", 1);
	setenv("SLURM_ARRAY_TASK_COUNT", "4", 1);
	setenv("OMPI_COMM_WORLD_RANK", "1", 1); /* the array comes first */
	setenv("OMPI_COMM_WORLD_SIZE", "3", 1);
	CHECK(bv_shard_auto(&i, &n, used, sizeof used) == 0 && i == 2 && n == 4,
	      "array 10-13, task 12: shard 2/4 (%d/%d)", i, n);
	CHECK(strstr(used, "SLURM_ARRAY_TASK_ID=12") != NULL, "says what it used: %s", used);
	setenv("SLURM_ARRAY_TASK_ID", "14", 1);
	CHECK_ERR(bv_shard_auto(&i, &n, used, sizeof used), BV_EINVAL);
	unsetenv("SLURM_ARRAY_TASK_COUNT");
	CHECK_ERR(bv_shard_auto(&i, &n, used, sizeof used), BV_EINVAL);
	unsetenv("SLURM_ARRAY_TASK_ID");
	unsetenv("SLURM_ARRAY_TASK_MIN");
	CHECK(bv_shard_auto(&i, &n, used, sizeof used) == 0 && i == 1 && n == 3, "Open MPI: 1/3");
	setenv("OMPI_COMM_WORLD_RANK", "3", 1);
	CHECK_ERR(bv_shard_auto(&i, &n, used, sizeof used), BV_EINVAL);
	clear_env();
	setenv("PMI_RANK", "0", 1);
	setenv("PMI_SIZE", "2", 1);
	CHECK(bv_shard_auto(&i, &n, used, sizeof used) == 0 && i == 0 && n == 2, "PMI: 0/2");
	clear_env();
	setenv("SLURM_PROCID", "3", 1);
	setenv("SLURM_NTASKS", "8", 1);
	CHECK(bv_shard_auto(&i, &n, used, sizeof used) == 0 && i == 3 && n == 8, "srun: 3/8");
	clear_env();
}

static void test_journal(void)
{
	bv_journal j;
	CHECK(bv_db_journal_parse(&j, "auto", "--journal") == 0 && j == BV_JOURNAL_AUTO, "auto");
	CHECK(bv_db_journal_parse(&j, "wal", "--journal") == 0 && j == BV_JOURNAL_WAL, "wal");
	CHECK(bv_db_journal_parse(&j, "delete", "--journal") == 0 && j == BV_JOURNAL_DELETE, "delete");
	CHECK_ERR(bv_db_journal_parse(&j, "WAL", "--journal"), BV_EINVAL);
	CHECK_ERR(bv_db_journal_parse(&j, "", "--journal"), BV_EINVAL);
	/* statfs f_type values: NFS, CIFS, Lustre, GPFS; ext4, tmpfs, xfs, btrfs, overlay */
	CHECK(bv_db_fs_is_network(0x6969) && bv_db_fs_is_network((long)0xFF534D42) &&
		      bv_db_fs_is_network(0x0BD00BD0) && bv_db_fs_is_network(0x47504653),
	      "network file systems");
	CHECK(!bv_db_fs_is_network(0xEF53) && !bv_db_fs_is_network(0x01021994) &&
		      !bv_db_fs_is_network(0x58465342) && !bv_db_fs_is_network(0x9123683E) &&
		      !bv_db_fs_is_network(0x794C7630),
	      "local file systems");
}

int main(void)
{
	test_grid_order();
	test_assign();
	test_parse();
	test_auto();
	test_journal();
	return bv_check_done();
}
