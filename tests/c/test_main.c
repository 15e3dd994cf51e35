/* test_main.c - runs every test of test_list.h in a forked child; prints a summary. */
#include "test.h"
#include "test_list.h"

#define DECLARE(name) void test_##name(void);
TEST_LIST(DECLARE)

static const orch_test tests[] = {TEST_LIST(ORCH_TEST_ENTRY)};

int main(int argc, char **argv) {
  return orch_test_main(tests, sizeof tests / sizeof tests[0], argc, argv);
}
