/* test_metrics.c - the Prometheus text exposition of host/metrics.c against the format's rules:
   metric and label names, label value escaping, one HELP and TYPE per family before its samples,
   counters named *_total, histogram buckets ascending and cumulative, ending in le="+Inf" equal
   to _count, with _sum and _count. */
#include "orch.h"

#include "buf.h"
#include "metrics.h"
#include "test.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static int name_ok(const char *s, size_t n) {
  if (!n || !(isalpha((unsigned char)s[0]) || s[0] == '_' || s[0] == ':')) return 0;
  for (size_t i = 1; i < n; i++)
    if (!(isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == ':')) return 0;
  return 1;
}

/* Parse the labels at *p (after '{'), up to '}'. Checks names and escapes; stores the value of
   le in le (or "" if none) and the other pairs, verbatim, in rest. Returns 1 if well formed. */
static int parse_labels(const char **p, char *le, size_t lecap, orch_buf *rest) {
  const char *s = *p;
  le[0] = '\0';
  while (*s != '}') {
    const char *k = s;
    while (*s && *s != '=')
      s++;
    if (*s != '=' || !name_ok(k, (size_t)(s - k)) || s[1] != '"') return 0;
    size_t klen = (size_t)(s - k);
    s += 2;
    const char *v = s;
    while (*s && *s != '"') {
      if (*s == '\n') return 0;
      if (*s == '\\') {
        if (s[1] != '\\' && s[1] != '"' && s[1] != 'n') return 0;
        s++;
      }
      s++;
    }
    if (*s != '"') return 0;
    if (klen == 2 && !strncmp(k, "le", 2))
      snprintf(le, lecap, "%.*s", (int)(s - v), v);
    else
      orch_buf_printf(rest, "%.*s=%.*s;", (int)klen, k, (int)(s - v), v);
    s++;
    if (*s == ',') s++;
  }
  *p = s + 1;
  return 1;
}

#define MAXF 64
typedef struct checker {
  char names[MAXF][96];
  char types[MAXF][16];
  int helped[MAXF];
  int nf;
  /* the histogram series being read */
  char series[256];
  double last_bound, last_cum, inf;
  int open; /* a histogram series is being read */
  int samples;
} checker;

static int family_of(checker *c, const char *name, size_t n) {
  for (int i = 0; i < c->nf; i++)
    if (strlen(c->names[i]) == n && !strncmp(c->names[i], name, n)) return i;
  return -1;
}

/* Check a whole exposition; FAILs on the first violation. Returns the number of samples. */
static int check_exposition(const char *text) {
  checker c = {0};
  ASSERT(*text && text[strlen(text) - 1] == '\n');
  const char *line = text;
  while (*line) {
    const char *end = strchr(line, '\n');
    ASSERT(end);
    size_t len = (size_t)(end - line);
    char buf[1024];
    ASSERT(len < sizeof buf);
    memcpy(buf, line, len);
    buf[len] = '\0';
    if (buf[0] == '#') {
      char kind[8], name[96];
      int off = 0;
      if (sscanf(buf, "# %7s %95s %n", kind, name, &off) < 2) FAIL("bad comment: %s", buf);
      ASSERT(name_ok(name, strlen(name)));
      int f = family_of(&c, name, strlen(name));
      if (!strcmp(kind, "HELP")) {
        if (f < 0) {
          ASSERT(c.nf < MAXF);
          f = c.nf++;
          snprintf(c.names[f], sizeof c.names[f], "%s", name);
        }
        if (c.helped[f]) FAIL("second HELP for %s", name);
        c.helped[f] = 1;
      } else if (!strcmp(kind, "TYPE")) {
        if (f < 0 || !c.helped[f]) FAIL("TYPE without HELP first: %s", name);
        if (c.types[f][0]) FAIL("second TYPE for %s", name);
        const char *t = buf + off;
        if (strcmp(t, "counter") && strcmp(t, "gauge") && strcmp(t, "histogram"))
          FAIL("bad type: %s", buf);
        snprintf(c.types[f], sizeof c.types[f], "%s", t);
        if (!strcmp(t, "counter") &&
            (strlen(name) < 6 || strcmp(name + strlen(name) - 6, "_total")))
          FAIL("counter not named *_total: %s", name);
      } else {
        FAIL("unknown comment kind: %s", buf);
      }
    } else {
      const char *p = buf;
      while (*p && *p != '{' && *p != ' ')
        p++;
      size_t nlen = (size_t)(p - buf);
      if (!name_ok(buf, nlen)) FAIL("bad metric name: %s", buf);
      char le[64];
      orch_buf rest = ORCH_BUF_INIT;
      orch_buf_puts(&rest, "");
      if (*p == '{') {
        p++;
        if (!parse_labels(&p, le, sizeof le, &rest)) FAIL("bad labels: %s", buf);
      } else {
        le[0] = '\0';
      }
      if (*p != ' ') FAIL("no space before the value: %s", buf);
      p++;
      char *vend;
      double v = !strcmp(p, "+Inf") ? INFINITY : strtod(p, &vend);
      if (strcmp(p, "+Inf") && (*vend || vend == p)) FAIL("bad value: %s", buf);
      /* Its family: the name itself, or the name without a histogram suffix. */
      int f = family_of(&c, buf, nlen);
      const char *suffix = "";
      if (f < 0) {
        static const char *const sfx[] = {"_bucket", "_sum", "_count"};
        for (int i = 0; i < 3 && f < 0; i++) {
          size_t sl = strlen(sfx[i]);
          if (nlen > sl && !strncmp(buf + nlen - sl, sfx[i], sl)) {
            f = family_of(&c, buf, nlen - sl);
            if (f >= 0 && strcmp(c.types[f], "histogram")) f = -1;
            if (f >= 0) suffix = sfx[i];
          }
        }
      }
      if (f < 0 || !c.types[f][0]) FAIL("sample before its HELP/TYPE: %s", buf);
      if (!strcmp(c.types[f], "histogram") && !*suffix) FAIL("bare histogram sample: %s", buf);
      if (!strcmp(suffix, "_bucket")) {
        if (!le[0]) FAIL("bucket without le: %s", buf);
        double bound = !strcmp(le, "+Inf") ? INFINITY : strtod(le, NULL);
        if (!c.open || strcmp(c.series, rest.data)) { /* a new series starts with a bucket */
          c.open = 1;
          snprintf(c.series, sizeof c.series, "%s", rest.data);
          c.last_bound = -INFINITY;
          c.last_cum = 0;
          c.inf = -1;
        }
        if (!(bound > c.last_bound)) FAIL("buckets not ascending: %s", buf);
        if (v < c.last_cum) FAIL("buckets not cumulative: %s", buf);
        c.last_bound = bound;
        c.last_cum = v;
        if (isinf(bound)) c.inf = v;
      } else if (!strcmp(suffix, "_sum")) {
        if (!c.open || c.inf < 0 || strcmp(c.series, rest.data))
          FAIL("_sum without +Inf bucket: %s", buf);
      } else if (!strcmp(suffix, "_count")) {
        if (!c.open || strcmp(c.series, rest.data) || c.inf != v)
          FAIL("_count != +Inf bucket: %s", buf);
        c.open = 0;
      } else if (le[0]) {
        FAIL("le on a non-bucket sample: %s", buf);
      }
      orch_buf_free(&rest);
      c.samples++;
    }
    line = end + 1;
  }
  return c.samples;
}

TEST(metrics_escape_label_values) {
  orch_buf b = ORCH_BUF_INIT;
  orch_metrics_escape_label(&b, "a\\b\"c\nd é");
  ASSERT_STR_EQ(b.data, "a\\\\b\\\"c\\nd é");
  orch_buf_free(&b);
}

TEST(metrics_exposition_follows_the_format) {
  orch_metrics_reset();
  char *empty = orch_metrics_render(1);
  ASSERT(check_exposition(empty) > 0);
  free(empty);

  orch_metrics_http("processes.read", 200, 0.0004);
  orch_metrics_http("processes.read", 200, 0.003);
  orch_metrics_http("processes.read", 404, 20); /* beyond the last bound: only +Inf */
  orch_metrics_http(NULL, 404, 0.001);
  orch_metrics_step("wf \"odd\"\\name\n", "success", 0.002);
  orch_metrics_step("wf \"odd\"\\name\n", "failed", 0.5);
  orch_metrics_handoff(0.00002);
  orch_metrics_handoff(0.0003);
  orch_metrics_claims(5, 2);
  orch_metrics_reload(1);
  orch_metrics_reload(0);
  orch_metrics_reload(0);
  orch_metrics_budget_kill();
  orch_metrics_lua_memory(1000);
  orch_metrics_lua_memory(-400);
  orch_metrics_db_error(1);
  orch_metrics_ws_clients(3);
  char *t = orch_metrics_render(7);
  check_exposition(t);
  ASSERT_CONTAINS(t, "orch_http_requests_total{action=\"processes.read\",status=\"200\"} 2\n");
  ASSERT_CONTAINS(t, "orch_http_requests_total{action=\"processes.read\",status=\"404\"} 1\n");
  ASSERT_CONTAINS(t, "orch_http_requests_total{action=\"none\",status=\"404\"} 1\n");
  /* cumulative: 0.0004 in le=0.0005; 0.003 added at le=0.005; 20 only in +Inf */
  ASSERT_CONTAINS(t, "orch_http_request_duration_seconds_bucket{action=\"processes.read\","
                     "le=\"0.0005\"} 1\n");
  ASSERT_CONTAINS(t, "orch_http_request_duration_seconds_bucket{action=\"processes.read\","
                     "le=\"0.005\"} 2\n");
  ASSERT_CONTAINS(t, "orch_http_request_duration_seconds_bucket{action=\"processes.read\","
                     "le=\"10\"} 2\n");
  ASSERT_CONTAINS(t, "orch_http_request_duration_seconds_bucket{action=\"processes.read\","
                     "le=\"+Inf\"} 3\n");
  ASSERT_CONTAINS(t, "orch_http_request_duration_seconds_sum{action=\"processes.read\"} 20.0034\n");
  ASSERT_CONTAINS(t, "orch_http_request_duration_seconds_count{action=\"processes.read\"} 3\n");
  ASSERT_CONTAINS(t,
                  "orch_steps_total{workflow=\"wf \\\"odd\\\"\\\\name\\n\",status=\"failed\"} 1\n");
  ASSERT_CONTAINS(t, "orch_step_handoff_seconds_bucket{le=\"5e-05\"} 1\n");
  ASSERT_CONTAINS(t, "orch_step_handoff_seconds_count 2\n");
  ASSERT_CONTAINS(t, "orch_claims_total 5\n");
  ASSERT_CONTAINS(t, "orch_leases_taken_over_total 2\n");
  ASSERT_CONTAINS(t, "orch_reloads_total{result=\"refused\"} 2\n");
  ASSERT_CONTAINS(t, "orch_lua_budget_kills_total 1\n");
  ASSERT_CONTAINS(t, "orch_lua_memory_bytes 600\n");
  ASSERT_CONTAINS(t, "orch_db_errors_total{kind=\"soft\"} 1\n");
  ASSERT_CONTAINS(t, "orch_websocket_clients 3\n");
  ASSERT_CONTAINS(t, "orch_scripts_generation 7\n");
  ASSERT_CONTAINS(t, "# TYPE orch_step_duration_seconds histogram\n");
  free(t);
  orch_metrics_reset();
}

TEST(metrics_bounded_series) {
  orch_metrics_reset();
  char name[32];
  for (int i = 0; i < ORCH_METRICS_MAX_SERIES + 50; i++) {
    snprintf(name, sizeof name, "wf%d", i);
    orch_metrics_step(name, "success", 0.001);
  }
  char *t = orch_metrics_render(1);
  check_exposition(t);
  ASSERT_CONTAINS(t, "orch_steps_total{overflow=\"_other\"} 51\n");
  ASSERT(!strstr(t, "workflow=\"wf300\""));
  free(t);
  orch_metrics_reset();
}

/* 1 if check_exposition fails on text (run in a child: FAIL exits). */
static int rejects(const char *text) {
  fflush(stderr);
  pid_t pid = fork();
  if (pid == 0) {
    freopen("/dev/null", "w", stderr);
    check_exposition(text);
    _exit(0);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) && WEXITSTATUS(st) != 0;
}

TEST(metrics_checker_catches_violations) {
  ASSERT_EQ(check_exposition("# HELP a_total x\n# TYPE a_total counter\na_total 1\n"), 1);
  ASSERT(rejects("a_total 1\n"));                                  /* no HELP/TYPE */
  ASSERT(rejects("# HELP a x\n# TYPE a counter\na 1\n"));          /* counter without _total */
  ASSERT(rejects("# HELP a x\n# TYPE a gauge\na{b=\"\\q\"} 1\n")); /* bad escape */
  ASSERT(rejects("# HELP a x\n# TYPE a gauge\na{1b=\"x\"} 1\n"));  /* bad label name */
  ASSERT(rejects(
      "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\n"
      "h_bucket{le=\"2\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 2\n")); /* not cumulative */
  ASSERT(rejects("# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\n"
                 "h_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n")); /* +Inf != _count */
  ASSERT(rejects("# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n"));
  ASSERT(!rejects("# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\n"
                  "h_bucket{le=\"+Inf\"} 2\nh_sum 1.5\nh_count 2\n"));
}
