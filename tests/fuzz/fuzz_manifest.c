/*
 * fuzz_manifest: bv_manifest_parse on the input, as the text of a
 * manifest.json; when it parses, the manifest is written (bv_manifest_write, a
 * file in the process's directory) and read back (bv_manifest_read).
 *
 * Properties: a refusal is BV_EFORMAT with one printable line that names the
 * file, and leaves *m empty; a parsed manifest holds what the layout promises
 * (ranges, ascending epochs, a path per epoch or one for all, one run per
 * cell); it writes without a refusal and reads back the same manifest field by
 * field, doubles bit for bit and extras to the byte; its paths join to its
 * directory, or are refused when the buffer is short.
 */
#include "fuzz_common.h"

#include <math.h>

#include "manifest.h"

#define IN_PATH "in/manifest.json"

static void check_message(const char *e)
{
	if (strncmp(e, "'" IN_PATH "': ", strlen(IN_PATH) + 4) != 0)
		fz_fail("a refusal that does not name the file", e);
	for (const unsigned char *p = (const unsigned char *)e; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			fz_fail("a refusal with a control character", e);
}

static void check_empty(const bv_manifest *m)
{
	if (m->dataset || m->runs || m->n_runs || m->extras || m->has_teacher ||
	    m->teacher.epochs || m->labels[0] || m->labels[1] || m->path[0])
		fz_fail("a refusal left the manifest half filled", NULL);
}

static void check_run(const bv_mf_run *r, int teacher)
{
	const char *w = r->where;
	if (teacher ? r->method != BV_RUN_TEACHER || r->seed != 0 || r->n_epochs != 1 || r->inbag
		    : r->method == BV_RUN_TEACHER || r->seed < 1)
		fz_fail("method, seed or epoch count out of place", w);
	if (bv_db_method_soft(r->method) ? !(r->temperature > 0 && isfinite(r->temperature))
					 : !isnan(r->temperature))
		fz_fail("a temperature where there should be none, or none where there should", w);
	if (r->n_epochs < 1 || !r->epochs || r->planned_epochs < r->epochs[r->n_epochs - 1] ||
	    r->planned_epochs > BV_DB_MAX_EPOCH)
		fz_fail("epochs or planned_epochs", w);
	for (int i = 0; i < r->n_epochs; i++)
		if (r->epochs[i] < 0 || r->epochs[i] > BV_DB_MAX_EPOCH ||
		    (i && r->epochs[i] <= r->epochs[i - 1]))
			fz_fail("epochs not ascending in 0..BV_DB_MAX_EPOCH", w);
	int splits = 0;
	for (int s = 0; s < BV_N_SPLITS; s++) {
		const bv_mf_logits *lg = &r->logits[s];
		if (lg->n_paths == 0)
			continue;
		splits++;
		if (lg->n_paths != 1 && (teacher || lg->n_paths != r->n_epochs))
			fz_fail("logits: neither one path nor one per epoch", w);
		for (int i = 0; i < lg->n_paths; i++)
			if (!lg->paths[i] || !lg->paths[i][0])
				fz_fail("logits: an empty path", w);
	}
	if (!splits)
		fz_fail("a run without logits", w);
	for (int i = 0; r->test_acc && i < r->n_epochs; i++)
		if (!(r->test_acc[i] >= 0 && r->test_acc[i] <= 100))
			fz_fail("test_acc outside 0..100", w);
	const bv_mf_metrics *mt = &r->metrics;
	for (int i = 0; i < mt->n; i++) {
		if (i && mt->epoch[i] <= mt->epoch[i - 1])
			fz_fail("metrics epochs not ascending", w);
		if (!(isnan(mt->test_acc[i]) || (mt->test_acc[i] >= 0 && mt->test_acc[i] <= 1)) ||
		    !(isnan(mt->train_acc[i]) || (mt->train_acc[i] >= 0 && mt->train_acc[i] <= 1)))
			fz_fail("metrics accuracy outside 0..1", w);
	}
	if (!(isnan(r->seconds) || r->seconds >= 0))
		fz_fail("negative seconds", w);
}

static void check_parsed(const bv_manifest *m)
{
	if (!m->dataset || !m->dataset[0] || m->classes < 1 ||
	    m->classes > BV_MANIFEST_MAX_CLASSES || !m->labels[BV_SPLIT_TEST] || m->n_runs < 0 ||
	    (m->n_runs && !m->runs))
		fz_fail("the top level out of range", NULL);
	if (m->has_teacher)
		check_run(&m->teacher, 1);
	for (int i = 0; i < m->n_runs; i++) {
		check_run(&m->runs[i], 0);
		for (int j = 0; j < i; j++) /* few runs in a fuzz input: the plain way */
			if (m->runs[j].method == m->runs[i].method &&
			    m->runs[j].seed == m->runs[i].seed &&
			    (m->runs[j].temperature == m->runs[i].temperature ||
			     (isnan(m->runs[j].temperature) && isnan(m->runs[i].temperature))))
				fz_fail("two runs of one cell", m->runs[i].where);
	}
}

static void same_text(const char *a, const char *b, const char *what)
{
	if ((!a) != (!b) || (a && strcmp(a, b) != 0))
		fz_fail(what, a ? a : b);
}

static void check_files(const bv_manifest *m)
{
	char big[4096], small[8];
	for (int i = 0; i < m->n_runs; i++)
		for (int s = 0; s < BV_N_SPLITS; s++)
			for (int k = 0; k < m->runs[i].logits[s].n_paths; k++) {
				const char *p = m->runs[i].logits[s].paths[k];
				if (bv_manifest_file(big, sizeof big, m, p) == 0 &&
				    (strlen(big) < strlen(p) ||
				     strcmp(big + strlen(big) - strlen(p), p) != 0))
					fz_fail("bv_manifest_file: the path is not the end of the "
						"join",
						p);
				if (bv_manifest_file(small, sizeof small, m, p) != 0 &&
				    small[0] != '\0')
					fz_fail("bv_manifest_file: a refused join left text behind",
						p);
			}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	bv_manifest m, back;
	char path[400], why[600];

	if (size > (1 << 20))
		return 0;
	int rc = bv_manifest_parse(&m, (const char *)data, size, IN_PATH, "in");
	if (rc) {
		if (rc != BV_EFORMAT)
			fz_fail("parse: a code other than BV_EFORMAT", bv_error_last());
		check_message(bv_error_last());
		check_empty(&m);
		return 0;
	}
	check_parsed(&m);
	check_files(&m);

	fz_path(path, sizeof path, BV_MANIFEST_NAME);
	if (bv_manifest_write(&m, path) != 0)
		fz_fail("a parsed manifest is refused by the writer", bv_error_last());
	if (bv_manifest_read(&back, fz_dir()) != 0)
		fz_fail("a written manifest does not read back", bv_error_last());
	if (bv_manifest_compare(&m, &back, why, sizeof why) != 0)
		fz_fail("written and read back, another manifest", why);
	same_text(m.extras, back.extras, "extras read back as other text");
	same_text(m.teacher.extras, back.teacher.extras, "teacher extras read back as other text");
	for (int i = 0; i < m.n_runs; i++)
		same_text(m.runs[i].extras, back.runs[i].extras,
			  "run extras read back as other text");
	bv_manifest_free(&back);
	bv_manifest_free(&m);
	unlink(path);
	return 0;
}
