/*
 * interop/manifest.c: the minimal manifest of issue 12 read field by field;
 * every rule of the layout refused with its exact message (a table of edits to
 * a valid manifest, then texts that are not JSON or not a manifest); the keys
 * bvtool does not know kept in order; write then read equal field by field
 * (doubles bit for bit, extras included); the writer's refusals leaving no
 * file; the file checks of bv_manifest_read and the joins of bv_manifest_file.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base.h"
#include "check.h"
#include "manifest.h"

#define P "t/manifest.json"

/* the header comment's minimal form, verbatim */
static const char minimal[] =
	"{\"format\": \"bvtool-import\", \"version\": 1, \"dataset\": \"cifar100\", \"classes\": "
	"100,\n"
	" \"labels\": {\"test\": \"labels_test.npy\", \"train\": \"labels_train.npy\"},\n"
	" \"teacher\": {\"model\": \"resnet56\", \"logits\": {\"test\": \"teacher_test.npy\"}},\n"
	" \"runs\": [{\"method\": \"kd\", \"temperature\": 4, \"alpha\": 2.25, \"seed\": 1,\n"
	"           \"model\": \"resnet20\", \"epochs\": [60, 120, 240],\n"
	"           \"logits\": {\"test\": \"kd_T4_s1_test.npy\"}, \"inbag\": \"inbag_s1.npy\",\n"
	"           \"test_acc\": [61.2, 68.9, 73.1]}]}\n";

/* the manifest the table edits: every key of the layout once */
static const char base_text[] =
	"{\"format\": \"bvtool-import\", \"version\": 1, \"dataset\": \"cifar100\", \"classes\": "
	"100,"
	" \"labels\": {\"test\": \"labels_test.npy\", \"train\": \"labels_train.npy\"},"
	" \"teacher\": {\"model\": \"resnet56\", \"epoch\": 200, \"test_acc\": 72.5, \"seconds\": "
	"10,"
	"   \"logits\": {\"test\": \"teacher_test.npy\", \"train\": \"teacher_train.npy\"},"
	"   \"metrics\": {\"epoch\": [200], \"test_acc\": [0.725]}},"
	" \"runs\": ["
	"  {\"method\": \"kd\", \"temperature\": 4, \"alpha\": 2.25, \"gamma\": 0.5, \"seed\": 1,"
	"   \"model\": \"resnet20\", \"epochs\": [60, 120, 240], \"planned_epochs\": 240,"
	"   \"logits\": {\"test\": \"kd_test.npy\", \"train\": [\"a.npy\", \"b.npy\", \"c.npy\"]},"
	"   \"inbag\": \"inbag_s1.npy\", \"test_acc\": [61.2, 68.9, 73.1], \"seconds\": 5.5,"
	"   \"metrics\": {\"epoch\": [60, 120, 240], \"lr\": [0.1, null, 0.001],"
	"     \"test_acc\": [0.612, 0.689, 0.731]}},"
	"  {\"method\": \"ce\", \"seed\": 1, \"epochs\": [240], \"logits\": {\"test\": "
	"\"ce.npy\"}}]}";

static int parse_text(bv_manifest *m, const char *text)
{
	return bv_manifest_parse(m, text, strlen(text), P, "t");
}

static void test_minimal(void)
{
	bv_manifest m;
	int rc = parse_text(&m, minimal);
	CHECK(rc == 0, "minimal form: rc %d (%s)", rc, bv_error_last());
	if (rc)
		return;
	CHECK(strcmp(bv_split_names[BV_SPLIT_TEST], "test") == 0 &&
		      strcmp(bv_split_names[BV_SPLIT_TRAIN], "train") == 0,
	      "bv_split_names");
	CHECK(strcmp(m.path, P) == 0 && strcmp(m.dir, "t") == 0, "path '%s' dir '%s'", m.path,
	      m.dir);
	CHECK(strcmp(m.dataset, "cifar100") == 0 && m.classes == 100, "dataset, classes");
	CHECK(strcmp(m.labels[0], "labels_test.npy") == 0 &&
		      strcmp(m.labels[1], "labels_train.npy") == 0,
	      "labels");
	CHECK(m.extras == NULL, "no top-level extras");
	const bv_mf_run *t = &m.teacher;
	CHECK(m.has_teacher && strcmp(t->where, "teacher") == 0 && t->method == BV_RUN_TEACHER &&
		      t->seed == 0 && isnan(t->temperature) && isnan(t->alpha) && isnan(t->gamma),
	      "teacher: where, method, seed, temperature");
	CHECK(strcmp(t->model, "resnet56") == 0 && t->n_epochs == 1 && t->epochs[0] == 0 &&
		      t->planned_epochs == 0,
	      "teacher: model, epoch 0 by default");
	CHECK(t->logits[0].n_paths == 1 && strcmp(t->logits[0].paths[0], "teacher_test.npy") == 0 &&
		      t->logits[1].n_paths == 0 && !t->logits[1].paths,
	      "teacher: logits");
	CHECK(!t->inbag && !t->test_acc && t->metrics.n == 0 && isnan(t->seconds) && !t->extras,
	      "teacher: the absent keys");
	CHECK(m.n_runs == 1, "one run, got %d", m.n_runs);
	const bv_mf_run *r = &m.runs[0];
	CHECK(strcmp(r->where, "runs[0]") == 0 && r->method == BV_RUN_KD && r->temperature == 4 &&
		      r->alpha == 2.25 && isnan(r->gamma) && r->seed == 1,
	      "run: where, method, temperature, alpha, gamma, seed");
	CHECK(strcmp(r->model, "resnet20") == 0 && r->n_epochs == 3 && r->epochs[0] == 60 &&
		      r->epochs[1] == 120 && r->epochs[2] == 240 && r->planned_epochs == 240,
	      "run: model, epochs, planned_epochs the last epoch");
	CHECK(r->logits[0].n_paths == 1 &&
		      strcmp(r->logits[0].paths[0], "kd_T4_s1_test.npy") == 0 &&
		      r->logits[1].n_paths == 0,
	      "run: logits");
	CHECK(strcmp(r->inbag, "inbag_s1.npy") == 0 && r->test_acc && r->test_acc[0] == 61.2 &&
		      r->test_acc[1] == 68.9 && r->test_acc[2] == 73.1,
	      "run: inbag, test_acc");
	CHECK(r->metrics.n == 0 && !r->metrics.epoch && isnan(r->seconds) && !r->extras,
	      "run: the absent keys");
	bv_manifest_free(&m);
	CHECK(m.dataset == NULL && m.runs == NULL && m.n_runs == 0 && m.path[0] == '\0',
	      "bv_manifest_free leaves it empty");
	bv_manifest_free(&m); /* twice: empty is freeable */
	bv_manifest_free(NULL);
}

/* the full manifest: every key read */
static void test_full(void)
{
	bv_manifest m;
	int rc = parse_text(&m, base_text);
	CHECK(rc == 0, "base manifest: rc %d (%s)", rc, bv_error_last());
	if (rc)
		return;
	const bv_mf_run *t = &m.teacher, *r = &m.runs[0], *c = &m.runs[1];
	CHECK(t->n_epochs == 1 && t->epochs[0] == 200 && t->planned_epochs == 200 && t->test_acc &&
		      t->test_acc[0] == 72.5 && t->seconds == 10,
	      "teacher: epoch, test_acc, seconds");
	CHECK(t->logits[1].n_paths == 1 && strcmp(t->logits[1].paths[0], "teacher_train.npy") == 0,
	      "teacher: train logits");
	CHECK(t->metrics.n == 1 && t->metrics.epoch[0] == 200 && t->metrics.test_acc[0] == 0.725 &&
		      isnan(t->metrics.lr[0]) && isnan(t->metrics.seconds[0]),
	      "teacher: metrics (absent columns NAN)");
	CHECK(r->gamma == 0.5 && r->seconds == 5.5, "run: gamma, seconds");
	CHECK(r->logits[1].n_paths == 3 && strcmp(r->logits[1].paths[2], "c.npy") == 0,
	      "run: one train file per epoch");
	CHECK(r->metrics.n == 3 && r->metrics.epoch[2] == 240 && r->metrics.lr[0] == 0.1 &&
		      isnan(r->metrics.lr[1]) && r->metrics.lr[2] == 0.001 &&
		      r->metrics.test_acc[1] == 0.689 && isnan(r->metrics.train_loss[0]) &&
		      isnan(r->metrics.wsl_weight[2]) && isnan(r->metrics.filtered[1]),
	      "run: metrics, null as NAN");
	CHECK(c->method == BV_RUN_CE && isnan(c->temperature) && c->seed == 1 && c->n_epochs == 1 &&
		      c->logits[0].n_paths == 1 && strcmp(c->logits[0].paths[0], "ce.npy") == 0 &&
		      !c->inbag && !c->model,
	      "ce run");
	bv_manifest_free(&m);

	/* whole numbers written as reals (60.0) are whole numbers */
	static const char reals[] =
		"{\"format\": \"bvtool-import\", \"version\": 1.0, \"dataset\": \"d\", "
		"\"classes\": 10.0,"
		" \"labels\": {\"test\": \"l\"}, \"runs\": [{\"method\": \"ce\", \"seed\": 3.0,"
		" \"epochs\": [0.0, 60.0], \"planned_epochs\": 90.0, \"logits\": {\"train\": "
		"\"x\"}}]}";
	rc = parse_text(&m, reals);
	CHECK(rc == 0 && m.classes == 10 && m.runs[0].seed == 3 && m.runs[0].epochs[1] == 60 &&
		      m.runs[0].planned_epochs == 90 && !m.labels[1] && !m.has_teacher,
	      "whole numbers as reals: rc %d (%s)", rc, bv_error_last());
	bv_manifest_free(&m);
}

/* ---- refusals: edits of base_text ---------------------------------------- */

/* The value at key path k ("runs[0].logits.test[1]") of root set to value (JSON
 * text; an index one past the end appends), or removed when value is NULL. */
static int edit(json_t *root, const char *k, const char *value)
{
	json_t *cur = root;
	for (const char *p = k; *p;) {
		char name[64];
		size_t idx = 0;
		int is_idx = *p == '[';
		if (is_idx) {
			idx = strtoul(p + 1, (char **)&p, 10);
			p++; /* ']' */
		} else {
			size_t n = strcspn(p, ".[");
			snprintf(name, sizeof name, "%.*s", (int)n, p);
			p += n;
		}
		if (*p == '.')
			p++;
		if (*p) { /* not the last step */
			cur = is_idx ? json_array_get(cur, idx) : json_object_get(cur, name);
			if (!cur)
				return -1;
			continue;
		}
		if (!value)
			return is_idx ? json_array_remove(cur, idx) : json_object_del(cur, name);
		json_t *v = json_loads(value, JSON_DECODE_ANY, NULL);
		if (!v)
			return -1;
		if (!is_idx)
			return json_object_set_new(cur, name, v);
		if (idx == json_array_size(cur))
			return json_array_append_new(cur, v);
		return json_array_set_new(cur, idx, v);
	}
	return -1;
}

#define KD1                                                                                        \
	"{\"method\": \"kd\", \"temperature\": 4.0, \"seed\": 1, \"epochs\": [1], \"logits\": "    \
	"{\"test\": \"x\"}}"
#define CE(s)                                                                                      \
	"{\"method\": \"ce\", \"seed\": " #s ", \"epochs\": [1], \"logits\": {\"test\": \"x\"}}"
#define LONG50 "aaaaaaaaaabbbbbbbbbbccccccccccddddddddddeeeeeeeeee"

static const struct bad {
	const char *key, *value;   /* value NULL: the key removed */
	const char *key2, *value2; /* a second edit, or NULL */
	const char *msg;
} bads[] = {
	/* the top level */
	{"format", NULL, 0, 0, "format: missing (expected \"bvtool-import\")"},
	{"format", "\"bvtool-export\"", 0, 0,
	 "format: expected \"bvtool-import\", got \"bvtool-export\""},
	{"format", "3", 0, 0, "format: expected \"bvtool-import\", got 3"},
	{"format", "\"" LONG50 "\"", 0, 0,
	 "format: expected \"bvtool-import\", got \"aaaaaaaaaabbbbbbbbbbccccccccccdddddddddd...\""},
	{"format", "\"a\\u0001b\\nc\\u202ed\\u00e9\"", 0, 0,
	 "format: expected \"bvtool-import\", got \"a?b?c?d\xc3\xa9\""},
	{"version", "2", 0, 0, "version 2 is newer than this bvtool reads (1); upgrade bvtool"},
	{"version", "7.0", 0, 0, "version 7 is newer than this bvtool reads (1); upgrade bvtool"},
	{"version", "0", 0, 0, "version: expected 1 (the version this bvtool reads), got 0"},
	{"version", "\"1\"", 0, 0,
	 "version: expected 1 (the version this bvtool reads), got \"1\""},
	{"version", NULL, 0, 0, "version: missing (expected 1 (the version this bvtool reads))"},
	{"dataset", "\"\"", 0, 0, "dataset: expected a non-empty string, got \"\""},
	{"dataset", NULL, 0, 0, "dataset: missing (expected a non-empty string)"},
	{"classes", "0", 0, 0, "classes: expected a whole number 1..100000, got 0"},
	{"classes", "100001", 0, 0, "classes: expected a whole number 1..100000, got 100001"},
	{"classes", "2.5", 0, 0, "classes: expected a whole number 1..100000, got 2.5"},
	{"classes", "true", 0, 0, "classes: expected a whole number 1..100000, got true"},
	{"labels", "[]", 0, 0,
	 "labels: expected an object {\"test\": path, \"train\": path}, got an empty list"},
	{"labels.valid", "\"v.npy\"", 0, 0, "labels.valid: unknown split (expected test or train)"},
	{"labels.test", NULL, 0, 0, "labels.test: missing (expected a path)"},
	{"labels.train", "3", 0, 0, "labels.train: expected a path, got 3"},
	{"runs", NULL, 0, 0, "runs: missing (expected a list of runs)"},
	{"runs", "{}", 0, 0, "runs: expected a list of runs, got an empty object"},
	{"runs[0]", "3", 0, 0, "runs[0]: expected an object, got 3"},
	/* a run */
	{"runs[0].method", "\"dkd\"", 0, 0,
	 "runs[0].method: unknown method 'dkd' (expected ce, kd, wsl or kd-filter; the database "
	 "has "
	 "no other methods yet)"},
	{"runs[0].method", "\"teacher\"", 0, 0,
	 "runs[0].method: 'teacher' is not a run's method; use the top-level 'teacher' key"},
	{"runs[0].method", NULL, 0, 0,
	 "runs[0].method: missing (expected a method (ce, kd, wsl or kd-filter))"},
	{"runs[1].method", "[\"ce\"]", 0, 0,
	 "runs[1].method: expected a method (ce, kd, wsl or kd-filter), got a list of 1"},
	{"runs[0].temperature", NULL, 0, 0,
	 "runs[0].temperature: missing (expected a number > 0 (kd learns from the teacher at a "
	 "temperature))"},
	{"runs[0].temperature", "0", 0, 0,
	 "runs[0].temperature: expected a number > 0 (kd learns from the teacher at a "
	 "temperature), "
	 "got 0"},
	{"runs[0].method", "\"wsl\"", "runs[0].temperature", "-1",
	 "runs[0].temperature: expected a number > 0 (wsl learns from the teacher at a "
	 "temperature), "
	 "got -1"},
	{"runs[0].method", "\"ce\"", 0, 0,
	 "runs[0].temperature: expected none for ce (it does not learn from the teacher), got 4"},
	{"runs[0].alpha", "\"x\"", 0, 0, "runs[0].alpha: expected a number, got \"x\""},
	{"runs[0].gamma", "null", 0, 0, "runs[0].gamma: expected a number, got null"},
	{"runs[0].seed", "-3", 0, 0, "runs[0].seed: expected a whole number 1..2147483647, got -3"},
	{"runs[0].seed", "2147483648", 0, 0,
	 "runs[0].seed: expected a whole number 1..2147483647, got 2147483648"},
	{"runs[0].seed", "0", 0, 0, "runs[0].seed: expected a whole number 1..2147483647, got 0"},
	{"runs[1].seed", NULL, 0, 0,
	 "runs[1].seed: missing (expected a whole number 1..2147483647)"},
	{"runs[0].model", "3", 0, 0, "runs[0].model: expected a string, got 3"},
	{"runs[0].epochs", "[]", 0, 0,
	 "runs[0].epochs: expected a non-empty list of epochs (whole numbers 0..1000000, "
	 "ascending), "
	 "got an empty list"},
	{"runs[0].epochs", NULL, 0, 0,
	 "runs[0].epochs: missing (expected a non-empty list of epochs (whole numbers 0..1000000, "
	 "ascending))"},
	{"runs[0].epochs", "[60, 60, 240]", 0, 0,
	 "runs[0].epochs[1]: expected an epoch after 60 (ascending, distinct), got 60"},
	{"runs[0].epochs", "[60, 30, 240]", 0, 0,
	 "runs[0].epochs[1]: expected an epoch after 60 (ascending, distinct), got 30"},
	{"runs[0].epochs", "[-1, 2, 3]", 0, 0,
	 "runs[0].epochs[0]: expected a whole number 0..1000000, got -1"},
	{"runs[0].epochs", "[1, 2, 1000001]", 0, 0,
	 "runs[0].epochs[2]: expected a whole number 0..1000000, got 1000001"},
	{"runs[0].epochs", "[1, 2.5, 3]", 0, 0,
	 "runs[0].epochs[1]: expected a whole number 0..1000000, got 2.5"},
	{"runs[0].planned_epochs", "200", 0, 0,
	 "runs[0].planned_epochs: expected a whole number 240..1000000 (at least the last epoch), "
	 "got "
	 "200"},
	{"runs[0].logits", NULL, 0, 0,
	 "runs[0].logits: missing (expected an object {\"test\": ..., \"train\": ...})"},
	{"runs[0].logits", "{}", 0, 0,
	 "runs[0].logits: expected a test or train split, got an empty object"},
	{"runs[0].logits.valid", "\"v.npy\"", 0, 0,
	 "runs[0].logits.valid: unknown split (expected test or train)"},
	{"runs[0].logits.test", "[\"a\", \"b\"]", 0, 0,
	 "runs[0].logits.test: expected a path or a list of 3 paths (one per epoch), got a list of "
	 "2"},
	{"runs[1].logits.test", "[\"a\", \"b\"]", 0, 0,
	 "runs[1].logits.test: expected a path or a list of 1 path (one per epoch), got a list of "
	 "2"},
	{"runs[0].logits.train[1]", "3", 0, 0, "runs[0].logits.train[1]: expected a path, got 3"},
	{"runs[0].logits.test", "\"\"", 0, 0,
	 "runs[0].logits.test: expected a path or a list of 3 paths (one per epoch), got \"\""},
	{"runs[0].inbag", "\"\"", 0, 0, "runs[0].inbag: expected a path, got \"\""},
	{"runs[0].test_acc", "[1, 2]", 0, 0,
	 "runs[0].test_acc: expected a list of 3 numbers 0..100 (percent, one per epoch), got a "
	 "list "
	 "of 2"},
	{"runs[0].test_acc[1]", "101", 0, 0,
	 "runs[0].test_acc[1]: expected a number 0..100 (percent), got 101"},
	{"runs[0].test_acc[2]", "null", 0, 0,
	 "runs[0].test_acc[2]: expected a number 0..100 (percent), got null"},
	{"runs[0].metrics", "[]", 0, 0,
	 "runs[0].metrics: expected an object of lists {\"epoch\": [...], \"test_acc\": [...], "
	 "...}, "
	 "got an empty list"},
	{"runs[0].metrics.epoch", NULL, 0, 0,
	 "runs[0].metrics.epoch: missing (expected a non-empty list of epochs (whole numbers "
	 "0..1000000, ascending))"},
	{"runs[0].metrics.epoch", "[60, 240, 120]", 0, 0,
	 "runs[0].metrics.epoch[2]: expected an epoch after 240 (ascending, distinct), got 120"},
	{"runs[0].metrics.lr", "[0.1, 0.01]", 0, 0,
	 "runs[0].metrics.lr: expected a list of 3 numbers or nulls (one per epoch of "
	 "runs[0].metrics.epoch), got a list of 2"},
	{"runs[0].metrics.test_acc[0]", "61.2", 0, 0,
	 "runs[0].metrics.test_acc[0]: expected a fraction 0..1 or null, got 61.2"},
	{"runs[0].metrics.train_acc", "[0.5, -0.1, 1]", 0, 0,
	 "runs[0].metrics.train_acc[1]: expected a fraction 0..1 or null, got -0.1"},
	{"runs[0].metrics.seconds", "[1, \"2\", 3]", 0, 0,
	 "runs[0].metrics.seconds[1]: expected a number or null, got \"2\""},
	{"runs[0].metrics.loss", "[1, 2, 3]", 0, 0,
	 "runs[0].metrics.loss: unknown metric (expected epoch, lr, train_loss, train_acc, "
	 "test_acc, "
	 "wsl_weight, filtered or seconds)"},
	{"runs[0].seconds", "-1", 0, 0, "runs[0].seconds: expected a number >= 0, got -1"},
	/* one run per cell (temperatures compared as numbers: 4 is 4.0) */
	{"runs[2]", KD1, "runs[0].epochs", "[1, 2, 3]",
	 "runs[2] repeats the cell kd T=4 seed 1 of runs[0]"},
	{"runs[2]", CE(2), "runs[3]", CE(1), "runs[3] repeats the cell ce seed 1 of runs[1]"},
	{"runs[2]", CE(1), "runs[3]", KD1, "runs[2] repeats the cell ce seed 1 of runs[1]"},
	/* the teacher */
	{"teacher", "[]", 0, 0, "teacher: expected an object, got an empty list"},
	{"teacher.logits", NULL, 0, 0,
	 "teacher.logits: missing (expected an object {\"test\": ..., \"train\": ...})"},
	{"teacher.logits.test", "[\"a\"]", 0, 0,
	 "teacher.logits.test: expected a path (one (N, K) file), got a list of 1"},
	{"teacher.inbag", "\"i.npy\"", 0, 0,
	 "teacher.inbag: expected none (the teacher trains on the whole training set), got "
	 "\"i.npy\""},
	{"teacher.seed", "1", 0, 0,
	 "teacher.seed: expected none (a run's key; the teacher's are model, epoch, logits, "
	 "test_acc, "
	 "metrics and seconds), got 1"},
	{"teacher.epochs", "[1]", 0, 0,
	 "teacher.epochs: expected none (a run's key; the teacher's are model, epoch, logits, "
	 "test_acc, metrics and seconds), got a list of 1"},
	{"teacher.epoch", "-1", 0, 0, "teacher.epoch: expected a whole number 0..1000000, got -1"},
	{"teacher.test_acc", "[72.5]", 0, 0,
	 "teacher.test_acc: expected a number 0..100 (percent), got a list of 1"},
	{"teacher.test_acc", "100.5", 0, 0,
	 "teacher.test_acc: expected a number 0..100 (percent), got 100.5"},
	{"teacher.metrics.epoch", "[]", 0, 0,
	 "teacher.metrics.epoch: expected a non-empty list of epochs (whole numbers 0..1000000, "
	 "ascending), got an empty list"},
	{"teacher.seconds", "\"10\"", 0, 0, "teacher.seconds: expected a number >= 0, got \"10\""},
};

static void test_bad(void)
{
	json_t *base = json_loads(base_text, 0, NULL);
	CHECK(base != NULL, "the base manifest is JSON");
	if (!base)
		return;
	for (size_t i = 0; i < BV_ARRAY_LEN(bads); i++) {
		const struct bad *b = &bads[i];
		json_t *root = json_deep_copy(base);
		char want[1024];
		int ok = root && edit(root, b->key, b->value) == 0 &&
			 (!b->key2 || edit(root, b->key2, b->value2) == 0);
		CHECK(ok, "case %zu: cannot edit %s", i, b->key);
		char *text = ok ? json_dumps(root, JSON_COMPACT) : NULL;
		json_decref(root);
		if (!text)
			continue;
		bv_manifest m;
		memset(&m, 0xff, sizeof m); /* parse leaves it empty on error, whatever it held */
		const int rc = parse_text(&m, text);
		snprintf(want, sizeof want, "'%s': %s", P, b->msg);
		CHECK(rc == BV_EFORMAT && strcmp(bv_error_last(), want) == 0,
		      "case %zu (%s): rc %d\n  got:  %s\n  want: %s\n  text: %s", i, b->key, rc,
		      bv_error_last(), want, text);
		CHECK(m.dataset == NULL && m.runs == NULL && m.n_runs == 0 && m.extras == NULL &&
			      m.teacher.epochs == NULL,
		      "case %zu: *m is left empty", i);
		free(text);
	}
	printf("refusals: %zu edited manifests\n", BV_ARRAY_LEN(bads));
	json_decref(base);
}

/* texts that are not JSON, or not an object */
static void test_not_json(void)
{
	static const struct {
		const char *text;
		size_t len; /* 0: strlen */
		const char *msg;
	} cases[] = {
		{"", 0, "not JSON: line 1, column 0: unexpected token near end of file"},
		{"{\"format\": \"bvtool-import\",}", 0,
		 "not JSON: line 1, column 28: string or '}' expected near '}'"},
		{"{\"a\": 1}\n{\"b\": 2}", 0,
		 "not JSON: line 2, column 1: end of file expected near '{'"},
		{"{\"format\": \"bvtool-import\",\n \"format\": \"bvtool-import\"}", 0,
		 "line 2, column 9: duplicate object key near '\"format\"' (a key may appear once "
		 "in an "
		 "object)"},
		{"{\"a\": {\"b\": 1, \"b\": 2}}", 0,
		 "line 1, column 18: duplicate object key near '\"b\"' (a key may appear once in "
		 "an "
		 "object)"},
		{"{\"format\": \"bvtool\xff\"}", 0,
		 "not JSON: line 1, column 18: unable to decode byte 0xff near '\"bvtool'"},
		{"{\"format\": \"bv\0tool\"}", 21,
		 "not JSON: line 1, column 14: control character 0x0 near '\"bv'"},
		{"{\"format\": \"a\\u0000b\"}", 0,
		 "not JSON: line 1, column 21: \\u0000 is not allowed without JSON_ALLOW_NUL near "
		 "'\"a\\u0000b\"'"},
		{"{\"format\": \"a\tb\"}", 0,
		 "not JSON: line 1, column 13: control character 0x9 near '\"a'"},
		{"{\"n\": 1e400}", 0,
		 "not JSON: line 1, column 11: real number overflow near '1e400'"},
		{"{\"n\": 123456789012345678901234}", 0,
		 "not JSON: line 1, column 30: too big integer"},
		{"[{\"format\": \"bvtool-import\"}]", 0,
		 "expected an object at the top level, got a list of 1"},
		{"\"bvtool-import\"", 0,
		 "expected an object at the top level, got \"bvtool-import\""},
		{"null", 0, "expected an object at the top level, got null"},
		{"{}", 0, "format: missing (expected \"bvtool-import\")"},
	};
	for (size_t i = 0; i < BV_ARRAY_LEN(cases); i++) {
		char want[512];
		bv_manifest m;
		const size_t len = cases[i].len ? cases[i].len : strlen(cases[i].text);
		const int rc = bv_manifest_parse(&m, cases[i].text, len, P, "t");
		snprintf(want, sizeof want, "'%s': %s", P, cases[i].msg);
		CHECK(rc == BV_EFORMAT && strcmp(bv_error_last(), want) == 0,
		      "text %zu: rc %d\n  got:  %s\n  want: %s", i, rc, bv_error_last(), want);
		CHECK(strchr(bv_error_last(), '\n') == NULL, "text %zu: one line", i);
	}
	/* NULL text is an empty one */
	bv_manifest m;
	CHECK_ERR(bv_manifest_parse(&m, NULL, 0, P, "t"), BV_EFORMAT);

	/* nesting deeper than jansson's limit (2048) is refused, however deep */
	const size_t depths[] = {2049, 100000};
	for (size_t d = 0; d < BV_ARRAY_LEN(depths); d++) {
		const size_t depth = depths[d];
		const char head[] = "{\"format\": \"bvtool-import\", \"x\": ";
		char *text = malloc(sizeof head + 2 * depth + 2);
		if (!text)
			continue;
		size_t n = strlen(head);
		memcpy(text, head, n);
		memset(text + n, '[', depth);
		memset(text + n + depth, ']', depth);
		n += 2 * depth;
		text[n++] = '}';
		const int rc = bv_manifest_parse(&m, text, n, P, "t");
		CHECK(rc == BV_EFORMAT && strstr(bv_error_last(), "not JSON: line 1, column") &&
			      strstr(bv_error_last(), "maximum parsing depth reached"),
		      "depth %zu: rc %d (%s)", depth, rc, bv_error_last());
		free(text);
	}
}

/* ---- the keys bvtool does not know ---------------------------------------- */

static void test_extras(void)
{
	static const char text[] =
		"{\"zeta\": 1, \"format\": \"bvtool-import\", \"version\": 1, \"dataset\": \"d\","
		" \"classes\": 10, \"labels\": {\"test\": \"l\"},"
		" \"config\": {\"lr\": 0.1, \"nested\": {\"a\": [1, 2.5, null, true, "
		"\"s\\u00e9\"]}},"
		" \"teacher\": {\"logits\": {\"test\": \"t\"}, \"arch_notes\": \"deep\"},"
		" \"runs\": [{\"method\": \"kd\", \"temperature\": 2, \"seed\": 1, \"epochs\": [1],"
		"   \"logits\": {\"test\": \"x\"}, \"optimizer\": {\"name\": \"sgd\", "
		"\"momentum\": 0.9},"
		"   \"epoch\": 3},"
		"  {\"method\": \"ce\", \"seed\": 1, \"epochs\": [1], \"logits\": {\"test\": "
		"\"x\"}}],"
		" \"alpha\": -0.0}";
	bv_manifest m;
	int rc = parse_text(&m, text);
	CHECK(rc == 0, "extras: rc %d (%s)", rc, bv_error_last());
	if (rc)
		return;
	const char *want =
		"{\"zeta\":1,\"config\":{\"lr\":0.10000000000000001,\"nested\":{\"a\":[1,2.5,"
		"null,true,\"s\xc3\xa9\"]}},\"alpha\":-0.0}";
	CHECK(m.extras && strcmp(m.extras, want) == 0,
	      "top-level extras in input order:\n  got:  %s\n  want: %s",
	      m.extras ? m.extras : "(none)", want);
	CHECK(m.teacher.extras && strcmp(m.teacher.extras, "{\"arch_notes\":\"deep\"}") == 0,
	      "teacher extras: %s", m.teacher.extras ? m.teacher.extras : "(none)");
	/* "epoch" is the teacher's key, not a run's: an extra in a run */
	CHECK(m.runs[0].extras &&
		      strcmp(m.runs[0].extras, "{\"optimizer\":{\"name\":\"sgd\",\"momentum\":0."
					       "90000000000000002},\"epoch\":3}") == 0,
	      "run extras: %s", m.runs[0].extras ? m.runs[0].extras : "(none)");
	CHECK(m.runs[1].extras == NULL, "a run without extras has none");

	/* written and read back: the extras come back as they were, text and all */
	char root[512], path[600];
	if (bv_check_tmpdir(root, sizeof root, "manifest_extras") == 0) {
		snprintf(path, sizeof path, "%s/%s", root, BV_MANIFEST_NAME);
		bv_manifest back;
		rc = bv_manifest_write(&m, path);
		CHECK(rc == 0, "write with extras: rc %d (%s)", rc, bv_error_last());
		rc = rc ? rc : bv_manifest_read(&back, root);
		CHECK(rc == 0, "read back: rc %d (%s)", rc, bv_error_last());
		if (rc == 0) {
			CHECK(back.extras && strcmp(back.extras, m.extras) == 0 &&
				      strcmp(back.runs[0].extras, m.runs[0].extras) == 0 &&
				      strcmp(back.teacher.extras, m.teacher.extras) == 0,
			      "extras read back as text: %s", back.extras ? back.extras : "(none)");
			bv_manifest_free(&back);
		}
		unlink(path);
		rmdir(root);
	}
	bv_manifest_free(&m);
}

/* ---- writing ---------------------------------------------------------------- */

static char *dupstr(const char *s)
{
	char *d = malloc(strlen(s) + 1);
	if (!d)
		abort();
	return strcpy(d, s);
}

static double *doubles(int n, const double *v)
{
	double *d = malloc((size_t)n * sizeof *d);
	if (!d)
		abort();
	memcpy(d, v, (size_t)n * sizeof *d);
	return d;
}

static int *ints(int n, const int *v)
{
	int *d = malloc((size_t)n * sizeof *d);
	if (!d)
		abort();
	memcpy(d, v, (size_t)n * sizeof *d);
	return d;
}

static void set_logits(bv_mf_logits *lg, int n, const char *const *paths)
{
	lg->n_paths = n;
	lg->paths = malloc((size_t)n * sizeof *lg->paths);
	if (!lg->paths)
		abort();
	for (int i = 0; i < n; i++)
		lg->paths[i] = dupstr(paths[i]);
}

/* A manifest filled the way export fills one: malloc'd strings and arrays, and
 * doubles that only 17 digits carry (0.1, 1/3, 1e-300, -0, the least subnormal). */
static void fill(bv_manifest *m)
{
	memset(m, 0, sizeof *m);
	m->dataset = dupstr("cifar100 \xc3\xa9t\xc3\xa9");
	m->classes = 100;
	m->labels[0] = dupstr("labels_test.npy");
	m->labels[1] = dupstr("/abs/labels_train.npy");
	m->extras = dupstr("{\"note\":\"x\",\"deep\":{\"a\":[1,0.1,null,{\"b\":1e-300}]}}");

	m->has_teacher = 1;
	bv_mf_run *t = &m->teacher;
	t->method = BV_RUN_TEACHER;
	t->temperature = t->alpha = t->gamma = NAN;
	t->model = dupstr("resnet56");
	t->n_epochs = 1;
	t->epochs = ints(1, (int[]){200});
	t->planned_epochs = 200;
	set_logits(&t->logits[0], 1, (const char *[]){"teacher_test.npy"});
	set_logits(&t->logits[1], 1, (const char *[]){"teacher.npz:train"});
	t->test_acc = doubles(1, (double[]){100.0 / 3});
	t->seconds = 1.0 / 3;
	t->metrics.n = 2;
	t->metrics.epoch = ints(2, (int[]){100, 200});
	t->metrics.lr = doubles(2, (double[]){0.1, 0.001});
	t->metrics.test_acc = doubles(2, (double[]){NAN, 0.7});
	/* the other columns NULL: all NAN */

	m->n_runs = 3;
	m->runs = calloc(3, sizeof *m->runs);
	if (!m->runs)
		abort();
	bv_mf_run *r = &m->runs[0];
	r->method = BV_RUN_KD;
	r->temperature = 0.1;
	r->alpha = 1.0 / 3;
	r->gamma = 1e-300;
	r->seed = 2147483647;
	r->model = dupstr("resnet20");
	r->n_epochs = 3;
	r->epochs = ints(3, (int[]){0, 5, 10});
	r->planned_epochs = 20;
	set_logits(&r->logits[0], 3, (const char *[]){"a.npy", "b.npy", "c.npy"});
	set_logits(&r->logits[1], 1, (const char *[]){"train.npy"});
	r->inbag = dupstr("inbag.npy");
	r->test_acc = doubles(3, (double[]){0.0, 50.5, 100.0});
	r->seconds = 0;
	r->metrics.n = 3;
	r->metrics.epoch = ints(3, (int[]){1, 5, 10});
	for (int c = 0; c < 7; c++) {
		double *col = doubles(3, (double[]){c * 0.1, NAN, 1.0 / (c + 3)});
		double **cols[] = {&r->metrics.lr,	   &r->metrics.train_loss,
				   &r->metrics.train_acc,  &r->metrics.test_acc,
				   &r->metrics.wsl_weight, &r->metrics.filtered,
				   &r->metrics.seconds};
		*cols[c] = col;
	}
	r->extras = dupstr("{\"optimizer\":{\"name\":\"sgd\",\"momentum\":0.90000000000000002}}");

	r = &m->runs[1];
	r->method = BV_RUN_CE;
	r->temperature = r->gamma = r->seconds = NAN;
	r->alpha = -0.0;
	r->seed = 1;
	r->n_epochs = 1;
	r->epochs = ints(1, (int[]){240});
	r->planned_epochs = 240;
	set_logits(&r->logits[0], 1, (const char *[]){"ce.npy"});

	r = &m->runs[2];
	r->method = BV_RUN_KD_FILTER;
	r->temperature = 1e300;
	r->alpha = 4.9406564584124654e-324; /* the least subnormal */
	r->gamma = -2.5;
	r->seconds = 1e-7;
	r->seed = 1;
	r->n_epochs = 2;
	r->epochs = ints(2, (int[]){1000000 - 1, 1000000});
	r->planned_epochs = 1000000;
	set_logits(&r->logits[1], 2, (const char *[]){"x1.npy", "x2.npy"});
}

static int read_path(bv_manifest *m, const char *dir)
{
	return bv_manifest_read(m, dir);
}

static int file_exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

/* the comparison the round trips rest on: it sees one ulp, the sign of zero,
 * a path, an extra; a NULL metrics column is a column of NAN */
static void test_compare(void)
{
	bv_manifest a, b;
	char why[600];
	fill(&a);
	fill(&b);
	CHECK(bv_manifest_compare(&a, &b, why, sizeof why) == 0, "equal: %s", why);
	b.runs[0].alpha = nextafter(a.runs[0].alpha, 1);
	CHECK(bv_manifest_compare(&a, &b, why, sizeof why) == 1 &&
		      strcmp(why, "runs[0].alpha: 0.33333333333333331 vs 0.33333333333333337") == 0,
	      "one ulp: %s", why);
	b.runs[0].alpha = a.runs[0].alpha;
	b.runs[1].alpha = 0.0;
	CHECK(bv_manifest_compare(&a, &b, why, sizeof why) == 1 &&
		      strcmp(why, "runs[1].alpha: -0 vs 0") == 0,
	      "-0 vs 0: %s", why);
	b.runs[1].alpha = -0.0;
	b.runs[0].logits[0].paths[2][0] = 'x';
	CHECK(bv_manifest_compare(&a, &b, why, sizeof why) == 1 &&
		      strcmp(why, "runs[0].logits.test[2]: c.npy vs x.npy") == 0,
	      "a path: %s", why);
	b.runs[0].logits[0].paths[2][0] = 'c';
	free(b.teacher.extras);
	b.teacher.extras = dupstr("{\"a\":1}");
	CHECK(bv_manifest_compare(&a, &b, why, sizeof why) == 1 &&
		      strcmp(why, "teacher.extras: (absent) vs {\"a\":1}") == 0,
	      "an extra: %s", why);
	free(b.teacher.extras);
	b.teacher.extras = dupstr("{}");
	CHECK(bv_manifest_compare(&a, &b, why, sizeof why) == 0, "no extras is {}: %s", why);
	b.teacher.metrics.seconds = doubles(2, (double[]){NAN, NAN});
	CHECK(bv_manifest_compare(&a, &b, why, sizeof why) == 0, "NULL is NAN: %s", why);
	b.teacher.metrics.seconds[1] = 3;
	CHECK(bv_manifest_compare(&a, &b, why, sizeof why) == 1 &&
		      strcmp(why, "teacher.metrics.seconds[1]: nan vs 3") == 0,
	      "a metric: %s", why);
	b.runs[2].epochs[0]--;
	CHECK(bv_manifest_compare(&a, &b, why, sizeof why) == 1 &&
		      strcmp(why, "teacher.metrics.seconds[1]: nan vs 3") == 0,
	      "the first difference: %s", why);
	bv_manifest_free(&a);
	bv_manifest_free(&b);
}

static void test_round_trip(void)
{
	char root[512], path[600], why[600];
	bv_manifest m, back, again;
	if (bv_check_tmpdir(root, sizeof root, "manifest_rt") != 0) {
		CHECK(0, "tmpdir");
		return;
	}
	snprintf(path, sizeof path, "%s/%s", root, BV_MANIFEST_NAME);
	fill(&m);
	int rc = bv_manifest_write(&m, path);
	CHECK(rc == 0, "write: rc %d (%s)", rc, bv_error_last());
	rc = rc ? rc : read_path(&back, root);
	CHECK(rc == 0, "read back: rc %d (%s)", rc, bv_error_last());
	if (rc == 0) {
		CHECK(bv_manifest_compare(&m, &back, why, sizeof why) == 0, "round trip: %s", why);
		CHECK(strcmp(back.dir, root) == 0 && strcmp(back.path, path) == 0, "dir, path");
		CHECK(signbit(back.runs[1].alpha) && back.runs[1].alpha == 0, "-0 stays -0");
		CHECK(back.runs[2].alpha == 4.9406564584124654e-324 &&
			      back.runs[0].gamma == 1e-300 && back.runs[0].alpha == 1.0 / 3 &&
			      back.runs[0].temperature == 0.1,
		      "doubles bit for bit");
		CHECK(back.runs[1].logits[0].n_paths == 1 && back.runs[0].logits[0].n_paths == 3,
		      "a path as a string, paths as a list");
		CHECK(back.teacher.metrics.train_loss && isnan(back.teacher.metrics.train_loss[1]),
		      "an absent column reads back all NAN");
		/* the same manifest written again is the same text */
		char path2[700];
		snprintf(path2, sizeof path2, "%s/again.json", root);
		rc = bv_manifest_write(&back, path2);
		size_t n1 = 0, n2 = 0;
		unsigned char *t1 = NULL, *t2 = NULL;
		CHECK(rc == 0 && bv_read_file(&t1, &n1, path) == 0 &&
			      bv_read_file(&t2, &n2, path2) == 0 && n1 == n2 &&
			      memcmp(t1, t2, n1) == 0,
		      "written twice, the same text (rc %d)", rc);
		CHECK(n1 > 0 && t1[n1 - 1] == '\n' && memchr(t1, '\n', n1) != t1 + n1 - 1,
		      "indented, ends in a newline");
		CHECK(t1 && strstr((const char *)t1, "\"alpha\": 0.33333333333333331") &&
			      strstr((const char *)t1, "\"seed\": 2147483647,") &&
			      strstr((const char *)t1, "\"epoch\": 200,") &&
			      strstr((const char *)t1, "\"test_acc\": 33.333333333333336,"),
		      "17 digits; whole numbers as integers; the teacher's epoch and test_acc");
		free(t1);
		free(t2);
		bv_manifest_free(&back);
		unlink(path2);
	}

	/* the writer reads its text back before it writes: what would not parse,
	 * or not as given, is refused and leaves no file (and an old one as it was) */
	bv_manifest_free(&m);
	unlink(path);
	struct {
		const char *what, *msg;
	} refusals[] = {
		{"seed 0", "runs[0].seed: expected a whole number 1..2147483647, got 0"},
		{"alpha inf", "runs[0].alpha: inf is not a JSON number"},
		{"model not UTF-8", "runs[0].model: not UTF-8 text"},
		{"an extra that is a key", "runs[0].extras: 'seed' is a key bvtool writes itself"},
		{"top-level extra teacher", "extras: 'teacher' is a key bvtool writes itself"},
		{"extras not an object", "extras: not the text of a JSON object"},
		{"teacher planned_epochs",
		 "it would read back otherwise: teacher.planned_epochs: 5 vs 200"},
		{"teacher two epochs", "teacher.epoch: 2 epochs, expected one"},
		{"logits path NULL", "runs[1].logits.test[0]: no path given"},
		{"dataset NULL", "dataset: missing (expected a non-empty string)"},
		{"a NAN in test_acc",
		 "runs[0].test_acc[1]: expected a number 0..100 (percent), got null"},
	};
	for (size_t i = 0; i < BV_ARRAY_LEN(refusals); i++) {
		fill(&m);
		switch (i) {
		case 0:
			m.runs[0].seed = 0;
			break;
		case 1:
			m.runs[0].alpha = INFINITY;
			break;
		case 2:
			free(m.runs[0].model);
			m.runs[0].model = dupstr("res\xffnet");
			break;
		case 3:
			free(m.runs[0].extras);
			m.runs[0].extras = dupstr("{\"seed\":3}");
			break;
		case 4:
			m.has_teacher = 0;
			free(m.extras);
			m.extras = dupstr("{\"teacher\":{}}");
			break;
		case 5:
			free(m.extras);
			m.extras = dupstr("[1]");
			break;
		case 6:
			m.teacher.planned_epochs = 5;
			break;
		case 7:
			m.teacher.n_epochs = 2;
			break;
		case 8:
			free(m.runs[1].logits[0].paths[0]);
			m.runs[1].logits[0].paths[0] = NULL;
			break;
		case 9:
			free(m.dataset);
			m.dataset = NULL;
			break;
		case 10:
			m.runs[0].test_acc[1] = NAN;
			break;
		}
		char want[800];
		snprintf(want, sizeof want, "cannot write '%s': %s", path, refusals[i].msg);
		rc = bv_manifest_write(&m, path);
		CHECK(rc == BV_EINVAL && strcmp(bv_error_last(), want) == 0,
		      "write refused (%s): rc %d\n  got:  %s\n  want: %s", refusals[i].what, rc,
		      bv_error_last(), want);
		CHECK(!file_exists(path), "write refused (%s): no file left", refusals[i].what);
		bv_manifest_free(&m);
	}
	/* an old manifest is left as it was */
	const char old[] = "old\n";
	CHECK(bv_write_file_atomic(path, old, 4) == 0, "old file");
	fill(&m);
	m.runs[0].seed = -1;
	CHECK_ERR(bv_manifest_write(&m, path), BV_EINVAL);
	size_t n = 0;
	unsigned char *t = NULL;
	CHECK(bv_read_file(&t, &n, path) == 0 && n == 4 && memcmp(t, old, 4) == 0,
	      "a refused write leaves the old file");
	free(t);
	/* and a good write replaces it; a directory in its place is refused */
	m.runs[0].seed = 1;
	CHECK(bv_manifest_write(&m, path) == 0 && read_path(&again, root) == 0, "rewrite: %s",
	      bv_error_last());
	bv_manifest_free(&again);
	unlink(path);
	CHECK(mkdir(path, 0755) == 0, "mkdir");
	CHECK_ERR(bv_manifest_write(&m, path), BV_EIO);
	rmdir(path);
	bv_manifest_free(&m);

	/* an empty manifest (export's before it is filled) is refused, not crashed on */
	memset(&m, 0, sizeof m);
	CHECK_ERR(bv_manifest_write(&m, path), BV_EINVAL);
	CHECK(!file_exists(path), "an empty manifest writes nothing");
	rmdir(root);
}

/* ---- reading a file, and the paths it names ---------------------------------- */

static void test_files(void)
{
	char root[512], dir[600], path[700], want[900], out[64];
	bv_manifest m;
	if (bv_check_tmpdir(root, sizeof root, "manifest_files") != 0) {
		CHECK(0, "tmpdir");
		return;
	}
	snprintf(dir, sizeof dir, "%s/none", root);
	snprintf(want, sizeof want, "cannot open '%s/manifest.json': No such file or directory",
		 dir);
	CHECK(bv_manifest_read(&m, dir) == BV_EIO && strcmp(bv_error_last(), want) == 0,
	      "missing: %s", bv_error_last());

	/* a directory where the manifest should be */
	snprintf(dir, sizeof dir, "%s/d", root);
	snprintf(path, sizeof path, "%s/manifest.json", dir);
	mkdir(dir, 0755);
	mkdir(path, 0755);
	snprintf(want, sizeof want, "'%s' is not a regular file", path);
	CHECK(bv_manifest_read(&m, dir) == BV_EIO && strcmp(bv_error_last(), want) == 0,
	      "a directory: %s", bv_error_last());
	rmdir(path);

	/* more than 64 MB: refused before it is read (a sparse file costs no disk) */
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	CHECK(fd >= 0 && ftruncate(fd, (off_t)65 << 20) == 0, "sparse file");
	if (fd >= 0)
		close(fd);
	snprintf(want, sizeof want, "'%s': 68157440 bytes, more than a manifest may have (64 MB)",
		 path);
	CHECK(bv_manifest_read(&m, dir) == BV_EFORMAT && strcmp(bv_error_last(), want) == 0,
	      "too big: %s", bv_error_last());
	CHECK(m.dataset == NULL && m.runs == NULL, "too big: *m empty");

	/* a good one, with a trailing slash on the directory */
	CHECK(bv_write_file_atomic(path, minimal, strlen(minimal)) == 0, "write minimal");
	char slash[700];
	snprintf(slash, sizeof slash, "%s/", dir);
	int rc = bv_manifest_read(&m, slash);
	CHECK(rc == 0 && strcmp(m.path, path) == 0 && strcmp(m.dir, slash) == 0 && m.n_runs == 1,
	      "read: rc %d (%s) path '%s'", rc, bv_error_last(), m.path);

	if (rc == 0) {
		char buf[1200];
		snprintf(want, sizeof want, "%sa.npy", slash);
		CHECK(bv_manifest_file(buf, sizeof buf, &m, "a.npy") == 0 && strcmp(buf, want) == 0,
		      "relative to a dir with a slash: %s", buf);
		CHECK(bv_manifest_file(buf, sizeof buf, &m, "/x/a.npz:m") == 0 &&
			      strcmp(buf, "/x/a.npz:m") == 0,
		      "absolute: %s", buf);
		snprintf(want, sizeof want,
			 "'%s': path 'a_rather_long_name_for_an_array_file.npy' is too long (63 "
			 "bytes at most)",
			 path);
		CHECK(bv_manifest_file(out, sizeof out, &m,
				       "a_rather_long_name_for_an_array_file.npy") == BV_EINVAL &&
			      strcmp(bv_error_last(), want) == 0 && out[0] == '\0',
		      "too long: %s", bv_error_last());
		bv_manifest_free(&m);
	}
	rc = parse_text(&m, minimal);
	if (rc == 0) {
		char buf[64];
		CHECK(bv_manifest_file(buf, sizeof buf, &m, "sub/a.npy") == 0 &&
			      strcmp(buf, "t/sub/a.npy") == 0,
		      "relative: %s", buf);
		bv_manifest_free(&m);
	}
	rc = bv_manifest_parse(&m, minimal, strlen(minimal), "manifest.json", "");
	if (rc == 0) {
		char buf[64];
		CHECK(bv_manifest_file(buf, sizeof buf, &m, "a.npy") == 0 &&
			      strcmp(buf, "a.npy") == 0,
		      "no directory: %s", buf);
		bv_manifest_free(&m);
	}
	unlink(path);
	rmdir(dir);
	rmdir(root);
}

int main(void)
{
	test_minimal();
	test_full();
	test_bad();
	test_not_json();
	test_extras();
	test_compare();
	test_round_trip();
	test_files();
	return bv_check_done();
}
