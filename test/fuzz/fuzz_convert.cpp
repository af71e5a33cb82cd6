// libFuzzer: one msgpack value -> Python objects -> msgpack, with the real
// interpreter and converter. Bad input must be a port_error, never a crash;
// Python objects must all be released (LeakSanitizer).
//
// Between decoding and encoding, opaque terms (ext 4) whose payload starts
// with a byte 0xfa..0xfe are swapped for hostile Python objects that run
// code while they are encoded (an ErlangTerm subclass's data property,
// __index__, __float__, a key's __hash__/__eq__) and change the containers
// around them: the encoder must answer an encode_error or a correct value
// (issue 11.7). fuzz_convert.dict spells these terms for the fuzzer.
#include "convert.hpp"
#include "dispatch.hpp"
#include "interpreter.hpp"
#include "py_error.hpp"

namespace {
pyport::dispatcher *shared = nullptr;
const pyport::converter *conv = nullptr;
PyObject *arm = nullptr; // arm(value) -> value with the hostile objects in place
PyObject *disarm = nullptr;

// Payload of a hostile term: kind byte, action byte, then the rest.
// Actions (bits 0..2): 0 clear, 1 grow, 2 shrink, 3 replace an entry,
// 4 raise, 5 disarm; bit 3: act on the outermost container, not the parent.
constexpr const char *hostile_source = R"PY(
import pyport

class Armed:
    on = False

def act(code, parent, root):
    if not Armed.on:
        return
    target = root if code & 8 else parent
    code &= 7
    if code == 4:
        raise ValueError("hostile")
    if code == 5:
        Armed.on = False
    if not isinstance(target, (list, dict, set)):
        return
    if code == 0:
        target.clear()
    elif code == 1:
        if isinstance(target, list):
            target.append(0)
        elif isinstance(target, dict):
            target[len(target) + 10**6] = 0
        else:
            target.add(len(target) + 10**6)
    elif code == 2 and target:
        if isinstance(target, dict):
            target.popitem()
        else:
            target.pop()
    elif code == 3 and target:
        if isinstance(target, list):
            target[0] = "swapped"
        elif isinstance(target, dict):
            del target[next(iter(target))]
            target["swapped"] = 1

class Term(pyport.ErlangTerm):
    __slots__ = ("code", "parent", "root", "payload")
    def __init__(self, code, parent, root, payload):
        self.code, self.parent, self.root, self.payload = code, parent, root, payload
    @property
    def data(self):
        act(self.code, self.parent, self.root)
        return self.payload

class Index:
    def __init__(self, code, parent, root, payload):
        self.code, self.parent, self.root, self.payload = code, parent, root, payload
    def __index__(self):
        act(self.code, self.parent, self.root)
        return len(self.payload) - 3

class Float:
    def __init__(self, code, parent, root, payload):
        self.code, self.parent, self.root, self.payload = code, parent, root, payload
    def __float__(self):
        act(self.code, self.parent, self.root)
        return len(self.payload) / 3

class Key(str):
    def __hash__(self):
        act(self.code, self.parent, self.root)
        return str.__hash__(self)
    def __eq__(self, other):
        act(self.code, self.parent, self.root)
        return str.__eq__(self, other)

def hostile(v, parent, root):
    if type(v) is not pyport.ErlangTerm or not v.data or v.data[0] < 0xfa or v.data[0] > 0xfe:
        return v
    kind, code, payload = v.data[0], v.data[1] if len(v.data) > 1 else 0, v.data[2:]
    if kind == 0xfe:
        return Term(code, parent, root, payload)
    if kind == 0xfd:
        return Index(code, parent, root, payload)
    if kind == 0xfc:
        return Float(code, parent, root, payload)
    if kind == 0xfb:
        k = Key(payload.decode("latin-1"))
        k.code, k.parent, k.root = code, parent, root
        return k
    return {Term(code, parent, root, payload)}

def walk(v, root):
    if isinstance(v, list):
        for i, x in enumerate(v):
            v[i] = hostile(walk(x, root), v, root)
    elif isinstance(v, dict):
        items = list(v.items())
        v.clear()
        for k, x in items:
            key = hostile(walk(k, root), v, root)
            try:
                hash(key)
            except TypeError:
                key = k
            v[key] = hostile(walk(x, root), v, root)
    elif isinstance(v, tuple):
        return tuple(hostile(walk(x, root), root, root) for x in v)
    return v

def arm(v):
    v = hostile(walk(v, v), [v], v)
    Armed.on = True
    return v

def disarm():
    Armed.on = False
)PY";

PyObject *hostile_function(PyObject *globals, const char *name) {
  PyObject *f = PyDict_GetItemString(globals, name); // borrowed
  if (!f)
    std::abort();
  Py_INCREF(f); // kept for the whole run
  return f;
}
} // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
  static pyport::interpreter python({});
  static pyport::dispatcher d{pyport::limits{}};
  static pyport::converter c(d.types());
  shared = &d;
  conv = &c;
  pyport::py_ref globals = pyport::checked(PyDict_New());
  PyDict_SetItemString(globals.get(), "__builtins__", PyEval_GetBuiltins());
  pyport::py_ref done =
      pyport::checked(PyRun_String(hostile_source, Py_file_input, globals.get(), globals.get()));
  arm = hostile_function(globals.get(), "arm");
  disarm = hostile_function(globals.get(), "disarm");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
  const auto *p = reinterpret_cast<const char *>(data);
  try {
    std::size_t off = 0;
    const msgpack::unpack_limit limits(size, size, size, size, size, pyport::max_depth);
    msgpack::object_handle h = msgpack::unpack(p, size, off, nullptr, nullptr, limits);
    pyport::py_ref value = conv->to_python(h.get());
    pyport::py_ref hostile = pyport::checked(PyObject_CallOneArg(arm, value.get()));
    // Disarmed however encoding ends, so the next input starts quiet.
    struct disarm_on_exit {
      ~disarm_on_exit() {
        pyport::py_ref unused = pyport::py_ref::steal(PyObject_CallNoArgs(disarm));
        PyErr_Clear();
      }
    } guard;
    pyport::out_buffer out;
    pyport::packer pk(out);
    conv->to_msgpack(hostile.get(), pk);
  } catch (const pyport::port_error &) {
  } catch (const pyport::python_error &) {
  } catch (const msgpack::unpack_error &) {
  } catch (const std::bad_alloc &) {
  }
  PyErr_Clear();
  return 0;
}
