/* bayesmm.inference._engine: engine.c built as a Python extension module when bayesmm is
 * installed (setup.py), so that no compiler runs and no library is loaded from a cache folder
 * while a user works. The module's one function hands nutpie the addresses of engine.c's two
 * C functions, which have nutpie's signatures. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "engine.c"

static PyObject *addresses(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    return Py_BuildValue("(KK)", (unsigned long long)(uintptr_t)&bayesmm_engine_logp,
                         (unsigned long long)(uintptr_t)&bayesmm_engine_expand);
}

static PyMethodDef methods[] = {
    {"addresses", addresses, METH_NOARGS,
     "The addresses of the engine's log-density (with gradient) and expansion functions, for nutpie."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef engine_module = {
    PyModuleDef_HEAD_INIT, "_engine",
    "bayesmm's engine: the log-density, gradient and expansion of a model given as a program, in C.", -1,
    methods,
};

/* FIELDS: the digest of the program format engine_fields.h describes (engine.fields_key), so
 * that Python never runs programs of another format through this build. */
PyMODINIT_FUNC PyInit__engine(void) {
    PyObject *module = PyModule_Create(&engine_module);
    if (module != NULL && PyModule_AddStringConstant(module, "FIELDS", ENGINE_FIELDS) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
