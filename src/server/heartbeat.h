/*
 * src/server/heartbeat.h - the server's end of the agent's liveness
 * channel (see heartbeat.c and docs/agent.md "Frozen masters").
 */
#ifndef CSNAP_SERVER_HEARTBEAT_H
#define CSNAP_SERVER_HEARTBEAT_H

#include "utils/evloop.h"

#include <stdint.h>

/* Environment variable naming the inherited channel fd.  */
#define CSNAP_AGENT_FD_ENV	"CSNAP_AGENT_FD"

/* Takes over the fd named by $CSNAP_AGENT_FD (if any: a server started by
 * hand has none); hb_serving watches it in LP.  */
void hb_init(struct evloop *lp);
/* Tells the agent the main loop runs from now on: heartbeat me.  */
void hb_serving(uint64_t epoch);
/* Tells the agent the loop ended (orderly hand-over): stop heartbeats.  */
void hb_stopping(void);
/* Stops watching the channel (before the loop goes).  */
void hb_detach(void);
/* The channel is readable: answer each PING from the main loop.  */
void hb_event(void);

#endif
