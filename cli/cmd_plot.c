/*
 * `bvtool plot`: the figures of a decomposed database. plots/ writes each
 * figure's data file and gnuplot script into a staging directory inside the
 * output directory; this file then runs `gnuplot NAME.gp` (found on PATH at
 * run time) there for each, so the scripts are run exactly as a user would
 * run them by hand, and only when every image is drawn moves the whole set
 * into place (bv_plot_commit). Without gnuplot the scripts and data are moved
 * alone, and the command says how to render them (exit status 7, a partial
 * result). SIGINT or SIGTERM kills the running gnuplot, leaves the output
 * directory as it was, and exits 130 with one line.
 */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "plots.h"

static volatile sig_atomic_t interrupted; /* the signal that came, or 0 */
static volatile sig_atomic_t child;       /* the running gnuplot (its own process group), or 0 */

static void on_signal(int sig)
{
	interrupted = sig;
	if (child > 0) {
		kill(-(pid_t)child, SIGKILL);
		kill((pid_t)child, SIGKILL);
	}
}

/* 1 when an executable `name` is in a directory of PATH (an empty entry is the current directory) */
static int on_path(const char *name)
{
	const char *path = getenv("PATH");
	if (!path)
		return 0;
	for (const char *p = path;;) {
		const char *end = strchr(p, ':');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		char full[4096];
		if (len + strlen(name) + 3 < sizeof full) {
			struct stat sb;
			if (len == 0)
				snprintf(full, sizeof full, "./%s", name);
			else
				snprintf(full, sizeof full, "%.*s/%s", (int)len, p, name);
			if (stat(full, &sb) == 0 && S_ISREG(sb.st_mode) && access(full, X_OK) == 0)
				return 1;
		}
		if (!end)
			return 0;
		p = end + 1;
	}
}

/* dir/name.ext for messages and unlink, without a doubled slash */
static void join(char *out, size_t size, const char *dir, const char *name, const char *ext)
{
	size_t dl = strlen(dir);
	snprintf(out, size, "%s%s%s%s", dir, dl && dir[dl - 1] == '/' ? "" : "/", name, ext);
}

/* gnuplot's first error line: the one naming the script's line ("x.gp" line 3: ...), else the first
 * non-blank; a control character in it (database text gnuplot echoes) becomes '?' */
static void first_error(char *out, size_t size, const char *err)
{
	const char *first = NULL;
	out[0] = '\0';
	for (const char *p = err; *p;) {
		const char *end = strchr(p, '\n');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		int blank = 1;
		for (size_t i = 0; i < len; i++)
			blank &= p[i] == ' ' || p[i] == '\t' || p[i] == '^' || p[i] == '\r';
		if (!blank && !first)
			first = p;
		const char *hit = strstr(p, "\" line ");
		if (hit && hit < p + len) {
			snprintf(out, size, "%.*s", (int)len, p);
			return;
		}
		if (!end)
			break;
		p = end + 1;
	}
	if (first) {
		const char *end = strchr(first, '\n');
		snprintf(out, size, "%.*s", (int)(end ? end - first : (long)strlen(first)), first);
	} else {
		snprintf(out, size, "no message");
	}
}

static void printable(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = '?';
}

static const char *signal_name(int sig)
{
	return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "a signal";
}

/* the message of an interruption; dir is left as it was */
static int interruption(const char *dir, const char *doing)
{
	return bv_error_set(BV_EINTR, "interrupted: %s %s; '%s' is left as it was", signal_name(interrupted), doing, dir);
}

/*
 * Run `gnuplot NAME.gp` with stage as the working directory, in a process
 * group of its own (so that an interruption kills it and whatever it runs).
 * Returns 0, or sets the error (gnuplot's first error line) and returns
 * BV_EIO, or BV_EINTR when a signal came.
 */
static int run_gnuplot(const char *stage, const char *dir, const char *name)
{
	char script[256], err[8192], line[1024];
	size_t n_err = 0;
	int fd[2], status;
	snprintf(script, sizeof script, "%s.gp", name);
	if (pipe(fd) != 0)
		return bv_error_set(BV_EIO, "cannot run gnuplot: %s", strerror(errno));
	pid_t pid = fork();
	if (pid < 0) {
		close(fd[0]);
		close(fd[1]);
		return bv_error_set(BV_EIO, "cannot run gnuplot: %s", strerror(errno));
	}
	if (pid == 0) {
		setpgid(0, 0);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		int devnull = open("/dev/null", O_RDWR);
		if (devnull >= 0) {
			dup2(devnull, 0);
			dup2(devnull, 1);
		}
		dup2(fd[1], 2);
		close(fd[0]);
		close(fd[1]);
		if (chdir(stage) != 0) {
			dprintf(2, "cannot enter '%s': %s\n", stage, strerror(errno));
			_exit(126);
		}
		execlp("gnuplot", "gnuplot", script, (char *)NULL);
		dprintf(2, "cannot run gnuplot: %s\n", strerror(errno));
		_exit(127);
	}
	/* both sides set the group, so that it exists before the handler can kill it */
	setpgid(pid, pid);
	child = pid;
	if (interrupted)
		on_signal(interrupted);
	close(fd[1]);
	for (;;) {
		char chunk[4096];
		ssize_t r = read(fd[0], chunk, sizeof chunk);
		/* after a signal, gnuplot's messages no longer matter (and a process that
		 * left its group may hold the pipe open) */
		if (r < 0 && errno == EINTR && !interrupted)
			continue;
		if (r <= 0)
			break;
		size_t keep = (size_t)r < sizeof err - 1 - n_err ? (size_t)r : sizeof err - 1 - n_err;
		memcpy(err + n_err, chunk, keep);
		n_err += keep;
	}
	err[n_err] = '\0';
	close(fd[0]);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			child = 0;
			return bv_error_set(BV_EIO, "cannot wait for gnuplot: %s", strerror(errno));
		}
	child = 0;
	if (interrupted) {
		snprintf(line, sizeof line, "while gnuplot drew '%s'", name);
		return interruption(dir, line);
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	first_error(line, sizeof line, err);
	printable(line);
	return bv_error_set(BV_EIO, "gnuplot failed on '%s' ('%s' is left as it was): %s", script, dir, line);
}

int cmd_plot(const cli_cmd *cmd, int argc, char **argv)
{
	const char *db_path = "runs.db", *out_dir = "figures", *temp = NULL, *format = "png";
	const cli_opt opts[] = {
		{"--db", OPT_STR, &db_path, "FILE", "the database of a collect and a decompose"},
		{"--out", OPT_STR, &out_dir, "DIR", "the output directory (created if missing)"},
		{"--temp", OPT_STR, &temp, "T",
		 "the temperature of the kd and wsl curves (default: 4 if decomposed, else the middle one)"},
		{"--format", OPT_STR, &format, "F", "the images: png, svg or pdf"},
		{0},
	};
	cli_cmd local = *cmd;
	local.opts = opts;
	bv_db *db = NULL;
	bv_plot_result res = {0};
	double T = NAN;
	char path[4096];
	int rc = cli_parse(&local, argc, argv), gnuplot_failed = 0;
	if (rc)
		return rc < 0 ? BV_EXIT_OK : rc;
	if ((rc = bv_plot_check_format(format)) != 0)
		return cli_fail(rc);
	if (temp && (bv_parse_double(&T, temp, -1e308, 1e308, "--temp") != 0 || !(T > 0)))
		return cli_fail(bv_error_set(BV_EINVAL, "--temp: bad temperature '%s' (expected a number > 0)", temp));
	if (!*out_dir)
		return cli_fail(bv_error_set(BV_EINVAL, "--out: expected a directory, got ''"));

	struct sigaction sa;
	sigset_t stop, old;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);

	if ((rc = bv_db_open(&db, db_path, BV_DB_READONLY)) == 0)
		rc = bv_plot_write(&res, db, out_dir, T, format);
	bv_db_close(db);
	if (rc == 0 && interrupted)
		rc = interruption(out_dir, "while the figures were built");
	if (rc)
		goto done;

	const int images = on_path("gnuplot");
	for (int i = 0; images && i < res.n_figures; i++)
		if ((rc = run_gnuplot(res.stage, out_dir, res.figures[i].name)) != 0) {
			gnuplot_failed = rc == BV_EIO; /* gnuplot's failure, not a file's: exit 1 */
			goto done;
		}
	/* the renames are not interrupted: the previous set or the new one, never a mix */
	sigprocmask(SIG_BLOCK, &stop, &old);
	rc = interrupted ? interruption(out_dir, "before the figures were moved into place")
			 : bv_plot_commit(&res, out_dir, images);
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (rc)
		goto done;

	if (!images) {
		/* the directory as a shell word for the "cd DIR && gnuplot *.gp" hint */
		char word[4200];
		size_t n = 0;
		int plain = 1;
		for (const char *p = out_dir; *p; p++)
			plain &= strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_./+,:@%=-", *p) != NULL;
		if (plain) {
			snprintf(word, sizeof word, "%s", out_dir);
		} else {
			word[n++] = '\'';
			for (const char *p = out_dir; *p && n + 6 < sizeof word; p++) {
				if (*p == '\'') {
					memcpy(word + n, "'\\''", 4);
					n += 4;
				} else {
					word[n++] = *p;
				}
			}
			word[n++] = '\'';
			word[n] = '\0';
		}
		for (int i = 0; i < res.n_figures; i++) {
			join(path, sizeof path, out_dir, res.figures[i].name, ".gp");
			printf("%s: %s\n", path, res.figures[i].what);
		}
		for (int i = 0; i < res.n_skipped; i++)
			printf("skipped %s: %s\n", res.skipped[i].name, res.skipped[i].what);
		fflush(stdout);
		return cli_fail(bv_error_set(BV_EPARTIAL,
					     "gnuplot is not on PATH: wrote the scripts and data of %d figures to '%s'; "
					     "install gnuplot (apt-get install gnuplot-nox) and render them with: "
					     "cd %s && gnuplot *.gp",
					     res.n_figures, out_dir, word));
	}
	for (int i = 0; i < res.n_figures; i++) {
		char ext[8];
		snprintf(ext, sizeof ext, ".%s", format);
		join(path, sizeof path, out_dir, res.figures[i].name, ext);
		printf("%s: %s\n", path, res.figures[i].what);
	}
	for (int i = 0; i < res.n_skipped; i++)
		printf("skipped %s: %s\n", res.skipped[i].name, res.skipped[i].what);
	printf("plotted %d figures in '%s' (T = %g, test split, epoch %d); each has its .gp script and .dat data\n",
	       res.n_figures, out_dir, res.temp, res.epoch);
done:
	bv_plot_result_release(&res);
	if (rc && gnuplot_failed)
		return cli_fail(rc), BV_EXIT_INTERNAL;
	return rc ? cli_fail(rc) : BV_EXIT_OK;
}
