// posix_fadvise(2) and fallocate(2) (its hole punching among its modes) as promises: both run on libuv's thread pool,
// since POSIX_FADV_DONTNEED walks every cached page of the range (and starts writeback of dirty
// ones) and a punch frees the range's blocks, and neither may stall the JavaScript thread a FUSE
// mount answers on. And readCached: a read that happens at once if the page cache has the bytes,
// and not at all if it would have to wait for the disk (preadv2 with RWF_NOWAIT).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <node_api.h>

typedef enum { OP_FADVISE, OP_FALLOCATE } op_t;

typedef struct {
  op_t op;
  int fd;
  int64_t offset;
  int64_t length;
  int advice;
  int mode;
  int err;
  napi_deferred deferred;
  napi_async_work work;
} call_t;

static void execute (napi_env env, void *data) {
  call_t *c = data;
  if (c->op == OP_FADVISE) {
    c->err = posix_fadvise(c->fd, (off_t) c->offset, (off_t) c->length, c->advice);
  } else {
    c->err = fallocate(c->fd, c->mode, (off_t) c->offset, (off_t) c->length) == 0 ? 0 : errno;
  }
}

static const char *code_of (int err) {
  switch (err) {
    case EBADF: return "EBADF";
    case EINVAL: return "EINVAL";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case ENOSPC: return "ENOSPC";
    case EIO: return "EIO";
    case ESPIPE: return "ESPIPE";
    case ENODEV: return "ENODEV";
    case EPERM: return "EPERM";
    case EFBIG: return "EFBIG";
    case EINTR: return "EINTR";
    case EISDIR: return "EISDIR";
    case EFAULT: return "EFAULT";
    default: return "EFILEOPS";
  }
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
    napi_create_string_utf8(env, code_of(err), NAPI_AUTO_LENGTH, &code);
    napi_create_error(env, code, message, &error);
    napi_create_int32(env, err, &errnum);
    napi_set_named_property(env, error, "errno", errnum);
    napi_reject_deferred(env, c->deferred, error);
  }
  napi_delete_async_work(env, c->work);
  free(c);
}

static napi_value queue (napi_env env, call_t *c, const char *what) {
  napi_value promise, name;
  napi_create_promise(env, &c->deferred, &promise);
  napi_create_string_utf8(env, what, NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, NULL, name, execute, complete, c, &c->work);
  napi_queue_async_work(env, c->work);
  return promise;
}

static call_t *new_call (napi_env env) {
  call_t *c = calloc(1, sizeof(call_t));
  if (c == NULL) napi_throw_error(env, "ENOMEM", "fileops: out of memory");
  return c;
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
  call_t *c = new_call(env);
  if (c == NULL) return NULL;
  c->op = OP_FADVISE;
  c->fd = fd;
  c->offset = offset;
  c->length = length;
  c->advice = advice;
  return queue(env, c, "fadvise");
}

static napi_value fallocate_call (napi_env env, napi_callback_info info, int fixed_mode) {
  // fixed_mode < 0: the mode is the second argument.
  size_t want = fixed_mode < 0 ? 4 : 3;
  size_t argc = 4;
  napi_value argv[4];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  int32_t fd, mode = fixed_mode;
  int64_t offset, length;
  size_t at = 1;
  if (argc != want ||
      napi_get_value_int32(env, argv[0], &fd) != napi_ok ||
      (fixed_mode < 0 && napi_get_value_int32(env, argv[at++], &mode) != napi_ok) ||
      napi_get_value_int64(env, argv[at], &offset) != napi_ok ||
      napi_get_value_int64(env, argv[at + 1], &length) != napi_ok) {
    napi_throw_type_error(env, NULL, fixed_mode < 0 ? "fallocate(fd, mode, offset, length): four integers" : "punchHole(fd, offset, length): three integers");
    return NULL;
  }
  call_t *c = new_call(env);
  if (c == NULL) return NULL;
  c->op = OP_FALLOCATE;
  c->fd = fd;
  c->mode = mode;
  c->offset = offset;
  c->length = length;
  return queue(env, c, "fallocate");
}

// KEEP_SIZE: the file keeps its length; the range reads as zeros and takes no blocks.
static napi_value punch_hole (napi_env env, napi_callback_info info) {
  return fallocate_call(env, info, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE);
}

static napi_value fallocate_any (napi_env env, napi_callback_info info) {
  return fallocate_call(env, info, -1);
}

// A filesystem that cannot read without waiting (EOPNOTSUPP) is not asked again.
static int nowait_unsupported = 0;

// readCached(fd, buffer, offset, length, position): the bytes read into buffer[offset..] now,
// from the page cache, on the calling thread; 0 at the end of the file; -1 when the read would
// wait for the disk (nothing read: read the usual way). Throws on any other failure.
static napi_value read_cached (napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  int32_t fd;
  int64_t offset, length, position;
  bool is_typed = false;
  if (argc == 5) napi_is_typedarray(env, argv[1], &is_typed);
  if (argc != 5 || !is_typed ||
      napi_get_value_int32(env, argv[0], &fd) != napi_ok ||
      napi_get_value_int64(env, argv[2], &offset) != napi_ok ||
      napi_get_value_int64(env, argv[3], &length) != napi_ok ||
      napi_get_value_int64(env, argv[4], &position) != napi_ok) {
    napi_throw_type_error(env, NULL, "readCached(fd, buffer, offset, length, position): an integer, a Uint8Array, three integers");
    return NULL;
  }
  napi_typedarray_type type;
  size_t count;
  void *data;
  if (napi_get_typedarray_info(env, argv[1], &type, &count, &data, NULL, NULL) != napi_ok) return NULL;
  if (type != napi_uint8_array || offset < 0 || length < 0 || position < 0 || (uint64_t) offset + (uint64_t) length > count) {
    napi_throw_range_error(env, NULL, "readCached: the range is outside the buffer");
    return NULL;
  }
  ssize_t n = -1;
  if (!nowait_unsupported) {
    struct iovec iov = { (char *) data + offset, (size_t) length };
    do {
      n = preadv2(fd, &iov, 1, (off_t) position, RWF_NOWAIT);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
      int err = errno;
      if (err == EOPNOTSUPP || err == ENOSYS) nowait_unsupported = 1;
      else if (err != EAGAIN) {
        napi_value message, code, error, errnum;
        napi_create_string_utf8(env, strerror(err), NAPI_AUTO_LENGTH, &message);
        napi_create_string_utf8(env, code_of(err), NAPI_AUTO_LENGTH, &code);
        napi_create_error(env, code, message, &error);
        napi_create_int32(env, err, &errnum);
        napi_set_named_property(env, error, "errno", errnum);
        napi_throw(env, error);
        return NULL;
      }
      n = -1;
    }
  }
  napi_value result;
  napi_create_int64(env, (int64_t) n, &result);
  return result;
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
  napi_create_function(env, "punchHole", NAPI_AUTO_LENGTH, punch_hole, NULL, &fn);
  napi_set_named_property(env, exports, "punchHole", fn);
  napi_create_function(env, "fallocate", NAPI_AUTO_LENGTH, fallocate_any, NULL, &fn);
  napi_set_named_property(env, exports, "fallocate", fn);
  napi_create_function(env, "readCached", NAPI_AUTO_LENGTH, read_cached, NULL, &fn);
  napi_set_named_property(env, exports, "readCached", fn);
  constant(env, exports, "FALLOC_FL_KEEP_SIZE", FALLOC_FL_KEEP_SIZE);
  constant(env, exports, "FALLOC_FL_PUNCH_HOLE", FALLOC_FL_PUNCH_HOLE);
  constant(env, exports, "FALLOC_FL_ZERO_RANGE", FALLOC_FL_ZERO_RANGE);
  constant(env, exports, "POSIX_FADV_NORMAL", POSIX_FADV_NORMAL);
  constant(env, exports, "POSIX_FADV_SEQUENTIAL", POSIX_FADV_SEQUENTIAL);
  constant(env, exports, "POSIX_FADV_RANDOM", POSIX_FADV_RANDOM);
  constant(env, exports, "POSIX_FADV_WILLNEED", POSIX_FADV_WILLNEED);
  constant(env, exports, "POSIX_FADV_DONTNEED", POSIX_FADV_DONTNEED);
  constant(env, exports, "POSIX_FADV_NOREUSE", POSIX_FADV_NOREUSE);
  return exports;
}
