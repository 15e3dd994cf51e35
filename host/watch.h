/*
 * watch.h - development mode (--watch / ORCH_WATCH=1): reload the scripts when
 * a .lua file under the watched folders is saved (inotify, debounced).
 */
#pragma once

#include "orch.h"

#include <stddef.h>

typedef struct orch_watch orch_watch;

/* Watch the folders (borrowed strings, read once) in a thread of its own. */
int orch_watch_start(orch_watch **out, const char *const *dirs, size_t ndirs,
                     orch_error *err) ORCH_MUSTCHECK;
/* Stop and join the thread; NULL is a no-op. */
void orch_watch_stop(orch_watch *w);
