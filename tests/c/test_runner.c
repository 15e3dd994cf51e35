/* test_runner.c - runs a table of tests, each in a forked child; prints a summary. */
#include "test.h"

#include <sys/wait.h>
#include <unistd.h>

int orch_test_main(const orch_test *tests, size_t count, int argc, char **argv) {
  int passed = 0, failed = 0;
  const char *only = argc > 1 ? argv[1] : NULL;
  for (size_t i = 0; i < count; i++) {
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
