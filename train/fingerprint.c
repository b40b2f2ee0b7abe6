/*
 * The fingerprint of a collection: the settings that must agree between all
 * collects of one database (and, for a merge, between its shards), as config
 * rows. bv_fingerprint_make lists them from a configuration, and
 * bv_fingerprint_check compares them with a database and stores them, with
 * the rule for databases written before numbers were stored exactly
 * (collect.h, "the fingerprint").
 */
#include "collect.h"

#include <string.h>

/* Each setting's config key and the option it comes from, for messages. */
static const struct {
	const char *key, *flag;
} flags[] = {
	{"data", "--data"},
	{"train_samples", "--train-subset"},
	{"teacher", "--teacher"},
	{"teacher_epochs", "--teacher-epochs"},
	{"teacher_lr", "--teacher-lr"},
	{"teacher_seed", "--teacher-seed"},
	{"student", "--student"},
	{"epochs", "--epochs"},
	{"lr", "--lr"},
	{"momentum", "--momentum"},
	{"nesterov", "--nesterov"},
	{"wd", "--wd"},
	{"schedule", "--schedule"},
	{"batch", "--batch"},
	{"alpha", "--alpha"},
	{"gamma", "--gamma"},
	{"record_epochs", "--record-epochs"},
	{"record_train", "--record-train"},
	{"n_classes", "--data"},
	{"augment", "--augment"},
	{"teacher_bn", "--teacher-bn"},
};

const char *bv_fingerprint_flag(const char *key)
{
	for (size_t i = 0; i < BV_ARRAY_LEN(flags); i++)
		if (strcmp(flags[i].key, key) == 0)
			return flags[i].flag;
	return NULL;
}

/* A text setting. */
static void add_text(bv_fingerprint *fp, const char *key, const char *value)
{
	bv_setting *s = &fp->s[fp->n++];
	s->key = key;
	s->flag = bv_fingerprint_flag(key);
	snprintf(s->value, sizeof s->value, "%s", value);
	s->legacy[0] = '\0';
}

static void add_int(bv_fingerprint *fp, const char *key, int v)
{
	char text[32];
	snprintf(text, sizeof text, "%d", v);
	add_text(fp, key, text);
}

/* A number: exact, and the %g text an older bvtool stored. */
static void add_number(bv_fingerprint *fp, const char *key, double v)
{
	bv_setting *s = &fp->s[fp->n++];
	s->key = key;
	s->flag = bv_fingerprint_flag(key);
	bv_number_format(s->value, sizeof s->value, v);
	snprintf(s->legacy, sizeof s->legacy, "%g", v);
}

void bv_fingerprint_make(bv_fingerprint *out, const bv_collect_cfg *cfg, const bv_data *d)
{
	char text[1600];
	out->n = 0;
	snprintf(text, sizeof text, "%s:%s", d->name, d->dir);
	add_text(out, "data", text);
	add_int(out, "train_samples", d->train.n);
	add_text(out, "teacher", cfg->teacher_spec);
	add_int(out, "teacher_epochs", cfg->teacher_epochs);
	add_number(out, "teacher_lr", cfg->teacher_lr);
	add_int(out, "teacher_seed", cfg->teacher_seed);
	add_text(out, "student", cfg->student_spec);
	add_int(out, "epochs", cfg->epochs);
	add_number(out, "lr", cfg->lr);
	add_number(out, "momentum", cfg->momentum);
	add_text(out, "nesterov", cfg->nesterov ? "on" : "off");
	add_number(out, "wd", cfg->wd);
	bv_schedule_format(text, 128, &cfg->schedule);
	add_text(out, "schedule", text);
	add_int(out, "batch", cfg->batch);
	add_number(out, "alpha", cfg->alpha);
	add_number(out, "gamma", cfg->gamma);
	bv_record_format(text, 1100, &cfg->rec);
	add_text(out, "record_epochs", text);
	add_text(out, "record_train", cfg->rec.train ? "on" : "off");
	add_int(out, "n_classes", d->n_classes);
	add_text(out, "augment", bv_augment_name(cfg->augment));
	add_text(out, "teacher_bn", cfg->teacher_bn_train ? "train" : "eval");
}

int bv_fingerprint_check(bv_db *db, const bv_fingerprint *fp)
{
	const bv_setting *s = fp->s;
	const int n = fp->n;
	char have[1600];
	int rc, legacy;
	/* an older database: it has settings, but not the mark of exact numbers */
	if ((rc = bv_db_config_get(db, "numbers", have, sizeof have)) < 0)
		return rc;
	legacy = rc == 0;
	if (legacy && (rc = bv_db_config_get(db, "data", have, sizeof have)) < 0)
		return rc;
	legacy = legacy && rc == 1;
	for (int i = 0; i < n; i++) {
		rc = bv_db_config_get(db, s[i].key, have, sizeof have);
		if (rc < 0)
			return rc;
		if (rc == 0 || strcmp(have, s[i].value) == 0)
			continue;
		if (legacy && s[i].legacy[0] && strcmp(have, s[i].legacy) == 0)
			continue;
		if (legacy && s[i].legacy[0])
			return bv_error_set(BV_EMISMATCH,
					    "database '%s' was collected with %s %s (6 digits), not %s "
					    "(use another --db)",
					    bv_db_path(db), s[i].flag, have, s[i].legacy);
		return bv_error_set(BV_EMISMATCH,
				    "database '%s' was collected with %s %s, not %s (use another --db)",
				    bv_db_path(db), s[i].flag, have, s[i].value);
	}
	if ((rc = bv_db_begin(db)) != 0)
		return rc;
	for (int i = 0; i < n && rc == 0; i++) {
		/* an older database keeps what it stored: it knows no more digits */
		if (legacy && (rc = bv_db_config_get(db, s[i].key, have, sizeof have)) != 0)
			rc = rc < 0 ? rc : 0;
		else
			rc = bv_db_config_set(db, s[i].key, s[i].value);
	}
	if (rc == 0 && !legacy)
		rc = bv_db_config_set(db, "numbers", "exact");
	if (rc) {
		bv_db_rollback(db);
		return rc;
	}
	return bv_db_commit(db);
}
