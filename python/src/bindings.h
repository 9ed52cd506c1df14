// The parts of the qkv._qkv module, each registered by its own file.
#pragma once

#include <pybind11/pybind11.h>

namespace qkv::py {

void bind_attention(pybind11::module_& m);
void bind_model(pybind11::module_& m);
void bind_explain(pybind11::module_& m);

}  // namespace qkv::py
