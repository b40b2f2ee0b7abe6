/*
 * The schema of a bvtool database: the migrations that build it, one per
 * schema version.
 *
 * migrations[v] upgrades a database from user_version v to v + 1; a new file
 * runs them all from 0. To change the schema, append one entry and raise
 * BV_DB_SCHEMA_VERSION in db.h (the static assertion below keeps the two in
 * step) and describe the change in docs/schema.md. db.c applies them in one
 * write transaction, so a reader sees either the old schema or the new one.
 * (The SQL functions every connection carries are sqlfn/'s, registered by
 * open.c, and the same in the loadable extension build/bvtool_sql.so.)
 */
#include "schema.h"

#include <stdio.h>
#include <string.h>

#include "db.h"

/* The view that cuts a snapshot into one BLOB per sample (db.h): created by
 * migration 1, and again, the same text, by migration 3, which rebuilds the
 * table under it. */
#define PREDICTIONS_VIEW                                                                    \
	"CREATE VIEW predictions(run_id, epoch, split, sample_idx, logits) AS\n"                \
	"  SELECT sn.run_id, sn.epoch, sn.split, s.sample_idx,\n"                               \
	"         substr(sn.logits, s.sample_idx * sn.k * 4 + 1, sn.k * 4)\n"                   \
	"  FROM snapshots sn JOIN samples s ON s.split = sn.split AND s.sample_idx < sn.n;\n"

static const char *const migrations[] = {
	/* 0 -> 1: the first schema */
	"CREATE TABLE config(\n"
	"  key TEXT PRIMARY KEY,\n"
	"  value TEXT NOT NULL\n"
	");\n"
	"CREATE TABLE runs(\n"
	"  id INTEGER PRIMARY KEY,\n"
	"  method TEXT NOT NULL CHECK(method IN ('teacher','ce','kd','wsl','kd-filter')),\n"
	"  temperature REAL,\n"
	"  alpha REAL,\n"
	"  gamma REAL,\n"
	"  seed INTEGER NOT NULL,\n"
	"  status TEXT NOT NULL DEFAULT 'pending' CHECK(status IN ('pending','running','done','failed')),\n"
	"  test_acc REAL,\n"
	"  epochs INTEGER,\n"
	"  model TEXT,\n"
	"  checkpoint TEXT,\n"
	"  seconds REAL,\n"
	"  started_at TEXT,\n"
	"  finished_at TEXT\n"
	");\n"
	/* NULLs are distinct in a UNIQUE constraint, hence the expression */
	"CREATE UNIQUE INDEX runs_cell ON runs(method, IFNULL(temperature, -1), seed);\n"
	"CREATE TABLE samples(\n"
	"  split TEXT NOT NULL CHECK(split IN ('test','train')),\n"
	"  sample_idx INTEGER NOT NULL,\n"
	"  label INTEGER NOT NULL,\n"
	"  PRIMARY KEY(split, sample_idx)\n"
	") WITHOUT ROWID;\n"
	"CREATE TABLE snapshots(\n"
	"  run_id INTEGER NOT NULL REFERENCES runs(id),\n"
	"  epoch INTEGER NOT NULL,\n"
	"  split TEXT NOT NULL,\n"
	"  n INTEGER NOT NULL,\n"
	"  k INTEGER NOT NULL,\n"
	"  logits BLOB NOT NULL,\n"
	"  PRIMARY KEY(run_id, epoch, split)\n"
	") WITHOUT ROWID;\n"
	PREDICTIONS_VIEW
	"CREATE TABLE metrics(\n"
	"  run_id INTEGER NOT NULL,\n"
	"  epoch INTEGER NOT NULL,\n"
	"  lr REAL,\n"
	"  train_loss REAL,\n"
	"  train_acc REAL,\n"
	"  test_acc REAL,\n"
	"  wsl_weight REAL,\n"
	"  filtered REAL,\n"
	"  seconds REAL,\n"
	"  PRIMARY KEY(run_id, epoch)\n"
	") WITHOUT ROWID;\n"
	"CREATE TABLE inbag(\n"
	"  seed INTEGER NOT NULL,\n"
	"  sample_idx INTEGER NOT NULL,\n"
	"  count INTEGER NOT NULL,\n"
	"  PRIMARY KEY(seed, sample_idx)\n"
	") WITHOUT ROWID;\n",

	/* 1 -> 2: the bias/variance decomposition (bvtool decompose) and its views */
	"CREATE TABLE sample_stats(\n"
	"  temperature REAL NOT NULL,\n"
	"  epoch INTEGER NOT NULL,\n"
	/* OR, not IN (...): SQLite builds a temporary table for an IN list on every
	 * insert, which doubled the cost of writing 300,000 rows */
	"  split TEXT NOT NULL CHECK(split = 'test' OR split = 'train' OR split = 'oob'),\n"
	"  sample_idx INTEGER NOT NULL,\n"
	"  method TEXT NOT NULL,\n"
	"  bias REAL NOT NULL,\n"
	"  variance REAL NOT NULL,\n"
	"  loss REAL NOT NULL,\n"
	"  regularization INTEGER,\n"
	"  n_seeds INTEGER NOT NULL,\n"
	"  p_true REAL,\n"
	"  acc REAL,\n"
	"  wsl_weight REAL,\n"
	"  teacher_p_true REAL,\n"
	"  PRIMARY KEY(temperature, epoch, split, method, sample_idx)\n"
	") WITHOUT ROWID;\n"
	"CREATE TABLE decompositions(\n"
	"  temperature REAL NOT NULL,\n"
	"  epoch INTEGER NOT NULL,\n"
	"  split TEXT NOT NULL,\n"
	"  criterion TEXT NOT NULL,\n"
	"  n_samples INTEGER NOT NULL,\n"
	"  seeds TEXT NOT NULL,\n"
	"  max_identity_error REAL NOT NULL,\n"
	"  created_at TEXT NOT NULL,\n"
	"  PRIMARY KEY(temperature, epoch, split)\n"
	") WITHOUT ROWID;\n"
	"CREATE TABLE correlations(\n"
	"  split TEXT NOT NULL,\n"
	"  epoch INTEGER NOT NULL,\n"
	"  method TEXT NOT NULL,\n"
	"  criterion TEXT NOT NULL,\n"
	"  n_points INTEGER NOT NULL,\n"
	"  pearson_r REAL,\n"
	"  pearson_p REAL,\n"
	"  spearman_rho REAL,\n"
	"  spearman_p REAL,\n"
	"  r_ci_low REAL,\n"
	"  r_ci_high REAL,\n"
	"  n_boot INTEGER NOT NULL,\n"
	"  created_at TEXT NOT NULL,\n"
	"  PRIMARY KEY(split, epoch, method)\n"
	") WITHOUT ROWID;\n"
	/* final and best test accuracy of every run */
	"CREATE VIEW run_accuracy AS\n"
	"  SELECT r.id AS run_id, r.method, r.temperature, r.seed, r.status,\n"
	"         r.test_acc AS final_acc,\n"
	"         (SELECT max(m.test_acc) FROM metrics m WHERE m.run_id = r.id) AS best_acc,\n"
	"         (SELECT m.epoch FROM metrics m WHERE m.run_id = r.id\n"
	"          ORDER BY m.test_acc DESC, m.epoch LIMIT 1) AS best_epoch\n"
	"  FROM runs r;\n"
	/* kd/wsl/kd-filter rows flagged as regularization samples, with the paired ce row */
	"CREATE VIEW regularization_samples AS\n"
	"  SELECT s.temperature, s.epoch, s.split, s.sample_idx, s.method,\n"
	"         s.bias, s.variance, c.bias AS bias_ce, c.variance AS variance_ce,\n"
	"         s.bias - c.bias AS d_bias, s.variance - c.variance AS d_variance,\n"
	"         s.wsl_weight, s.teacher_p_true\n"
	"  FROM sample_stats s JOIN sample_stats c\n"
	"    ON c.temperature = s.temperature AND c.epoch = s.epoch AND c.split = s.split\n"
	"   AND c.sample_idx = s.sample_idx AND c.method = 'ce'\n"
	"  WHERE s.regularization = 1;\n"
	/* one row per sample and decomposition, ce / kd / wsl side by side */
	"CREATE VIEW sample_wide AS\n"
	"  SELECT s.temperature, s.epoch, s.split, s.sample_idx, l.label,\n"
	"    max(CASE WHEN s.method = 'ce' THEN s.bias END) AS ce_bias,\n"
	"    max(CASE WHEN s.method = 'ce' THEN s.variance END) AS ce_variance,\n"
	"    max(CASE WHEN s.method = 'ce' THEN s.loss END) AS ce_loss,\n"
	"    max(CASE WHEN s.method = 'kd' THEN s.bias END) AS kd_bias,\n"
	"    max(CASE WHEN s.method = 'kd' THEN s.variance END) AS kd_variance,\n"
	"    max(CASE WHEN s.method = 'kd' THEN s.loss END) AS kd_loss,\n"
	"    max(CASE WHEN s.method = 'kd' THEN s.regularization END) AS kd_regularization,\n"
	"    max(CASE WHEN s.method = 'wsl' THEN s.bias END) AS wsl_bias,\n"
	"    max(CASE WHEN s.method = 'wsl' THEN s.variance END) AS wsl_variance,\n"
	"    max(CASE WHEN s.method = 'wsl' THEN s.loss END) AS wsl_loss,\n"
	"    max(CASE WHEN s.method = 'wsl' THEN s.regularization END) AS wsl_regularization,\n"
	"    max(CASE WHEN s.method = 'wsl' THEN s.wsl_weight END) AS wsl_weight,\n"
	"    max(s.teacher_p_true) AS teacher_p_true\n"
	"  FROM sample_stats s\n"
	"  JOIN samples l ON l.split = CASE s.split WHEN 'oob' THEN 'train' ELSE s.split END\n"
	"   AND l.sample_idx = s.sample_idx\n"
	"  GROUP BY s.temperature, s.epoch, s.split, s.sample_idx;\n"
	/* regularization-sample counts per decomposition and method */
	"CREATE VIEW regularization_counts AS\n"
	"  SELECT temperature, epoch, split, method, count(*) AS n_samples,\n"
	"         sum(regularization) AS n_regularization,\n"
	"         avg(regularization) AS share,\n"
	"         avg(bias) AS mean_bias, avg(variance) AS mean_variance, avg(loss) AS mean_loss\n"
	"  FROM sample_stats GROUP BY temperature, epoch, split, method;\n",

	/* 2 -> 3: snapshots in a rowid table, its key a unique index. In a WITHOUT
	 * ROWID table each key comparison of a seek reads the whole row that
	 * overflows its page (SQLite's sqlite3BtreeIndexMoveto), here a snapshot
	 * of megabytes: at 4 MB snapshots, inserting was 6x and reading 7x slower,
	 * and listing a run's epochs 500x (measured, 480 snapshots). The columns,
	 * their meaning and the predictions view are unchanged. */
	"DROP VIEW predictions;\n"
	"CREATE TABLE snapshots_v3(\n"
	"  run_id INTEGER NOT NULL REFERENCES runs(id),\n"
	"  epoch INTEGER NOT NULL,\n"
	"  split TEXT NOT NULL,\n"
	"  n INTEGER NOT NULL,\n"
	"  k INTEGER NOT NULL,\n"
	"  logits BLOB NOT NULL,\n"
	"  UNIQUE(run_id, epoch, split)\n"
	");\n"
	"INSERT INTO snapshots_v3(run_id, epoch, split, n, k, logits)\n"
	"  SELECT run_id, epoch, split, n, k, logits FROM snapshots ORDER BY run_id, epoch, split;\n"
	"DROP TABLE snapshots;\n"
	/* the legacy rename checks no other view: a damaged file (a table missing
	 * that a view names) is then refused by the schema check, by name */
	"PRAGMA legacy_alter_table = ON;\n"
	"ALTER TABLE snapshots_v3 RENAME TO snapshots;\n"
	"PRAGMA legacy_alter_table = OFF;\n"
	PREDICTIONS_VIEW,

	/* 3 -> 4: the training dynamics of every sample (bvtool dynamics), per
	 * student run and split over its recorded epochs. No foreign key to runs:
	 * deleting a run (import --replace) would then fail on these rows; the
	 * view keeps to done runs instead. */
	"CREATE TABLE dynamics(\n"
	"  run_id INTEGER NOT NULL,\n"
	"  split TEXT NOT NULL,\n"
	"  sample_idx INTEGER NOT NULL,\n"
	"  first_learned INTEGER,\n"
	"  forgetting INTEGER NOT NULL,\n"
	"  correctness REAL NOT NULL,\n"
	"  confidence REAL NOT NULL,\n"
	"  variability REAL NOT NULL,\n"
	"  n_epochs INTEGER NOT NULL,\n"
	"  PRIMARY KEY(run_id, split, sample_idx)\n"
	") WITHOUT ROWID;\n"
	/* the seeds of a (method, temperature) averaged; avg() skips NULLs, so
	 * first_learned is the mean over the n_learned runs that learned it */
	"CREATE VIEW dynamics_by_method AS\n"
	"  SELECT r.method, r.temperature, d.split, d.sample_idx, count(*) AS n_runs,\n"
	"         avg(d.first_learned) AS first_learned, count(d.first_learned) AS n_learned,\n"
	"         avg(d.forgetting) AS forgetting, avg(d.correctness) AS correctness,\n"
	"         avg(d.confidence) AS confidence, avg(d.variability) AS variability,\n"
	"         min(d.n_epochs) AS min_epochs\n"
	"  FROM dynamics d JOIN runs r ON r.id = d.run_id\n"
	"  WHERE r.status = 'done'\n"
	"  GROUP BY r.method, r.temperature, d.split, d.sample_idx;\n",

	/* 4 -> 5: the variance by its source (collect --inits M, decompose). A
	 * run is the cell (method, temperature, seed, init): init 1..M numbers the
	 * initialisations trained on seed's bootstrap draw (1 for every run before,
	 * and for every run of an --inits 1 collection). var_init and var_data
	 * split each sample's variance (NULL unless the decomposition had M >= 2
	 * initialisations of every draw). */
	"ALTER TABLE runs ADD COLUMN init INTEGER NOT NULL DEFAULT 1 CHECK(init >= 1);\n"
	"DROP INDEX runs_cell;\n"
	"CREATE UNIQUE INDEX runs_cell ON runs(method, IFNULL(temperature, -1), seed, init);\n"
	"ALTER TABLE sample_stats ADD COLUMN var_init REAL;\n"
	"ALTER TABLE sample_stats ADD COLUMN var_data REAL;\n"
	"DROP VIEW run_accuracy;\n"
	"CREATE VIEW run_accuracy AS\n"
	"  SELECT r.id AS run_id, r.method, r.temperature, r.seed, r.status,\n"
	"         r.test_acc AS final_acc,\n"
	"         (SELECT max(m.test_acc) FROM metrics m WHERE m.run_id = r.id) AS best_acc,\n"
	"         (SELECT m.epoch FROM metrics m WHERE m.run_id = r.id\n"
	"          ORDER BY m.test_acc DESC, m.epoch LIMIT 1) AS best_epoch,\n"
	"         r.init\n"
	"  FROM runs r;\n",
};
_Static_assert(BV_ARRAY_LEN(migrations) == BV_DB_SCHEMA_VERSION,
	       "one migration per schema version: append to migrations[] when raising it");

int db_schema_migrate(sqlite3 *h, int from)
{
	char pragma[96];
	int rc = SQLITE_OK;
	/* `from` comes from a file (its user_version): never index outside the table */
	if (from < 0 || from > BV_DB_SCHEMA_VERSION)
		return SQLITE_RANGE;
	for (int v = from; v < BV_DB_SCHEMA_VERSION && rc == SQLITE_OK; v++)
		rc = sqlite3_exec(h, migrations[v], NULL, NULL, NULL);
	if (rc != SQLITE_OK || from >= BV_DB_SCHEMA_VERSION)
		return rc;
	/* PRAGMA values cannot be bound; these are the two constants of db.h */
	snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d; PRAGMA application_id = %d",
		 BV_DB_SCHEMA_VERSION, BV_DB_APPLICATION_ID);
	return sqlite3_exec(h, pragma, NULL, NULL, NULL);
}

/* ---- checking a file's schema ------------------------------------------- */

/* One row of `sql` (binding ?1 and ?2 to a and b when given) on h: SQLITE_ROW,
 * SQLITE_DONE, or an error code. *type gets column 0 as text when non-NULL. */
static int one_row(sqlite3 *h, const char *sql, const char *a, const char *b, char *type,
		   size_t size)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(h, sql, -1, &st, NULL);
	if (rc == SQLITE_OK && a)
		rc = sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK && b)
		rc = sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && type)
		snprintf(type, size, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return rc;
}

/* An error reading the file's schema: damage SQLite found, a lock or I/O
 * error are the caller's to report (SQLite's message is on h); anything else
 * (a view over a missing table, say) is a schema that is not bvtool's. */
static int schema_error(int rc, char *what, size_t size, const char *name, sqlite3 *h)
{
	switch (rc & 0xff) {
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
	case SQLITE_IOERR:
	case SQLITE_NOMEM:
	case SQLITE_CANTOPEN:
	case SQLITE_READONLY:
		return rc;
	default:
		snprintf(what, size, "'%s' cannot be read (%s)", name, sqlite3_errmsg(h));
		return SQLITE_SCHEMA;
	}
}

/*
 * Every trigger in the file is one of the reference schema's, word for word
 * (bvtool's schema has none today). A trigger can neither call a function
 * with side effects (trusted_schema is off) nor be hidden, but it can still
 * rewrite or delete the rows bvtool writes: a shared file with one of its own
 * is refused, whatever the trigger does.
 */
static int check_triggers(sqlite3 *h, sqlite3 *ref, char *what, size_t size)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(h, "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' "
				       "ORDER BY name",
				    -1, &st, NULL);
	if (rc != SQLITE_OK)
		return schema_error(rc, what, size, "sqlite_master", h);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 0);
		const char *sql = (const char *)sqlite3_column_text(st, 1);
		rc = one_row(ref, "SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = ?1 "
				  "AND sql = ?2",
			     name ? name : "", sql ? sql : "", NULL, 0);
		if (rc == SQLITE_DONE) {
			snprintf(what, size, "it has a trigger '%s' that bvtool did not create",
				 name ? name : "");
			rc = SQLITE_SCHEMA;
			break;
		}
		if (rc != SQLITE_ROW) {
			rc = SQLITE_NOMEM; /* the reference is in memory */
			break;
		}
	}
	if (rc == SQLITE_DONE)
		rc = SQLITE_OK;
	else if (rc != SQLITE_SCHEMA && rc != SQLITE_NOMEM)
		rc = schema_error(rc, what, size, "sqlite_master", h);
	sqlite3_finalize(st);
	return rc;
}

int db_schema_check(sqlite3 *h, char *what, size_t size)
{
	sqlite3 *ref = NULL;
	sqlite3_stmt *objs = NULL, *cols = NULL;
	char type[16];
	int rc;
	what[0] = '\0';
	/* the reference: the schema this bvtool creates, built in memory, so that
	 * the check follows the migrations without a list of its own */
	if ((rc = sqlite3_open_v2(":memory:", &ref, SQLITE_OPEN_READWRITE, NULL)) != SQLITE_OK ||
	    (rc = db_schema_migrate(ref, 0)) != SQLITE_OK ||
	    (rc = sqlite3_prepare_v2(ref, "SELECT type, name FROM sqlite_master WHERE type IN "
					  "('table', 'view') ORDER BY rowid",
				     -1, &objs, NULL)) != SQLITE_OK ||
	    (rc = sqlite3_prepare_v2(ref, "SELECT name FROM pragma_table_info(?1) ORDER BY cid", -1,
				     &cols, NULL)) != SQLITE_OK) {
		rc = SQLITE_NOMEM; /* the only way an in-memory database fails */
		goto done;
	}
	while ((rc = sqlite3_step(objs)) == SQLITE_ROW) {
		const char *want = (const char *)sqlite3_column_text(objs, 0);
		const char *name = (const char *)sqlite3_column_text(objs, 1);
		rc = one_row(h, "SELECT type FROM sqlite_master WHERE name = ?1 COLLATE NOCASE "
				"AND type IN ('table', 'view')",
			     name, NULL, type, sizeof type);
		if (rc == SQLITE_DONE) {
			snprintf(what, size, "it has no %s '%s'", want, name);
			rc = SQLITE_SCHEMA;
		} else if (rc == SQLITE_ROW && strcmp(type, want) != 0) {
			snprintf(what, size, "'%s' is a %s, not a %s", name, type, want);
			rc = SQLITE_SCHEMA;
		} else if (rc != SQLITE_ROW) {
			rc = schema_error(rc, what, size, name, h);
		}
		if (rc != SQLITE_ROW)
			goto done;
		sqlite3_reset(cols);
		sqlite3_bind_text(cols, 1, name, -1, SQLITE_TRANSIENT);
		while ((rc = sqlite3_step(cols)) == SQLITE_ROW) {
			const char *col = (const char *)sqlite3_column_text(cols, 0);
			rc = one_row(h, "SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2 COLLATE NOCASE",
				     name, col, NULL, 0);
			if (rc == SQLITE_DONE) {
				snprintf(what, size, "%s '%s' has no column '%s'", want, name, col);
				rc = SQLITE_SCHEMA;
			} else if (rc != SQLITE_ROW) {
				rc = schema_error(rc, what, size, name, h);
			}
			if (rc != SQLITE_ROW)
				goto done;
		}
		if (rc != SQLITE_DONE) {
			rc = SQLITE_NOMEM;
			goto done;
		}
	}
	if (rc != SQLITE_DONE) {
		rc = SQLITE_NOMEM;
		goto done;
	}
	rc = check_triggers(h, ref, what, size);
done:
	sqlite3_finalize(objs);
	sqlite3_finalize(cols);
	sqlite3_close(ref);
	return rc;
}
