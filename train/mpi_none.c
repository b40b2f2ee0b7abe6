/* collect --mpi in a bvtool built without Open MPI: a clear error (collect_mpi.h). */
#include "collect_mpi.h"

int bv_mpi_built(void)
{
	return 0;
}

int bv_mpi_collect(const bv_collect_cfg *cfg, const char *shard_dir, int *out_rank,
		   bv_collect_event_fn on_event, void *ctx)
{
	(void)cfg;
	(void)shard_dir;
	(void)on_event;
	(void)ctx;
	*out_rank = 0;
	return bv_error_set(BV_EINVAL, "--mpi: this bvtool was built without Open MPI (install "
				       "libopenmpi-dev and rebuild)");
}
