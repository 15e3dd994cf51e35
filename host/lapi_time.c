/* lapi_time.c - orch.time: wall clock, monotonic clock and ISO 8601 formatting. */
#include "orch.h"

#include "lapi.h"

#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <time.h>

/* orch.time.now() -> seconds since the epoch, with fractions (UTC wall clock). */
static int l_time_now(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
  return 1;
}

/* orch.time.monotonic_ms() -> milliseconds of a clock that never goes back. */
static int l_time_monotonic_ms(lua_State *L) {
  lua_pushnumber(L, (lua_Number)orch_now_ns() / 1e6);
  return 1;
}

/* orch.time.iso([epoch]) -> "2026-11-27T12:00:00.123456+00:00", as Python's isoformat(). */
static int l_time_iso(lua_State *L) {
  lua_Number t;
  if (lua_isnoneornil(L, 1)) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    t = (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9;
  } else {
    t = luaL_checknumber(L, 1);
  }
  time_t secs = (time_t)floor(t);
  long micros = (long)llround((t - (lua_Number)secs) * 1e6);
  if (micros >= 1000000) {
    secs++;
    micros -= 1000000;
  }
  struct tm tm;
  if (!gmtime_r(&secs, &tm)) return luaL_argerror(L, 1, "time out of range");
  char out[64];
  if (micros)
    snprintf(out, sizeof out, "%04d-%02d-%02dT%02d:%02d:%02d.%06ld+00:00", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, micros);
  else
    snprintf(out, sizeof out, "%04d-%02d-%02dT%02d:%02d:%02d+00:00", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  lua_pushstring(L, out);
  return 1;
}

static const luaL_Reg time_funcs[] = {
    {"now", l_time_now},
    {"monotonic_ms", l_time_monotonic_ms},
    {"iso", l_time_iso},
    {NULL, NULL},
};

void orch_lapi_time_inject(lua_State *L) {
  luaL_newlib(L, time_funcs);
  lua_setfield(L, -2, "time");
}
