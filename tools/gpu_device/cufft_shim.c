/* libcufft.so.11 shim for the device machine only: the astra-toolbox wheel needs CUDA 12's
   cuFFT (5 functions, versioned libcufft.so.11); the device image has CUDA 13's libcufft.so.12.
   Forward the 5 calls with dlsym. A user's `pip install astra-toolbox` pulls the real one. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
static void *h;
static void *sym(const char *n) {
  if (!h) { const char *p = getenv("CUFFT13"); h = dlopen(p ? p : "libcufft.so.12", RTLD_NOW | RTLD_LOCAL);
    if (!h) { fprintf(stderr, "cufft shim: %s\n", dlerror()); abort(); } }
  void *f = dlsym(h, n); if (!f) { fprintf(stderr, "cufft shim: no %s\n", n); abort(); } return f;
}
int cufftPlan1d(int *plan, int nx, int type, int batch) { return ((int (*)(int *, int, int, int))sym("cufftPlan1d"))(plan, nx, type, batch); }
int cufftExecR2C(int plan, void *i, void *o) { return ((int (*)(int, void *, void *))sym("cufftExecR2C"))(plan, i, o); }
int cufftExecC2R(int plan, void *i, void *o) { return ((int (*)(int, void *, void *))sym("cufftExecC2R"))(plan, i, o); }
int cufftDestroy(int plan) { return ((int (*)(int))sym("cufftDestroy"))(plan); }
int cufftSetStream(int plan, void *s) { return ((int (*)(int, void *))sym("cufftSetStream"))(plan, s); }
