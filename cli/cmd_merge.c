/*
 * `bvtool merge`: shard databases (collect --shard I/N, the ranks of collect
 * --mpi) into one, as one machine would have collected the grid. The work is
 * train/merge.c's (bv_merge); this file holds the options and the lines
 * printed.
 */
#include "cli.h"

#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "collect.h"

static void say(void *ctx, const char *line)
{
	(void)ctx;
	printf("%s\n", line);
	fflush(stdout);
}

int cmd_merge(const cli_cmd *cmd, int argc, char **argv)
{
	const char *db_path = "runs.db", *journal = "auto";
	int n_pos = 0;
	const cli_opt opts[] = {
		{"--db", OPT_STR, &db_path, "FILE", "the database to merge into (created if missing)"},
		{"--journal", OPT_STR, &journal, "J", "auto, wal or delete (network file systems; docs/cluster.md)"},
		{0},
	};
	cli_cmd local = *cmd;
	local.opts = opts;
	char **shards = malloc(sizeof(char *) * (size_t)(argc > 0 ? argc : 1));
	if (!shards)
		return cli_fail(bv_error_set(BV_ENOMEM, "out of memory"));
	int rc = cli_parse_args(&local, argc, argv, shards, argc, &n_pos);
	if (rc) {
		free(shards);
		return rc < 0 ? BV_EXIT_OK : rc;
	}
	bv_journal j;
	if (n_pos < 1) {
		free(shards);
		return cli_usage_error("which shards? (one or more databases of collect --shard or --mpi)");
	}
	if ((rc = bv_db_journal_parse(&j, journal, "--journal")) != 0) {
		free(shards);
		return cli_fail(rc);
	}
	bv_db_set_journal(j);
	/* SQLite builds each snapshot's record in a buffer as large as the
	 * snapshot: kept in the heap, not mapped and unmapped each time (as import) */
	mallopt(M_MMAP_THRESHOLD, 32 << 20);
	bv_merge_stats st;
	rc = bv_merge(db_path, (const char *const *)shards, n_pos, &st, say, NULL);
	free(shards);
	if (rc)
		return cli_fail(rc);
	printf("merge: %d shard%s into '%s': %d cell%s added, %d already there (%.1f MB of "
	       "snapshots in %.1f s)\n",
	       st.shards, st.shards == 1 ? "" : "s", db_path, st.added, st.added == 1 ? "" : "s",
	       st.same, st.bytes / 1e6, st.seconds);
	return BV_EXIT_OK;
}
