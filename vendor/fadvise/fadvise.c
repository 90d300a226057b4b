// posix_fadvise(2) as a promise: the call runs on libuv's thread pool, since POSIX_FADV_DONTNEED
// walks every cached page of the range (and starts writeback of dirty ones) and must not stall
// the JavaScript thread a FUSE mount answers on.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <node_api.h>

typedef struct {
  int fd;
  int64_t offset;
  int64_t length;
  int advice;
  int err;
  napi_deferred deferred;
  napi_async_work work;
} call_t;

static void execute (napi_env env, void *data) {
  call_t *c = data;
  c->err = posix_fadvise(c->fd, (off_t) c->offset, (off_t) c->length, c->advice);
}

static void complete (napi_env env, napi_status status, void *data) {
  call_t *c = data;
  if (status == napi_ok && c->err == 0) {
    napi_value undefined;
    napi_get_undefined(env, &undefined);
    napi_resolve_deferred(env, c->deferred, undefined);
  } else {
    int err = status == napi_ok ? c->err : ECANCELED;
    napi_value message, code, error, errnum;
    napi_create_string_utf8(env, strerror(err), NAPI_AUTO_LENGTH, &message);
    napi_create_string_utf8(env, "EFADVISE", NAPI_AUTO_LENGTH, &code);
    napi_create_error(env, code, message, &error);
    napi_create_int32(env, err, &errnum);
    napi_set_named_property(env, error, "errno", errnum);
    napi_reject_deferred(env, c->deferred, error);
  }
  napi_delete_async_work(env, c->work);
  free(c);
}

static napi_value fadvise (napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  int32_t fd, advice;
  int64_t offset, length;
  if (argc != 4 ||
      napi_get_value_int32(env, argv[0], &fd) != napi_ok ||
      napi_get_value_int64(env, argv[1], &offset) != napi_ok ||
      napi_get_value_int64(env, argv[2], &length) != napi_ok ||
      napi_get_value_int32(env, argv[3], &advice) != napi_ok) {
    napi_throw_type_error(env, NULL, "fadvise(fd, offset, length, advice): four integers");
    return NULL;
  }
  call_t *c = calloc(1, sizeof(call_t));
  if (c == NULL) {
    napi_throw_error(env, "ENOMEM", "fadvise: out of memory");
    return NULL;
  }
  c->fd = fd;
  c->offset = offset;
  c->length = length;
  c->advice = advice;
  napi_value promise, name;
  napi_create_promise(env, &c->deferred, &promise);
  napi_create_string_utf8(env, "fadvise", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, NULL, name, execute, complete, c, &c->work);
  napi_queue_async_work(env, c->work);
  return promise;
}

static void constant (napi_env env, napi_value exports, const char *name, int value) {
  napi_value v;
  napi_create_int32(env, value, &v);
  napi_set_named_property(env, exports, name, v);
}

NAPI_MODULE_INIT () {
  napi_value fn;
  napi_create_function(env, "fadvise", NAPI_AUTO_LENGTH, fadvise, NULL, &fn);
  napi_set_named_property(env, exports, "fadvise", fn);
  constant(env, exports, "POSIX_FADV_NORMAL", POSIX_FADV_NORMAL);
  constant(env, exports, "POSIX_FADV_SEQUENTIAL", POSIX_FADV_SEQUENTIAL);
  constant(env, exports, "POSIX_FADV_RANDOM", POSIX_FADV_RANDOM);
  constant(env, exports, "POSIX_FADV_WILLNEED", POSIX_FADV_WILLNEED);
  constant(env, exports, "POSIX_FADV_DONTNEED", POSIX_FADV_DONTNEED);
  constant(env, exports, "POSIX_FADV_NOREUSE", POSIX_FADV_NOREUSE);
  return exports;
}
