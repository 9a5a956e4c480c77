/* otelprof._native: what the agent cannot read from Python at a cost it can afford.
 *
 * thread_context(ident): the contextvars.Context current on another thread right now, read
 * from that thread's interpreter state. Span correlation needs the OpenTelemetry span each
 * thread is in at every sample. From Python the only way is to hook every context attach and
 * detach, which runs on the application's request path; reading the thread state from the
 * sampler thread moves that cost off it. It is also the running asyncio task's context while
 * a task step runs (Task.__step runs inside the task's Context.run), on every Python version.
 *
 * Safety: called with the GIL held, and the GIL is not released before the context is
 * returned. A thread's state is unlinked and freed only when the thread exits, which takes the
 * GIL, so every state reached from the interpreter's list stays valid during the walk. Nothing
 * here allocates a Python object during the walk (an allocation could run the GC, whose
 * finalizers could release the GIL). Free-threaded builds have no GIL to rely on: there the
 * function is left out and the agent keeps its context hook.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

/* The interpreter frame's layout, for walk_thread (below): CPython 3.11-3.13 with a GIL, where
 * the internal headers were installed (a build without them still gets everything else). */
#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030E0000 && !defined(Py_GIL_DISABLED) && \
    defined(__has_include)
#if __has_include("internal/pycore_frame.h")
#define HAVE_WALK_THREAD 1
#define Py_BUILD_CORE 1
#include "internal/pycore_frame.h"
#undef Py_BUILD_CORE
#endif
#endif

/* span_clock_ns(): the calling thread's CPU time in ns, for the span processor's exact CPU per
 * span (two reads per span).
 *
 * time.thread_time_ns() reads CLOCK_THREAD_CPUTIME_ID, which brings the scheduler's
 * accounting of the running thread up to date; a thread found past its time slice is then
 * preempted on the spot instead of at the next timer tick. When the CPU has other runnable
 * tasks, two reads per span mean many more preemptions (docs/benchmarks.md: 415 -> 752-818 in
 * 5 s at 1000 reads a second). A perf task-clock event counts the thread's time on its CPU in
 * perf's own bookkeeping and leaves the scheduler alone (it also counts the interrupts served
 * meanwhile, which the CPU clock leaves out), but each thread needs its own event (~10 us to
 * open and close), which a thread that serves one request never earns back. So a thread reads
 * the CPU clock for its first SPAN_CLOCK_PERF_AFTER reads and then opens an event, offset so
 * its readings continue the CPU clock's (a span started on one and ended on the other measures
 * the same time). The event is closed when the thread exits (a pthread key destructor) and in
 * a fork child (it would count the parent's thread). Where perf events are refused (seccomp,
 * perf_event_paranoid 3, no perf support) the CPU clock stays in use; past the file descriptor
 * limit, for that thread. Linux only; elsewhere the span processor uses time.thread_time_ns. */
#ifdef __linux__
#include <errno.h>
#include <linux/perf_event.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#define HAVE_SPAN_CLOCK 1
#define SPAN_CLOCK_PERF_AFTER 64

typedef struct {
    int fd;          /* the thread's task-clock event, -1 while it has none */
    int failed;      /* opening one failed for this thread: the CPU clock for good */
    long reads;      /* CPU clock reads so far */
    int64_t offset;  /* CPU clock at the event's start, ns */
} SpanClock;

static pthread_key_t span_clock_key;
static int span_clock_key_made;
static volatile int perf_refused; /* the process may not open perf events at all */

static void
span_clock_free(void *slot)
{
    SpanClock *clock = slot;
    if (clock->fd >= 0) {
        close(clock->fd);
    }
    free(clock);
}

/* In a fork child the calling thread's event counts the parent's thread: drop it, and start
   over on the CPU clock. (Other threads' slots are not reachable; they do not exist here.) */
static void
span_clock_after_fork(void)
{
    if (!span_clock_key_made) {
        return;
    }
    SpanClock *clock = pthread_getspecific(span_clock_key);
    if (clock != NULL) {
        pthread_setspecific(span_clock_key, NULL);
        span_clock_free(clock);
    }
}

static int64_t
thread_clock_ns(void)
{
    struct timespec now;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now) != 0) {
        return -1;
    }
    return (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
}

static void
span_clock_open(SpanClock *clock)
{
    struct perf_event_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.type = PERF_TYPE_SOFTWARE;
    attr.size = sizeof attr;
    attr.config = PERF_COUNT_SW_TASK_CLOCK;
    attr.disabled = 1;
    int fd = (int)syscall(SYS_perf_event_open, &attr, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
    if (fd < 0) {
        if (errno != EMFILE && errno != ENFILE) {
            perf_refused = 1;
        }
        clock->failed = 1;
        return;
    }
    int64_t start = thread_clock_ns();
    if (start < 0 || ioctl(fd, PERF_EVENT_IOC_ENABLE, 0) != 0) {
        close(fd);
        clock->failed = 1;
        return;
    }
    clock->fd = fd;
    clock->offset = start;
}

static int64_t
span_clock_read(void)
{
    SpanClock *clock = pthread_getspecific(span_clock_key);
    if (clock == NULL) {
        clock = calloc(1, sizeof *clock);
        if (clock == NULL || pthread_setspecific(span_clock_key, clock) != 0) {
            free(clock);
            return thread_clock_ns();
        }
        clock->fd = -1;
    }
    if (clock->fd < 0 && !clock->failed && !perf_refused &&
        ++clock->reads > SPAN_CLOCK_PERF_AFTER) {
        span_clock_open(clock);
    }
    if (clock->fd >= 0) {
        uint64_t count;
        if (read(clock->fd, &count, sizeof count) == (ssize_t)sizeof count) {
            return clock->offset + (int64_t)count;
        }
    }
    return thread_clock_ns();
}

static PyObject *
span_clock_ns(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    int64_t now = span_clock_read();
    if (now < 0) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return PyLong_FromLongLong(now);
}

static PyObject *
span_clock_source(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    SpanClock *clock = pthread_getspecific(span_clock_key);
    if (clock != NULL && clock->fd >= 0) {
        return PyUnicode_FromString("perf");
    }
    return PyUnicode_FromString(perf_refused ? "refused" : "thread");
}
#endif

#ifndef Py_GIL_DISABLED
static PyObject *
thread_context(PyObject *module, PyObject *arg)
{
    unsigned long ident = PyLong_AsUnsignedLong(arg);
    if (ident == (unsigned long)-1 && PyErr_Occurred()) {
        return NULL;
    }
    PyInterpreterState *interp = PyInterpreterState_Get();
    PyObject *context = NULL;
    for (PyThreadState *ts = PyInterpreterState_ThreadHead(interp); ts != NULL;
         ts = PyThreadState_Next(ts)) {
        /* A thread's context is NULL until it first uses a context variable. The walk goes on
           past such a match: on 3.10-3.11 the state made for a thread being started carries its
           starter's ident (and no context) until the new thread runs, and sits ahead of the
           starter's own in the list. */
        if (ts->thread_id == ident && ts->context != NULL) {
            context = ts->context;
            break;
        }
    }
    if (context == NULL) {
        Py_RETURN_NONE;
    }
    Py_INCREF(context);
    return context;
}
#endif

/* The sampler's stack walks. A stack is keyed as the flat tuple (id(code0), lasti0, id(code1),
 * lasti1, ...), leaf first, ending in -1 when it was deeper than max_depth, and comes with its
 * code objects, leaf first: the same as the sampler's Python walk (otelprof.samplers.stack._walk),
 * which stays the reference. In Python each frame costs two attribute reads and three list
 * appends; with several busy threads deep in calls the walk is much of a tick.
 *
 * walk_stack(frame, max_depth) walks from a frame object with the public frame API
 * (PyFrame_GetLasti exists from 3.11; older versions use the Python walk). Following a frame's
 * f_back makes a frame object for every frame of the running code it reaches: the application
 * thread later frees each one when its function returns, and each counts towards the next
 * young collection. walk_thread(ident, max_depth) walks a thread's interpreter frames directly,
 * as CPython's faulthandler does, and makes no frame object at all; it reads the frame layout
 * of CPython 3.11-3.13 from the internal header, so it is built for those versions only and
 * later ones keep walk_stack.
 *
 * Safety: called with the GIL held, from the sampler's tick, where the cyclic GC is held off
 * (otelprof._threads.gc_held_off). walk_stack: creating the caller's frame object
 * (PyFrame_GetBack) then cannot run a collection, so no finalizer can release the GIL
 * half-way. walk_thread allocates no Python object until the walk is over (as thread_context
 * above, it relies on the GIL to keep the thread list and every frame on it still); the code
 * objects it reads are held (new references) before anything is allocated. Free-threaded
 * builds have no GIL to rely on, so they keep the Python walk.
 */
#if PY_VERSION_HEX >= 0x030B0000 && !defined(Py_GIL_DISABLED)
#define WALK_BUFFER 128

typedef struct {
    PyCodeObject *buffer_codes[WALK_BUFFER];
    int buffer_lasti[WALK_BUFFER];
    PyCodeObject **codes; /* new references, depth of them */
    int *lasti;
    Py_ssize_t depth;
} Walk;

/* Room for max_depth frames: the fixed buffers, or (deeper) allocated ones. No Python object
 * is allocated, so no collection can run. -1 with MemoryError set on failure. */
static int
walk_init(Walk *walk, Py_ssize_t max_depth)
{
    walk->codes = walk->buffer_codes;
    walk->lasti = walk->buffer_lasti;
    walk->depth = 0;
    if (max_depth > WALK_BUFFER) {
        walk->codes = PyMem_New(PyCodeObject *, max_depth);
        walk->lasti = PyMem_New(int, max_depth);
        if (walk->codes == NULL || walk->lasti == NULL) {
            PyMem_Free(walk->codes);
            PyMem_Free(walk->lasti);
            walk->codes = NULL;
            PyErr_NoMemory();
            return -1;
        }
    }
    return 0;
}

/* Drops a walk's references and frees its buffers. */
static void
walk_release(Walk *walk)
{
    for (Py_ssize_t i = 0; i < walk->depth; i++) {
        Py_XDECREF(walk->codes[i]);
    }
    if (walk->codes != walk->buffer_codes) {
        PyMem_Free(walk->codes);
        PyMem_Free(walk->lasti);
    }
}

/* (key, codes) from a finished walk, whose references it consumes either way. */
static PyObject *
walk_result(Walk *walk, int truncated)
{
    Py_ssize_t depth = walk->depth;
    PyObject *result = NULL;
    PyObject *key = PyTuple_New(2 * depth + truncated);
    PyObject *code_list = PyList_New(depth);
    if (key == NULL || code_list == NULL) {
        goto done;
    }
    for (Py_ssize_t i = 0; i < depth; i++) {
        PyObject *id = PyLong_FromVoidPtr(walk->codes[i]);
        PyObject *offset = PyLong_FromLong(walk->lasti[i]);
        if (id == NULL || offset == NULL) {
            Py_XDECREF(id);
            Py_XDECREF(offset);
            goto done;
        }
        PyTuple_SET_ITEM(key, 2 * i, id);
        PyTuple_SET_ITEM(key, 2 * i + 1, offset);
    }
    if (truncated) {
        PyObject *mark = PyLong_FromLong(-1);
        if (mark == NULL) {
            goto done;
        }
        PyTuple_SET_ITEM(key, 2 * depth, mark);
    }
    for (Py_ssize_t i = 0; i < depth; i++) {
        /* the list takes the reference */
        PyList_SET_ITEM(code_list, i, (PyObject *)walk->codes[i]);
        walk->codes[i] = NULL;
    }
    result = PyTuple_Pack(2, key, code_list);
done:
    walk_release(walk);
    Py_XDECREF(key);
    Py_XDECREF(code_list);
    return result;
}

/* max_depth from a Python int: >= 0, else -1 with an exception set. */
static Py_ssize_t
walk_max_depth(PyObject *arg, const char *name)
{
    Py_ssize_t max_depth = PyLong_AsSsize_t(arg);
    if (max_depth == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (max_depth < 0) {
        PyErr_Format(PyExc_ValueError, "%s: max_depth must be >= 0", name);
        return -1;
    }
    return max_depth;
}

static PyObject *
walk_stack(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "walk_stack(frame, max_depth) takes 2 arguments");
        return NULL;
    }
    PyObject *start = args[0];
    if (start != Py_None && !PyFrame_Check(start)) {
        PyErr_SetString(PyExc_TypeError, "walk_stack: frame must be a frame or None");
        return NULL;
    }
    Py_ssize_t max_depth = walk_max_depth(args[1], "walk_stack");
    Walk walk;
    if (max_depth < 0 || walk_init(&walk, max_depth) < 0) {
        return NULL;
    }
    PyFrameObject *frame = start == Py_None ? NULL : (PyFrameObject *)Py_NewRef(start);
    while (frame != NULL && walk.depth < max_depth) {
        walk.codes[walk.depth] = PyFrame_GetCode(frame); /* new reference */
        walk.lasti[walk.depth] = PyFrame_GetLasti(frame);
        walk.depth++;
        PyFrameObject *back = PyFrame_GetBack(frame); /* new reference, may create it */
        Py_DECREF(frame);
        frame = back;
    }
    int truncated = frame != NULL;
    Py_XDECREF(frame);
    return walk_result(&walk, truncated);
}
#endif

#ifdef HAVE_WALK_THREAD

/* The frame's code object; NULL for a frame that runs none (3.13 has such frames). */
static PyCodeObject *
frame_code(_PyInterpreterFrame *frame)
{
#if PY_VERSION_HEX >= 0x030D0000
    PyObject *executable = frame->f_executable;
    return executable != NULL && PyCode_Check(executable) ? (PyCodeObject *)executable : NULL;
#else
    return frame->f_code;
#endif
}

/* The first frame from this one on that a traceback would show (as PyFrame_GetBack and
 * sys._current_frames skip them: frames not yet started, and the C stack's entry frames). The
 * code check comes first: _PyFrame_IsIncomplete reads the code object of any frame but those
 * entry frames. */
static _PyInterpreterFrame *
complete_frame(_PyInterpreterFrame *frame)
{
    while (frame != NULL && (frame_code(frame) == NULL || _PyFrame_IsIncomplete(frame))) {
        frame = frame->previous;
    }
    return frame;
}

static _PyInterpreterFrame *
thread_top_frame(PyThreadState *ts)
{
#if PY_VERSION_HEX >= 0x030D0000
    return complete_frame(ts->current_frame);
#else
    return ts->cframe != NULL ? complete_frame(ts->cframe->current_frame) : NULL;
#endif
}

/* The running frame of the thread with this ident, NULL if it has none. As in thread_context,
 * a state with the ident but no frame is passed over (3.10-3.11: a thread being started). */
static _PyInterpreterFrame *
find_top_frame(unsigned long ident)
{
    PyInterpreterState *interp = PyInterpreterState_Get();
    for (PyThreadState *ts = PyInterpreterState_ThreadHead(interp); ts != NULL;
         ts = PyThreadState_Next(ts)) {
        if (ts->thread_id == ident) {
            _PyInterpreterFrame *top = thread_top_frame(ts);
            if (top != NULL) {
                return top;
            }
        }
    }
    return NULL;
}

static PyObject *
walk_thread(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "walk_thread(ident, max_depth) takes 2 arguments");
        return NULL;
    }
    unsigned long ident = PyLong_AsUnsignedLong(args[0]);
    if (ident == (unsigned long)-1 && PyErr_Occurred()) {
        return NULL;
    }
    Py_ssize_t max_depth = walk_max_depth(args[1], "walk_thread");
    Walk walk;
    if (max_depth < 0 || walk_init(&walk, max_depth) < 0) {
        return NULL;
    }
    _PyInterpreterFrame *frame = find_top_frame(ident);
    if (frame == NULL) {
        walk_release(&walk);
        Py_RETURN_NONE;
    }
    while (frame != NULL && walk.depth < max_depth) {
        PyCodeObject *code = frame_code(frame);
        int lasti = _PyInterpreterFrame_LASTI(frame);
        walk.codes[walk.depth] = (PyCodeObject *)Py_NewRef(code);
        walk.lasti[walk.depth] = lasti < 0 ? -1 : lasti * (int)sizeof(_Py_CODEUNIT);
        walk.depth++;
        frame = complete_frame(frame->previous);
    }
    return walk_result(&walk, frame != NULL);
}

static PyObject *
thread_handles(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    /* Idents first, in a C buffer: building the dict allocates, which must not happen while
       the thread list is being read (see thread_context). */
    unsigned long buffer[256];
    unsigned long *idents = buffer;
    Py_ssize_t count = 0, capacity = 256;
    PyInterpreterState *interp = PyInterpreterState_Get();
    for (PyThreadState *ts = PyInterpreterState_ThreadHead(interp); ts != NULL;
         ts = PyThreadState_Next(ts)) {
        if (thread_top_frame(ts) == NULL) {
            continue;
        }
        if (count == capacity) {
            unsigned long *bigger = PyMem_New(unsigned long, capacity * 2);
            if (bigger == NULL) {
                if (idents != buffer) {
                    PyMem_Free(idents);
                }
                return PyErr_NoMemory();
            }
            memcpy(bigger, idents, count * sizeof(unsigned long));
            if (idents != buffer) {
                PyMem_Free(idents);
            }
            idents = bigger;
            capacity *= 2;
        }
        idents[count++] = ts->thread_id;
    }
    PyObject *handles = PyDict_New();
    for (Py_ssize_t i = 0; handles != NULL && i < count; i++) {
        PyObject *id = PyLong_FromUnsignedLong(idents[i]);
        if (id == NULL || PyDict_SetItem(handles, id, id) < 0) {
            Py_CLEAR(handles);
        }
        Py_XDECREF(id);
    }
    if (idents != buffer) {
        PyMem_Free(idents);
    }
    return handles;
}
#endif

/* SpanHooks: the span processor's on_start and _on_ending for the SDK's known span layout.
 *
 * They run on the application's request path, once per span, in threads that have run none of
 * this before (a thread-per-request server makes every request a cold start): as Python they
 * cost ~10 and ~13 us per span there, for a few us of work. This is the common case only (a
 * span started and ended on one thread, outside an event loop, no hot-function summary due);
 * every other case, and every error, goes to the Python code (otelprof.spans), which stays the
 * reference: a state list is laid out as spans.py documents (_ROOT .. _PARENT). Like the
 * reader, it relies on the GIL (borrowed references, unlocked list updates): free-threaded
 * builds get the Python hooks. */
#ifndef Py_GIL_DISABLED

enum { S_ROOT, S_THREAD, S_CPU_START, S_SAMPLED_CPU, S_SPAN, S_LEAF_WALL, S_PARENT, S_SIZE };

typedef struct {
    PyObject_HEAD
    PyObject *live;          /* dict: span id -> state list (shared with the Python side) */
    PyObject *clock;         /* () -> this thread's CPU time, ns */
    PyObject *running_loop;  /* asyncio._get_running_loop (gevent: see other_scheduler) */
    PyObject *bounded_type;  /* opentelemetry.attributes.BoundedAttributes */
    PyObject *slow_end;      /* (span, state) -> None: everything the fast path leaves */
    PyObject *write;         /* (span, attributes) -> None: a write it leaves */
    PyObject *on_error;      /* (where) -> None: logs once */
    PyObject *first_ending;  /* None, or called at the first _on_ending */
    Py_ssize_t max_live;
    int span_attributes;
    int pyroscope;
    int ending_seen;
    Py_ssize_t untracked;
    Py_ssize_t write_failures;
} SpanHooks;

static PyObject *str_context, *str_parent, *str_attributes, *str_dict, *str_maxlen,
    *str_max_value_len, *str_lock, *str_acquire, *str_release, *str_cpu_key, *str_source_key,
    *str_thread_clock, *str_gevent_hub_local, *str_get_hub_if_exists;

/* gevent's hub of the calling thread, if gevent is imported and made one here (new reference),
   else None; NULL on error. Its greenlets share the thread as asyncio tasks share a loop's, so
   a span's thread CPU time would include theirs (spans._gevent_hub is the Python twin). */
static PyObject *
other_scheduler(void)
{
    PyObject *hub_local = PyImport_GetModule(str_gevent_hub_local);
    if (hub_local == NULL) {
        return PyErr_Occurred() ? NULL : Py_NewRef(Py_None);
    }
    PyObject *hub = PyObject_CallMethodNoArgs(hub_local, str_get_hub_if_exists);
    Py_DECREF(hub_local);
    if (hub == NULL) {
        PyErr_Clear(); /* an odd gevent: as without it */
        return Py_NewRef(Py_None);
    }
    return hub;
}

static int
hooks_init(SpanHooks *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"live", "clock", "running_loop", "bounded_type", "slow_end", "write",
                             "on_error", "max_live", "span_attributes", "pyroscope", NULL};
    PyObject *live, *clock, *running_loop, *bounded_type, *slow_end, *write, *on_error;
    Py_ssize_t max_live;
    int span_attributes, pyroscope;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!OOOOOOnpp:SpanHooks", kwlist, &PyDict_Type,
                                     &live, &clock, &running_loop, &bounded_type, &slow_end,
                                     &write, &on_error, &max_live, &span_attributes, &pyroscope)) {
        return -1;
    }
    Py_XSETREF(self->live, Py_NewRef(live));
    Py_XSETREF(self->clock, Py_NewRef(clock));
    Py_XSETREF(self->running_loop, Py_NewRef(running_loop));
    Py_XSETREF(self->bounded_type, Py_NewRef(bounded_type));
    Py_XSETREF(self->slow_end, Py_NewRef(slow_end));
    Py_XSETREF(self->write, Py_NewRef(write));
    Py_XSETREF(self->on_error, Py_NewRef(on_error));
    Py_XSETREF(self->first_ending, Py_NewRef(Py_None));
    self->max_live = max_live;
    self->span_attributes = span_attributes;
    self->pyroscope = pyroscope;
    return 0;
}

static int
hooks_traverse(SpanHooks *self, visitproc visit, void *arg)
{
    Py_VISIT(self->live);
    Py_VISIT(self->clock);
    Py_VISIT(self->running_loop);
    Py_VISIT(self->bounded_type);
    Py_VISIT(self->slow_end);
    Py_VISIT(self->write);
    Py_VISIT(self->on_error);
    Py_VISIT(self->first_ending);
    return 0;
}

static int
hooks_clear(SpanHooks *self)
{
    Py_CLEAR(self->live);
    Py_CLEAR(self->clock);
    Py_CLEAR(self->running_loop);
    Py_CLEAR(self->bounded_type);
    Py_CLEAR(self->slow_end);
    Py_CLEAR(self->write);
    Py_CLEAR(self->on_error);
    Py_CLEAR(self->first_ending);
    return 0;
}

static void
hooks_dealloc(SpanHooks *self)
{
    PyObject_GC_UnTrack(self);
    hooks_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* An error in a hook never reaches the SDK: it is cleared and reported (logged once), as the
   Python hooks' `except Exception` does; KeyboardInterrupt and SystemExit go on up. */
static PyObject *
hooks_failed(SpanHooks *self, const char *where)
{
    if (PyErr_Occurred() && !PyErr_ExceptionMatches(PyExc_Exception)) {
        return NULL;
    }
    PyErr_Clear();
    PyObject *name = PyUnicode_FromString(where);
    if (name != NULL) {
        PyObject *result = PyObject_CallOneArg(self->on_error, name);
        Py_XDECREF(result);
        Py_DECREF(name);
    }
    PyErr_Clear();
    Py_RETURN_NONE;
}

/* The span's SpanContext (a tuple: trace id, span id, is_remote, trace flags, ...), or NULL. */
static PyObject *
span_context_of(PyObject *span, PyObject *name)
{
    PyObject *context = PyObject_GetAttr(span, name);
    if (context != NULL && context != Py_None &&
        (!PyTuple_Check(context) || PyTuple_GET_SIZE(context) < 4)) {
        Py_DECREF(context);
        PyErr_SetString(PyExc_TypeError, "not the SDK's SpanContext layout");
        return NULL;
    }
    return context;
}

static PyObject *
hooks_on_start(SpanHooks *self, PyObject *const *args, Py_ssize_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    Py_ssize_t nkw = kwnames != NULL ? PyTuple_GET_SIZE(kwnames) : 0;
    if (nargs < 1 || nargs + nkw > 2) {
        PyErr_SetString(PyExc_TypeError, "on_start(span, parent_context=None)");
        return NULL;
    }
    PyObject *span = args[0];
    PyObject *context = NULL, *parent = NULL, *state = NULL, *span_id = NULL;
    context = span_context_of(span, str_context);
    if (context == NULL || context == Py_None) {
        goto error;
    }
    long flags = PyLong_AsLong(PyTuple_GET_ITEM(context, 3));
    if (flags == -1 && PyErr_Occurred()) {
        goto error;
    }
    if (!(flags & 1)) {
        goto done; /* not sampled */
    }
    if (PyDict_GET_SIZE(self->live) >= self->max_live) {
        self->untracked++; /* spans that never end: stop tracking rather than grow */
        goto done;
    }
    span_id = Py_NewRef(PyTuple_GET_ITEM(context, 1));
    parent = span_context_of(span, str_parent);
    if (parent == NULL) {
        goto error;
    }
    state = PyList_New(S_SIZE);
    if (state == NULL) {
        goto error;
    }
    for (Py_ssize_t i = 0; i < S_SIZE; i++) {
        PyList_SET_ITEM(state, i, Py_NewRef(Py_None));
    }
    int remote = parent != Py_None ? PyObject_IsTrue(PyTuple_GET_ITEM(parent, 2)) : 0;
    if (remote < 0) {
        goto error;
    }
    if (parent == Py_None || remote) {
        PyList_SetItem(state, S_ROOT, Py_NewRef(span_id));
        PyList_SetItem(state, S_SPAN, Py_NewRef(span));
    }
    else {
        PyObject *parent_state = PyDict_GetItemWithError(self->live, PyTuple_GET_ITEM(parent, 1));
        if (parent_state == NULL && PyErr_Occurred()) {
            goto error;
        }
        if (parent_state != NULL) {
            if (!PyList_Check(parent_state) || PyList_GET_SIZE(parent_state) != S_SIZE) {
                PyErr_SetString(PyExc_TypeError, "not a span state");
                goto error;
            }
            PyList_SetItem(state, S_ROOT, Py_NewRef(PyList_GET_ITEM(parent_state, S_ROOT)));
            PyList_SetItem(state, S_PARENT, Py_NewRef(parent_state));
        }
    }
    PyObject *no_thread = PyLong_FromLong(0), *no_start = PyLong_FromLong(-1);
    if (no_thread == NULL || no_start == NULL) {
        Py_XDECREF(no_thread);
        Py_XDECREF(no_start);
        goto error;
    }
    PyList_SetItem(state, S_THREAD, no_thread);
    PyList_SetItem(state, S_CPU_START, no_start);
    if (self->span_attributes) {
        PyObject *loop = PyObject_CallNoArgs(self->running_loop);
        if (loop == Py_None) {
            Py_DECREF(loop);
            loop = other_scheduler();
        }
        if (loop == NULL) {
            goto error;
        }
        if (loop == Py_None) {
            Py_DECREF(loop);
            PyObject *ident = PyLong_FromUnsignedLong(PyThread_get_thread_ident());
            if (ident == NULL) {
                goto error;
            }
            PyList_SetItem(state, S_THREAD, ident);
            PyObject *now = PyObject_CallNoArgs(self->clock);
            if (now == NULL) {
                goto error;
            }
            PyList_SetItem(state, S_CPU_START, now);
        }
        else {
            /* Other tasks (or greenlets) run on this thread while the span waits: its estimate
               comes from the samples taken in it. */
            Py_DECREF(loop);
            PyObject *sampled = PyLong_FromLong(0);
            if (sampled == NULL) {
                goto error;
            }
            PyList_SetItem(state, S_SAMPLED_CPU, sampled);
        }
    }
    if (PyDict_SetItem(self->live, span_id, state) < 0) {
        goto error;
    }
done:
    Py_XDECREF(context);
    Py_XDECREF(parent);
    Py_XDECREF(state);
    Py_XDECREF(span_id);
    Py_RETURN_NONE;
error:
    Py_XDECREF(context);
    Py_XDECREF(parent);
    Py_XDECREF(state);
    Py_XDECREF(span_id);
    return hooks_failed(self, "on_start");
}

/* Writes {cpu, source} into the span's BoundedAttributes the way spans.set_ending_attributes
   does (its _dict, under its _lock, the length limit respected); 0 when it left it to Python. */
static int
write_fast(SpanHooks *self, PyObject *span, PyObject *cpu)
{
    int done = 0;
    PyObject *bounded = NULL, *store = NULL, *maxlen = NULL, *max_value_len = NULL, *lock = NULL;
    bounded = PyObject_GetAttr(span, str_attributes);
    if (bounded == NULL || (PyObject *)Py_TYPE(bounded) != self->bounded_type) {
        goto out;
    }
    store = PyObject_GetAttr(bounded, str_dict);
    maxlen = PyObject_GetAttr(bounded, str_maxlen);
    max_value_len = PyObject_GetAttr(bounded, str_max_value_len);
    lock = PyObject_GetAttr(bounded, str_lock);
    if (store == NULL || maxlen == NULL || max_value_len == NULL || lock == NULL ||
        !PyDict_CheckExact(store) || max_value_len != Py_None) {
        goto out;
    }
    if (maxlen != Py_None) {
        Py_ssize_t limit = PyLong_AsSsize_t(maxlen);
        if (limit == -1 && PyErr_Occurred()) {
            goto out;
        }
        if (PyDict_GET_SIZE(store) + 2 > limit) {
            self->write_failures++; /* full: the application's own attributes stay */
            done = 1;
            goto out;
        }
    }
    PyObject *acquired = PyObject_CallMethodNoArgs(lock, str_acquire);
    if (acquired == NULL) {
        goto out;
    }
    Py_DECREF(acquired);
    int failed = PyDict_SetItem(store, str_cpu_key, cpu) < 0 ||
                 PyDict_SetItem(store, str_source_key, str_thread_clock) < 0;
    /* The lock is released whatever happened; Python must not be called with an error set. */
    PyObject *type = NULL, *value = NULL, *traceback = NULL;
    if (failed) {
        PyErr_Fetch(&type, &value, &traceback);
    }
    PyObject *released = PyObject_CallMethodNoArgs(lock, str_release);
    Py_XDECREF(released);
    if (failed) {
        if (released == NULL) {
            PyErr_Clear();
        }
        PyErr_Restore(type, value, traceback);
    }
    done = !failed && released != NULL ? 1 : -1;
out:
    Py_XDECREF(bounded);
    Py_XDECREF(store);
    Py_XDECREF(maxlen);
    Py_XDECREF(max_value_len);
    Py_XDECREF(lock);
    if (done == 0 && PyErr_Occurred()) {
        if (PyErr_ExceptionMatches(PyExc_Exception)) {
            PyErr_Clear(); /* not the SDK's container after all: Python writes it */
        }
        else {
            done = -1;
        }
    }
    return done;
}

static PyObject *
hooks_on_ending(SpanHooks *self, PyObject *span)
{
    if (!self->ending_seen) {
        self->ending_seen = 1;
        if (self->first_ending != NULL && self->first_ending != Py_None) {
            PyObject *first = self->first_ending; /* (NULL: the member was deleted) */
            self->first_ending = Py_NewRef(Py_None);
            PyObject *result = PyObject_CallNoArgs(first);
            Py_DECREF(first);
            if (result == NULL) {
                return hooks_failed(self, "_on_ending");
            }
            Py_DECREF(result);
        }
    }
    PyObject *context = span_context_of(span, str_context);
    if (context == NULL || context == Py_None) {
        Py_XDECREF(context);
        return hooks_failed(self, "_on_ending");
    }
    PyObject *span_id = PyTuple_GET_ITEM(context, 1);
    PyObject *state = PyDict_GetItemWithError(self->live, span_id);
    if (state == NULL) {
        Py_DECREF(context);
        if (PyErr_Occurred()) {
            return hooks_failed(self, "_on_ending");
        }
        Py_RETURN_NONE; /* not sampled, or started before the processor was attached */
    }
    Py_INCREF(state);
    int removed = PyDict_DelItem(self->live, span_id);
    Py_DECREF(context);
    if (removed < 0 || !PyList_Check(state) || PyList_GET_SIZE(state) != S_SIZE) {
        Py_DECREF(state);
        return hooks_failed(self, "_on_ending");
    }
    PyObject *parent = PyList_GET_ITEM(state, S_PARENT);
    int leaf = PyObject_IsTrue(PyList_GET_ITEM(state, S_LEAF_WALL));
    int root = PyList_GET_ITEM(state, S_SPAN) != Py_None;
    if (leaf < 0) {
        Py_DECREF(state);
        return hooks_failed(self, "_on_ending");
    }
    if (PyList_GET_ITEM(state, S_SAMPLED_CPU) != Py_None ||
        (root && (self->pyroscope || (leaf && self->span_attributes))) ||
        (parent != Py_None &&
         (!PyList_Check(parent) || PyList_GET_SIZE(parent) != S_SIZE ||
          PyList_GET_ITEM(parent, S_SAMPLED_CPU) != Py_None))) {
        /* asyncio estimates, hot functions, Pyroscope ids, a parent's estimate: Python's. */
        PyObject *result = PyObject_CallFunctionObjArgs(self->slow_end, span, state, NULL);
        Py_DECREF(state);
        if (result == NULL) {
            return hooks_failed(self, "_on_ending");
        }
        Py_DECREF(result);
        Py_RETURN_NONE;
    }
    long long start = PyLong_AsLongLong(PyList_GET_ITEM(state, S_CPU_START));
    unsigned long thread = PyLong_AsUnsignedLong(PyList_GET_ITEM(state, S_THREAD));
    Py_DECREF(state);
    if (PyErr_Occurred()) {
        return hooks_failed(self, "_on_ending");
    }
    if (start < 0 || thread != PyThread_get_thread_ident()) {
        Py_RETURN_NONE; /* ended on another thread: no single thread clock covers it */
    }
    PyObject *now = PyObject_CallNoArgs(self->clock);
    if (now == NULL) {
        return hooks_failed(self, "_on_ending");
    }
    long long end = PyLong_AsLongLong(now);
    Py_DECREF(now);
    if (end == -1 && PyErr_Occurred()) {
        return hooks_failed(self, "_on_ending");
    }
    PyObject *cpu = PyLong_FromLongLong(end > start ? end - start : 0);
    if (cpu == NULL) {
        return hooks_failed(self, "_on_ending");
    }
    int written = write_fast(self, span, cpu);
    if (written == 0) {
        PyObject *attributes = PyDict_New();
        PyObject *result = NULL;
        if (attributes != NULL && PyDict_SetItem(attributes, str_cpu_key, cpu) == 0 &&
            PyDict_SetItem(attributes, str_source_key, str_thread_clock) == 0) {
            result = PyObject_CallFunctionObjArgs(self->write, span, attributes, NULL);
        }
        Py_XDECREF(attributes);
        written = result != NULL ? 1 : -1;
        Py_XDECREF(result);
    }
    Py_DECREF(cpu);
    if (written < 0) {
        return hooks_failed(self, "_on_ending");
    }
    Py_RETURN_NONE;
}

static PyMethodDef hooks_methods[] = {
    {"on_start", (PyCFunction)(void (*)(void))hooks_on_start, METH_FASTCALL | METH_KEYWORDS,
     "SpanProcessor.on_start(span, parent_context=None)"},
    {"on_ending", (PyCFunction)hooks_on_ending, METH_O, "SpanProcessor._on_ending(span)"},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef hooks_members[] = {
    {"first_ending", T_OBJECT_EX, offsetof(SpanHooks, first_ending), 0,
     "Called (once) at the first _on_ending; None: nothing to call."},
    {"ending_seen", T_INT, offsetof(SpanHooks, ending_seen), READONLY,
     "Whether the SDK called _on_ending at least once."},
    {"untracked", T_PYSSIZET, offsetof(SpanHooks, untracked), READONLY,
     "Spans not tracked because too many were live."},
    {"write_failures", T_PYSSIZET, offsetof(SpanHooks, write_failures), READONLY,
     "Spans whose attribute container was full."},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject SpanHooksType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "otelprof._native.SpanHooks",
    .tp_basicsize = sizeof(SpanHooks),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The span processor's per-span hooks for the common case (see spans.py).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)hooks_init,
    .tp_dealloc = (destructor)hooks_dealloc,
    .tp_traverse = (traverseproc)hooks_traverse,
    .tp_clear = (inquiry)hooks_clear,
    .tp_methods = hooks_methods,
    .tp_members = hooks_members,
};
#endif

#if PY_VERSION_HEX >= 0x030B0000 && !defined(Py_GIL_DISABLED)
/* The kernel thread id of the thread with this ident, from its thread state (3.11+), for a
   thread threading has no Thread for (started by C code or _thread, gevent's thread pool, the
   main thread gevent re-keyed): its CPU clock is derived from it. Read with the GIL held, as
   thread_handles reads the list. */
static PyObject *
thread_native_id(PyObject *module, PyObject *arg)
{
    unsigned long ident = PyLong_AsUnsignedLong(arg);
    if (ident == (unsigned long)-1 && PyErr_Occurred()) {
        return NULL;
    }
    PyInterpreterState *interp = PyInterpreterState_Get();
    for (PyThreadState *ts = PyInterpreterState_ThreadHead(interp); ts != NULL;
         ts = PyThreadState_Next(ts)) {
        if (ts->thread_id == ident && ts->native_thread_id != 0) {
            return PyLong_FromUnsignedLong(ts->native_thread_id);
        }
    }
    Py_RETURN_NONE;
}
#endif

static PyMethodDef native_methods[] = {
#if PY_VERSION_HEX >= 0x030B0000 && !defined(Py_GIL_DISABLED)
    {"walk_stack", (PyCFunction)(void (*)(void))walk_stack, METH_FASTCALL,
     "walk_stack(frame, max_depth, /)\n--\n\n"
     "A thread's stack as the sampler keys it: ((id(code), lasti, ..., [-1 if truncated]), "
     "[code, ...]), leaf first."},
    {"thread_native_id", thread_native_id, METH_O,
     "thread_native_id(ident, /)\n--\n\n"
     "The kernel thread id of the thread with this ident (None: no such thread)."},
#endif
#ifdef HAVE_WALK_THREAD
    {"walk_thread", (PyCFunction)(void (*)(void))walk_thread, METH_FASTCALL,
     "walk_thread(ident, max_depth, /)\n--\n\n"
     "The running stack of the thread with this ident, keyed as walk_stack keys it, read from "
     "its interpreter frames without making frame objects; None if it runs no Python code."},
    {"thread_handles", thread_handles, METH_NOARGS,
     "thread_handles()\n--\n\n"
     "{ident: ident} for every thread running Python code: what walk_thread takes, as "
     "sys._current_frames() gives what walk_stack takes."},
#endif
#ifdef HAVE_SPAN_CLOCK
    {"span_clock_ns", span_clock_ns, METH_NOARGS,
     "span_clock_ns()\n--\n\n"
     "The calling thread's CPU time, ns: its CPU clock at first, then a perf task-clock event "
     "continuing it (which does not make the scheduler preempt the thread early)."},
    {"span_clock_source", span_clock_source, METH_NOARGS,
     "span_clock_source()\n--\n\n"
     "What span_clock_ns reads on the calling thread now: 'thread' (its CPU clock), 'perf', or "
     "'refused' (the CPU clock: this process may not open perf events)."},
#endif
#ifndef Py_GIL_DISABLED
    {"thread_context", thread_context, METH_O,
     "thread_context(ident, /)\n--\n\n"
     "The contextvars.Context current on the thread with this ident (None: no such thread, or "
     "it never used a context variable)."},
#endif
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef native_module = {
    PyModuleDef_HEAD_INIT,
    "otelprof._native",
    "Optional native helpers of the otelprof agent (pure-Python fallbacks exist for each).",
    0,
    native_methods,
};

#ifndef Py_GIL_DISABLED
static PyObject **const interned[] = {
    &str_context, &str_parent, &str_attributes, &str_dict, &str_maxlen, &str_max_value_len,
    &str_lock, &str_acquire, &str_release, &str_cpu_key, &str_source_key, &str_thread_clock,
    &str_gevent_hub_local, &str_get_hub_if_exists,
};
static const char *const interned_text[] = {
    "_context", "_parent", "_attributes", "_dict", "maxlen", "max_value_len", "_lock",
    "acquire", "release", "otelprof.cpu_time_ns", "otelprof.cpu_time.source", "thread_clock",
    "gevent._hub_local", "get_hub_if_exists",
};
#endif

PyMODINIT_FUNC
PyInit__native(void)
{
    PyObject *module = PyModule_Create(&native_module);
    if (module == NULL) {
        return NULL;
    }
#ifdef HAVE_SPAN_CLOCK
    if (!span_clock_key_made) {
        if (pthread_key_create(&span_clock_key, span_clock_free) != 0 ||
            pthread_atfork(NULL, NULL, span_clock_after_fork) != 0) {
            Py_DECREF(module);
            PyErr_SetString(PyExc_OSError, "otelprof._native: no thread slot for the span clock");
            return NULL;
        }
        span_clock_key_made = 1;
    }
#endif
#ifndef Py_GIL_DISABLED
    for (size_t i = 0; i < sizeof(interned) / sizeof(interned[0]); i++) {
        if (*interned[i] == NULL &&
            (*interned[i] = PyUnicode_InternFromString(interned_text[i])) == NULL) {
            Py_DECREF(module);
            return NULL;
        }
    }
    if (PyType_Ready(&SpanHooksType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    Py_INCREF(&SpanHooksType);
    if (PyModule_AddObject(module, "SpanHooks", (PyObject *)&SpanHooksType) < 0) {
        Py_DECREF(&SpanHooksType);
        Py_DECREF(module);
        return NULL;
    }
#endif
    return module;
}
