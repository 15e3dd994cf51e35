/*
 * alone.c - linked with one layer library whole (every object of it) and the layers below:
 * if the layer calls a function of a layer above, this program does not link. Built for
 * each layer by the top CMakeLists.txt; ctest c_layers runs them.
 */
#include <stdio.h>

int main(int argc, char **argv) {
  (void)argc;
  printf("%s: the layer links without the layers above it\n", argv[0]);
  return 0;
}
