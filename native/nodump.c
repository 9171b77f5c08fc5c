/*
 * keyward_nodump: the one system call Node does not offer, for the key process.
 *
 * prctl(PR_SET_DUMPABLE, 0) makes the calling process non-dumpable: the kernel then
 * refuses ptrace attach and /proc/PID/mem, /proc/PID/environ and the like to every
 * process without CAP_SYS_PTRACE, even one running as the same user or the parent
 * (whom Yama's default scope would otherwise allow), and writes no core dump. The flag
 * is reset by execve, so the process must set it itself.
 *
 * Built with Node-API (version 8): one binary loads in every Node release from 12.22 on,
 * Node 20 and 24 included.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <node_api.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

static napi_value throw_errno(napi_env env, const char *what, int err) {
  char msg[160];
  snprintf(msg, sizeof msg, "%s failed: %s", what, strerror(err));
  napi_throw_error(env, NULL, msg);
  return NULL;
}

/* dumpable(): the current PR_GET_DUMPABLE value (0 non-dumpable, 1 dumpable, 2 root-only core). */
static napi_value dumpable(napi_env env, napi_callback_info info) {
  (void)info;
#ifdef __linux__
  int v = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
  if (v < 0) return throw_errno(env, "prctl(PR_GET_DUMPABLE)", errno);
  napi_value out;
  napi_create_int32(env, v, &out);
  return out;
#else
  napi_throw_error(env, "ENOSYS", "PR_SET_DUMPABLE exists only on Linux");
  return NULL;
#endif
}

/* setNonDumpable(): prctl(PR_SET_DUMPABLE, 0), then returns the value read back (0). */
static napi_value set_non_dumpable(napi_env env, napi_callback_info info) {
#ifdef __linux__
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) return throw_errno(env, "prctl(PR_SET_DUMPABLE, 0)", errno);
  return dumpable(env, info);
#else
  (void)info;
  napi_throw_error(env, "ENOSYS", "PR_SET_DUMPABLE exists only on Linux");
  return NULL;
#endif
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"dumpable", NULL, dumpable, NULL, NULL, NULL, napi_default, NULL},
      {"setNonDumpable", NULL, set_non_dumpable, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
