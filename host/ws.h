/*
 * ws.h - the server side of WebSocket (RFC 6455): the handshake key, the frame
 * codec, and a thread of its own that serves every upgraded socket with poll(),
 * so that libmicrohttpd's threads are never blocked by a slow peer.
 *
 * What a peer may send: masked text frames (fragmented messages are
 * reassembled), ping, pong and close. Binary data, unmasked frames, reserved
 * bits, oversized frames (ORCH_WS_MAX_MESSAGE) and invalid UTF-8 close the
 * connection with the RFC's close code. The text `__ping__` (the orchestrator
 * UI's keep-alive) is answered with `__pong__`; other texts are ignored.
 *
 * The server knows nothing of HTTP: http.c does the handshake and hands over
 * the upgraded socket with a release function that gives it back to
 * libmicrohttpd (the socket must never be closed directly).
 */
#pragma once

#include "orch.h"

#include "buf.h"

#include <stddef.h>

/* Largest message (and frame) a peer may send, in bytes. */
#define ORCH_WS_MAX_MESSAGE (64 * 1024)
/* Outgoing bytes a peer may leave unread before it is dropped as too slow. */
#define ORCH_WS_MAX_BACKLOG (1024 * 1024)

enum {
  ORCH_WS_OP_CONT = 0x0,
  ORCH_WS_OP_TEXT = 0x1,
  ORCH_WS_OP_BINARY = 0x2,
  ORCH_WS_OP_CLOSE = 0x8,
  ORCH_WS_OP_PING = 0x9,
  ORCH_WS_OP_PONG = 0xA,
};

/* Close codes of RFC 6455 section 7.4.1 that the server sends. */
enum {
  ORCH_WS_CLOSE_NORMAL = 1000,
  ORCH_WS_CLOSE_GOING_AWAY = 1001,
  ORCH_WS_CLOSE_PROTOCOL = 1002,
  ORCH_WS_CLOSE_UNSUPPORTED = 1003,
  ORCH_WS_CLOSE_BAD_DATA = 1007,
  ORCH_WS_CLOSE_TOO_BIG = 1009,
};

/*
 * Sec-WebSocket-Accept for the client's Sec-WebSocket-Key:
 * base64(SHA-1(key + the RFC's GUID)), 28 characters plus NUL in out.
 * ORCH_EINVAL if the key is not the base64 text of 16 bytes.
 */
int orch_ws_accept_key(const char *client_key, char out[29]) ORCH_MUSTCHECK;

/* One parsed frame; payload points into the parsed buffer (unmasked in place). */
typedef struct orch_ws_frame {
  int fin;
  int opcode;
  unsigned char *payload;
  size_t payload_len;
  size_t frame_len; /* bytes of the buffer the whole frame takes */
} orch_ws_frame;

/*
 * Parse one client frame at the start of buf[0..len): 1 = a whole frame (*f
 * filled, its payload unmasked in place), 0 = more bytes are needed, -1 = a
 * protocol violation (*close_code says which: unmasked, reserved bits,
 * unknown opcode, bad control frame, payload over max_payload).
 */
int orch_ws_parse_frame(unsigned char *buf, size_t len, size_t max_payload, orch_ws_frame *f,
                        int *close_code);

/* Append one unmasked, final server frame. */
void orch_ws_encode_frame(orch_buf *out, int opcode, const void *payload, size_t len);

/* 1 if s[0..len) is valid UTF-8 (no overlongs, surrogates or code points over U+10FFFF). */
int orch_ws_utf8_valid(const unsigned char *s, size_t len);

typedef struct orch_ws_server orch_ws_server;

/* Gives an upgraded socket back to its owner (libmicrohttpd), which closes it. */
typedef void (*orch_ws_release_fn)(void *handle);

/* Start the socket thread. */
int orch_ws_server_start(orch_ws_server **out, orch_ws_release_fn release,
                         orch_error *err) ORCH_MUSTCHECK;
/*
 * Take over an upgraded socket (any thread). extra[0..extra_len) are bytes
 * already read after the handshake. After orch_ws_server_stop the socket is
 * released at once.
 */
void orch_ws_adopt(orch_ws_server *s, int fd, const char *extra, size_t extra_len, void *handle);
/* Queue a text message for every open socket (any thread; copied). */
void orch_ws_broadcast(orch_ws_server *s, const char *text, size_t len);
/* Open sockets right now. */
int orch_ws_count(orch_ws_server *s);
/* Close every socket (1001 going away), release them and join the thread. NULL is a no-op. */
void orch_ws_server_stop(orch_ws_server *s);
/* Free after stop (and after nothing can call adopt any more). NULL is a no-op. */
void orch_ws_server_free(orch_ws_server *s);
