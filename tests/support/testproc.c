/*
 * testproc.c - process control for the Lua test harness (Debian 12 ships no
 * luaposix for Lua 5.4): spawn a child with its output in a file and extra
 * environment, signal it, wait for it, sleep.
 *
 *   pid = testproc.spawn({argv...}, {NAME = value...}, log_path)
 *   testproc.kill(pid, "TERM" | "KILL" | "STOP" | "CONT" | "INT" | "HUP")
 *   how, code = testproc.wait(pid [, nohang])  -- "exited"|"killed", status; nil if still running
 *   testproc.sleep(seconds)
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <lua.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int luaopen_testproc(lua_State *L);

static int l_spawn(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  const char *log = luaL_checkstring(L, 3);
  int argc = (int)luaL_len(L, 1);
  luaL_argcheck(L, argc >= 1 && argc < 64, 1, "1 to 63 arguments");
  const char *argv[64];
  for (int i = 0; i < argc; i++) {
    lua_rawgeti(L, 1, i + 1);
    argv[i] = luaL_checkstring(L, -1);
    lua_pop(L, 1); /* the table keeps the string alive */
  }
  argv[argc] = NULL;
  pid_t pid = fork();
  if (pid < 0) return luaL_error(L, "fork: %s", strerror(errno));
  if (pid == 0) {
    int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      close(fd);
    }
    setpgid(0, 0);
    if (lua_istable(L, 2)) {
      lua_pushnil(L);
      while (lua_next(L, 2)) {
        setenv(lua_tostring(L, -2), lua_tostring(L, -1), 1);
        lua_pop(L, 1);
      }
    }
    execvp(argv[0], (char *const *)argv);
    _exit(127);
  }
  lua_pushinteger(L, pid);
  return 1;
}

static int l_kill(lua_State *L) {
  pid_t pid = (pid_t)luaL_checkinteger(L, 1);
  static const char *const names[] = {"TERM", "KILL", "STOP", "CONT", "INT", "HUP", NULL};
  static const int sigs[] = {SIGTERM, SIGKILL, SIGSTOP, SIGCONT, SIGINT, SIGHUP};
  int sig = sigs[luaL_checkoption(L, 2, "TERM", names)];
  lua_pushboolean(L, kill(pid, sig) == 0);
  return 1;
}

static int l_wait(lua_State *L) {
  pid_t pid = (pid_t)luaL_checkinteger(L, 1);
  int status = 0;
  pid_t r = waitpid(pid, &status, lua_toboolean(L, 2) ? WNOHANG : 0);
  if (r == 0) return 0;
  if (r < 0) return luaL_error(L, "waitpid: %s", strerror(errno));
  if (WIFEXITED(status)) {
    lua_pushliteral(L, "exited");
    lua_pushinteger(L, WEXITSTATUS(status));
  } else {
    lua_pushliteral(L, "killed");
    lua_pushinteger(L, WTERMSIG(status));
  }
  return 2;
}

static int l_sleep(lua_State *L) {
  double s = luaL_checknumber(L, 1);
  struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
  return 0;
}

static int l_getpid(lua_State *L) {
  lua_pushinteger(L, getpid());
  return 1;
}

static int l_now(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  lua_pushnumber(L, (double)ts.tv_sec + (double)ts.tv_nsec / 1e9);
  return 1;
}

int luaopen_testproc(lua_State *L) {
  static const luaL_Reg funcs[] = {{"spawn", l_spawn}, {"kill", l_kill},     {"wait", l_wait},
                                   {"sleep", l_sleep}, {"getpid", l_getpid}, {"now", l_now},
                                   {NULL, NULL}};
  luaL_newlib(L, funcs);
  return 1;
}
