/*
 * The bvtool database: opening a file safely, and every read and write of
 * db.h as a prepared statement with bound values.
 *
 * bv_db_open treats the file as untrusted and checks it before it writes
 * anything to it: the directory, that the path is a regular file, the write
 * permissions of the file and its directory; then, before SQLite sees it,
 * its first bytes (SQLite would take a short file for an empty database and
 * write over it); then, through a read-only (when nothing is being written,
 * immutable) connection, that it is bvtool's (application_id), that its
 * schema version is one we read and that every table and view is there.
 * Only then does a writer open it and, under the write lock, create or
 * migrate the schema (schema.c) -- under the lock because several `collect
 * --jobs` processes may create the same new file at once -- and switch it to
 * WAL.
 *
 * Statements are prepared once per connection (SQLITE_PREPARE_PERSISTENT) and
 * kept in db->stmt, so that the 60000-row inbag insert or a snapshot per epoch
 * costs no parsing. Writes that belong together run in one transaction: their
 * own BEGIN IMMEDIATE, or a savepoint inside the caller's transaction (so a
 * failed call leaves the caller's earlier work intact and its own undone).
 */
#include "db.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "schema.h"

enum stmt_id {
	S_CONFIG_GET,
	S_CONFIG_SET,
	S_RUN_FIND,
	S_RUN_INSERT,
	S_RUN_GET,
	S_RUNS_LIST,
	S_RUN_EXISTS,
	S_RUN_STATUS,
	S_RUN_FINISH,
	S_RESET_SNAPSHOTS,
	S_RESET_METRICS,
	S_RESET_RUN,
	S_SAMPLES_COUNT,
	S_SAMPLES_GET,
	S_SAMPLES_INSERT,
	S_INBAG_DELETE,
	S_INBAG_INSERT,
	S_INBAG_GET,
	S_METRICS_PUT,
	S_SNAPSHOT_PUT,
	S_LOGITS_GET,
	S_EPOCHS,
	S_METRICS_GET,
	S_STATS_CLEAR,
	S_DECOMP_CLEAR,
	S_DECOMP_PUT,
	S_CORR_PUT,
	N_STMT
};

#define RUN_COLUMNS                                                                         \
	"SELECT r.id, r.method, r.temperature, r.alpha, r.gamma, r.seed, r.status, r.test_acc, " \
	"r.epochs, (SELECT IFNULL(max(m.epoch), 0) FROM metrics m WHERE m.run_id = r.id), r.model, "         \
	"r.checkpoint, r.seconds FROM runs r"
#define NOW "strftime('%Y-%m-%dT%H:%M:%SZ', 'now')"

static const char *const stmt_sql[N_STMT] = {
	[S_CONFIG_GET] = "SELECT value FROM config WHERE key = ?1",
	[S_CONFIG_SET] = "INSERT INTO config(key, value) VALUES(?1, ?2) "
			 "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
	/* the expression of the runs_cell index, so that the index serves it */
	[S_RUN_FIND] = "SELECT id FROM runs WHERE method = ?1 AND IFNULL(temperature, -1) = "
		       "IFNULL(?2, -1) AND seed = ?3",
	[S_RUN_INSERT] = "INSERT INTO runs(method, temperature, seed, alpha, gamma, model, epochs) "
			 "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	[S_RUN_GET] = RUN_COLUMNS " WHERE r.id = ?1",
	[S_RUNS_LIST] = RUN_COLUMNS " ORDER BY r.method, r.temperature NULLS FIRST, r.seed",
	[S_RUN_EXISTS] = "SELECT 1 FROM runs WHERE id = ?1",
	[S_RUN_STATUS] = "UPDATE runs SET status = ?2, started_at = CASE WHEN ?2 = 'running' "
			 "THEN " NOW " ELSE started_at END WHERE id = ?1",
	[S_RUN_FINISH] = "UPDATE runs SET status = 'done', test_acc = ?2, checkpoint = ?3, "
			 "seconds = ?4, finished_at = " NOW " WHERE id = ?1",
	[S_RESET_SNAPSHOTS] = "DELETE FROM snapshots WHERE run_id = ?1",
	[S_RESET_METRICS] = "DELETE FROM metrics WHERE run_id = ?1",
	[S_RESET_RUN] = "UPDATE runs SET status = 'pending', test_acc = NULL, checkpoint = NULL, "
			"seconds = NULL, started_at = NULL, finished_at = NULL WHERE id = ?1",
	[S_SAMPLES_COUNT] = "SELECT count(*) FROM samples WHERE split = ?1",
	[S_SAMPLES_GET] = "SELECT sample_idx, label FROM samples WHERE split = ?1 ORDER BY sample_idx",
	[S_SAMPLES_INSERT] = "INSERT INTO samples(split, sample_idx, label) VALUES(?1, ?2, ?3)",
	[S_INBAG_DELETE] = "DELETE FROM inbag WHERE seed = ?1",
	[S_INBAG_INSERT] = "INSERT INTO inbag(seed, sample_idx, count) VALUES(?1, ?2, ?3)",
	[S_INBAG_GET] = "SELECT sample_idx, count FROM inbag WHERE seed = ?1 ORDER BY sample_idx",
	[S_METRICS_PUT] = "INSERT OR REPLACE INTO metrics(run_id, epoch, lr, train_loss, train_acc, "
			  "test_acc, wsl_weight, filtered, seconds) "
			  "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
	[S_SNAPSHOT_PUT] = "INSERT OR REPLACE INTO snapshots(run_id, epoch, split, n, k, logits) "
			   "VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
	[S_LOGITS_GET] = "SELECT n, k, logits FROM snapshots WHERE run_id = ?1 AND epoch = ?2 "
			 "AND split = ?3",
	[S_EPOCHS] = "SELECT epoch FROM snapshots WHERE run_id = ?1 AND split = ?2 ORDER BY epoch",
	[S_METRICS_GET] = "SELECT epoch, lr, train_loss, train_acc, test_acc, wsl_weight, filtered, "
			  "seconds FROM metrics WHERE run_id = ?1 ORDER BY epoch",
	[S_STATS_CLEAR] = "DELETE FROM sample_stats WHERE temperature = ?1 AND epoch = ?2 AND split = ?3",
	[S_DECOMP_CLEAR] = "DELETE FROM decompositions WHERE temperature = ?1 AND epoch = ?2 "
			   "AND split = ?3",
	[S_DECOMP_PUT] = "INSERT OR REPLACE INTO decompositions(temperature, epoch, split, criterion, "
			 "n_samples, seeds, max_identity_error, created_at) "
			 "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))",
	[S_CORR_PUT] = "INSERT OR REPLACE INTO correlations(split, epoch, method, criterion, n_points, "
		       "pearson_r, pearson_p, spearman_rho, spearman_p, r_ci_low, r_ci_high, n_boot, "
		       "created_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, "
		       "strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))",
};

/* how long a connection waits for another process's lock */
#define BUSY_TIMEOUT_MS 60000

struct bv_db {
	sqlite3 *h;
	char *path;
	sqlite3_stmt *stmt[N_STMT]; /* prepared on first use */
	sqlite3_stmt *stats_batch;  /* STATS_BATCH sample_stats rows, prepared on first use */
};

/* Rows per INSERT of bv_db_stats_put. One statement per row spent most of its
 * time reopening the table's cursor and seeking from the root; 256 rows per
 * statement wrote 300,000 rows in half the time (docs/benchmarks.md, issue 4). */
enum { STATS_BATCH = 256, STATS_SHARED = 4, STATS_PER_ROW = 10 };

_Static_assert(sizeof(float) == 4, "logits BLOBs are float32");

/* ---- helpers ------------------------------------------------------------- */

static int dberr(bv_db *db);
static int exec(bv_db *db, const char *sql);

/* The cached statement `id`, reset and unbound, ready to bind. */
static int stmt(bv_db *db, enum stmt_id id, sqlite3_stmt **out)
{
	if (!db->stmt[id] && sqlite3_prepare_v3(db->h, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
						&db->stmt[id], NULL) != SQLITE_OK)
		return dberr(db);
	*out = db->stmt[id];
	return 0;
}

/* Done with a cached statement: release its read lock and its bound pointers. */
static void unstmt(sqlite3_stmt *st)
{
	if (st) {
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
	}
}

/* 1 for a row, 0 when done, BV_EDB with the message on an error. */
static int step(bv_db *db, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	return dberr(db);
}

/* Step a statement that returns no rows. */
static int run(bv_db *db, sqlite3_stmt *st)
{
	int rc = step(db, st);
	return rc > 0 ? 0 : rc;
}

static int bind_real(sqlite3_stmt *st, int i, double v)
{
	return isnan(v) ? sqlite3_bind_null(st, i) : sqlite3_bind_double(st, i, v);
}

static double column_real(sqlite3_stmt *st, int i)
{
	return sqlite3_column_type(st, i) == SQLITE_NULL ? NAN : sqlite3_column_double(st, i);
}

static void column_text(char *out, size_t size, sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	snprintf(out, size, "%s", t ? (const char *)t : "");
}

static int bind_failed(bv_db *db, int rc)
{
	return rc == SQLITE_OK ? 0 : dberr(db);
}

/* Open the transaction of one call: BEGIN IMMEDIATE when none is open (*own =
 * 1), else a savepoint inside the caller's transaction. */
static int tx_open(bv_db *db, int *own)
{
	*own = sqlite3_get_autocommit(db->h) != 0;
	return exec(db, *own ? "BEGIN IMMEDIATE" : "SAVEPOINT bv_call");
}

/* Close it: commit when rc is 0, else undo it and return rc (whose message
 * was set at the failure, before the rollback could overwrite errmsg). */
static int tx_close(bv_db *db, int own, int rc)
{
	if (rc == 0 && (rc = exec(db, own ? "COMMIT" : "RELEASE bv_call")) == 0)
		return 0;
	if (own) {
		if (!sqlite3_get_autocommit(db->h)) /* SQLite rolls back by itself on some errors */
			sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
	} else {
		sqlite3_exec(db->h, "ROLLBACK TO bv_call; RELEASE bv_call", NULL, NULL, NULL);
	}
	return rc;
}

/* Grow *p (of *cap elements of `size` bytes) to hold at least n + 1. */
static int grow(void **p, int *cap, int n, size_t size)
{
	if (n < *cap)
		return 0;
	int c = *cap ? 2 * *cap : 64;
	void *q = realloc(*p, (size_t)c * size);
	if (!q)
		return bv_error_set(BV_ENOMEM, "out of memory reading the database");
	*p = q;
	*cap = c;
	return 0;
}

static int valid_split(const char *split)
{
	return split && (strcmp(split, "test") == 0 || strcmp(split, "train") == 0);
}

static int no_run(bv_db *db, int64_t id)
{
	return bv_error_set(BV_EINVAL, "database '%s' has no run %lld", db->path, (long long)id);
}

/* ---- opening ------------------------------------------------------------ */

static const char sqlite_magic[16] = "SQLite format 3"; /* and its terminating NUL */
enum { MIN_PAGE = 512 };                             /* SQLite's smallest page */

/* The directory of `path`, "." for a bare name. */
static void dir_of(char *out, size_t size, const char *path)
{
	const char *slash = strrchr(path, '/');
	if (!slash)
		snprintf(out, size, ".");
	else
		snprintf(out, size, "%.*s", slash == path ? 1 : (int)(slash - path), path);
}

/* 1 when `path` followed by `suffix` (a -wal, -shm or -journal file) exists. */
static int beside(const char *path, const char *suffix)
{
	char p[4200];
	snprintf(p, sizeof p, "%s%s", path, suffix);
	return access(p, F_OK) == 0;
}

static int dir_not_writable(const char *path, const char *dir)
{
	return bv_error_set(BV_EIO, "cannot write database '%s': directory '%s' is not writable",
			    path, dir);
}

static int damaged(const char *path, const char *what)
{
	return bv_error_set(BV_EFORMAT, "'%s' is a damaged bvtool database: %s", path, what);
}

/*
 * SQLite's last error on h as a bvtool error naming `path`. A damaged file
 * ("database disk image is malformed") is BV_EFORMAT, like every other bad
 * input. While opening, a file SQLite cannot open or create (the database,
 * or its -wal, -shm or journal in a directory we cannot write) is BV_EIO,
 * naming the directory when that is the cause; later the same codes are the
 * database's refusal (a write on a READONLY connection), BV_EDB.
 */
static int sql_failed(const char *path, sqlite3 *h, int opening)
{
	const int code = h ? sqlite3_extended_errcode(h) & 0xff : SQLITE_NOMEM;
	const char *msg = h ? sqlite3_errmsg(h) : "out of memory";
	char dir[4096];
	if (code == SQLITE_CORRUPT || code == SQLITE_NOTADB)
		return bv_error_set(BV_EFORMAT, "database '%s' is damaged: %s", path, msg);
	if (code == SQLITE_NOMEM)
		return bv_error_set(BV_ENOMEM, "out of memory opening database '%s'", path);
	if (opening && (code == SQLITE_READONLY || code == SQLITE_CANTOPEN || code == SQLITE_PERM)) {
		dir_of(dir, sizeof dir, path);
		if (access(dir, W_OK) != 0)
			return dir_not_writable(path, dir);
		return bv_error_set(BV_EIO, "cannot open database '%s': %s", path, msg);
	}
	return bv_error_set(BV_EDB, "database '%s': %s", path, msg);
}

static int dberr(bv_db *db)
{
	return sql_failed(db->path, db->h, 0);
}

static int exec(bv_db *db, const char *sql)
{
	return sqlite3_exec(db->h, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : dberr(db);
}

/* What an existing file's first bytes say, read before SQLite sees the file:
 * SQLite reads the header only when it first needs a page, takes any file
 * shorter than a page for an empty database, and would then write over it. */
typedef struct file_head {
	int empty;       /* 0 bytes: what `touch` leaves, and SQLite's empty database */
	int wal;         /* the header's read and write versions say WAL mode */
	uint32_t app_id; /* the header's application_id (offset 68, big-endian) */
} file_head;

static int read_head(file_head *out, const char *path)
{
	unsigned char h[100];
	size_t size = 0, got = 0;
	int fd = -1, rc = bv_open_input(&fd, &size, path); /* a regular file, never blocking */
	memset(out, 0, sizeof *out);
	if (rc)
		return rc;
	while (got < sizeof h) {
		ssize_t n = read(fd, h + got, sizeof h - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = bv_error_set(BV_EIO, "cannot read '%s': %s", path, strerror(errno));
			goto done;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	if (size == 0 && got == 0) {
		out->empty = 1;
		goto done;
	}
	if (size < MIN_PAGE || got < sizeof h || memcmp(h, sqlite_magic, sizeof sqlite_magic) != 0) {
		rc = bv_error_set(BV_EFORMAT, "'%s' is not a SQLite database", path);
		goto done;
	}
	out->wal = h[18] == 2 && h[19] == 2;
	out->app_id = (uint32_t)h[68] << 24 | (uint32_t)h[69] << 16 | (uint32_t)h[70] << 8 | h[71];
done:
	close(fd);
	return rc;
}

/* Settings every connection carries before it reads anything: the schema of
 * a shared file is untrusted, so its views and triggers may call no function
 * with side effects, and the schema cannot be edited by writable_schema. */
static void harden(sqlite3 *h)
{
	sqlite3_db_config(h, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, (int *)NULL);
	sqlite3_db_config(h, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)NULL);
	sqlite3_busy_timeout(h, BUSY_TIMEOUT_MS);
}

/*
 * The connection for the first look at an existing file, read-only. When no
 * -wal or journal is beside the file nothing is being written and the file
 * holds all there is: it is opened immutable, so that SQLite creates no -wal
 * or -shm beside a file that may then be refused (and needs no writable
 * directory to look). Otherwise plainly read-only, through the WAL.
 */
static int open_look(sqlite3 **out, const char *path, int immutable)
{
	bv_buf uri;
	bv_buf_init(&uri);
	/* a URI: "file:" and the path with every byte but [A-Za-z0-9/._~-]
	 * %-escaped; "file://" before an absolute path gives an empty authority */
	bv_buf_append(&uri, "file://", path[0] == '/' ? 7 : 5);
	for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
		char esc[4];
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		    strchr("/._~-", *p))
			bv_buf_append(&uri, p, 1);
		else
			bv_buf_append(&uri, esc, (size_t)snprintf(esc, sizeof esc, "%%%02X", *p));
	}
	if (immutable)
		bv_buf_append(&uri, "?immutable=1", 12);
	bv_buf_append(&uri, "", 1);
	int rc = 0;
	*out = NULL;
	if (uri.failed)
		rc = bv_error_set(BV_ENOMEM, "out of memory opening database '%s'", path);
	else if (sqlite3_open_v2((const char *)uri.data, out,
				 SQLITE_OPEN_READONLY | SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX,
				 NULL) != SQLITE_OK)
		rc = sql_failed(path, *out, 1);
	else
		harden(*out);
	bv_buf_release(&uri);
	return rc;
}

/*
 * Is the database behind connection h bvtool's, of a schema version we read?
 * Sets *fresh when it holds nothing at all (no page, or a blank one with no
 * schema and no ids) and *version to its user_version. Any other file without
 * bvtool's application_id is refused. The first look refuses a fresh file that
 * has pages (a SQLite file of someone else's without tables): only a missing
 * or 0-byte file becomes a database, and only through CREATE.
 */
static int check_file(sqlite3 *h, const char *path, int *version, int *fresh)
{
	/* one statement, so one read transaction: a process creating the schema
	 * meanwhile is seen entirely or not at all */
	static const char sql[] = "SELECT (SELECT application_id FROM pragma_application_id), "
				  "(SELECT user_version FROM pragma_user_version), "
				  "(SELECT page_count FROM pragma_page_count), "
				  "(SELECT count(*) FROM sqlite_master)";
	sqlite3_stmt *st = NULL;
	int app = 0, pages = 0, objects = 0;
	int rc = sqlite3_prepare_v2(h, sql, -1, &st, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		app = sqlite3_column_int(st, 0);
		*version = sqlite3_column_int(st, 1);
		pages = sqlite3_column_int(st, 2);
		objects = sqlite3_column_int(st, 3);
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	if ((rc & 0xff) == SQLITE_NOTADB)
		return bv_error_set(BV_EFORMAT, "'%s' is not a SQLite database", path);
	if (rc != SQLITE_OK)
		return sql_failed(path, h, 1);
	/* a write transaction on a 0-byte file sees one blank page */
	*fresh = pages == 0 || (app == 0 && objects == 0 && *version == 0);
	if (*fresh)
		return 0;
	if (app != BV_DB_APPLICATION_ID)
		return bv_error_set(BV_EFORMAT, "'%s' is not a bvtool database", path);
	if (*version < 0)
		return bv_error_set(BV_EFORMAT,
				    "'%s' has schema version %d, which no bvtool writes (the database "
				    "is damaged)",
				    path, *version);
	if (*version > BV_DB_SCHEMA_VERSION)
		return bv_error_set(BV_EFORMAT,
				    "'%s' has schema version %d, this bvtool reads up to %d: upgrade bvtool",
				    path, *version, BV_DB_SCHEMA_VERSION);
	return 0;
}

/* Every table and view of the current schema, with its columns, is in the file. */
static int check_schema(sqlite3 *h, const char *path)
{
	char what[256];
	int rc = db_schema_check(h, what, sizeof what);
	if (rc == SQLITE_SCHEMA)
		return damaged(path, what);
	return rc == SQLITE_OK ? 0 : sql_failed(path, h, 1);
}

/* Switch to WAL (a no-op when the file is in WAL mode already). The switch
 * takes an exclusive lock without calling the busy handler, so another
 * process creating the same file at the same moment makes it fail with
 * SQLITE_BUSY: retry for as long as the busy timeout would wait. */
static int set_wal(bv_db *db)
{
	for (int ms = 0;; ms += 10) {
		int rc = sqlite3_exec(db->h, "PRAGMA journal_mode = WAL", NULL, NULL, NULL);
		if (rc == SQLITE_OK)
			return 0;
		if ((rc & 0xff) != SQLITE_BUSY || ms >= BUSY_TIMEOUT_MS)
			return sql_failed(db->path, db->h, 1);
		sqlite3_sleep(10);
	}
}

/* The settings of every connection. */
static int configure(bv_db *db, int writer)
{
	/* 16 KiB pages for a new file (a no-op on an existing one): a 400 kB
	 * snapshot is 25 overflow pages rather than 98, which writes it in half
	 * a millisecond instead of two (measured), for 3% more file size */
	if ((writer &&
	     sqlite3_exec(db->h, "PRAGMA page_size = 16384", NULL, NULL, NULL) != SQLITE_OK) ||
	    sqlite3_exec(db->h, "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON", NULL, NULL,
			 NULL) != SQLITE_OK ||
	    db_schema_functions(db->h) != SQLITE_OK)
		return sql_failed(db->path, db->h, 1);
	return 0;
}

/* Create or migrate the schema under the write lock; checks the file again
 * there, since another process may have created it since our first look. A
 * migrated schema that still lacks a table is undone and refused. */
static int migrate(bv_db *db)
{
	int version = 0, fresh = 0, rc;
	if (sqlite3_exec(db->h, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return sql_failed(db->path, db->h, 1);
	if ((rc = check_file(db->h, db->path, &version, &fresh)) != 0 ||
	    (!fresh && version == BV_DB_SCHEMA_VERSION)) /* another process got there first */
		goto done;
	if (fresh)
		version = 0;
	/* check_file refused every other version; db_schema_migrate checks again */
	if (version < 0 || version >= BV_DB_SCHEMA_VERSION) {
		rc = bv_error_set(BV_EFORMAT, "'%s' has schema version %d, which no bvtool writes",
				  db->path, version);
		goto done;
	}
	if (db_schema_migrate(db->h, version) != SQLITE_OK) {
		rc = bv_error_prefix(dberr(db), "cannot upgrade the schema from version %d to %d",
				     version, BV_DB_SCHEMA_VERSION);
		goto done;
	}
	rc = check_schema(db->h, db->path);
done:
	return tx_close(db, 1, rc);
}

static int read_only(const char *path)
{
	return bv_error_set(BV_EIO, "database '%s' is read-only", path);
}

static int open_checked(bv_db *db, const char *path, int flags)
{
	struct stat st;
	file_head head = {0};
	sqlite3 *look = NULL;
	int rc, version = 0, fresh = 1, current = 0;
	const int writer = flags != BV_DB_READONLY;
	char dir[4096];

	/* the directory first, so that its absence is not reported as the file's */
	dir_of(dir, sizeof dir, path);
	struct stat dst;
	if (stat(dir, &dst) != 0 || !S_ISDIR(dst.st_mode))
		return bv_error_set(BV_EIO, "cannot open database '%s': directory '%s' does not exist",
				    path, dir);

	const int exists = stat(path, &st) == 0;
	if (!exists && errno != ENOENT)
		return bv_error_set(BV_EIO, "cannot open database '%s': %s", path, strerror(errno));
	/* a FIFO would block SQLite's open, a device or a directory is no database */
	if (exists && !S_ISREG(st.st_mode))
		return bv_error_set(BV_EIO, "'%s' is not a regular file", path);
	if (flags != BV_DB_CREATE && !exists)
		return bv_error_set(BV_EIO, "database '%s' does not exist", path);
	/* the mode bits too: root passes access(W_OK) on a chmod 0444 file */
	if (writer && exists &&
	    ((st.st_mode & (S_IWUSR | S_IWGRP | S_IWOTH)) == 0 || access(path, W_OK) != 0))
		return read_only(path);
	/* a writer creates the file, its -wal and -shm, or a journal, in the directory */
	if (writer && access(dir, W_OK) != 0)
		return dir_not_writable(path, dir);
	if (writer && exists) {
		static const char *const side[] = {"-wal", "-shm"};
		for (size_t i = 0; i < BV_ARRAY_LEN(side); i++) {
			char p[4200];
			snprintf(p, sizeof p, "%s%s", path, side[i]);
			if (access(p, F_OK) == 0 && access(p, W_OK) != 0)
				return bv_error_set(BV_EIO, "cannot write database '%s': '%s' is not writable",
						    path, p);
		}
	}

	/* look inside before anything writes, and before SQLite sees the file */
	if (exists && (rc = read_head(&head, path)) != 0)
		return rc;
	if (exists && head.empty && flags != BV_DB_CREATE)
		return bv_error_set(BV_EFORMAT, "'%s' is not a bvtool database (it is empty)", path);
	const int wal_beside = exists && beside(path, "-wal");
	/* a foreign header with no -wal that could hold another: refused untouched */
	if (exists && !head.empty && head.app_id != BV_DB_APPLICATION_ID && !wal_beside)
		return bv_error_set(BV_EFORMAT, "'%s' is not a bvtool database", path);
	if (exists && !head.empty) {
		rc = open_look(&look, path, !wal_beside && !beside(path, "-journal"));
		if (rc == 0)
			rc = check_file(look, path, &version, &fresh);
		if (rc == 0 && fresh) /* pages in the file but none in the database */
			rc = bv_error_set(BV_EFORMAT, "'%s' is not a bvtool database", path);
		if (rc == 0 && version == BV_DB_SCHEMA_VERSION)
			rc = check_schema(look, path);
		sqlite3_close(look);
		if (rc)
			return rc;
		current = version == BV_DB_SCHEMA_VERSION;
	}

	if (!writer) {
		if (!current)
			return bv_error_set(BV_EFORMAT,
					    "'%s' has schema version %d, this bvtool reads %d: "
					    "run a writing command (bvtool collect) on it first",
					    path, version, BV_DB_SCHEMA_VERSION);
		/* a reader of a WAL database maps its -shm, which SQLite creates when missing */
		if (head.wal && !beside(path, "-shm") && access(dir, W_OK) != 0)
			return bv_error_set(BV_EIO,
					    "cannot read database '%s': it needs '%s-shm' beside it (WAL "
					    "mode), and directory '%s' is not writable",
					    path, path, dir);
		if (sqlite3_open_v2(path, &db->h, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) !=
		    SQLITE_OK)
			return sql_failed(path, db->h, 1);
		harden(db->h);
		/* the first read, where a -shm that cannot be opened fails */
		if ((rc = configure(db, 0)) != 0 || (rc = check_file(db->h, path, &version, &fresh)) != 0)
			return rc;
		return 0;
	}

	if (sqlite3_open_v2(path, &db->h,
			    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
			    NULL) != SQLITE_OK)
		return sql_failed(path, db->h, 1);
	harden(db->h);
	/* SQLite falls back to read-only when it cannot open for writing */
	if (sqlite3_db_readonly(db->h, "main") == 1)
		return read_only(path);
	if ((rc = configure(db, 1)) != 0)
		return rc;
	/* a schema to create or upgrade: only then take the write lock; a new
	 * file gets its schema (and application_id) before it turns WAL, so that
	 * it is never a SQLite file without bvtool's id */
	if (!current && (rc = migrate(db)) != 0)
		return rc;
	return set_wal(db);
}

int bv_db_open(bv_db **out, const char *path, int flags)
{
	*out = NULL;
	if (!path || !*path)
		return bv_error_set(BV_EINVAL, "no database path given");
	if (flags != BV_DB_READONLY && flags != BV_DB_CREATE && flags != BV_DB_WRITE)
		return bv_error_set(BV_EINVAL, "bad database open flags %d", flags);
	bv_db *db = calloc(1, sizeof *db);
	if (!db || !(db->path = strdup(path))) {
		free(db);
		return bv_error_set(BV_ENOMEM, "out of memory opening '%s'", path);
	}
	int rc = open_checked(db, path, flags);
	if (rc) {
		bv_db_close(db);
		return rc;
	}
	*out = db;
	return 0;
}

void bv_db_close(bv_db *db)
{
	if (!db)
		return;
	for (int i = 0; i < N_STMT; i++)
		sqlite3_finalize(db->stmt[i]);
	sqlite3_finalize(db->stats_batch);
	sqlite3_close_v2(db->h); /* NULL is a no-op */
	free(db->path);
	free(db);
}

int bv_db_error(bv_db *db)
{
	return dberr(db);
}

int bv_db_prepare(bv_db *db, sqlite3_stmt **out, const char *sql)
{
	*out = NULL;
	return sqlite3_prepare_v2(db->h, sql, -1, out, NULL) == SQLITE_OK ? 0 : dberr(db);
}

sqlite3 *bv_db_handle(bv_db *db)
{
	return db->h;
}

const char *bv_db_path(const bv_db *db)
{
	return db->path;
}

/* ---- transactions ------------------------------------------------------- */

int bv_db_begin(bv_db *db)
{
	return exec(db, "BEGIN IMMEDIATE");
}

int bv_db_commit(bv_db *db)
{
	int rc = exec(db, "COMMIT");
	if (rc && !sqlite3_get_autocommit(db->h))
		sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

void bv_db_rollback(bv_db *db)
{
	if (!sqlite3_get_autocommit(db->h))
		sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
}

/* ---- configuration ------------------------------------------------------ */

int bv_db_config_get(bv_db *db, const char *key, char *out, size_t size)
{
	sqlite3_stmt *st = NULL;
	int rc;
	if (!key)
		return bv_error_set(BV_EINVAL, "no configuration key given");
	if ((rc = stmt(db, S_CONFIG_GET, &st)) != 0 ||
	    (rc = bind_failed(db, sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC))) != 0 ||
	    (rc = step(db, st)) <= 0)
		goto done;
	const char *v = (const char *)sqlite3_column_text(st, 0);
	size_t len = (size_t)sqlite3_column_bytes(st, 0);
	if (len >= size) {
		rc = bv_error_set(BV_EINVAL, "database '%s': the value of '%s' is longer than %zu bytes",
				  db->path, key, size ? size - 1 : 0);
		goto done;
	}
	memcpy(out, v ? v : "", len + 1);
	rc = 1;
done:
	unstmt(st);
	return rc;
}

int bv_db_config_set(bv_db *db, const char *key, const char *value)
{
	sqlite3_stmt *st = NULL;
	int rc;
	if (!key || !value)
		return bv_error_set(BV_EINVAL, "a configuration entry needs a key and a value");
	if ((rc = stmt(db, S_CONFIG_SET, &st)) == 0 &&
	    (rc = bind_failed(db, sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC) |
					  sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC))) == 0)
		rc = run(db, st);
	unstmt(st);
	return rc;
}

/* ---- runs --------------------------------------------------------------- */

static const char *const methods[] = {"teacher", "ce", "kd", "wsl", "kd-filter"};

int bv_db_run_ensure(bv_db *db, int64_t *out_id, int *out_created, const char *method,
		     double temperature, int seed, double alpha, double gamma, const char *model,
		     int epochs)
{
	sqlite3_stmt *st = NULL;
	int rc, own, created = 0, known = 0;
	for (size_t i = 0; i < BV_ARRAY_LEN(methods) && method; i++)
		known |= strcmp(method, methods[i]) == 0;
	if (!known)
		return bv_error_set(BV_EINVAL, "unknown method '%s' (teacher, ce, kd, wsl, kd-filter)",
				    method ? method : "");
	if ((rc = tx_open(db, &own)) != 0)
		return rc;
	if ((rc = stmt(db, S_RUN_FIND, &st)) != 0 ||
	    (rc = bind_failed(db, sqlite3_bind_text(st, 1, method, -1, SQLITE_STATIC) |
					  bind_real(st, 2, temperature) |
					  sqlite3_bind_int(st, 3, seed))) != 0 ||
	    (rc = step(db, st)) < 0)
		goto done;
	if (rc == 1) {
		*out_id = sqlite3_column_int64(st, 0);
		rc = 0;
		goto done;
	}
	unstmt(st);
	if ((rc = stmt(db, S_RUN_INSERT, &st)) != 0 ||
	    (rc = bind_failed(db, sqlite3_bind_text(st, 1, method, -1, SQLITE_STATIC) |
					  bind_real(st, 2, temperature) |
					  sqlite3_bind_int(st, 3, seed) | bind_real(st, 4, alpha) |
					  bind_real(st, 5, gamma) |
					  sqlite3_bind_text(st, 6, model, -1, SQLITE_STATIC) |
					  sqlite3_bind_int(st, 7, epochs))) != 0 ||
	    (rc = run(db, st)) != 0)
		goto done;
	*out_id = sqlite3_last_insert_rowid(db->h);
	created = 1;
done:
	unstmt(st);
	rc = tx_close(db, own, rc);
	if (rc == 0 && out_created)
		*out_created = created;
	return rc;
}

static void run_row(bv_run *r, sqlite3_stmt *st)
{
	memset(r, 0, sizeof *r);
	r->id = sqlite3_column_int64(st, 0);
	column_text(r->method, sizeof r->method, st, 1);
	r->temperature = column_real(st, 2);
	r->alpha = column_real(st, 3);
	r->gamma = column_real(st, 4);
	r->seed = sqlite3_column_int(st, 5);
	column_text(r->status, sizeof r->status, st, 6);
	r->test_acc = column_real(st, 7);
	r->epochs = sqlite3_column_int(st, 8);
	r->epochs_done = sqlite3_column_int(st, 9);
	column_text(r->model, sizeof r->model, st, 10);
	column_text(r->checkpoint, sizeof r->checkpoint, st, 11);
	r->seconds = column_real(st, 12);
}

int bv_db_run_get(bv_db *db, bv_run *out, int64_t id)
{
	sqlite3_stmt *st = NULL;
	int rc;
	if ((rc = stmt(db, S_RUN_GET, &st)) != 0 ||
	    (rc = bind_failed(db, sqlite3_bind_int64(st, 1, id))) != 0 ||
	    (rc = step(db, st)) < 0)
		goto done;
	if (rc == 0) {
		rc = no_run(db, id);
		goto done;
	}
	run_row(out, st);
	rc = 0;
done:
	unstmt(st);
	return rc;
}

int bv_db_runs_list(bv_db *db, bv_run **out, int *n)
{
	sqlite3_stmt *st = NULL;
	bv_run *runs = NULL;
	int rc, count = 0, cap = 0;
	*out = NULL;
	*n = 0;
	if ((rc = stmt(db, S_RUNS_LIST, &st)) != 0)
		return rc;
	while ((rc = step(db, st)) == 1) {
		if ((rc = grow((void **)&runs, &cap, count, sizeof *runs)) != 0)
			break;
		run_row(&runs[count++], st);
	}
	unstmt(st);
	if (rc) {
		free(runs);
		return rc;
	}
	*out = runs;
	*n = count;
	return 0;
}

int bv_db_run_set_status(bv_db *db, int64_t id, const char *status)
{
	sqlite3_stmt *st = NULL;
	int rc;
	if (!status || (strcmp(status, "pending") != 0 && strcmp(status, "running") != 0 &&
			strcmp(status, "failed") != 0))
		return bv_error_set(BV_EINVAL, "bad run status '%s' (pending, running or failed)",
				    status ? status : "");
	if ((rc = stmt(db, S_RUN_STATUS, &st)) == 0 &&
	    (rc = bind_failed(db, sqlite3_bind_int64(st, 1, id) |
					  sqlite3_bind_text(st, 2, status, -1, SQLITE_STATIC))) == 0 &&
	    (rc = run(db, st)) == 0 && sqlite3_changes(db->h) == 0)
		rc = no_run(db, id);
	unstmt(st);
	return rc;
}

int bv_db_run_reset(bv_db *db, int64_t id)
{
	static const enum stmt_id steps[] = {S_RESET_RUN, S_RESET_SNAPSHOTS, S_RESET_METRICS};
	sqlite3_stmt *st = NULL;
	int rc, own;
	if ((rc = tx_open(db, &own)) != 0)
		return rc;
	for (size_t i = 0; i < BV_ARRAY_LEN(steps) && rc == 0; i++) {
		if ((rc = stmt(db, steps[i], &st)) == 0 &&
		    (rc = bind_failed(db, sqlite3_bind_int64(st, 1, id))) == 0 &&
		    (rc = run(db, st)) == 0 && steps[i] == S_RESET_RUN && sqlite3_changes(db->h) == 0)
			rc = no_run(db, id);
		unstmt(st);
	}
	return tx_close(db, own, rc);
}

int bv_db_run_finish(bv_db *db, int64_t id, double test_acc, const char *checkpoint,
		     double seconds)
{
	sqlite3_stmt *st = NULL;
	int rc;
	if ((rc = stmt(db, S_RUN_FINISH, &st)) == 0 &&
	    (rc = bind_failed(db, sqlite3_bind_int64(st, 1, id) | bind_real(st, 2, test_acc) |
					  (checkpoint ? sqlite3_bind_text(st, 3, checkpoint, -1,
									  SQLITE_STATIC)
						      : sqlite3_bind_null(st, 3)) |
					  bind_real(st, 4, seconds))) == 0 &&
	    (rc = run(db, st)) == 0 && sqlite3_changes(db->h) == 0)
		rc = no_run(db, id);
	unstmt(st);
	return rc;
}

/* ---- samples and bootstrap ---------------------------------------------- */

static int count_samples(bv_db *db, const char *split, int *out_n)
{
	sqlite3_stmt *st = NULL;
	int rc;
	if ((rc = stmt(db, S_SAMPLES_COUNT, &st)) == 0 &&
	    (rc = bind_failed(db, sqlite3_bind_text(st, 1, split, -1, SQLITE_STATIC))) == 0 &&
	    (rc = step(db, st)) == 1) {
		*out_n = sqlite3_column_int(st, 0);
		rc = 0;
	}
	unstmt(st);
	return rc;
}

/* The stored labels must be exactly `labels`: same count, same values. */
static int verify_samples(bv_db *db, const char *split, const int *labels, int n, int stored)
{
	sqlite3_stmt *st = NULL;
	int rc, i = 0;
	if (stored != n)
		return bv_error_set(BV_EMISMATCH, "database '%s' holds %d %s samples, the data has %d",
				    db->path, stored, split, n);
	if ((rc = stmt(db, S_SAMPLES_GET, &st)) != 0 ||
	    (rc = bind_failed(db, sqlite3_bind_text(st, 1, split, -1, SQLITE_STATIC))) != 0)
		goto done;
	for (; (rc = step(db, st)) == 1; i++) {
		int idx = sqlite3_column_int(st, 0), label = sqlite3_column_int(st, 1);
		if (idx != i || i >= n) {
			rc = bv_error_set(BV_EFORMAT, "database '%s': the %s samples are not numbered 0..%d",
					  db->path, split, n - 1);
			goto done;
		}
		if (label != labels[i]) {
			rc = bv_error_set(BV_EMISMATCH,
					  "database '%s': %s sample %d has label %d in the database, "
					  "%d in the data",
					  db->path, split, i, label, labels[i]);
			goto done;
		}
	}
done:
	unstmt(st);
	return rc;
}

int bv_db_samples_put(bv_db *db, const char *split, const int *labels, int n)
{
	sqlite3_stmt *st = NULL;
	int rc, own, stored = 0;
	if (!valid_split(split))
		return bv_error_set(BV_EINVAL, "bad split '%s' (test or train)", split ? split : "");
	if (n < 0 || (n > 0 && !labels))
		return bv_error_set(BV_EINVAL, "bad sample count %d", n);
	if ((rc = tx_open(db, &own)) != 0)
		return rc;
	if ((rc = count_samples(db, split, &stored)) != 0)
		goto done;
	if (stored > 0) {
		rc = verify_samples(db, split, labels, n, stored);
		goto done;
	}
	if ((rc = stmt(db, S_SAMPLES_INSERT, &st)) != 0 ||
	    (rc = bind_failed(db, sqlite3_bind_text(st, 1, split, -1, SQLITE_STATIC))) != 0)
		goto done;
	for (int i = 0; i < n && rc == 0; i++) {
		if ((rc = bind_failed(db, sqlite3_bind_int(st, 2, i) |
						  sqlite3_bind_int(st, 3, labels[i]))) == 0)
			rc = run(db, st);
		sqlite3_reset(st); /* keeps the bindings: the split stays bound */
	}
done:
	unstmt(st);
	return tx_close(db, own, rc);
}

int bv_db_samples_get(bv_db *db, const char *split, int *labels, int cap, int *out_n)
{
	sqlite3_stmt *st = NULL;
	int rc, i = 0;
	*out_n = 0;
	if (!valid_split(split))
		return bv_error_set(BV_EINVAL, "bad split '%s' (test or train)", split ? split : "");
	if (!labels)
		return count_samples(db, split, out_n);
	if ((rc = stmt(db, S_SAMPLES_GET, &st)) != 0 ||
	    (rc = bind_failed(db, sqlite3_bind_text(st, 1, split, -1, SQLITE_STATIC))) != 0)
		goto done;
	for (; (rc = step(db, st)) == 1; i++) {
		if (sqlite3_column_int(st, 0) != i) {
			rc = bv_error_set(BV_EFORMAT, "database '%s': the %s samples are not numbered from 0",
					  db->path, split);
			goto done;
		}
		if (i < cap)
			labels[i] = sqlite3_column_int(st, 1);
	}
	if (rc == 0 && i > cap)
		rc = bv_error_set(BV_EINVAL, "database '%s' holds %d %s samples, more than the %d expected",
				  db->path, i, split, cap);
	if (rc == 0)
		*out_n = i;
done:
	unstmt(st);
	return rc;
}

int bv_db_inbag_put(bv_db *db, int seed, const int *counts, int n)
{
	sqlite3_stmt *st = NULL;
	int rc, own;
	if (n < 0 || (n > 0 && !counts))
		return bv_error_set(BV_EINVAL, "bad in-bag count %d", n);
	if ((rc = tx_open(db, &own)) != 0)
		return rc;
	if ((rc = stmt(db, S_INBAG_DELETE, &st)) != 0 ||
	    (rc = bind_failed(db, sqlite3_bind_int(st, 1, seed))) != 0 || (rc = run(db, st)) != 0)
		goto done;
	unstmt(st);
	if ((rc = stmt(db, S_INBAG_INSERT, &st)) != 0 ||
	    (rc = bind_failed(db, sqlite3_bind_int(st, 1, seed))) != 0)
		goto done;
	for (int i = 0; i < n && rc == 0; i++) {
		if ((rc = bind_failed(db, sqlite3_bind_int(st, 2, i) |
						  sqlite3_bind_int(st, 3, counts[i]))) == 0)
			rc = run(db, st);
		sqlite3_reset(st);
	}
done:
	unstmt(st);
	return tx_close(db, own, rc);
}

int bv_db_inbag_get(bv_db *db, int seed, int *counts, int n)
{
	sqlite3_stmt *st = NULL;
	int rc, i = 0;
	if ((rc = stmt(db, S_INBAG_GET, &st)) != 0 ||
	    (rc = bind_failed(db, sqlite3_bind_int(st, 1, seed))) != 0)
		goto done;
	for (; (rc = step(db, st)) == 1; i++) {
		if (sqlite3_column_int(st, 0) != i) {
			rc = bv_error_set(BV_EFORMAT,
					  "database '%s': the in-bag counts of seed %d are not numbered from 0",
					  db->path, seed);
			goto done;
		}
		if (i < n)
			counts[i] = sqlite3_column_int(st, 1);
	}
	if (rc == 0 && i == 0)
		rc = bv_error_set(BV_ESTATE, "database '%s' has no in-bag counts for seed %d", db->path,
				  seed);
	else if (rc == 0 && i != n)
		rc = bv_error_set(BV_EMISMATCH,
				  "database '%s' holds %d in-bag counts for seed %d, the data has %d",
				  db->path, i, seed, n);
done:
	unstmt(st);
	return rc;
}

/* ---- snapshots and metrics ---------------------------------------------- */

static int put_snapshot(bv_db *db, int64_t run_id, int epoch, const char *split,
			const float *logits, int n, int k)
{
	sqlite3_stmt *st = NULL;
	const sqlite3_uint64 bytes = (sqlite3_uint64)n * (sqlite3_uint64)k * 4;
	int rc;
	if (n < 0 || bytes > INT_MAX)
		return bv_error_set(BV_EINVAL, "bad %s snapshot size %d x %d", split, n, k);
	if ((rc = stmt(db, S_SNAPSHOT_PUT, &st)) == 0 &&
	    (rc = bind_failed(db, sqlite3_bind_int64(st, 1, run_id) | sqlite3_bind_int(st, 2, epoch) |
					  sqlite3_bind_text(st, 3, split, -1, SQLITE_STATIC) |
					  sqlite3_bind_int(st, 4, n) | sqlite3_bind_int(st, 5, k) |
					  (bytes ? sqlite3_bind_blob64(st, 6, logits, bytes,
								       SQLITE_STATIC)
						 : sqlite3_bind_zeroblob(st, 6, 0)))) == 0)
		rc = run(db, st);
	unstmt(st);
	return rc;
}

int bv_db_snapshot_put(bv_db *db, int64_t run_id, const bv_db_metrics *m,
		       const float *test_logits, int n_test, const float *train_logits,
		       int n_train, int k)
{
	sqlite3_stmt *st = NULL;
	int rc, own;
	if (!m)
		return bv_error_set(BV_EINVAL, "no metrics for the snapshot of run %lld",
				    (long long)run_id);
	if ((test_logits || train_logits) && k <= 0)
		return bv_error_set(BV_EINVAL, "bad class count %d for a snapshot", k);
	if ((rc = tx_open(db, &own)) != 0)
		return rc;
	/* an explicit check: metrics has no foreign key, and the message is clearer */
	if ((rc = stmt(db, S_RUN_EXISTS, &st)) != 0 ||
	    (rc = bind_failed(db, sqlite3_bind_int64(st, 1, run_id))) != 0 ||
	    (rc = step(db, st)) < 0)
		goto done;
	if (rc == 0) {
		rc = no_run(db, run_id);
		goto done;
	}
	unstmt(st);
	if ((rc = stmt(db, S_METRICS_PUT, &st)) != 0 ||
	    (rc = bind_failed(db, sqlite3_bind_int64(st, 1, run_id) |
					  sqlite3_bind_int(st, 2, m->epoch) | bind_real(st, 3, m->lr) |
					  bind_real(st, 4, m->train_loss) |
					  bind_real(st, 5, m->train_acc) |
					  bind_real(st, 6, m->test_acc) |
					  bind_real(st, 7, m->wsl_weight) |
					  bind_real(st, 8, m->filtered) |
					  bind_real(st, 9, m->seconds))) != 0 ||
	    (rc = run(db, st)) != 0)
		goto done;
	if (test_logits &&
	    (rc = put_snapshot(db, run_id, m->epoch, "test", test_logits, n_test, k)) != 0)
		goto done;
	if (train_logits)
		rc = put_snapshot(db, run_id, m->epoch, "train", train_logits, n_train, k);
done:
	unstmt(st);
	return tx_close(db, own, rc);
}

int bv_db_logits_get(bv_db *db, int64_t run_id, int epoch, const char *split, float *out,
		     int n, int k)
{
	sqlite3_stmt *st = NULL;
	int rc;
	if ((rc = stmt(db, S_LOGITS_GET, &st)) != 0 ||
	    (rc = bind_failed(db, sqlite3_bind_int64(st, 1, run_id) | sqlite3_bind_int(st, 2, epoch) |
					  sqlite3_bind_text(st, 3, split, -1, SQLITE_STATIC))) != 0 ||
	    (rc = step(db, st)) < 0)
		goto done;
	if (rc == 0) {
		rc = bv_error_set(BV_ESTATE, "database '%s' has no %s snapshot of run %lld at epoch %d",
				  db->path, split, (long long)run_id, epoch);
		goto done;
	}
	const int sn = sqlite3_column_int(st, 0), sk = sqlite3_column_int(st, 1);
	const void *blob = sqlite3_column_blob(st, 2);
	const sqlite3_uint64 bytes = (sqlite3_uint64)sqlite3_column_bytes(st, 2);
	const sqlite3_uint64 want = (sqlite3_uint64)n * (sqlite3_uint64)k * 4;
	if (sn != n || sk != k || bytes != want) {
		rc = bv_error_set(BV_EFORMAT,
				  "database '%s': the %s snapshot of run %lld at epoch %d holds "
				  "%d x %d logits in %llu bytes, expected %d x %d",
				  db->path, split, (long long)run_id, epoch, sn, sk,
				  (unsigned long long)bytes, n, k);
		goto done;
	}
	if (bytes)
		memcpy(out, blob, bytes); /* little-endian float32 on a little-endian host */
	rc = 0;
done:
	unstmt(st);
	return rc;
}

int bv_db_epochs(bv_db *db, int64_t run_id, const char *split, int **out, int *n)
{
	sqlite3_stmt *st = NULL;
	int *epochs = NULL, rc, count = 0, cap = 0;
	*out = NULL;
	*n = 0;
	if ((rc = stmt(db, S_EPOCHS, &st)) != 0 ||
	    (rc = bind_failed(db, sqlite3_bind_int64(st, 1, run_id) |
					  sqlite3_bind_text(st, 2, split, -1, SQLITE_STATIC))) != 0)
		goto done;
	while ((rc = step(db, st)) == 1) {
		if ((rc = grow((void **)&epochs, &cap, count, sizeof *epochs)) != 0)
			break;
		epochs[count++] = sqlite3_column_int(st, 0);
	}
done:
	unstmt(st);
	if (rc) {
		free(epochs);
		return rc;
	}
	*out = epochs;
	*n = count;
	return 0;
}

int bv_db_metrics_get(bv_db *db, int64_t run_id, bv_db_metrics **out, int *n)
{
	sqlite3_stmt *st = NULL;
	bv_db_metrics *rows = NULL;
	int rc, count = 0, cap = 0;
	*out = NULL;
	*n = 0;
	if ((rc = stmt(db, S_METRICS_GET, &st)) != 0 ||
	    (rc = bind_failed(db, sqlite3_bind_int64(st, 1, run_id))) != 0)
		goto done;
	while ((rc = step(db, st)) == 1) {
		if ((rc = grow((void **)&rows, &cap, count, sizeof *rows)) != 0)
			break;
		bv_db_metrics *m = &rows[count++];
		m->epoch = sqlite3_column_int(st, 0);
		m->lr = column_real(st, 1);
		m->train_loss = column_real(st, 2);
		m->train_acc = column_real(st, 3);
		m->test_acc = column_real(st, 4);
		m->wsl_weight = column_real(st, 5);
		m->filtered = column_real(st, 6);
		m->seconds = column_real(st, 7);
	}
done:
	unstmt(st);
	if (rc) {
		free(rows);
		return rc;
	}
	*out = rows;
	*n = count;
	return 0;
}

/* ---- decompositions ------------------------------------------------------ */

int bv_db_stats_clear(bv_db *db, double temperature, int epoch, const char *split)
{
	const enum stmt_id ids[] = {S_STATS_CLEAR, S_DECOMP_CLEAR};
	sqlite3_stmt *st = NULL;
	int rc = 0;
	for (unsigned i = 0; i < BV_ARRAY_LEN(ids) && rc == 0; i++) {
		if ((rc = stmt(db, ids[i], &st)) == 0 &&
		    (rc = bind_failed(db, sqlite3_bind_double(st, 1, temperature))) == 0 &&
		    (rc = bind_failed(db, sqlite3_bind_int(st, 2, epoch))) == 0 &&
		    (rc = bind_failed(db, sqlite3_bind_text(st, 3, split, -1, SQLITE_STATIC))) == 0)
			rc = run(db, st);
		unstmt(st);
	}
	return rc;
}

/* The INSERT of n_rows sample_stats rows: ?1-?4 are temperature, epoch, split
 * and method, shared; row j's ten values are ?(5 + 10 j) to ?(14 + 10 j). */
static int stats_prepare(bv_db *db, sqlite3_stmt **out, int n_rows)
{
	bv_buf sql;
	bv_buf_init(&sql);
	static const char head[] = "INSERT OR REPLACE INTO sample_stats(temperature, epoch, split, "
				   "method, sample_idx, bias, variance, loss, regularization, n_seeds, "
				   "p_true, acc, wsl_weight, teacher_p_true) VALUES";
	bv_buf_append(&sql, head, sizeof head - 1);
	/* row j's anonymous ?s take the next numbers, 5 + 10 j to 14 + 10 j;
	 * numbered ones would make SQLite's parser scan its list of parameter
	 * names for each (quadratic in the rows) */
	static const char row[] = ",(?1,?2,?3,?4,?,?,?,?,?,?,?,?,?,?)";
	for (int j = 0; j < n_rows; j++)
		bv_buf_append(&sql, row + (j == 0), sizeof row - 1 - (j == 0));
	int rc = 0;
	if (sql.failed)
		rc = bv_error_set(BV_ENOMEM, "out of memory");
	else if (sqlite3_prepare_v3(db->h, (const char *)sql.data, (int)sql.len,
				    SQLITE_PREPARE_PERSISTENT, out, NULL) != SQLITE_OK)
		rc = dberr(db);
	bv_buf_release(&sql);
	return rc;
}

/* Bind row j's ten values of a stats_prepare statement. */
static int stats_bind(bv_db *db, sqlite3_stmt *st, int j, const bv_stat_row *r)
{
	const int p = STATS_SHARED + 1 + STATS_PER_ROW * j;
	return bind_failed(db, sqlite3_bind_int(st, p, r->sample_idx) |
				       sqlite3_bind_double(st, p + 1, r->bias) |
				       sqlite3_bind_double(st, p + 2, r->variance) |
				       sqlite3_bind_double(st, p + 3, r->loss) |
				       (r->regularization < 0 ? sqlite3_bind_null(st, p + 4)
							      : sqlite3_bind_int(st, p + 4, r->regularization)) |
				       sqlite3_bind_int(st, p + 5, r->n_seeds) |
				       bind_real(st, p + 6, r->p_true) | bind_real(st, p + 7, r->acc) |
				       bind_real(st, p + 8, r->wsl_weight) |
				       bind_real(st, p + 9, r->teacher_p_true));
}

int bv_db_stats_put(bv_db *db, double temperature, int epoch, const char *split,
		    const char *method, const bv_stat_row *rows, int n)
{
	sqlite3_stmt *tail = NULL;
	int rc = 0;
	if (n >= STATS_BATCH && !db->stats_batch &&
	    (rc = stats_prepare(db, &db->stats_batch, STATS_BATCH)) != 0)
		return rc;
	for (int i = 0; i < n && rc == 0;) {
		const int m = n - i < STATS_BATCH ? n - i : STATS_BATCH;
		sqlite3_stmt *st = db->stats_batch;
		if (m < STATS_BATCH) /* the last, shorter statement: prepared for this call only */
			if ((rc = stats_prepare(db, &tail, m)) != 0)
				break;
		st = m < STATS_BATCH ? tail : st;
		if ((rc = bind_failed(db, sqlite3_bind_double(st, 1, temperature) |
						  sqlite3_bind_int(st, 2, epoch) |
						  sqlite3_bind_text(st, 3, split, -1, SQLITE_STATIC) |
						  sqlite3_bind_text(st, 4, method, -1, SQLITE_STATIC))) != 0)
			break;
		for (int j = 0; j < m && rc == 0; j++)
			rc = stats_bind(db, st, j, &rows[i + j]);
		if (rc == 0)
			rc = run(db, st);
		sqlite3_reset(st);
		i += m;
	}
	if (db->stats_batch)
		sqlite3_clear_bindings(db->stats_batch); /* no pointer to split and method kept */
	sqlite3_finalize(tail);
	return rc;
}

int bv_db_decomposition_put(bv_db *db, const bv_db_decomposition *d)
{
	sqlite3_stmt *st = NULL;
	int rc;
	if ((rc = stmt(db, S_DECOMP_PUT, &st)) == 0 &&
	    (rc = bind_failed(db, sqlite3_bind_double(st, 1, d->temperature))) == 0 &&
	    (rc = bind_failed(db, sqlite3_bind_int(st, 2, d->epoch))) == 0 &&
	    (rc = bind_failed(db, sqlite3_bind_text(st, 3, d->split, -1, SQLITE_STATIC))) == 0 &&
	    (rc = bind_failed(db, sqlite3_bind_text(st, 4, d->criterion, -1, SQLITE_STATIC))) == 0 &&
	    (rc = bind_failed(db, sqlite3_bind_int(st, 5, d->n_samples))) == 0 &&
	    (rc = bind_failed(db, sqlite3_bind_text(st, 6, d->seeds, -1, SQLITE_STATIC))) == 0 &&
	    (rc = bind_failed(db, sqlite3_bind_double(st, 7, d->max_identity_error))) == 0)
		rc = run(db, st);
	unstmt(st);
	return rc;
}

int bv_db_correlation_put(bv_db *db, const bv_db_correlation *c)
{
	sqlite3_stmt *st = NULL;
	int rc;
	if ((rc = stmt(db, S_CORR_PUT, &st)) == 0 &&
	    (rc = bind_failed(db, sqlite3_bind_text(st, 1, c->split, -1, SQLITE_STATIC))) == 0 &&
	    (rc = bind_failed(db, sqlite3_bind_int(st, 2, c->epoch))) == 0 &&
	    (rc = bind_failed(db, sqlite3_bind_text(st, 3, c->method, -1, SQLITE_STATIC))) == 0 &&
	    (rc = bind_failed(db, sqlite3_bind_text(st, 4, c->criterion, -1, SQLITE_STATIC))) == 0 &&
	    (rc = bind_failed(db, sqlite3_bind_int(st, 5, c->n_points))) == 0 &&
	    (rc = bind_failed(db, bind_real(st, 6, c->r))) == 0 &&
	    (rc = bind_failed(db, bind_real(st, 7, c->r_p))) == 0 &&
	    (rc = bind_failed(db, bind_real(st, 8, c->rho))) == 0 &&
	    (rc = bind_failed(db, bind_real(st, 9, c->rho_p))) == 0 &&
	    (rc = bind_failed(db, bind_real(st, 10, c->r_lo))) == 0 &&
	    (rc = bind_failed(db, bind_real(st, 11, c->r_hi))) == 0 &&
	    (rc = bind_failed(db, sqlite3_bind_int(st, 12, c->n_boot))) == 0)
		rc = run(db, st);
	unstmt(st);
	return rc;
}
