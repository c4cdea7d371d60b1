/*
 * utils/config.h - csnap.conf, the one configuration file of a node.
 *
 * INI format (utils/inifile.h): a [global] section for the node and one
 * [store NAME] section per snapshot store it uses.  See csnap.conf.example
 * and csnap.conf(5).  Unknown keys are errors, so a typo never silently
 * falls back to a default, and so are a repeated key or section (both
 * line numbers are given), so two settings never silently become one.
 */
#ifndef CSNAP_UTILS_CONFIG_H
#define CSNAP_UTILS_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#define CONFIG_MAX_STORES 64
#define CONFIG_PATH_MAX   PATH_MAX	/* device and origin paths, ... */
#define CONFIG_NAME_MAX   64
/* `csnap export` loop threads (export_threads, --threads): a connection
 * uses one, and 2 CPUs per thread is already more than a host gives.  */
#define EXPORT_THREADS_MAX 64

enum export_kind { EXPORT_UNIX = 0, EXPORT_TCP = 1 };
enum store_full_policy { STORE_FULL_RELEASE = 0, STORE_FULL_FAIL = 1 };
/* TLS on TCP exports (nbdkit's and qemu-nbd's --tls): off, offered, or
 * required before any export is named.  Unix-socket exports are plain.  */
enum export_tls_mode { EXPORT_TLS_OFF = 0, EXPORT_TLS_ON = 1, EXPORT_TLS_REQUIRE = 2 };

/* The TLS settings of a TCP export: in [global] (the default of every
 * store) or per [store NAME] (overrides [global] key by key).  */
struct config_tls {
	enum export_tls_mode mode;
	char psk[CONFIG_PATH_MAX];	/* psktool file: username:hexkey */
	char certificates[CONFIG_PATH_MAX];	/* dir: ca-cert.pem, server-cert.pem, server-key.pem */
	bool verify_peer;		/* X.509: client certificate required */
	/* which keys the section set (a store inherits the rest) */
	bool mode_set, psk_set, certificates_set, verify_peer_set;
};

struct config_store {
	char name[CONFIG_NAME_MAX];
	char device[CONFIG_PATH_MAX];	/* snapshot store: path or UUID=... */
	char origin[CONFIG_PATH_MAX];	/* origin volume path */
	bool server;			/* this node may become master */
	uint16_t server_port;		/* 0: ephemeral, published in the record */
	enum export_kind export_kind;
	char export_socket[CONFIG_PATH_MAX];	/* default RUN_DIR/NAME.sock */
	char export_address[CONFIG_NAME_MAX];	/* default: global address */
	uint16_t export_port;			/* default 10809 */
	struct config_tls export_tls;		/* TCP exports only */
	unsigned export_threads;		/* loop threads (0: default) */
	enum store_full_policy store_full;
	uint64_t cache_bytes;		/* server metadata cache bound */
	uint32_t heartbeat_ms;		/* agent kills a master silent this
					 * long (0: never); default 5000 */
	char activate[CONFIG_PATH_MAX];	/* volumes `csnap activate STORE`
					 * makes, blank-separated (default
					 * "origin") */
	uint32_t nbd_timeout;		/* kernel nbd request timeout, s
					 * (default 8 x io_timeout + 120) */
	uint32_t nbd_dead_timeout;	/* s I/O waits for a restarted export */
	bool autoactivate;		/* udev starts csnap-activate@NAME when
					 * the store's device appears (default
					 * yes) */
	bool autoactivate_set;
};
#define CONFIG_HEARTBEAT_DEFAULT_MS	5000

struct config {
	uint32_t host_id;		/* 1..2000, unique per node */
	char node_name[CONFIG_NAME_MAX];
	char address[CONFIG_NAME_MAX];	/* this node's cluster address */
	uint32_t io_timeout;		/* sanlock io_timeout, seconds */
	char run_dir[CONFIG_PATH_MAX];
	int log_level;
	struct config_tls export_tls;	/* default of every store */
	int nstores;
	struct config_store stores[CONFIG_MAX_STORES];
};

/* Fills defaults, then reads PATH.  Returns 0 or -errno with err_set(). */
int config_load(const char *path, struct config *cfg);
void config_defaults(struct config *cfg);
/* The file a command reads: PATH if not NULL, else $CSNAP_CONF, else
 * CONFIG_DEFAULT_PATH if it exists; with none, CFG keeps its defaults.
 * Returns 0 or -errno with err_set() (config_load's).  */
#define CONFIG_DEFAULT_PATH "/etc/csnap/csnap.conf"
int config_load_default(const char *path, struct config *cfg);
/* Do this node's own tools (csnap activate, send, the export's kernel
 * keeper) reach the store's export on its unix socket?  Yes unless it is
 * a plain TCP export: with TLS the export listens on both, since those
 * tools speak plain NBD (the kernel's nbd client has no TLS).  */
static inline bool config_export_local_unix(const struct config_store *st)
{
	return st->export_kind == EXPORT_UNIX || st->export_tls.mode != EXPORT_TLS_OFF;
}

/* Finds a store by section name, device path or "UUID=..." string as
 * written in the file; NULL if none.  */
const struct config_store *config_find_store(const struct config *cfg, const char *name);

/* "4096", "64K", "1M", "2G", "1T" -> bytes.  Returns 0 or -EINVAL.  */
int parse_size(const char *s, uint64_t *out);
/* Strict decimal unsigned parse with range check.  Returns 0 or -EINVAL. */
int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);
int parse_bool(const char *s, bool *out);

/* One export_tls* KEY=VALUE (csnap.conf, or `csnap export --tls...`):
 * 0, -EINVAL (bad value), -ENAMETOOLONG, or -ENOENT (not a TLS key).  */
int config_tls_key(struct config_tls *t, const char *key, const char *value);
/* Fills what T did not set from DFLT, then checks the whole: on or
 * require needs credentials.  Returns 0 or -EINVAL with err_set().  */
int config_tls_resolve(struct config_tls *t, const struct config_tls *dflt);

#endif
