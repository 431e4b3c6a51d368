// SPDX-License-Identifier: MIT OR Apache-2.0
//
// Loads the coexistence module the way Redis loads a module (dlopen) and runs it.
#include <dlfcn.h>
#include <stdio.h>

int main(int argc, char **argv) {
  if (argc != 2) return 2;
  void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    fprintf(stderr, "dlopen: %s\n", dlerror());
    return 1;
  }
  int (*run)(void) = (int (*)(void))dlsym(h, "coexist_module_run");
  int rc = run ? run() : 100;
  printf("coexist_module_run: %d\n%d passed, %d failed\n", rc, rc == 0, rc != 0);
  return rc;
}
