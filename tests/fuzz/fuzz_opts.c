/*
 * fuzz_opts: the option parser (cli_parse of cli/opts.c, compiled into this
 * target) on an argv cut from the input at NUL bytes, against a table with an
 * option of every type; then the number parsers (bv_parse_long,
 * bv_parse_double) and the value parsers of collect's flags (--schedule,
 * --record-epochs, --methods, --augment, --criterion) on the whole input as
 * one string.
 *
 * Properties: a parsed number is inside its range, and is the whole string
 * (D16: " 1" and "0x10" are refused); a schedule and an epoch list print to
 * the text collect stores (in collect's buffer sizes) and that text parses
 * back to the same value.
 */
#include "fuzz_common.h"

#include <ctype.h>
#include <math.h>

#include "analysis.h"
#include "cli.h"
#include "train.h"

#define MAX_ARGS 64

static const char *o_str;
static int o_int, o_pos, o_flag, o_flag2;
static double o_dbl, o_dpos;

static const cli_opt opts[] = {
	{"--db", OPT_STR, &o_str, "FILE", "a string", 0, 0, 0},
	{"--epochs", OPT_INT, &o_int, "N", "an integer in [0, 1000]", 0, 1000, 0},
	{"--seeds", OPT_INT, &o_pos, "B", "a positive integer", 0, 1024, 1},
	{"--alpha", OPT_DOUBLE, &o_dbl, "A", "a number in [-1, 10]", -1, 10, 0},
	{"--lr", OPT_DOUBLE, &o_dpos, "LR", "a positive number", 0, 1e6, 1},
	{"--nesterov", OPT_FLAG, &o_flag, NULL, "a flag", 0, 0, 0},
	{"--record-train", OPT_FLAG, &o_flag2, NULL, "another flag", 0, 0, 0},
	{NULL, 0, NULL, NULL, NULL, 0, 0, 0},
};

static const cli_cmd cmd = {"fuzz", NULL, "the option parser under a fuzzer", "[options]", opts};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	/* cli_parse prints its messages and --help; keep libFuzzer's own output
	 * (and the sanitizers', written to descriptor 2) readable */
	if (!freopen("/dev/null", "w", stdout))
		abort();
	FILE *null = fopen("/dev/null", "w");
	if (!null)
		abort();
	stderr = null;
	cli_set_command(&cmd);
	return 0;
}

/* A number accepted from s must be all of s: no blank, no sign games, no hex. */
static void check_whole(const char *s, const char *what)
{
	if (!*s || isspace((unsigned char)s[0]) || strchr(s, 'x') || strchr(s, 'X'))
		fz_fail(what, s);
}

static void parse_values(const char *s)
{
	long l;
	double d;
	if (bv_parse_long(&l, s, -5, 1000000, "--n") == 0) {
		if (l < -5 || l > 1000000)
			fz_fail("bv_parse_long: out of range", s);
		check_whole(s, "bv_parse_long accepted a partial or hex number (D16)");
	}
	if (bv_parse_long(&l, s, 1, 1, "--one") == 0 && l != 1)
		fz_fail("bv_parse_long: out of [1, 1]", s);
	if (bv_parse_double(&d, s, 0.0, 1.0, "--x") == 0) {
		if (!(d >= 0.0 && d <= 1.0))
			fz_fail("bv_parse_double: out of range or NaN", s);
		check_whole(s, "bv_parse_double accepted a partial or hex number (D16)");
	}
	if (bv_parse_double(&d, s, -1e308, 1e308, "--y") == 0) {
		if (!isfinite(d))
			fz_fail("bv_parse_double: accepted a non-finite number", s);
		check_whole(s, "bv_parse_double accepted a partial or hex number (D16)");
	}

	bv_schedule sc, sc2;
	if (bv_schedule_parse(&sc, s, "--schedule") == 0) {
		char t[128], t2[128]; /* cmd_collect's buffer */
		bv_schedule_format(t, sizeof t, &sc);
		if (bv_schedule_parse(&sc2, t, "--schedule") != 0)
			fz_fail("schedule: its stored text does not parse back", t);
		bv_schedule_format(t2, sizeof t2, &sc2);
		if (strcmp(t, t2) != 0 || sc.kind != sc2.kind || sc.n_milestones != sc2.n_milestones)
			fz_fail("schedule: its stored text is another schedule", t);
		for (int e = 0; e < 4; e++)
			(void)bv_schedule_lr(&sc, 0.1f, e * 7, 20);
	}
	static bv_record_cfg rc1, rc2;
	const int n_epochs = (int)(strlen(s) % 2 ? 200 : 1000000);
	if (bv_record_parse(&rc1, s, n_epochs, "--record-epochs") == 0) {
		char t[1100]; /* cmd_collect's buffer */
		bv_record_format(t, sizeof t, &rc1);
		if (bv_record_parse(&rc2, t, n_epochs, "--record-epochs") != 0)
			fz_fail("record-epochs: its stored text does not parse back", t);
		if (rc1.all != rc2.all || rc1.last != rc2.last || rc1.n_list != rc2.n_list ||
		    memcmp(rc1.list, rc2.list, sizeof rc1.list) != 0)
			fz_fail("record-epochs: its stored text is another list", t);
		for (int e = 1; e <= 3; e++)
			(void)bv_record_wants(&rc1, e, 3);
	}
	bv_method m;
	if (bv_method_parse(&m, s, "--methods") == 0 && strcmp(bv_method_name(m), s) != 0)
		fz_fail("method: parsed name is not the canonical one", s);
	int aug;
	if (bv_augment_parse(&aug, s, "--augment") == 0 && strcmp(bv_augment_name(aug), s) != 0)
		fz_fail("augment: parsed name is not the canonical one", s);
	bv_criterion c;
	if (bv_criterion_parse(&c, s, "--criterion") == 0 && strcmp(bv_criterion_name(c), s) != 0)
		fz_fail("criterion: parsed name is not the canonical one", s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf, *argv[MAX_ARGS + 2];
	int argc = 0;

	if (size > 4096)
		return 0;
	buf = malloc(size + 1);
	if (!buf)
		abort();
	memcpy(buf, data, size);
	buf[size] = '\0';

	o_str = "runs.db";
	o_int = 10;
	o_pos = 8;
	o_dbl = 2.25;
	o_dpos = 0.05;
	o_flag = o_flag2 = 0;
	argv[argc++] = "bvtool";
	for (size_t i = 0; i <= size && argc <= MAX_ARGS;) {
		argv[argc++] = buf + i;
		i += strlen(buf + i) + 1;
	}
	argv[argc] = NULL;
	int rc = cli_parse(&cmd, argc, argv);
	if (rc == 0) {
		if (o_int < 0 || o_int > 1000 || o_pos < 1 || o_pos > 1024 || !(o_dbl >= -1 && o_dbl <= 10) ||
		    !(o_dpos > 0 && o_dpos <= 1e6) || !o_str)
			fz_fail("cli_parse: a value outside its option's range", NULL);
		cli_help(stdout, &cmd);
	} else if (rc != -1 && rc != BV_EXIT_USAGE) {
		fz_fail("cli_parse: a status other than 0, -1 or 2", NULL);
	}
	(void)cli_exit_code(bv_error_code());

	parse_values(buf);
	free(buf);
	return 0;
}
