/*
 * src/agent/lock.c - one agent per node: a POSIX record lock on
 * RUN_DIR/agent.lock.  The kernel drops it when the agent dies, however it
 * dies, so a stale file never blocks a restart.  A POSIX lock (not flock)
 * because F_GETLK then tells us the pid of the holder for the message.
 * (POSIX locks are per process and vanish on any close of the file: only
 * this file opens it.)
 */
#include "src/agent/agent.h"
#include "utils/err.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int mkdir_p(const char *dir)
{
	char buf[CONFIG_PATH_MAX];
	size_t n = strlen(dir);

	if (n == 0 || n >= sizeof buf)
		return err_set(EINVAL, "bad run_dir '%s'", dir);
	memcpy(buf, dir, n + 1);
	for (char *p = buf + 1; ; p++) {
		if (*p == '/' || !*p) {
			char c = *p;
			*p = 0;
			if (mkdir(buf, 0755) < 0 && errno != EEXIST)
				return err_set(errno, "cannot create %s: %s", buf, strerror(errno));
			*p = c;
			if (!c)
				break;
		}
	}
	return 0;
}

int agent_lock(const char *run_dir)
{
	char path[CONFIG_PATH_MAX + 16];
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	int fd, r;

	r = mkdir_p(run_dir);
	if (r < 0)
		return r;
	snprintf(path, sizeof path, "%s/agent.lock", run_dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return err_set(errno, "cannot open %s: %s", path, strerror(errno));
	if (fcntl(fd, F_SETLK, &fl) < 0) {
		int e = errno;
		struct flock who = { .l_type = F_WRLCK, .l_whence = SEEK_SET };

		if (e != EACCES && e != EAGAIN) {
			close(fd);
			return err_set(e, "cannot lock %s: %s", path, strerror(e));
		}
		if (fcntl(fd, F_GETLK, &who) == 0 && who.l_type != F_UNLCK)
			r = err_set(EBUSY, "another csnap agent (pid %ld) is already running on this "
				    "node (it holds %s)", (long)who.l_pid, path);
		else
			r = err_set(EBUSY, "another csnap agent is already running on this node "
				    "(it holds %s)", path);
		close(fd);
		return r;
	}
	/* The pid in the file is for humans; the lock is what counts.  */
	char pid[32];
	int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
		r = err_set(errno, "cannot write %s: %s", path, strerror(errno));
		close(fd);
		return r;
	}
	return fd;
}
