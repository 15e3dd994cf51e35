/*
 * bare_mhd.c - the reference for the HTTP benchmarks: a bare libmicrohttpd
 * server answering every request with the same small JSON body, with the
 * host's threading (internal polling threads, a pool of --threads, default 2).
 * Usage: orch_bare_mhd [--port N] [--threads N]; prints "listening on port N"
 * and serves until SIGINT/SIGTERM.
 */
#include <microhttpd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char body[] =
    "{\"global_lock\":false,\"running_processes\":0,\"global_status\":\"RUNNING\"}";
static struct MHD_Response *response;
static volatile sig_atomic_t stop;

static void on_signal(int sig) {
  (void)sig;
  stop = 1;
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **req_cls) {
  (void)cls;
  (void)url;
  (void)method;
  (void)version;
  (void)upload;
  if (!*req_cls) { /* first call: headers only */
    *req_cls = (void *)1;
    return MHD_YES;
  }
  *upload_size = 0;
  return MHD_queue_response(conn, MHD_HTTP_OK, response);
}

int main(int argc, char **argv) {
  unsigned port = 0, threads = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--port"))
      port = (unsigned)atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--threads"))
      threads = (unsigned)atoi(argv[i + 1]);
  }
  response = MHD_create_response_from_buffer(sizeof body - 1, (void *)body, MHD_RESPMEM_PERSISTENT);
  MHD_add_response_header(response, "Content-Type", "application/json");
  struct MHD_Daemon *d = MHD_start_daemon(
      MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL, (uint16_t)port, NULL, NULL, answer, NULL,
      MHD_OPTION_THREAD_POOL_SIZE, threads, MHD_OPTION_CONNECTION_TIMEOUT, 120u, MHD_OPTION_END);
  if (!d) {
    fprintf(stderr, "bare_mhd: cannot listen on port %u\n", port);
    return 1;
  }
  const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
  printf("listening on port %u\n", di ? di->port : port);
  fflush(stdout);
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  while (!stop)
    pause();
  MHD_stop_daemon(d);
  MHD_destroy_response(response);
  return 0;
}
