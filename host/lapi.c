/*
 * lapi.c - what every API area shares: the per-state context, positions at the author's
 * line, the time budget (count hook, watchdog thread, statement cancel) and the
 * attach/detach of a state. Knows nothing of the areas themselves (lhost.c builds the
 * `orch` table from their inject functions).
 */
#include "orch.h"

#include "lapi.h"
#include "log.h"

#include <lauxlib.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

orch_lapi_state *orch_lapi_state_of(lua_State *L) {
  return *(orch_lapi_state **)lua_getextraspace(L);
}

static orch_lapi_state *from_state(lua_State *L) {
  return orch_lapi_state_of(L);
}

orch_lua_ctx *orch_lapi_ctx(lua_State *L) {
  return &from_state(L)->ctx;
}

void orch_lapi_check_context(lua_State *L, unsigned allowed, const char *what) {
  unsigned phase = from_state(L)->ctx.phase;
  if (phase & allowed) return;
  const char *where = phase == ORCH_CTX_LOAD      ? "while scripts are being loaded"
                      : phase == ORCH_CTX_REQUEST ? "in a request handler"
                      : phase == ORCH_CTX_STEP    ? "in a workflow step"
                      : phase == ORCH_CTX_PERSIST ? "while a step's result is persisted"
                                                  : "here";
  orch_lapi_error(L, "%s is not available %s", what, where);
}

long orch_lapi_generation(lua_State *L) {
  return from_state(L)->gen->number;
}

static int is_product_source(const orch_gen *g, const char *source) {
  if (source[0] != '@') return 0;
  for (size_t i = 0; i < g->count; i++)
    if (g->scripts[i].is_product && !strcmp(g->scripts[i].path, source + 1)) return 1;
  return 0;
}

int orch_lapi_caller_is_product(lua_State *L, const char *module) {
  orch_lapi_state *lh = from_state(L);
  const orch_script *skip = orch_gen_find_module(lh->gen, module);
  lua_Debug ar;
  for (int level = 1; lua_getstack(L, level, &ar); level++) {
    if (!lua_getinfo(L, "S", &ar) || ar.source[0] != '@') continue; /* C functions */
    if (skip && !strcmp(ar.source + 1, skip->path)) continue;
    return is_product_source(lh->gen, ar.source);
  }
  return 0;
}

void orch_lapi_where(lua_State *L, int level) {
  lua_Debug ar;
  if (lua_getstack(L, level, &ar) && lua_getinfo(L, "Sl", &ar) && ar.currentline > 0)
    lua_pushfstring(L, "%s:%d: ", ar.source[0] == '@' ? ar.source + 1 : ar.short_src,
                    ar.currentline);
  else
    lua_pushliteral(L, "");
}

void orch_lapi_push_line(lua_State *L, char sep) {
  int n = lua_gettop(L);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  orch_lapi_where(L, 1);
  luaL_addvalue(&b);
  for (int i = 1; i <= n; i++) {
    if (i > 1) luaL_addchar(&b, sep);
    luaL_tolstring(L, i, NULL);
    luaL_addvalue(&b);
  }
  luaL_pushresult(&b);
}

/* Push "file:line: " of the innermost product-script frame (else the innermost Lua frame). */
void orch_lapi_author_where(lua_State *L) {
  orch_lapi_state *lh = from_state(L);
  lua_Debug ar;
  int chosen = -1;
  for (int level = 1; lua_getstack(L, level, &ar); level++) {
    if (!lua_getinfo(L, "Sl", &ar) || ar.currentline <= 0) continue;
    if (chosen < 0) chosen = level;
    if (is_product_source(lh->gen, ar.source)) {
      chosen = level;
      break;
    }
  }
  if (chosen > 0)
    orch_lapi_where(L, chosen);
  else
    lua_pushliteral(L, "");
}

const char *orch_lapi_code_hash(lua_State *L) {
  return from_state(L)->gen->code_hash;
}

int orch_lapi_error(lua_State *L, const char *fmt, ...) {
  orch_lapi_author_where(L);
  va_list ap;
  va_start(ap, fmt);
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  lua_concat(L, 2);
  return lua_error(L);
}

/* ---- time budget ---- */

static void budget_hook(lua_State *L, lua_Debug *ar);

/* ---- the watchdog ----
 * The budget is enforced inside the calling thread (the count hook, the pattern matcher's
 * checks), which needs the thread to come back to Lua. The watchdog covers what keeps it
 * away: once a call is past its deadline (plus a grace period) it cancels the database
 * statement the call is waiting on and arms the budget hook of the state from outside
 * (lua_sethook is the one Lua API call that may be made from another thread). */

#define WATCH_PERIOD_MS 100
#define WATCH_GRACE_MS  200

static pthread_mutex_t watch_mu = PTHREAD_MUTEX_INITIALIZER;
static orch_lapi_state *watch_list; /* every live state */
static pthread_once_t watch_once = PTHREAD_ONCE_INIT;

static void *watchdog(void *arg) {
  ORCH_UNUSED(arg);
  struct timespec period = {0, WATCH_PERIOD_MS * 1000000L};
  for (;;) {
    nanosleep(&period, NULL);
    long long now = orch_now_ns();
    pthread_mutex_lock(&watch_mu);
    for (orch_lapi_state *lh = watch_list; lh; lh = lh->watch_next) {
      if (!lh->watch_deadline_ns || lh->watch_fired ||
          now < lh->watch_deadline_ns + WATCH_GRACE_MS * 1000000LL)
        continue;
      lh->watch_fired = 1;
      if (lh->cancel) {
        char msg[256];
        PQcancel(lh->cancel, msg, sizeof msg);
      }
      lua_sethook(lh->L, budget_hook, LUA_MASKCOUNT | LUA_MASKLINE | LUA_MASKCALL, 1);
    }
    pthread_mutex_unlock(&watch_mu);
  }
  return NULL;
}

static void watch_start(void) {
  pthread_t t;
  if (pthread_create(&t, NULL, watchdog, NULL) == 0)
    pthread_detach(t);
  else
    LOG_WARN("lua", "cannot start the Lua watchdog thread; budgets rely on hooks alone");
}

static void watch_add(orch_lapi_state *lh) {
  pthread_once(&watch_once, watch_start);
  pthread_mutex_lock(&watch_mu);
  lh->watch_next = watch_list;
  watch_list = lh;
  pthread_mutex_unlock(&watch_mu);
}

static void watch_remove(orch_lapi_state *lh) {
  pthread_mutex_lock(&watch_mu);
  for (orch_lapi_state **p = &watch_list; *p; p = &(*p)->watch_next)
    if (*p == lh) {
      *p = lh->watch_next;
      break;
    }
  if (lh->cancel) PQfreeCancel(lh->cancel);
  lh->cancel = NULL;
  pthread_mutex_unlock(&watch_mu);
}

/* The running call's deadline as the watchdog sees it (0: no call, or no budget). */
static void watch_set_deadline(orch_lapi_state *lh, long long deadline_ns) {
  pthread_mutex_lock(&watch_mu);
  lh->watch_deadline_ns = deadline_ns;
  lh->watch_fired = 0;
  pthread_mutex_unlock(&watch_mu);
}

void orch_lapi_watch_statement(lua_State *L, PGconn *conn) {
  orch_lapi_state *lh = from_state(L);
  PGcancel *next = conn && lh->deadline_ns ? PQgetCancel(conn) : NULL;
  pthread_mutex_lock(&watch_mu);
  PGcancel *old = lh->cancel;
  lh->cancel = next;
  pthread_mutex_unlock(&watch_mu);
  if (old) PQfreeCancel(old);
}

void orch_lapi_budget_extend(lua_State *L, long long ns) {
  orch_lapi_state *lh = from_state(L);
  if (lh->deadline_ns && ns > 0) {
    lh->deadline_ns += ns;
    watch_set_deadline(lh, lh->deadline_ns);
  }
}

#define HOOK_COUNT 1000

/* Whether the running call's budget is gone; names the reason once it is. */
static int budget_gone(orch_lapi_state *lh) {
  if (lh->kill_reason) return 1;
  if (lh->mem_over)
    lh->kill_reason = "memory limit exceeded";
  else if (lh->deadline_ns && orch_now_ns() > lh->deadline_ns)
    lh->kill_reason = "time limit exceeded";
  return lh->kill_reason != NULL;
}

/* [-0, +0, v] Raise the budget error positioned at the given stack level. */
static int raise_budget(lua_State *L, orch_lapi_state *lh, int level) {
  /* From now on every line raises again, so pcall in the script can't swallow it. */
  lua_sethook(L, budget_hook, LUA_MASKCOUNT | LUA_MASKLINE, 1);
  orch_lapi_where(L, level);
  if (lh->mem_over)
    lua_pushfstring(L, "%s (%d MiB)", lh->kill_reason, (int)(lh->mem_limit >> 20));
  else
    lua_pushfstring(L, "%s (%d ms)", lh->kill_reason, (int)lh->timeout_ms);
  lua_concat(L, 2);
  return lua_error(L);
}

static void budget_hook(lua_State *L, lua_Debug *ar) {
  ORCH_UNUSED(ar);
  orch_lapi_state *lh = from_state(L);
  if (budget_gone(lh)) raise_budget(L, lh, 0); /* in a hook, level 0 is the running function */
  /* The watchdog armed a hook on every instruction, but the deadline had moved (time spent
     waiting on the network is given back): back to the normal count hook. */
  if (lua_gethookcount(L) != HOOK_COUNT) lua_sethook(L, budget_hook, LUA_MASKCOUNT, HOOK_COUNT);
}

void orch_lapi_budget_check(lua_State *L) {
  orch_lapi_state *lh = from_state(L);
  if (budget_gone(lh)) raise_budget(L, lh, 1); /* level 1: the script calling the C function */
}

int orch_lapi_budget_killed(lua_State *L) {
  return from_state(L)->kill_reason != NULL;
}

/* ---- attaching a state ---- */

void orch_lapi_attach(orch_lapi_state *s, lua_State *L, const orch_gen *g) {
  s->L = L;
  s->gen = g;
  *(orch_lapi_state **)lua_getextraspace(L) = s;
  watch_add(s);
}

void orch_lapi_detach(orch_lapi_state *s) {
  if (s->L) watch_remove(s);
}

void orch_lapi_budget_begin(orch_lapi_state *s) {
  s->kill_reason = NULL;
  s->deadline_ns = s->timeout_ms ? orch_now_ns() + s->timeout_ms * 1000000LL : 0;
  lua_sethook(s->L, budget_hook, LUA_MASKCOUNT, HOOK_COUNT);
  watch_set_deadline(s, s->deadline_ns);
}

void orch_lapi_budget_end(orch_lapi_state *s) {
  watch_set_deadline(s, 0); /* first: the watchdog must not arm the hook again */
  lua_sethook(s->L, NULL, 0, 0);
}
