/*
 * test.h - a tiny unit-test framework (after libuv's test/task.h): each test
 * is a function `TEST(name)`, listed in test_list.h, and run in a forked child
 * by test_main.c so that a crash fails one test, not the run.
 */
#pragma once

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEST(name)                                                                                 \
  void test_##name(void);                                                                          \
  void test_##name(void)

#define FAIL(...)                                                                                  \
  do {                                                                                             \
    fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                                                \
    fprintf(stderr, __VA_ARGS__);                                                                  \
    fputc('\n', stderr);                                                                           \
    exit(1);                                                                                       \
  } while (0)

#define ASSERT(cond)                                                                               \
  do {                                                                                             \
    if (!(cond)) FAIL("assertion failed: %s", #cond);                                              \
  } while (0)

#define ASSERT_EQ(a, b)                                                                            \
  do {                                                                                             \
    long long a_ = (long long)(a), b_ = (long long)(b);                                            \
    if (a_ != b_) FAIL("%s == %s: %lld != %lld", #a, #b, a_, b_);                                  \
  } while (0)

#define ASSERT_STR_EQ(a, b)                                                                        \
  do {                                                                                             \
    const char *a_ = (a), *b_ = (b);                                                               \
    if (!a_ || !b_ || strcmp(a_, b_))                                                              \
      FAIL("%s == %s: \"%s\" != \"%s\"", #a, #b, a_ ? a_ : "(null)", b_ ? b_ : "(null)");          \
  } while (0)

#define ASSERT_CONTAINS(hay, needle)                                                               \
  do {                                                                                             \
    const char *h_ = (hay), *n_ = (needle);                                                        \
    if (!h_ || !strstr(h_, n_))                                                                    \
      FAIL("%s does not contain \"%s\": \"%s\"", #hay, n_, h_ ? h_ : "(null)");                    \
  } while (0)

#define ASSERT_OK(expr) ASSERT_EQ((expr), 0)

typedef struct orch_test {
  const char *name;
  void (*fn)(void);
} orch_test;

/* Run the tests (only the one named argv[1], if given), each in a forked child, and print
   "N passed, N failed". Returns the exit status for main. */
int orch_test_main(const orch_test *tests, size_t count, int argc, char **argv);

#define ORCH_TEST_ENTRY(name) {#name, test_##name},
