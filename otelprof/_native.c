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

static PyMethodDef native_methods[] = {
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

PyMODINIT_FUNC
PyInit__native(void)
{
    return PyModule_Create(&native_module);
}
