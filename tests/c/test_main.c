/* test_main.c - runs every test of test_list.h in a forked child; prints a summary. */
#include "test.h"
#include "test_list.h"

#include <sys/wait.h>
#include <unistd.h>

#define DECLARE(name) void test_##name(void);
TEST_LIST(DECLARE)

typedef struct {
  const char *name;
  void (*fn)(void);
} entry;

#define ENTRY(name) {#name, test_##name},
static const entry tests[] = {TEST_LIST(ENTRY)};

int main(int argc, char **argv) {
  int passed = 0, failed = 0;
  const char *only = argc > 1 ? argv[1] : NULL;
  for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
    if (only && strcmp(only, tests[i].name)) continue;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
      tests[i].fn();
      exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    int ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    printf("%s %s\n", ok ? "ok  " : "FAIL", tests[i].name);
    if (ok)
      passed++;
    else
      failed++;
  }
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
