/* me_engine: one simulated vLLM server on one TCP port (the only MHD user of
 * the mock). Each engine has its own counters, metrics, request log and
 * run-time knobs; several engines in one process share nothing but the
 * read-only me_cfg.
 *
 * Thread model: libmicrohttpd runs one thread per connection, so a request
 * may simply sleep in its own thread (time to first token, inter-token delay,
 * the waiting queue, a hang) while it watches its socket for the client going
 * away. With --kv-sim, one more thread per engine runs the KV-cache
 * simulator's steps (me_sim) and requests wait for their tokens on condition
 * variables. All state shared between threads sits behind the engine's
 * mutex. */
#ifndef ME_ENGINE_H
#define ME_ENGINE_H

#include <stdint.h>

#include "gw/gw_err.h"
#include "me_cfg.h"

typedef struct me_engine me_engine;

/* Binds cfg->host:<port> (0 = any free port) and starts serving. <cfg> is
 * borrowed and must outlive the engine. On GW_OK *out is the running engine;
 * GW_EIO when the address cannot be bound (logged). */
GW_MUST_CHECK gw_err me_engine_start(const me_cfg *cfg, uint16_t port, me_engine **out);

/* The port actually bound. */
uint16_t me_engine_port(const me_engine *eng);

/* Asks every request of <eng> to give up (sleeping ones notice within 50 ms)
 * without waiting; lets main stop many engines in parallel. */
void me_engine_shutdown(me_engine *eng);

/* Stops the daemon (joining its threads) and frees everything; NULL is a no-op. */
void me_engine_free(me_engine *eng);

#endif
