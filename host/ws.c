/* ws.c - WebSocket handshake key, frame codec and the socket thread (see ws.h). */
#include "orch.h"

#include "log.h"
#include "metrics.h"
#include "ws.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- handshake ---- */

int orch_ws_accept_key(const char *client_key, char out[29]) {
  static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  out[0] = '\0';
  if (!client_key || strlen(client_key) != 24 || strcmp(client_key + 22, "==")) return ORCH_EINVAL;
  unsigned char raw[24];
  /* 24 base64 characters decode to 18 bytes, the last two of them padding. */
  if (EVP_DecodeBlock(raw, (const unsigned char *)client_key, 24) != 18) return ORCH_EINVAL;
  char joined[24 + sizeof guid];
  memcpy(joined, client_key, 24);
  memcpy(joined + 24, guid, sizeof guid);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int dlen = 0;
  if (!EVP_Digest(joined, 24 + sizeof guid - 1, digest, &dlen, EVP_sha1(), NULL) || dlen != 20)
    return ORCH_EINVAL;
  EVP_EncodeBlock((unsigned char *)out, digest, 20); /* 28 characters and a NUL */
  return ORCH_OK;
}

/* ---- frames ---- */

int orch_ws_parse_frame(unsigned char *buf, size_t len, size_t max_payload, orch_ws_frame *f,
                        int *close_code) {
  *close_code = 0;
  if (len < 2) return 0;
  int fin = buf[0] >> 7, rsv = (buf[0] >> 4) & 7, op = buf[0] & 0x0F;
  int masked = buf[1] >> 7;
  uint64_t plen = buf[1] & 0x7F;
  size_t pos = 2;
  int known = op == ORCH_WS_OP_CONT || op == ORCH_WS_OP_TEXT || op == ORCH_WS_OP_BINARY ||
              op == ORCH_WS_OP_CLOSE || op == ORCH_WS_OP_PING || op == ORCH_WS_OP_PONG;
  /* Clients must mask (RFC 6455 5.1); no extension was negotiated, so no reserved bits. */
  if (rsv || !known || !masked || (op >= 0x8 && (!fin || plen > 125))) {
    *close_code = ORCH_WS_CLOSE_PROTOCOL;
    return -1;
  }
  if (plen == 126) {
    if (len < 4) return 0;
    plen = (uint64_t)buf[2] << 8 | buf[3];
    pos = 4;
  } else if (plen == 127) {
    if (len < 10) return 0;
    plen = 0;
    for (int i = 0; i < 8; i++)
      plen = plen << 8 | buf[2 + i];
    if (plen >> 63) {
      *close_code = ORCH_WS_CLOSE_PROTOCOL;
      return -1;
    }
    pos = 10;
  }
  if (plen > max_payload) {
    *close_code = ORCH_WS_CLOSE_TOO_BIG;
    return -1;
  }
  if (len < pos + 4 + plen) return 0;
  const unsigned char *mask = buf + pos;
  unsigned char *payload = buf + pos + 4;
  for (size_t i = 0; i < plen; i++)
    payload[i] ^= mask[i & 3];
  *f = (orch_ws_frame){.fin = fin,
                       .opcode = op,
                       .payload = payload,
                       .payload_len = (size_t)plen,
                       .frame_len = pos + 4 + (size_t)plen};
  return 1;
}

void orch_ws_encode_frame(orch_buf *out, int opcode, const void *payload, size_t len) {
  unsigned char head[10];
  size_t n = 2;
  head[0] = (unsigned char)(0x80 | (opcode & 0x0F));
  if (len < 126) {
    head[1] = (unsigned char)len;
  } else if (len <= 0xFFFF) {
    head[1] = 126;
    head[2] = (unsigned char)(len >> 8);
    head[3] = (unsigned char)len;
    n = 4;
  } else {
    head[1] = 127;
    for (int i = 0; i < 8; i++)
      head[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
    n = 10;
  }
  orch_buf_append(out, head, n);
  if (len) orch_buf_append(out, payload, len);
}

int orch_ws_utf8_valid(const unsigned char *s, size_t len) {
  size_t i = 0;
  while (i < len) {
    unsigned c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t n;
    unsigned cp, min;
    if ((c & 0xE0) == 0xC0) {
      n = 1, cp = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2, cp = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3, cp = c & 0x07, min = 0x10000;
    } else {
      return 0;
    }
    if (len - i <= n) return 0;
    for (size_t k = 1; k <= n; k++) {
      if ((s[i + k] & 0xC0) != 0x80) return 0;
      cp = cp << 6 | (s[i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    i += n + 1;
  }
  return 1;
}

/* ---- the socket thread ---- */

#define IDLE_PING_NS    (60 * 1000000000LL)  /* a silent peer gets a ping ... */
#define IDLE_DROP_NS    (120 * 1000000000LL) /* ... and is dropped if it stays silent */
#define CLOSE_LINGER_NS (2 * 1000000000LL)   /* time for our close frame to leave */

typedef struct conn {
  int fd;
  void *handle; /* for release() */
  orch_buf in;  /* bytes not parsed yet */
  orch_buf out; /* bytes not sent yet, from out_off */
  size_t out_off;
  orch_buf msg; /* a fragmented message being reassembled */
  int msg_op;   /* its opcode; 0 = none */
  int closing;  /* our close frame is queued: read no more, release once it is sent */
  int dead;
  int pinged;
  long long last_rx, close_deadline;
} conn;

typedef struct adoption {
  int fd;
  void *handle;
  char *extra;
  size_t extra_len;
} adoption;

struct orch_ws_server {
  pthread_t thread;
  int wake[2];
  orch_ws_release_fn release;
  pthread_mutex_t mu; /* guards the fields up to `outbox` */
  int stopping, stopped;
  adoption *adopts;
  size_t nadopts, capadopts;
  orch_buf outbox; /* encoded frames for every socket */
  atomic_int count;
  /* The thread's own. */
  conn **conns;
  size_t n, cap;
};

static void wake(orch_ws_server *s) {
  char c = 1;
  ssize_t w = write(s->wake[1], &c, 1);
  ORCH_UNUSED(w); /* a full pipe already wakes the thread */
}

static void queue_close(conn *c, int code, long long now) {
  if (c->closing) return;
  unsigned char body[2] = {(unsigned char)(code >> 8), (unsigned char)code};
  orch_ws_encode_frame(&c->out, ORCH_WS_OP_CLOSE, body, 2);
  c->closing = 1;
  c->close_deadline = now + CLOSE_LINGER_NS;
}

static void on_message(conn *c, int op, const unsigned char *data, size_t len, long long now) {
  if (op != ORCH_WS_OP_TEXT) {
    queue_close(c, ORCH_WS_CLOSE_UNSUPPORTED, now);
    return;
  }
  if (!orch_ws_utf8_valid(data, len)) {
    queue_close(c, ORCH_WS_CLOSE_BAD_DATA, now);
    return;
  }
  if (len == 8 && !memcmp(data, "__ping__", 8))
    orch_ws_encode_frame(&c->out, ORCH_WS_OP_TEXT, "__pong__", 8);
}

/* Handle every whole frame in c->in. */
static void process_input(conn *c, long long now) {
  size_t off = 0;
  while (!c->closing) {
    orch_ws_frame f;
    int code = 0;
    int rc = orch_ws_parse_frame((unsigned char *)c->in.data + off, c->in.len - off,
                                 ORCH_WS_MAX_MESSAGE, &f, &code);
    if (rc < 0) {
      queue_close(c, code, now);
      break;
    }
    if (rc == 0) break;
    off += f.frame_len;
    switch (f.opcode) {
    case ORCH_WS_OP_PING:
      orch_ws_encode_frame(&c->out, ORCH_WS_OP_PONG, f.payload, f.payload_len);
      break;
    case ORCH_WS_OP_PONG: break;
    case ORCH_WS_OP_CLOSE:
      /* A close body is empty or a 2-byte code (plus a reason); answer in kind. */
      queue_close(c, f.payload_len == 1 ? ORCH_WS_CLOSE_PROTOCOL : ORCH_WS_CLOSE_NORMAL, now);
      break;
    case ORCH_WS_OP_CONT:
      if (!c->msg_op || c->msg.len + f.payload_len > ORCH_WS_MAX_MESSAGE) {
        queue_close(c, c->msg_op ? ORCH_WS_CLOSE_TOO_BIG : ORCH_WS_CLOSE_PROTOCOL, now);
        break;
      }
      orch_buf_append(&c->msg, f.payload, f.payload_len);
      if (f.fin) {
        on_message(c, c->msg_op, (const unsigned char *)c->msg.data, c->msg.len, now);
        orch_buf_reset(&c->msg);
        c->msg_op = 0;
      }
      break;
    default: /* text or binary: a new message */
      if (c->msg_op) {
        queue_close(c, ORCH_WS_CLOSE_PROTOCOL, now);
        break;
      }
      if (f.fin) {
        on_message(c, f.opcode, f.payload, f.payload_len, now);
      } else {
        c->msg_op = f.opcode;
        orch_buf_append(&c->msg, f.payload, f.payload_len);
      }
    }
  }
  if (off) {
    memmove(c->in.data, c->in.data + off, c->in.len - off);
    c->in.len -= off;
    c->in.data[c->in.len] = '\0';
  }
  /* A peer that floods pings without reading the pongs. */
  if (c->out.len - c->out_off > ORCH_WS_MAX_BACKLOG) c->dead = 1;
}

static void read_some(conn *c, long long now) {
  char chunk[16384];
  for (int round = 0; round < 16; round++) { /* then the others' turn; poll() calls again */
    ssize_t r = recv(c->fd, chunk, sizeof chunk, 0);
    if (r > 0) {
      c->last_rx = now;
      c->pinged = 0;
      if (!c->closing) {
        orch_buf_append(&c->in, chunk, (size_t)r);
        process_input(c, now);
        if (c->dead) return;
      }
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    c->dead = 1; /* EOF or a broken connection */
    return;
  }
}

static void flush_out(conn *c) {
  while (c->out_off < c->out.len) {
    ssize_t w = send(c->fd, c->out.data + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);
    if (w > 0) {
      c->out_off += (size_t)w;
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    c->dead = 1;
    return;
  }
  if (c->out_off == c->out.len) {
    orch_buf_reset(&c->out);
    c->out_off = 0;
    if (c->closing) c->dead = 1; /* our close frame has left */
  } else if (c->out_off > 65536) {
    memmove(c->out.data, c->out.data + c->out_off, c->out.len - c->out_off);
    c->out.len -= c->out_off;
    c->out.data[c->out.len] = '\0';
    c->out_off = 0;
  }
}

static void conn_free(orch_ws_server *s, conn *c) {
  s->release(c->handle);
  orch_buf_free(&c->in);
  orch_buf_free(&c->out);
  orch_buf_free(&c->msg);
  free(c);
}

static void add_conn(orch_ws_server *s, adoption *a, long long now) {
  int flags = fcntl(a->fd, F_GETFL, 0);
  if (flags >= 0) fcntl(a->fd, F_SETFL, flags | O_NONBLOCK);
  conn *c = orch_xcalloc(1, sizeof *c);
  c->fd = a->fd;
  c->handle = a->handle;
  c->last_rx = now;
  if (a->extra_len) {
    orch_buf_append(&c->in, a->extra, a->extra_len);
    process_input(c, now);
  }
  free(a->extra);
  if (s->n == s->cap)
    s->conns = orch_xrealloc(s->conns, (s->cap = s->cap ? s->cap * 2 : 16) * sizeof *s->conns);
  s->conns[s->n++] = c;
}

/* Sockets that broadcasts must reach: the open ones and those about to be adopted. */
static void publish_count(orch_ws_server *s) {
  pthread_mutex_lock(&s->mu);
  atomic_store(&s->count, (int)(s->n + s->nadopts));
  orch_metrics_ws_clients((int)s->n);
  pthread_mutex_unlock(&s->mu);
}

static void *server_main(void *arg) {
  orch_ws_server *s = arg;
  struct pollfd *pfds = NULL;
  size_t pcap = 0;
  for (;;) {
    pthread_mutex_lock(&s->mu);
    int stopping = s->stopping;
    adoption *adopts = s->adopts;
    size_t nadopts = s->nadopts;
    s->adopts = NULL;
    s->nadopts = s->capadopts = 0;
    orch_buf outbox = s->outbox;
    s->outbox = (orch_buf)ORCH_BUF_INIT;
    pthread_mutex_unlock(&s->mu);

    long long now = orch_now_ns();
    for (size_t i = 0; i < nadopts; i++)
      add_conn(s, &adopts[i], now);
    free(adopts);
    publish_count(s);
    for (size_t i = 0; outbox.len && i < s->n; i++) {
      conn *c = s->conns[i];
      if (c->closing) continue;
      orch_buf_append(&c->out, outbox.data, outbox.len);
      if (c->out.len - c->out_off > ORCH_WS_MAX_BACKLOG) {
        LOG_WARN("ws", "dropping a WebSocket peer that reads too slowly");
        c->dead = 1;
      }
    }
    orch_buf_free(&outbox);

    if (stopping) {
      for (size_t i = 0; i < s->n; i++) {
        conn *c = s->conns[i];
        queue_close(c, ORCH_WS_CLOSE_GOING_AWAY, now);
        flush_out(c); /* one try: the peer may be gone */
        /* FIN after the close frame, and nothing unread left behind: closing a socket
           with unread input sends a reset, which can destroy the close frame in flight. */
        shutdown(c->fd, SHUT_WR);
        char drain[512];
        while (read(c->fd, drain, sizeof drain) > 0) {
        }
        conn_free(s, c);
      }
      s->n = 0;
      break;
    }

    int timeout = s->n ? 1000 : -1;
    if (pcap < s->n + 1) pfds = orch_xrealloc(pfds, (pcap = s->n + 1) * sizeof *pfds);
    pfds[0] = (struct pollfd){.fd = s->wake[0], .events = POLLIN};
    for (size_t i = 0; i < s->n; i++) {
      conn *c = s->conns[i];
      if (!c->dead) flush_out(c);
      if (c->dead) timeout = 0; /* release it now, not after the poll timeout */
      short ev = c->closing ? 0 : POLLIN;
      if (c->out_off < c->out.len) ev |= POLLOUT;
      pfds[i + 1] = (struct pollfd){.fd = c->dead ? -1 : c->fd, .events = ev};
    }
    int ready = poll(pfds, s->n + 1, timeout);
    if (ready < 0 && errno != EINTR) LOG_WARN("ws", "poll failed: %s", strerror(errno));
    if (ready > 0 && (pfds[0].revents & POLLIN)) {
      char drain[64];
      while (read(s->wake[0], drain, sizeof drain) > 0) {
      }
    }
    now = orch_now_ns();
    size_t kept = 0;
    for (size_t i = 0; i < s->n; i++) {
      conn *c = s->conns[i];
      short re = ready > 0 ? pfds[i + 1].revents : 0;
      if (!c->dead && (re & (POLLIN | POLLHUP | POLLERR))) {
        if (c->closing && !(re & POLLIN))
          c->dead = 1;
        else if (!c->closing || (re & (POLLHUP | POLLERR)))
          read_some(c, now);
      }
      if (!c->dead && c->out_off < c->out.len) flush_out(c);
      if (!c->dead && c->closing && now > c->close_deadline) c->dead = 1;
      if (!c->dead && !c->closing && now - c->last_rx > IDLE_DROP_NS) c->dead = 1;
      if (!c->dead && !c->closing && !c->pinged && now - c->last_rx > IDLE_PING_NS) {
        orch_ws_encode_frame(&c->out, ORCH_WS_OP_PING, NULL, 0);
        c->pinged = 1;
      }
      if (c->dead)
        conn_free(s, c);
      else
        s->conns[kept++] = c;
    }
    s->n = kept;
    publish_count(s);
  }
  free(pfds);
  atomic_store(&s->count, 0);
  /* Anything adopted while we were closing down is released here; later ones by adopt. */
  pthread_mutex_lock(&s->mu);
  s->stopped = 1;
  for (size_t i = 0; i < s->nadopts; i++) {
    s->release(s->adopts[i].handle);
    free(s->adopts[i].extra);
  }
  free(s->adopts);
  s->adopts = NULL;
  s->nadopts = s->capadopts = 0;
  orch_buf_free(&s->outbox);
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

int orch_ws_server_start(orch_ws_server **out, orch_ws_release_fn release, orch_error *err) {
  orch_ws_server *s = orch_xcalloc(1, sizeof *s);
  s->release = release;
  pthread_mutex_init(&s->mu, NULL);
  if (pipe(s->wake) != 0) {
    orch_error_set(err, ORCH_EIO, "cannot create the WebSocket wake pipe: %s", strerror(errno));
    pthread_mutex_destroy(&s->mu);
    free(s);
    return ORCH_EIO;
  }
  for (int i = 0; i < 2; i++)
    fcntl(s->wake[i], F_SETFL, fcntl(s->wake[i], F_GETFL, 0) | O_NONBLOCK);
  if (pthread_create(&s->thread, NULL, server_main, s) != 0) {
    orch_error_set(err, ORCH_EIO, "cannot start the WebSocket thread");
    close(s->wake[0]);
    close(s->wake[1]);
    pthread_mutex_destroy(&s->mu);
    free(s);
    return ORCH_EIO;
  }
  *out = s;
  return ORCH_OK;
}

void orch_ws_adopt(orch_ws_server *s, int fd, const char *extra, size_t extra_len, void *handle) {
  pthread_mutex_lock(&s->mu);
  if (s->stopped) {
    pthread_mutex_unlock(&s->mu);
    s->release(handle);
    return;
  }
  if (s->nadopts == s->capadopts)
    s->adopts = orch_xrealloc(s->adopts, (s->capadopts = s->capadopts ? s->capadopts * 2 : 8) *
                                             sizeof *s->adopts);
  adoption *a = &s->adopts[s->nadopts++];
  atomic_fetch_add(&s->count, 1);
  a->fd = fd;
  a->handle = handle;
  a->extra_len = extra_len;
  a->extra = NULL;
  if (extra_len) {
    a->extra = orch_xmalloc(extra_len);
    memcpy(a->extra, extra, extra_len);
  }
  pthread_mutex_unlock(&s->mu);
  wake(s);
}

void orch_ws_broadcast(orch_ws_server *s, const char *text, size_t len) {
  if (!s || !atomic_load(&s->count)) return;
  pthread_mutex_lock(&s->mu);
  if (!s->stopping) orch_ws_encode_frame(&s->outbox, ORCH_WS_OP_TEXT, text, len);
  pthread_mutex_unlock(&s->mu);
  wake(s);
}

int orch_ws_count(orch_ws_server *s) {
  return s ? atomic_load(&s->count) : 0;
}

void orch_ws_server_stop(orch_ws_server *s) {
  if (!s) return;
  pthread_mutex_lock(&s->mu);
  int already = s->stopping;
  s->stopping = 1;
  pthread_mutex_unlock(&s->mu);
  if (already) return;
  wake(s);
  pthread_join(s->thread, NULL);
}

void orch_ws_server_free(orch_ws_server *s) {
  if (!s) return;
  close(s->wake[0]);
  close(s->wake[1]);
  pthread_mutex_destroy(&s->mu);
  free(s->conns);
  free(s);
}
