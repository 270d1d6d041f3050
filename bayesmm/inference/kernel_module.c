/* bayesmm.inference._kernel: kernel.c built as a Python extension module when bayesmm is
 * installed (setup.py), so that no compiler runs and no library is loaded from a cache folder
 * while a user works. The module's one function hands nutpie the addresses of kernel.c's two
 * C functions, which have nutpie's signatures. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "engine.c"
#include "kernel_fields.h"
#include "kernel.c"

static PyObject *addresses(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    return Py_BuildValue("(KK)", (unsigned long long)(uintptr_t)&bayesmm_logp,
                         (unsigned long long)(uintptr_t)&bayesmm_expand);
}

static PyObject *engine_addresses(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    return Py_BuildValue("(KK)", (unsigned long long)(uintptr_t)&bayesmm_engine_logp,
                         (unsigned long long)(uintptr_t)&bayesmm_engine_expand);
}

static PyMethodDef methods[] = {
    {"addresses", addresses, METH_NOARGS,
     "The addresses of the log-density (with gradient) and expansion functions, for nutpie."},
    {"engine_addresses", engine_addresses, METH_NOARGS,
     "The addresses of the engine's log-density (with gradient) and expansion functions, for nutpie."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef kernel_module = {
    PyModuleDef_HEAD_INIT, "_kernel",
    "The integrated-out Gaussian model's log-density, gradient and expansion, in C.", -1, methods,
};

PyMODINIT_FUNC PyInit__kernel(void) { return PyModule_Create(&kernel_module); }
