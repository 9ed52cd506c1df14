// qkv._qkv: the compiled part of the Python package (python/qkv imports it). Errors of the library
// become Python exceptions: qkv.InvalidArgument (a ValueError and a qkv.Error) for arguments that
// disagree, qkv.Error (a RuntimeError) for everything else the library reports.
#include <pybind11/pybind11.h>

#include "bindings.h"
#include "qkv/error.h"

namespace {

PyObject* g_error = nullptr;
PyObject* g_invalid = nullptr;

}  // namespace

PYBIND11_MODULE(_qkv, m) {
  namespace pyb = pybind11;
  m.doc() = "qkv's compiled core; use the qkv package.";
  g_error = PyErr_NewExceptionWithDoc("qkv.Error", "An error reported by the qkv library.",
                                      PyExc_RuntimeError, nullptr);
  pyb::tuple bases = pyb::make_tuple(pyb::handle(g_error), pyb::handle(PyExc_ValueError));
  g_invalid = PyErr_NewExceptionWithDoc(
      "qkv.InvalidArgument", "Arguments that disagree (shapes, dtypes, options); a ValueError.",
      bases.ptr(), nullptr);
  if (!g_error || !g_invalid) throw pyb::error_already_set();
  m.add_object("Error", pyb::handle(g_error));
  m.add_object("InvalidArgument", pyb::handle(g_invalid));
  pyb::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const qkv::InvalidArgument& e) {
      PyErr_SetString(g_invalid, e.what());
    } catch (const qkv::Error& e) {
      PyErr_SetString(g_error, e.what());
    }
  });
  qkv::py::bind_attention(m);
  qkv::py::bind_model(m);
  qkv::py::bind_explain(m);
}
