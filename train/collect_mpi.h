/*
 * collect --mpi: the grid across the ranks of an Open MPI job (runner_mpi.c;
 * mpi_none.c when bvtool is built without Open MPI).
 */
#ifndef BV_COLLECT_MPI_H
#define BV_COLLECT_MPI_H

#include "collect.h"

/* 1 when this bvtool was built with Open MPI. */
int bv_mpi_built(void);

/*
 * collect --mpi, called on every rank with the same cfg (the same command line).
 * Each rank r writes its own shard database shard_dir/shard-<r>.db (created when
 * missing, carrying the whole plan: every cell's run row; only the cells it ran
 * become done). Rank 0 does the teacher step once and sends the teacher's
 * checkpoint to every rank (shard_dir may be node-local storage: no rank reads
 * another's files), then hands out the cells done nowhere (in no shard of
 * shard_dir nor in cfg->db_path), costliest first (bv_cell_cost; ties in grid
 * order), as ranks ask, itself included. When every cell is done, rank 0 merges
 * every shard-*.db of shard_dir into cfg->db_path (bv_merge).
 * Events only on rank 0, on its main thread: the teacher's, and per cell
 * BV_EV_CELL_START / _DONE / _FAILED with slot = the rank that ran it
 * (BV_EV_CELL_EPOCH for rank 0's own cells). *out_rank: this process's rank.
 * Returns 0 or a BV_E* code with a message, on every rank.
 */
int bv_mpi_collect(const bv_collect_cfg *cfg, const char *shard_dir, int *out_rank,
		   bv_collect_event_fn on_event, void *ctx);

#endif
