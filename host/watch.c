/*
 * watch.c - development mode: reload when a script changes (inotify). Events
 * are debounced (an editor's save is several events) and the reload itself is
 * reload.c's: a broken save is refused and the current generation serves on.
 */
#include "orch.h"

#include "log.h"
#include "reload.h"
#include "watch.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEBOUNCE_MS 300
#define WATCH_MASK  (IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE)

struct orch_watch {
  int fd;
  int stop_pipe[2];
  pthread_t thread;
  char **roots; /* owned copies of the folders given */
  size_t nroots;
};

/* Watch dir and every folder below it. Folders watched already keep their watch (inotify
   gives back the same descriptor), so calling it again adds just the new ones. */
static void add_tree(int fd, const char *dir) {
  if (inotify_add_watch(fd, dir, WATCH_MASK) < 0) {
    LOG_WARN("watch", "cannot watch %s: %s", dir, strerror(errno));
    return;
  }
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char *child = orch_sprintf("%s/%s", dir, e->d_name);
    struct stat st;
    if (stat(child, &st) == 0 && S_ISDIR(st.st_mode)) add_tree(fd, child);
    free(child);
  }
  closedir(d);
}

static void *watch_main(void *arg) {
  orch_watch *w = arg;
  char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
  int pending = 0, new_folder = 0;
  for (;;) {
    struct pollfd pfd[2] = {{w->fd, POLLIN, 0}, {w->stop_pipe[0], POLLIN, 0}};
    int n = poll(pfd, 2, pending ? DEBOUNCE_MS : -1);
    if (n < 0 && errno != EINTR) break;
    if (pfd[1].revents) break;
    if (n == 0 && pending) {
      /* Quiet for DEBOUNCE_MS after the last change: reload. */
      pending = 0;
      if (new_folder) { /* watch the folders that appeared (and what they hold) first */
        new_folder = 0;
        for (size_t i = 0; i < w->nroots; i++)
          add_tree(w->fd, w->roots[i]);
      }
      LOG_INFO("watch", "scripts changed; reloading");
      orch_reload_from("watch", NULL);
      continue;
    }
    if (!(pfd[0].revents & POLLIN)) continue;
    ssize_t len = read(w->fd, buf, sizeof buf);
    for (char *p = buf; len > 0 && p < buf + len;) {
      const struct inotify_event *ev = (const struct inotify_event *)p;
      if ((ev->mask & IN_ISDIR) && (ev->mask & (IN_CREATE | IN_MOVED_TO)))
        pending = new_folder = 1; /* watched before the reload */
      if (ev->len && strstr(ev->name, ".lua")) pending = 1;
      p += sizeof *ev + ev->len;
    }
  }
  return NULL;
}

/* Close what orch_watch_start opened and free w. */
static void release_watch(orch_watch *w) {
  close(w->fd);
  close(w->stop_pipe[0]);
  close(w->stop_pipe[1]);
  for (size_t i = 0; i < w->nroots; i++)
    free(w->roots[i]);
  free(w->roots);
  free(w);
}

int orch_watch_start(orch_watch **out, const char *const *dirs, size_t ndirs, orch_error *err) {
  orch_watch *w = orch_xcalloc(1, sizeof *w);
  w->fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  if (w->fd < 0 || pipe(w->stop_pipe) != 0) {
    orch_error_set(err, ORCH_EIO, "cannot watch the scripts: %s", strerror(errno));
    if (w->fd >= 0) close(w->fd);
    free(w);
    return ORCH_EIO;
  }
  w->roots = orch_xcalloc(ndirs ? ndirs : 1, sizeof *w->roots);
  w->nroots = ndirs;
  for (size_t i = 0; i < ndirs; i++) {
    w->roots[i] = orch_strdup(dirs[i]);
    add_tree(w->fd, dirs[i]);
  }
  if (pthread_create(&w->thread, NULL, watch_main, w) != 0) {
    orch_error_set(err, ORCH_EIO, "cannot start the watcher thread");
    release_watch(w);
    return ORCH_EIO;
  }
  *out = w;
  return ORCH_OK;
}

void orch_watch_stop(orch_watch *w) {
  if (!w) return;
  ssize_t ignored = write(w->stop_pipe[1], "x", 1);
  ORCH_UNUSED(ignored);
  pthread_join(w->thread, NULL);
  release_watch(w);
}
