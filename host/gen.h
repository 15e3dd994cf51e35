/*
 * gen.h - a generation: an immutable snapshot of every Lua script the host
 * runs (the core ruleset in lua/ and the product scripts), read from disk once.
 *
 * Every Lua state is built from a generation, never from the disk directly, so
 * all threads run identical code even while files change. The current
 * generation is published through one atomic pointer; a reload builds a new
 * generation, validates it and publishes it (reference counted: the old one is
 * freed when the last state built from it is gone).
 */
#pragma once

#include "orch.h"

#include <time.h>

typedef struct orch_script {
  char *path;     /* display path, e.g. "products/node.lua" (owned) */
  size_t rel_off; /* path + rel_off: the path inside its folder, e.g. "node.lua" */
  char *module;   /* module name, e.g. "node" or "orch.json" (owned) */
  char *source;   /* file content, NUL-terminated (owned) */
  size_t len;
  char sha256[65];
  int is_product; /* 1 for files of the products folder (loaded at start), 0 for lua/ */
} orch_script;

typedef struct orch_gen {
  long number; /* 1, 2, 3... in the order generations were published (0 before) */
  time_t loaded_at;
  orch_script *scripts; /* core scripts first, then products, each sorted by path */
  size_t count;
  char code_hash[41]; /* first 40 hex digits of SHA-256 over every path and file hash:
                         the same scripts give the same value on every host and restart */
} orch_gen;

/* Read both folders into a new generation with refcount 1. */
int orch_gen_load(orch_gen **out, const char *lua_dir, const char *products_dir,
                  orch_error *err) ORCH_MUSTCHECK;
orch_gen *orch_gen_ref(orch_gen *g);
void orch_gen_unref(orch_gen *g); /* NULL is a no-op */

const orch_script *orch_gen_find_module(const orch_gen *g, const char *module);

/* Make `g` current (takes a new reference); drops the reference to the previous one. */
void orch_gen_publish(orch_gen *g);
/* A new reference to the current generation, or NULL before the first publish. */
orch_gen *orch_gen_current(void);
/* Number of the current generation (0 before the first publish); cheap, lock-free. */
long orch_gen_current_number(void);
/* Drop the current generation (at shutdown). */
void orch_gen_shutdown(void);

/* dir as script paths show it: relative to cwd when inside it (cwd: scratch buffer). */
const char *orch_gen_display_dir(const char *dir, char *cwd, size_t cwd_size);
