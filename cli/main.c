/*
 * bvtool's entry point: the command table (git.c style), dispatch, and
 * `bvtool help [CMD]` / `bvtool --help` / `bvtool --version`.
 */
#include "cli.h"

#include <string.h>

#include "base.h"

static int cmd_help(const cli_cmd *cmd, int argc, char **argv);

static const cli_opt no_opts[] = {{0}};

static const cli_cmd commands[] = {
	{"train", cmd_train,
	 "train one model (a teacher, or a student with ce, kd, wsl or kd-filter) and save a checkpoint",
	 "[--data NAME[:DIR]] [--model SPEC] [--method M] [--teacher CKPT] [--out CKPT] [options]",
	 NULL},
	{"collect", cmd_collect,
	 "train the teacher and the students of every (method, temperature, seed) cell and record their predictions",
	 "[--db FILE] [--data NAME[:DIR]] [--seeds B] [--methods LIST] [--temps LIST] [options]", NULL},
	{"decompose", cmd_decompose,
	 "per-sample bias/variance of every method, regularization samples, and their correlation with accuracy",
	 "[--db FILE] [--temp T] [--epoch E|last|all] [--split test|train|oob] [--criterion bv|grad|teacher]",
	 NULL},
	{"dynamics", cmd_dynamics,
	 "training dynamics of every sample: when learned, how often forgotten, confidence, variability",
	 "[--db FILE] [--split test|train]", NULL},
	{"report", cmd_report, "the results tables: accuracy per method, paired differences, regularization samples, correlation",
	 "[--db FILE] [--format md|csv|json] [--out FILE]", NULL},
	{"plot", cmd_plot, "figures of a decomposed database: gnuplot scripts, their data files and the images",
	 "[--db FILE] [--out DIR] [--temp T] [--format png|svg|pdf]", NULL},
	{"import", cmd_import,
	 "import runs trained elsewhere: a manifest.json and NumPy .npy/.npz logits (docs/import.md)",
	 "[--db FILE] [--replace] [--quiet] DIR", NULL},
	{"export", cmd_export,
	 "write a database's runs and per-sample statistics as NumPy files and a manifest.json",
	 "[--db FILE] --out DIR", NULL},
	{"merge", cmd_merge,
	 "combine shard databases (collect --shard, collect --mpi) into one (docs/cluster.md)",
	 "[--db FILE] [--journal J] SHARD.db...", NULL},
	{"status", cmd_status, "list the cells of a collection: done, running, interrupted or pending",
	 "[--db FILE]", NULL},
	{"help", cmd_help, "show the commands, or one command's options", "[COMMAND]", no_opts},
};

const cli_cmd *cli_commands(int *n)
{
	*n = (int)(sizeof commands / sizeof commands[0]);
	return commands;
}

static const cli_cmd *find_cmd(const char *name)
{
	int n;
	const cli_cmd *c = cli_commands(&n);
	for (int i = 0; i < n; i++)
		if (strcmp(c[i].name, name) == 0)
			return &c[i];
	return NULL;
}

static void overview(FILE *f)
{
	int n;
	const cli_cmd *c = cli_commands(&n);
	fprintf(f, "usage: bvtool COMMAND [options]\n\n"
		   "bvtool trains teachers and students (ce, kd, wsl) and decomposes each sample's\n"
		   "log-loss into bias and variance across bootstrap replicas.\n\ncommands:\n");
	for (int i = 0; i < n; i++)
		fprintf(f, "  %-10s %s\n", c[i].name, c[i].summary);
	fprintf(f, "\n'bvtool help COMMAND' or 'bvtool COMMAND --help' shows a command's options.\n");
}

static int cmd_help(const cli_cmd *cmd, int argc, char **argv)
{
	if (argc < 2) {
		overview(stdout);
		return BV_EXIT_OK;
	}
	const cli_cmd *c = find_cmd(argv[1]);
	if (!c)
		return cli_fail(bv_error_set(BV_EINVAL, "no command '%s' (bvtool help lists them)", argv[1]));
	if (c->fn != cmd_help && !c->opts) {
		/* options are declared inside the command: let it print them */
		char *args[] = {(char *)c->name, "--help", NULL};
		return c->fn(c, 2, args);
	}
	cli_help(stdout, c);
	return BV_EXIT_OK;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		overview(stderr);
		return BV_EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		overview(stdout);
		return BV_EXIT_OK;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("bvtool %s\n", BV_VERSION);
		return BV_EXIT_OK;
	}
	const cli_cmd *c = find_cmd(argv[1]);
	if (!c)
		return cli_fail(bv_error_set(BV_EINVAL, "no command '%s' (bvtool help lists them)", argv[1]));
	cli_set_command(c);
	return c->fn(c, argc - 1, argv + 1);
}
