/*
 * lease/master.c - the store's `master` paxos lease as held by one server
 * process, and the fencing rules that keep a master that lost it (or may
 * have lost it) from writing.
 *
 * Fencing has two independent halves:
 *  - sanlock tells us to go: when our delta lease cannot be renewed, or another
 *    host requests the lease (sanlock_request, graceful), the daemon runs our
 *    killpath, `kill -SIG <pid>`,
 *    whose handler sets the process-wide fence flag; the daemon escalates to
 *    SIGKILL if we do not exit.
 *  - we stop on our own clock: lease_master_check() records when our delta
 *    lease was last renewed; from renewal + 8*io_timeout sanlock would begin
 *    recovery and other hosts may take the lease once they see us dead, so
 *    lease_may_commit() refuses from one io_timeout before that.
 * A fenced process never becomes unfenced.
 */
#include "lease/lease_internal.h"
#include "utils/err.h"
#include "utils/log.h"

#include <errno.h>
#include <sanlock_admin.h>
#include <sanlock_resource.h>
#include <sanlock_rv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t fence_flag;

static void fence_handler(int signo)
{
	(void)signo;
	fence_flag = 1;
}

int lease_fence_install(int signo)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = fence_handler;
	sigemptyset(&sa.sa_mask);
	if (sigaction(signo, &sa, NULL) < 0)
		return err_set(errno, "installing the fence signal handler: %s", strerror(errno));
	return 0;
}

void lease_fence_now(void) { fence_flag = 1; }
bool lease_fenced(void) { return fence_flag != 0; }

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t lease_deadline_ns(uint64_t renewed_s, uint32_t io_timeout)
{
	/* sanlock's id_renewal_fail_seconds is 8 * io_timeout.  */
	return ((int64_t)renewed_s + 7 * (int64_t)io_timeout) * 1000000000;
}

int lease_master_open(struct lease_master *m, const struct lease_area *a,
		      uint32_t host_id, int fence_signal)
{
	int rc;

	memset(m, 0, sizeof(*m));
	m->area = *a;
	m->host_id = host_id;
	m->sock = -1;
	rc = lease_daemon_check();
	if (rc < 0)
		return rc;
	/* libsanlock writes to the daemon's socket without MSG_NOSIGNAL: if the
	 * daemon dies, the default SIGPIPE would kill a master silently instead
	 * of letting lease_master_check() report the lost lease.  */
	struct sigaction old;
	if (sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler == SIG_DFL)
		signal(SIGPIPE, SIG_IGN);
	m->sock = sanlock_register();
	if (m->sock < 0) {
		rc = lease_sanlock_error(m->sock, "registering with the sanlock daemon");
		m->sock = -1;
		return rc;
	}
	if (fence_signal > 0) {
		const char *kill_path = access("/usr/bin/kill", X_OK) == 0 ? "/usr/bin/kill" :
					access("/bin/kill", X_OK) == 0 ? "/bin/kill" : NULL;
		char args[48];
		int rv;

		/* Without a killpath sanlock would send SIGTERM, which a server
		 * takes for an orderly stop: refuse rather than blur the two.  */
		if (!kill_path) {
			lease_master_close(m);
			return err_set(ENOENT, "no kill(1) at /usr/bin/kill or /bin/kill for sanlock's "
				       "killpath (install procps)");
		}

		/* Our pid is in the arguments: sanlock appends the pid
		 * (SANLK_KILLPATH_PID) only on some of its paths.  */
		snprintf(args, sizeof(args), "-%d %d", fence_signal, (int)getpid());
		rv = sanlock_killpath(m->sock, 0, kill_path, args);
		if (rv < 0) {
			rc = lease_sanlock_error(rv, "setting the killpath");
			lease_master_close(m);
			return rc;
		}
	}
	return 0;
}

union master_res {
	struct sanlk_resource r;
	char space[sizeof(struct sanlk_resource) + sizeof(struct sanlk_disk)];
};

int lease_master_acquire(struct lease_master *m)
{
	union master_res res;
	struct sanlk_resource *rp = &res.r;
	struct sanlk_host *owners = NULL;
	int n = 0, rv, rc;

	if (lease_fenced())
		return err_set(ENOLCK, "fenced: this process may not become master");
	if (m->sock < 0)
		return err_set(EBADF, "master lease not opened");
	if (m->held)
		return 0;
	lease_fill_master(&m->area, rp);
	rv = sanlock_acquire(m->sock, -1, SANLK_ACQUIRE_OWNER_NOWAIT, 1, &rp, NULL);
	if (rv == -ENOSPC || rv == SANLK_ACQUIRE_LOCKSPACE)	/* lockspace not found */
		return err_set(ENOTCONN, "acquiring the master lease: this node has not joined "
			       "lockspace %s (csnap agent joins it; or csnap lease join)",
			       m->area.lockspace);
	if (rv < 0)
		return lease_sanlock_error(rv, "acquiring the master lease");

	/* Our lver and generation as everyone else will read them.  */
	lease_fill_master(&m->area, rp);
	rv = sanlock_read_resource_owners(rp, 0, &owners, &n);
	if (rv < 0 || n != 1 || owners[0].host_id != m->host_id) {
		rc = rv < 0 ? lease_sanlock_error(rv, "reading the master lease after acquiring")
			    : err_set(EIO, "master lease acquired but sanlock reports %d owner(s), "
				      "host_id %llu", n, n ? (unsigned long long)owners[0].host_id : 0ull);
		free(owners);
		sanlock_release(m->sock, -1, 0, 1, &rp);
		return rc;
	}
	m->lver = res.r.lver;
	m->generation = owners[0].generation;
	free(owners);
	m->held = true;
	m->valid_until_ns = 0;
	rc = lease_master_check(m);
	return rc < 0 ? rc : 0;
}

int lease_master_release(struct lease_master *m)
{
	union master_res res;
	struct sanlk_resource *rp = &res.r;
	int rv;

	if (!m->held)
		return 0;
	m->held = false;
	m->published = false;
	m->valid_until_ns = 0;
	lease_fill_master(&m->area, rp);
	rv = sanlock_release(m->sock, -1, 0, 1, &rp);
	return rv < 0 ? lease_sanlock_error(rv, "releasing the master lease") : 0;
}

/* Our delta lease's renewal time and io_timeout, from disk.  */
static int own_delta_lease(struct lease_master *m, uint64_t *ts)
{
	uint8_t *sec = lease_io_alloc(m->area.sector_size);
	struct sanlock_leader l;
	int rc;

	if (!sec)
		return err_set(ENOMEM, "out of memory");
	rc = lease_io_read(m->area.path, lease_area_lockspace_offset(&m->area) +
			   (uint64_t)(m->host_id - 1) * m->area.sector_size, sec,
			   m->area.sector_size);
	if (rc == 0 && (lease_leader_decode(sec, &l) < 0 || l.magic != SANLOCK_DELTA_MAGIC ||
			l.owner_id != m->host_id))
		rc = err_set(EBADMSG, "our delta lease (host_id %u) is unreadable", m->host_id);
	if (rc == 0) {
		*ts = l.timestamp;
		m->io_timeout = l.io_timeout;
	}
	free(sec);
	return rc;
}

static bool record_is_ours(const struct lease_master *m, const struct lease_record *r)
{
	return r->lver == m->lver && r->host_id == m->host_id &&
	       r->generation == m->generation && r->port == m->pub_port &&
	       r->epoch == m->pub_epoch && strcmp(r->address, m->pub_address) == 0;
}

static int republish_if_overwritten(struct lease_master *m)
{
	struct lease_record r;

	if (lease_record_read(&m->area, &r) == 0 && record_is_ours(m, &r))
		return 0;
	log_warn("lease-owner record of %s is not ours (overwritten?): writing it again",
		 m->area.lockspace);
	return lease_master_publish(m, m->pub_address, m->pub_port, m->pub_epoch);
}

int lease_master_check(struct lease_master *m)
{
	struct sanlk_host *hs = NULL;
	char *state = NULL;
	uint64_t ts = 0;
	int count = 0, n = 0, rv;

	if (lease_fenced()) {
		m->held = false;
		return err_set(ENOLCK, "fenced: sanlock revoked the master lease");
	}
	if (!m->held)
		return err_set(ENOLCK, "not holding the master lease");
	/* Our registered connection is what holds the lease: if sanlock cannot
	 * answer on it (daemon gone or connection broken), the daemon has
	 * released the lease or will never renew it again.  */
	rv = sanlock_inquire(m->sock, -1, 0, &count, &state);
	free(state);
	if (rv < 0) {
		m->held = false;
		return err_set(ENOLCK, "lost the sanlock connection that holds the master lease "
			       "(sanlock %d)", rv);
	}
	if (count < 1) {
		m->held = false;
		return err_set(ENOLCK, "sanlock no longer lists the master lease as ours");
	}
	/* -EAGAIN: the daemon has no host status yet (just joined).  */
	rv = sanlock_get_hosts(m->area.lockspace, m->host_id, &hs, &n, 0);
	if (rv < 0 && rv != -EAGAIN)
		return lease_sanlock_error(rv, "reading our delta lease");
	if (rv < 0)
		n = 0;
	if (n > 0 && hs[0].io_timeout)
		m->io_timeout = hs[0].io_timeout;
	if (n > 0 && hs[0].timestamp)
		ts = hs[0].timestamp;
	free(hs);
	/* Right after joining the daemon may not report our own renewal yet:
	 * read it from our delta lease on disk.  */
	if (!ts || !m->io_timeout) {
		rv = own_delta_lease(m, &ts);
		if (rv < 0)
			return rv;
	}
	if (ts && m->io_timeout) {
		int64_t until = lease_deadline_ns(ts, m->io_timeout);
		if (until > m->valid_until_ns)
			m->valid_until_ns = until;
	}
	return m->published ? republish_if_overwritten(m) : 0;
}

int lease_may_commit(const struct lease_master *m)
{
	int64_t now;

	if (lease_fenced())
		return err_set(ENOLCK, "fenced: sanlock revoked the master lease");
	if (!m->held)
		return err_set(ENOLCK, "not holding the master lease");
	now = mono_ns();
	if (now >= m->valid_until_ns)
		return err_set(ENOLCK, "the master lease may have expired (not renewed for too "
			       "long): refusing to commit");
	return 0;
}

void lease_master_close(struct lease_master *m)
{
	if (m->sock >= 0)
		close(m->sock);
	m->sock = -1;
	m->held = false;
}

int lease_master_publish(struct lease_master *m, const char *address, uint16_t port,
			 uint64_t epoch)
{
	struct lease_record r, back;
	int rc;

	if (!m->held)
		return err_set(ENOLCK, "publishing the master record without the lease");
	rc = lease_may_commit(m);
	if (rc < 0)
		return rc;
	memset(&r, 0, sizeof(r));
	r.lver = m->lver;
	r.host_id = m->host_id;
	r.generation = m->generation;
	r.epoch = epoch;
	r.port = port;
	if (!address || !*address || strlen(address) >= sizeof(r.address) || !port)
		return err_set(EINVAL, "bad master address or port");
	snprintf(r.address, sizeof(r.address), "%s", address);
	if (lease_record_read(&m->area, &back) == 0)
		r.write_seq = back.write_seq + 1;
	rc = lease_record_write(&m->area, &r);
	if (rc < 0)
		return rc;
	m->published = true;
	memcpy(m->pub_address, r.address, sizeof(m->pub_address));	/* address may be it */
	m->pub_port = port;
	m->pub_epoch = epoch;
	rc = lease_record_read(&m->area, &back);
	if (rc < 0)
		return err_prefix(-rc, "reading back the lease-owner record");
	if (!record_is_ours(m, &back))
		return err_set(EIO, "lease-owner record read back differs from what was written");
	return 0;
}

int lease_master_unpublish(struct lease_master *m)
{
	struct lease_record r;

	if (!m->published)
		return 0;
	m->published = false;
	/* Only our own record: never wipe a successor's.  */
	if (!m->held || lease_record_read(&m->area, &r) < 0 || !record_is_ours(m, &r))
		return 0;
	return lease_record_clear(&m->area);
}
