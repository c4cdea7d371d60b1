/*
 * src/send/ident.c - see ident.h.
 */
#include "src/send/ident.h"

#include "utils/endian.h"

#include <sodium.h>
#include <string.h>

void send_ident(const struct csnap_uuid *source, uint32_t snap_id,
		uint8_t out[PROTO_REQ_ID_LEN])
{
	static const char tag[] = "csnap-receive-v1";
	uint8_t in[sizeof tag - 1 + 16 + 4];
	memcpy(in, tag, sizeof tag - 1);
	memcpy(in + sizeof tag - 1, source->b, 16);
	put_le32(in + sizeof tag - 1 + 16, snap_id);
	crypto_generichash(out, PROTO_REQ_ID_LEN, in, sizeof in, NULL, 0);
	static const uint8_t zero[PROTO_REQ_ID_LEN];
	if (!memcmp(out, zero, sizeof zero))
		out[0] = 1;
}
