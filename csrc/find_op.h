// A typed handle to one of the neuroflux:: operators, looked up in the dispatcher (each op's
// front end caches it in a function-local static).
#pragma once

#include <ATen/core/dispatch/Dispatcher.h>

namespace neuroflux::ops::detail {

template <typename Signature>
c10::TypedOperatorHandle<Signature> find_op(const char* name, const char* overload = "") {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, overload).typed<Signature>();
}

}  // namespace neuroflux::ops::detail
