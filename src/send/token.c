/*
 * src/send/token.c - see token.h.
 */
#include "src/send/token.h"

#include "utils/crc32c.h"
#include "utils/endian.h"
#include "utils/err.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define RAW_LEN	36

void send_token_format(const struct send_token *t, char out[SEND_TOKEN_STR])
{
	uint8_t raw[RAW_LEN];
	memcpy(raw, t->source.b, 16);
	put_le32(raw + 16, t->from_id);
	put_le32(raw + 20, t->to_id);
	put_le64(raw + 24, t->offset);
	put_le32(raw + 32, crc32c(0, raw, 32));
	out[0] = '1';
	out[1] = '-';
	for (int i = 0; i < RAW_LEN; i++)
		snprintf(out + 2 + 2 * i, 3, "%02x", raw[i]);
}

int send_token_parse(const char *s, struct send_token *t)
{
	uint8_t raw[RAW_LEN];
	if (strlen(s) != SEND_TOKEN_STR - 1 || strncmp(s, "1-", 2))
		return err_set(EINVAL, "not a csnap resume token");
	for (int i = 0; i < RAW_LEN; i++) {
		unsigned v;
		char hex[3] = { s[2 + 2 * i], s[3 + 2 * i], 0 };
		if (!strchr("0123456789abcdef", hex[0]) || !strchr("0123456789abcdef", hex[1]) ||
		    sscanf(hex, "%2x", &v) != 1)
			return err_set(EINVAL, "not a csnap resume token");
		raw[i] = (uint8_t)v;
	}
	if (get_le32(raw + 32) != crc32c(0, raw, 32))
		return err_set(EINVAL, "resume token damaged (checksum mismatch)");
	memcpy(t->source.b, raw, 16);
	t->from_id = get_le32(raw + 16);
	t->to_id = get_le32(raw + 20);
	t->offset = get_le64(raw + 24);
	if (!t->to_id)
		return err_set(EINVAL, "resume token without a snapshot");
	return 0;
}

int send_state_save(const char *path, const struct send_token *t)
{
	char tmp[4200], tok[SEND_TOKEN_STR], dir[4200];
	if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
		return err_set(ENAMETOOLONG, "state path too long");
	send_token_format(t, tok);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return err_set(errno, "%s: %s", tmp, strerror(errno));
	size_t n = strlen(tok);
	tok[n] = '\n';
	int e = write(fd, tok, n + 1) == (ssize_t)(n + 1) && fsync(fd) == 0 ? 0 : errno ? errno : EIO;
	close(fd);
	if (!e && rename(tmp, path) < 0)
		e = errno;
	if (e) {
		unlink(tmp);
		return err_set(e, "%s: %s", path, strerror(e));
	}
	snprintf(dir, sizeof dir, "%s", path);
	int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return 0;
}

int send_state_load(const char *path, struct send_token *t)
{
	char buf[SEND_TOKEN_STR + 2];
	FILE *f = fopen(path, "re");
	if (!f)
		return errno == ENOENT ? -ENOENT : err_set(errno, "%s: %s", path, strerror(errno));
	char *l = fgets(buf, sizeof buf, f);
	fclose(f);
	if (!l)
		return err_set(EINVAL, "%s: empty", path);
	buf[strcspn(buf, "\n")] = 0;
	int r = send_token_parse(buf, t);
	return r < 0 ? err_prefix(-r, "%s", path) : 0;
}

void send_state_clear(const char *path)
{
	unlink(path);
}
