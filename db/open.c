/*
 * Opening a bvtool database safely, and closing it.
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
 * WAL. The reads and writes on the open connection are db.c's, samples.c's
 * and results.c's.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "db_int.h"
#include "schema.h"
#include "sqlfn.h"

/* how long a connection waits for another process's lock */
#define BUSY_TIMEOUT_MS 60000

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

/* sql_failed on the open connection, after opening (declared in db_int.h). */
int db_err(bv_db *db)
{
	return sql_failed(db->path, db->h, 0);
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

/* ---- the journal mode ------------------------------------------------------ */

static bv_journal journal_mode = BV_JOURNAL_AUTO;

void bv_db_set_journal(bv_journal mode)
{
	journal_mode = mode;
}

int bv_db_journal_parse(bv_journal *out, const char *s, const char *flag)
{
	static const char *const names[] = {"auto", "wal", "delete"};
	for (int i = 0; i < (int)BV_ARRAY_LEN(names); i++)
		if (strcmp(s, names[i]) == 0) {
			*out = (bv_journal)i;
			return 0;
		}
	return bv_error_set(BV_EINVAL, "%s: expected auto, wal or delete, got '%s'", flag, s);
}

int bv_db_fs_is_network(long f_type)
{
	/* statfs(2)'s magic numbers (linux/magic.h and the file systems' own
	 * headers) of file systems shared between hosts, where SQLite's WAL, whose
	 * index is shared memory of one host, cannot work */
	static const unsigned long network[] = {
		0x6969,     /* NFS */
		0x517B,     /* SMB */
		0xFF534D42, /* CIFS */
		0xFE534D42, /* SMB2 */
		0x0BD00BD0, /* Lustre */
		0x47504653, /* GPFS (IBM Storage Scale) */
		0x00C36400, /* CephFS */
		0x19830326, /* BeeGFS */
		0xAAD7AAEA, /* PanFS */
		0x5346414F, /* AFS */
		0x01021997, /* 9P */
		0x65735546, /* FUSE: sshfs and the like (a local FUSE loses only WAL) */
	};
	for (size_t i = 0; i < BV_ARRAY_LEN(network); i++)
		if ((unsigned long)(unsigned int)f_type == network[i])
			return 1;
	return 0;
}

/* The mode a writer of the file at path uses: --journal's, or for auto WAL
 * unless the file's directory is on a network file system. */
static const char *journal_of(const char *path)
{
	struct statfs fs;
	char dir[4096];
	if (journal_mode == BV_JOURNAL_WAL)
		return "WAL";
	if (journal_mode == BV_JOURNAL_DELETE)
		return "DELETE";
	const char *slash = strrchr(path, '/');
	snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path == 0 ? 1 : slash - path) : 1,
		 slash ? path : ".");
	return statfs(dir, &fs) == 0 && bv_db_fs_is_network((long)fs.f_type) ? "DELETE" : "WAL";
}

/* Switch to the journal mode (a no-op when the file is in it already). The
 * switch takes an exclusive lock without calling the busy handler, so another
 * process creating the same file at the same moment makes it fail with
 * SQLITE_BUSY: retry for as long as the busy timeout would wait. */
static int set_journal(bv_db *db)
{
	char sql[64];
	snprintf(sql, sizeof sql, "PRAGMA journal_mode = %s", journal_of(db->path));
	for (int ms = 0;; ms += 10) {
		int rc = sqlite3_exec(db->h, sql, NULL, NULL, NULL);
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
	    bv_sqlfn_register(db->h) != SQLITE_OK)
		return sql_failed(db->path, db->h, 1);
	return 0;
}

/* Create or migrate the schema under the write lock; checks the file again
 * there, since another process may have created it since our first look. A
 * migrated schema that still lacks a table is undone and refused. */
static int migrate(bv_db *db)
{
	int version = 0, fresh = 0, rc;
	/* without foreign keys while the schema changes (they cannot be switched
	 * inside the transaction): dropping a table that names another as its
	 * parent looks that one up, and a damaged file lacking it must reach the
	 * schema check below, which names what is missing */
	if (sqlite3_exec(db->h, "PRAGMA foreign_keys = OFF; BEGIN IMMEDIATE", NULL, NULL, NULL) !=
	    SQLITE_OK)
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
	const int mrc = db_schema_migrate(db->h, version);
	if (mrc == SQLITE_ERROR) {
		/* a statement of the migration does not fit the file: a table it
		 * alters is missing, a column it adds is there already */
		rc = bv_error_set(BV_EFORMAT,
				  "'%s' is a damaged bvtool database: its schema version %d cannot be "
				  "upgraded to %d (%s)",
				  db->path, version, BV_DB_SCHEMA_VERSION, sqlite3_errmsg(db->h));
		goto done;
	}
	if (mrc != SQLITE_OK) {
		rc = bv_error_prefix(db_err(db), "cannot upgrade the schema from version %d to %d",
				     version, BV_DB_SCHEMA_VERSION);
		goto done;
	}
	rc = check_schema(db->h, db->path);
done:
	rc = db_tx_close(db, 1, rc);
	sqlite3_exec(db->h, "PRAGMA foreign_keys = ON", NULL, NULL, NULL);
	return rc;
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
	return set_journal(db);
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

int bv_db_bulk(bv_db *db, int on)
{
	if (!on)
		return sqlite3_exec(db->h, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL) == SQLITE_OK
			       ? set_journal(db)
			       : db_err(db);
	/* a rollback journal does not journal the pages a transaction appends:
	 * every byte of a snapshot is written once, not to the WAL and again at
	 * its checkpoint */
	if (sqlite3_exec(db->h, "PRAGMA journal_mode = DELETE; PRAGMA synchronous = OFF", NULL, NULL,
			 NULL) != SQLITE_OK)
		return db_err(db);
	return 0;
}

int bv_db_copy_mode(bv_db *db, int on)
{
	if (!on)
		return sqlite3_exec(db->h, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL) == SQLITE_OK
			       ? set_journal(db)
			       : db_err(db);
	/* a rollback journal journals only the pages a transaction changes, not
	 * those it appends, and needs no checkpoint: a snapshot's bytes are
	 * written once, not to the WAL and again into the file; FULL syncs each
	 * commit safely in that mode. Refused (another connection holds the WAL
	 * open), the WAL stays: slower, not wrong. */
	if (sqlite3_exec(db->h, "PRAGMA journal_mode = DELETE", NULL, NULL, NULL) != SQLITE_OK)
		return 0;
	return sqlite3_exec(db->h, "PRAGMA synchronous = FULL", NULL, NULL, NULL) == SQLITE_OK
		       ? 0
		       : db_err(db);
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
