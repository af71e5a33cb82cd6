// The built-in Python module `pyport`: the types values map to (Atom,
// ErlangTerm), the Cancelled exception, log(), and the logging handler
// (_install_logging) whose records become log frames.
#pragma once

#include "log_frame.hpp"
#include "py_ref.hpp"

#include <string_view>

namespace pyport {

// What the module calls back into. Reached from a signal handler and from
// any Python thread, hence process-wide; the server installs it once.
struct module_hooks {
  virtual ~module_hooks() = default;
  // Sends [0, "log", {level, message}]. Called with the GIL held, from any thread.
  virtual void log(std::string_view level, std::string_view message) = 0;
  // Sends a Python logging record's frame. Same contract as log().
  virtual void log_record(const log_entry &entry) = 0;
  // True when the request now running has been cancelled.
  virtual bool cancel_pending() = 0;
};
void set_module_hooks(module_hooks *hooks) noexcept;

// Registers `pyport` as a built-in module. PRECONDITION: before Python starts.
void register_pyport_module();

// The module's objects, looked up once after start-up. PRECONDITION: GIL held.
struct pyport_types {
  py_ref module;
  py_ref atom;        // class Atom(str)
  py_ref erlang_term; // class ErlangTerm
  py_ref cancelled;   // class Cancelled(BaseException)
  py_ref on_cancel;   // the signal handler that raises Cancelled
};
pyport_types load_pyport_types(); // throws python_error

} // namespace pyport
