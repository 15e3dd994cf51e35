/*
 * reload.h - a new generation of scripts without a restart (SIGHUP, POST
 * /api/settings/reload, the --watch file watcher). A reload builds the new
 * generation from disk, validates it in a fresh Lua state (all that `check`
 * checks), lets the catalogue and the workflow registry follow it on a
 * connection of its own (additive changes applied, destructive ones refused
 * with the reason), and only then publishes it. If anything fails before the
 * publish, the current generation keeps serving untouched and the errors are
 * reported. One reload runs at a time (a mutex); any thread may ask for one.
 */
#pragma once

#include "orch.h"

#include "config.h"

/* Remember the configuration (borrowed; must outlive every reload). */
void orch_reload_setup(const orch_config *cfg);

/*
 * Reload now on the calling thread. *report (malloc'd JSON object, may be
 * NULL) says what happened: {"ok", "generation", "added", "changed",
 * "removed", "errors":[{"file","line","message"}], "catalog", "workflows"}.
 * Returns ORCH_OK when a new generation was published. A refused reload uses
 * up no generation number and is kept for the status (last_error) with the
 * trigger that asked for it ("api", "SIGHUP", "watch").
 */
int orch_reload(char **report); /* trigger "api" */

/*
 * The rate limit of API reloads (ORCH_RELOAD_MIN_INTERVAL_MS): 0 when a reload may start
 * now (and the slot is taken), else the milliseconds until the next one may.
 */
long orch_reload_api_wait_ms(void);
int orch_reload_from(const char *trigger, char **report);

/*
 * JSON of the current generation for the status route: number, loaded_at,
 * files [{path, sha256}] and the last refused reload: last_reload_errors (the
 * list) and last_error {trigger, at, message, errors} (or null). Malloc'd.
 */
char *orch_reload_status_json(void);

/* The configuration given to orch_reload_setup (NULL before). */
const orch_config *orch_reload_config(void);
