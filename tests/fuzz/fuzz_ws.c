/*
 * fuzz_ws - the WebSocket frame codec (host/ws.c) and the server's handling of a
 * peer's byte stream.
 *
 * Every input is used twice:
 * - as a stream of client frames for orch_ws_parse_frame, checking that every
 *   parsed frame lies inside the buffer, that the payload's UTF-8 verdict matches
 *   a reference decoder, and that encoding the payload again gives a header the
 *   RFC's rules decode back to the same length;
 * - as the bytes a peer sent right after the handshake, handed to a running
 *   socket thread (orch_ws_adopt on one end of a socketpair): reassembly of
 *   fragmented messages, control frames, close codes and pongs. The harness waits
 *   until the thread releases the socket, so a connection the thread forgets is a
 *   hang (libFuzzer's -timeout) and one it leaks shows in LeakSanitizer.
 */
#include "orch.h"

#include "buf.h"
#include "ws.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static orch_ws_server *server;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int released;

static void release(void *handle) {
  close((int)(intptr_t)handle);
  pthread_mutex_lock(&mu);
  released++;
  pthread_cond_signal(&cv);
  pthread_mutex_unlock(&mu);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  orch_error err = ORCH_ERROR_INIT;
  if (orch_ws_server_start(&server, release, &err) != ORCH_OK) {
    fprintf(stderr, "fuzz_ws: %s\n", err.message);
    abort();
  }
  return 0;
}

/* A plain reference: 1 if s is UTF-8 as RFC 3629 defines it. */
static int utf8_reference(const unsigned char *s, size_t len) {
  for (size_t i = 0; i < len;) {
    unsigned c = s[i];
    size_t n = c < 0x80                 ? 0
               : c >= 0xC2 && c <= 0xDF ? 1
               : c >= 0xE0 && c <= 0xEF ? 2
               : c >= 0xF0 && c <= 0xF4 ? 3
                                        : 9;
    if (n == 9 || i + n >= len + (n == 0)) {
      if (n == 0) {
        i++;
        continue;
      }
      return 0;
    }
    uint32_t cp = n == 0 ? c : n == 1 ? c & 0x1F : n == 2 ? c & 0x0F : c & 0x07;
    for (size_t k = 1; k <= n; k++) {
      if ((s[i + k] & 0xC0) != 0x80) return 0;
      cp = cp << 6 | (s[i + k] & 0x3F);
    }
    if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return 0;
    i += n + 1;
  }
  return 1;
}

static void check_encode(const unsigned char *payload, size_t len, int opcode) {
  orch_buf out = ORCH_BUF_INIT;
  orch_ws_encode_frame(&out, opcode, payload, len);
  const unsigned char *b = (const unsigned char *)out.data;
  if (out.len < 2 || b[0] != (0x80 | opcode) || (b[1] & 0x80)) abort();
  uint64_t plen = b[1] & 0x7F;
  size_t pos = 2;
  if (plen == 126) {
    plen = (uint64_t)b[2] << 8 | b[3];
    pos = 4;
    if (plen < 126) abort(); /* not the shortest form */
  } else if (plen == 127) {
    plen = 0;
    for (int i = 0; i < 8; i++)
      plen = plen << 8 | b[2 + i];
    pos = 10;
    if (plen <= 0xFFFF) abort();
  }
  if (plen != len || out.len != pos + len || (len && memcmp(b + pos, payload, len))) abort();
  orch_buf_free(&out);
}

static void parse_stream(const uint8_t *data, size_t size) {
  unsigned char *buf = malloc(size ? size : 1);
  memcpy(buf, data, size);
  size_t off = 0;
  for (;;) {
    orch_ws_frame f;
    int code = -1;
    int rc = orch_ws_parse_frame(buf + off, size - off, ORCH_WS_MAX_MESSAGE, &f, &code);
    if (rc < 0) {
      if (code != ORCH_WS_CLOSE_PROTOCOL && code != ORCH_WS_CLOSE_TOO_BIG) abort();
      break;
    }
    if (code != 0) abort();
    if (rc == 0) break;
    if (f.frame_len > size - off || f.payload < buf + off ||
        f.payload + f.payload_len != buf + off + f.frame_len || f.payload_len > ORCH_WS_MAX_MESSAGE)
      abort();
    if (orch_ws_utf8_valid(f.payload, f.payload_len) != utf8_reference(f.payload, f.payload_len))
      abort();
    check_encode(f.payload, f.payload_len, f.opcode);
    off += f.frame_len;
  }
  free(buf);
}

/* The socket thread: the input as the bytes after the handshake, then the peer hangs up. */
static void serve_stream(const uint8_t *data, size_t size) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv)) abort();
  pthread_mutex_lock(&mu);
  int before = released;
  pthread_mutex_unlock(&mu);
  orch_ws_adopt(server, sv[1], (const char *)data, size, (void *)(intptr_t)sv[1]);
  close(sv[0]);
  pthread_mutex_lock(&mu);
  while (released == before)
    pthread_cond_wait(&cv, &mu);
  pthread_mutex_unlock(&mu);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  parse_stream(data, size);
  char key[25];
  if (size >= 24) {
    memcpy(key, data, 24);
    key[24] = '\0';
    char accept[29];
    if (orch_ws_accept_key(key, accept) == ORCH_OK && strlen(accept) != 28) abort();
  }
  serve_stream(data, size);
  return 0;
}
