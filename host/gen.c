/* gen.c - script snapshots (generations) and the current-generation pointer. */
#include "orch.h"

#include "buf.h"
#include "gen.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The refcount lives next to the public struct so that callers can't touch it. */
typedef struct gen_box {
  orch_gen gen;
  atomic_int refs;
} gen_box;

static atomic_long next_number = 1;

typedef struct list {
  orch_script *items;
  size_t n, cap;
} list;

/* "orch/json.lua" -> "orch.json"; "node/init.lua" -> "node". */
static char *module_name(const char *rel) {
  size_t len = strlen(rel) - 4; /* drop ".lua" */
  if (len >= 5 && !strncmp(rel + len - 5, "/init", 5)) len -= 5;
  char *m = orch_strndup(rel, len);
  for (char *p = m; *p; p++)
    if (*p == '/') *p = '.';
  return m;
}

static int ends_with(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && !strcmp(s + a - b, suffix);
}

static int scan(list *l, const char *root, const char *rel, int is_product, orch_error *err) {
  char *dir = rel[0] ? orch_sprintf("%s/%s", root, rel) : orch_strdup(root);
  DIR *d = opendir(dir);
  if (!d) {
    orch_error_set(err, ORCH_EIO, "cannot open folder '%s': %s", dir, strerror(errno));
    free(dir);
    return ORCH_EIO;
  }
  int rc = ORCH_OK;
  struct dirent *e;
  while (rc == ORCH_OK && (e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char *child_rel = rel[0] ? orch_sprintf("%s/%s", rel, e->d_name) : orch_strdup(e->d_name);
    char *full = orch_sprintf("%s/%s", root, child_rel);
    struct stat st;
    if (stat(full, &st) == 0 && S_ISDIR(st.st_mode)) {
      rc = scan(l, root, child_rel, is_product, err);
    } else if (ends_with(e->d_name, ".lua") && !ends_with(e->d_name, "_spec.lua")) {
      orch_script s = {0};
      rc = orch_read_file(full, &s.source, &s.len, err);
      if (rc == ORCH_OK) {
        s.path = orch_strdup(full);
        s.rel_off = strlen(root) + 1;
        s.module = module_name(child_rel);
        s.is_product = is_product;
        orch_sha256_hex(s.source, s.len, s.sha256);
        if (l->n == l->cap)
          l->items = orch_xrealloc(l->items, (l->cap = l->cap ? l->cap * 2 : 32) * sizeof s);
        l->items[l->n++] = s;
      }
    }
    free(full);
    free(child_rel);
  }
  closedir(d);
  free(dir);
  return rc;
}

static int cmp_script(const void *a, const void *b) {
  const orch_script *x = a, *y = b;
  if (x->is_product != y->is_product) return x->is_product - y->is_product;
  return strcmp(x->path, y->path);
}

static void free_scripts(orch_script *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(s[i].path);
    free(s[i].module);
    free(s[i].source);
  }
  free(s);
}

/* Paths inside the working directory are shown relative to it: shorter messages. */
const char *orch_gen_display_dir(const char *dir, char *cwd, size_t cwd_size) {
  if (dir[0] != '/' || !getcwd(cwd, cwd_size)) return dir;
  size_t n = strlen(cwd);
  if (n > 1 && !strncmp(dir, cwd, n) && dir[n] == '/' && dir[n + 1]) return dir + n + 1;
  return dir;
}

int orch_gen_load(orch_gen **out, const char *lua_dir, const char *products_dir, orch_error *err) {
  list l = {0};
  char cwd[4096];
  int rc = scan(&l, orch_gen_display_dir(lua_dir, cwd, sizeof cwd), "", 0, err);
  if (rc == ORCH_OK) rc = scan(&l, orch_gen_display_dir(products_dir, cwd, sizeof cwd), "", 1, err);
  if (rc != ORCH_OK) {
    free_scripts(l.items, l.n);
    return rc;
  }
  qsort(l.items, l.n, sizeof *l.items, cmp_script);
  gen_box *box = orch_xcalloc(1, sizeof *box);
  atomic_init(&box->refs, 1);
  box->gen.number = 0; /* numbered when published */
  box->gen.loaded_at = time(NULL);
  box->gen.scripts = l.items;
  box->gen.count = l.n;
  orch_buf all = ORCH_BUF_INIT;
  for (size_t i = 0; i < l.n; i++)
    orch_buf_printf(&all, "%s %s\n", l.items[i].path, l.items[i].sha256);
  char hex[65];
  orch_sha256_hex(all.data ? all.data : "", all.len, hex);
  orch_buf_free(&all);
  memcpy(box->gen.code_hash, hex, 40);
  box->gen.code_hash[40] = '\0';
  *out = &box->gen;
  return ORCH_OK;
}

orch_gen *orch_gen_ref(orch_gen *g) {
  if (g) atomic_fetch_add(&((gen_box *)g)->refs, 1);
  return g;
}

void orch_gen_unref(orch_gen *g) {
  if (!g) return;
  gen_box *box = (gen_box *)g;
  if (atomic_fetch_sub(&box->refs, 1) != 1) return;
  free_scripts(g->scripts, g->count);
  free(box);
}

const orch_script *orch_gen_find_module(const orch_gen *g, const char *module) {
  /* Core modules win over product modules of the same name. */
  for (size_t i = 0; i < g->count; i++)
    if (!strcmp(g->scripts[i].module, module)) return &g->scripts[i];
  return NULL;
}

/* The pointer swap and the reference taken from it must be one step: a mutex. */
static pthread_mutex_t current_lock = PTHREAD_MUTEX_INITIALIZER;
static orch_gen *current;
static atomic_long current_number;

void orch_gen_publish(orch_gen *g) {
  orch_gen_ref(g);
  if (!g->number) g->number = atomic_fetch_add(&next_number, 1);
  pthread_mutex_lock(&current_lock);
  orch_gen *old = current;
  current = g;
  atomic_store(&current_number, g->number);
  pthread_mutex_unlock(&current_lock);
  orch_gen_unref(old);
}

orch_gen *orch_gen_current(void) {
  pthread_mutex_lock(&current_lock);
  orch_gen *g = orch_gen_ref(current);
  pthread_mutex_unlock(&current_lock);
  return g;
}

long orch_gen_current_number(void) {
  return atomic_load(&current_number);
}

void orch_gen_shutdown(void) {
  pthread_mutex_lock(&current_lock);
  orch_gen *old = current;
  current = NULL;
  atomic_store(&current_number, 0);
  pthread_mutex_unlock(&current_lock);
  orch_gen_unref(old);
}
