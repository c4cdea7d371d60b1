/*
 * src/activate/nbdnl.c - nbd generic netlink commands over a raw socket
 * (see nbdnl.h).  One request per socket: open, resolve the family, send,
 * read the reply and the ACK, close; nothing is cached, since activation
 * does a handful of these per volume.
 */
#include "src/activate/nbdnl.h"
#include "src/activate/sysdev.h"

#include "utils/err.h"

#include <dirent.h>
#include <fcntl.h>
#include <errno.h>
#include <linux/genetlink.h>
#include <linux/nbd-netlink.h>
#include <linux/netlink.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define NL_BUF 8192

struct nlreq {
	union {
		struct nlmsghdr h;
		char buf[1024];
	} u;
	size_t len;
};

static void req_init(struct nlreq *r, uint16_t type, uint8_t cmd, uint8_t version)
{
	struct genlmsghdr *g;

	memset(r, 0, sizeof *r);
	r->u.h.nlmsg_type = type;
	r->u.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	r->u.h.nlmsg_seq = 1;
	r->len = NLMSG_HDRLEN + GENL_HDRLEN;
	g = (struct genlmsghdr *)(r->u.buf + NLMSG_HDRLEN);
	g->cmd = cmd;
	g->version = version;
}

static struct nlattr *put_attr(struct nlreq *r, uint16_t type, const void *data, size_t len)
{
	struct nlattr *a = (struct nlattr *)(r->u.buf + r->len);

	if (r->len + NLA_ALIGN(NLA_HDRLEN + len) > sizeof r->u.buf)
		abort();	/* our requests are fixed and small */
	a->nla_type = type;
	a->nla_len = (uint16_t)(NLA_HDRLEN + len);
	if (len)
		memcpy((char *)a + NLA_HDRLEN, data, len);
	memset((char *)a + NLA_HDRLEN + len, 0, NLA_ALIGN(NLA_HDRLEN + len) - (NLA_HDRLEN + len));
	r->len += NLA_ALIGN(NLA_HDRLEN + len);
	return a;
}

static void put_u32(struct nlreq *r, uint16_t type, uint32_t v) { put_attr(r, type, &v, 4); }
static void put_u64(struct nlreq *r, uint16_t type, uint64_t v) { put_attr(r, type, &v, 8); }

static void nest_end(struct nlreq *r, struct nlattr *a)
{
	a->nla_len = (uint16_t)(r->u.buf + r->len - (char *)a);
	a->nla_type |= NLA_F_NESTED;
}

/* Walks the attributes in [p, p + left): nla_next() returns the next one,
 * or NULL at the end or at a malformed one (which ends the walk).  */
struct nla_iter { const char *p; int left; };

static const struct nlattr *nla_next(struct nla_iter *it)
{
	const struct nlattr *a = (const struct nlattr *)it->p;

	if (it->left < NLA_HDRLEN || a->nla_len < NLA_HDRLEN || a->nla_len > it->left)
		return NULL;
	it->left -= NLA_ALIGN(a->nla_len);
	it->p += NLA_ALIGN(a->nla_len);
	return a;
}

static const char *nla_payload(const struct nlattr *a) { return (const char *)a + NLA_HDRLEN; }
static int nla_plen(const struct nlattr *a) { return a->nla_len - NLA_HDRLEN; }
/* The attributes of a generic netlink message.  */
static struct nla_iter genl_attrs(const struct nlmsghdr *h)
{
	return (struct nla_iter){ (const char *)NLMSG_DATA(h) + GENL_HDRLEN,
				  (int)h->nlmsg_len - NLMSG_HDRLEN - GENL_HDRLEN };
}

/* The id of the "nbd_mc_group" multicast group in a
 * CTRL_ATTR_MCAST_GROUPS nest, or 0.  */
static uint32_t find_mcgrp(const struct nlattr *groups)
{
	struct nla_iter g = { nla_payload(groups), nla_plen(groups) };
	const struct nlattr *grp;

	while ((grp = nla_next(&g))) {
		struct nla_iter it = { nla_payload(grp), nla_plen(grp) };
		const struct nlattr *a;
		uint32_t id = 0;
		bool ours = false;
		while ((a = nla_next(&it))) {
			if (a->nla_type == CTRL_ATTR_MCAST_GRP_ID && nla_plen(a) >= 4)
				memcpy(&id, nla_payload(a), 4);
			if (a->nla_type == CTRL_ATTR_MCAST_GRP_NAME &&
			    !strncmp(nla_payload(a), NBD_GENL_MCAST_GROUP_NAME, (size_t)nla_plen(a)))
				ours = true;
		}
		if (ours)
			return id;
	}
	return 0;
}

/* Sends R on a fresh socket and reads until the ACK.  A reply carrying
 * attribute WANT_ATTR (u32 or u16) stores it in *OUT.  Returns 0 or the
 * kernel's -errno.  */
static int nl_call(struct nlreq *r, uint16_t want_attr, uint32_t *out, uint32_t *mcgrp)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	char *buf;
	int fd, rc = -EIO;
	bool done = false;

	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);
	if (fd < 0)
		return err_set(errno, "netlink socket: %s", strerror(errno));
	r->u.h.nlmsg_len = (uint32_t)r->len;
	if (sendto(fd, r->u.buf, r->len, 0, (struct sockaddr *)&sa, sizeof sa) < 0) {
		rc = err_set(errno, "netlink send: %s", strerror(errno));
		close(fd);
		return rc;
	}
	buf = malloc(NL_BUF);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	while (!done) {
		ssize_t n = recv(fd, buf, NL_BUF, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = err_set(errno, "netlink receive: %s", strerror(errno));
			break;
		}
		for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n);
		     h = NLMSG_NEXT(h, n)) {
			if (h->nlmsg_type == NLMSG_ERROR) {
				const struct nlmsgerr *e = NLMSG_DATA(h);
				rc = e->error;	/* 0: the ACK */
				done = true;
				break;
			}
			if (h->nlmsg_type == NLMSG_DONE) {
				done = true;
				break;
			}
			/* a reply: genl header, then attributes */
			struct nla_iter it = genl_attrs(h);
			const struct nlattr *a;
			while ((a = nla_next(&it))) {
				uint16_t t = a->nla_type & NLA_TYPE_MASK;
				if (mcgrp && t == CTRL_ATTR_MCAST_GROUPS)
					*mcgrp = find_mcgrp(a);
				if (out && t == want_attr) {
					if (nla_plen(a) >= 4)
						memcpy(out, nla_payload(a), 4);
					else if (nla_plen(a) >= 2) {
						uint16_t v;
						memcpy(&v, nla_payload(a), 2);
						*out = v;
					}
				}
			}
		}
	}
	free(buf);
	close(fd);
	return rc;
}

static int family_id_once(uint16_t *id)
{
	struct nlreq r;
	uint32_t v = 0;
	int rc;

	req_init(&r, GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 1);
	put_attr(&r, CTRL_ATTR_FAMILY_NAME, NBD_GENL_FAMILY_NAME, sizeof NBD_GENL_FAMILY_NAME);
	rc = nl_call(&r, CTRL_ATTR_FAMILY_ID, &v, NULL);
	if (rc < 0)
		return rc;
	if (!v)
		return -ENOENT;
	*id = (uint16_t)v;
	return 0;
}

static int family_id(uint16_t *id)
{
	if (family_id_once(id) == 0)
		return 0;
	act_modprobe("nbd");
	if (family_id_once(id) == 0)
		return 0;
	return err_set(ENOENT, "nbd driver missing: this kernel has no generic netlink family "
		       "\"nbd\" (`modprobe nbd` did not add it)");
}

int nbdnl_available(void)
{
	uint16_t id;

	return family_id(&id);
}

static void put_socket(struct nlreq *r, int fd)
{
	struct nlattr *socks = put_attr(r, NBD_ATTR_SOCKETS, NULL, 0);
	struct nlattr *item = put_attr(r, NBD_SOCK_ITEM, NULL, 0);

	put_u32(r, NBD_SOCK_FD, (uint32_t)fd);
	nest_end(r, item);
	nest_end(r, socks);
}

/* Starts an nbd family request CMD in R (the family id looked up once).  */
static int nbd_req(struct nlreq *r, uint8_t cmd)
{
	uint16_t fam;
	int rc = family_id(&fam);

	if (rc < 0)
		return rc;
	req_init(r, fam, cmd, NBD_GENL_VERSION);
	return 0;
}

int nbdnl_connect(const struct nbdnl_connect *c)
{
	struct nlreq r;
	uint32_t index = UINT32_MAX;
	int rc = nbd_req(&r, NBD_CMD_CONNECT);

	if (rc < 0)
		return rc;
	put_u64(&r, NBD_ATTR_SIZE_BYTES, c->size);
	put_u64(&r, NBD_ATTR_BLOCK_SIZE_BYTES, c->block_size);
	put_u64(&r, NBD_ATTR_SERVER_FLAGS, c->server_flags);
	put_u64(&r, NBD_ATTR_DEAD_CONN_TIMEOUT, c->dead_conn_timeout);
	if (c->timeout)
		put_u64(&r, NBD_ATTR_TIMEOUT, c->timeout);
	put_attr(&r, NBD_ATTR_BACKEND_IDENTIFIER, c->backend, strlen(c->backend) + 1);
	put_socket(&r, c->fd);
	rc = nl_call(&r, NBD_ATTR_INDEX, &index, NULL);
	if (rc < 0)
		return err_set(-rc, "nbd connect: %s", strerror(-rc));
	if (index == UINT32_MAX || index > INT32_MAX)
		return err_set(EPROTO, "nbd connect: the kernel did not say which device it used");
	return (int)index;
}

int nbdnl_reconfigure(int index, int fd, const char *backend)
{
	struct nlreq r;
	int rc = nbd_req(&r, NBD_CMD_RECONFIGURE);

	if (rc < 0)
		return rc;
	put_u32(&r, NBD_ATTR_INDEX, (uint32_t)index);
	if (backend)
		put_attr(&r, NBD_ATTR_BACKEND_IDENTIFIER, backend, strlen(backend) + 1);
	put_socket(&r, fd);
	rc = nl_call(&r, 0, NULL, NULL);
	if (rc < 0)
		return err_set(-rc, "nbd%d reconfigure: %s", index, strerror(-rc));
	return 0;
}

int nbdnl_resize(int index, const char *backend, uint64_t size, uint64_t block_size)
{
	struct nlreq r;
	int rc = nbd_req(&r, NBD_CMD_RECONFIGURE);

	if (rc < 0)
		return rc;
	/* no NBD_ATTR_SOCKETS: the connection is left as it is; since
	 * Linux 5.3 RECONFIGURE takes the sizes as CONNECT does */
	put_u32(&r, NBD_ATTR_INDEX, (uint32_t)index);
	put_attr(&r, NBD_ATTR_BACKEND_IDENTIFIER, backend, strlen(backend) + 1);
	put_u64(&r, NBD_ATTR_SIZE_BYTES, size);
	if (block_size)
		put_u64(&r, NBD_ATTR_BLOCK_SIZE_BYTES, block_size);
	rc = nl_call(&r, 0, NULL, NULL);
	if (rc < 0)
		return err_set(-rc, "nbd%d resize to %llu bytes: %s", index,
			       (unsigned long long)size, strerror(-rc));
	return 0;
}

int nbdnl_disconnect(int index)
{
	struct nlreq r;
	int rc = nbd_req(&r, NBD_CMD_DISCONNECT);

	if (rc < 0)
		return rc;
	put_u32(&r, NBD_ATTR_INDEX, (uint32_t)index);
	rc = nl_call(&r, 0, NULL, NULL);
	if (rc < 0)
		return err_set(-rc, "nbd%d disconnect: %s", index, strerror(-rc));
	return 0;
}

static int read_sysfs(const char *path, char *buf, size_t n)
{
	FILE *f = fopen(path, "re");
	size_t len;

	if (!f)
		return -errno;
	len = fread(buf, 1, n - 1, f);
	fclose(f);
	buf[len] = 0;
	buf[strcspn(buf, "\n")] = 0;
	return 0;
}

int nbd_for_each_backend(int (*fn)(int index, const char *backend, void *arg), void *arg)
{
	DIR *d = opendir("/sys/block");
	struct dirent *e;
	int rc = 0;

	if (!d)
		return 0;
	while (!rc && (e = readdir(d))) {
		char path[300], backend[512];
		int index;

		if (sscanf(e->d_name, "nbd%d", &index) != 1 || index < 0)
			continue;
		snprintf(path, sizeof path, "/sys/block/%s/backend", e->d_name);
		if (read_sysfs(path, backend, sizeof backend) < 0 || !backend[0])
			continue;
		rc = fn(index, backend, arg);
	}
	closedir(d);
	return rc;
}

struct find_arg { const char *want; int index; };

static int find_cb(int index, const char *backend, void *arg)
{
	struct find_arg *fa = arg;

	if (strcmp(backend, fa->want))
		return 0;
	fa->index = index;
	return 1;
}

int nbd_find_backend(const char *backend)
{
	struct find_arg fa = { backend, -ENOENT };

	nbd_for_each_backend(find_cb, &fa);
	return fa.index;
}

int nbd_devno(int index, unsigned *major, unsigned *minor)
{
	char path[64], buf[32];
	int rc;

	snprintf(path, sizeof path, "/sys/block/nbd%d/dev", index);
	rc = read_sysfs(path, buf, sizeof buf);
	if (rc < 0)
		return rc;
	if (sscanf(buf, "%u:%u", major, minor) != 2)
		return -EINVAL;
	return 0;
}

int nbdnl_monitor_open(void)
{
	struct nlreq r;
	uint32_t fam = 0, grp = 0;
	int rc, fd;

	req_init(&r, GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 1);
	put_attr(&r, CTRL_ATTR_FAMILY_NAME, NBD_GENL_FAMILY_NAME, sizeof NBD_GENL_FAMILY_NAME);
	rc = nl_call(&r, CTRL_ATTR_FAMILY_ID, &fam, &grp);
	if (rc < 0)
		return rc;
	if (!fam || !grp)
		return -ENOENT;
	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_GENERIC);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &grp, sizeof grp) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	return fd;
}

int nbdnl_monitor_read(int fd)
{
	char *buf = malloc(NL_BUF);
	ssize_t n;
	int index = -EAGAIN;

	if (!buf)
		return -ENOMEM;
	n = recv(fd, buf, NL_BUF, 0);
	if (n < 0) {
		index = -errno;
		free(buf);
		return index;
	}
	for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n);
	     h = NLMSG_NEXT(h, n)) {
		const struct genlmsghdr *g = NLMSG_DATA(h);
		if (h->nlmsg_len < NLMSG_HDRLEN + GENL_HDRLEN || g->cmd != NBD_CMD_LINK_DEAD)
			continue;
		struct nla_iter it = genl_attrs(h);
		const struct nlattr *a;
		while ((a = nla_next(&it)))
			if ((a->nla_type & NLA_TYPE_MASK) == NBD_ATTR_INDEX && nla_plen(a) >= 4) {
				uint32_t v;
				memcpy(&v, nla_payload(a), 4);
				index = (int)v;
			}
	}
	free(buf);
	return index;
}
