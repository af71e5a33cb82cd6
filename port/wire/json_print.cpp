// msgpack -> JSON text, written with RapidJSON's Writer (escaping and
// structure); numbers are spelled here, so that a float always reads back
// as a float and an integer of any size exactly.
#include "json.hpp"

#include "msgpack_limits.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <array>
#include <bit>
#include <charconv>
#include <cmath>

namespace pyport {

namespace {

using writer = rapidjson::Writer<rapidjson::StringBuffer>;

// The most bits an integer of max_json_int_digits digits can have: an
// integer of more bits has more digits, and is refused before any
// conversion; one of exactly this many is converted and its digits counted.
constexpr std::size_t max_json_int_bits = [] {
  // ceil(max_json_int_digits * log2(10)), in integers: log2(10) < 3.3219281
  return (max_json_int_digits * 33219281 + 9999999) / 10000000;
}();

bool is_spelling(std::string_view key) {
  return key == "$atom" || key == "$bytes" || key == "$term" || key == "$tuple" || key == "$map" ||
         key == "$handle";
}

void put_string(writer &w, std::string_view s) {
  w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}

void put_special(writer &w, std::string_view key, std::string_view string_value) {
  w.StartObject();
  put_string(w, key);
  put_string(w, string_value);
  w.EndObject();
}

void put_raw_number(writer &w, std::string_view text) {
  w.RawValue(text.data(), text.size(), rapidjson::kNumberType);
}

void put_double(writer &w, double d) {
  if (std::isnan(d))
    return put_special(w, "$atom", "nan");
  if (std::isinf(d))
    return put_special(w, "$atom", d > 0 ? "infinity" : "neg_infinity");
  std::array<char, 40> buf{};
  auto r = std::to_chars(buf.data(), buf.data() + buf.size() - 2, d);
  std::string_view text(buf.data(), static_cast<std::size_t>(r.ptr - buf.data()));
  if (text.find_first_of(".e") == std::string_view::npos) {
    *r.ptr++ = '.'; // keep it a float when read back
    *r.ptr++ = '0';
    text = {buf.data(), static_cast<std::size_t>(r.ptr - buf.data())};
  }
  put_raw_number(w, text);
}

void put_bigint(writer &w, std::string_view payload) {
  if (payload.empty())
    throw port_error(error_type::bad_frame, "empty big integer");
  std::string_view magnitude = payload.substr(1);
  while (!magnitude.empty() && magnitude.front() == '\0')
    magnitude.remove_prefix(1);
  const std::size_t bits =
      magnitude.empty()
          ? 0
          : 8 * (magnitude.size() - 1) + static_cast<std::size_t>(std::bit_width(
                                             static_cast<unsigned char>(magnitude.front())));
  const auto too_long = [&](const std::string &size) {
    throw port_error(error_type::encode_error, "an integer of " + size + " exceeds the limit of " +
                                                   std::to_string(max_json_int_digits) +
                                                   " decimal digits in --json mode (Python's "
                                                   "sys.int_info.default_max_str_digits)");
  };
  if (bits > max_json_int_bits)
    too_long(std::to_string(bits) + " bits");
  std::string digits = magnitude_to_decimal(magnitude);
  if (digits.size() > max_json_int_digits)
    too_long(std::to_string(digits.size()) + " digits");
  if (payload[0] == '\1')
    digits.insert(digits.begin(), '-');
  put_raw_number(w, digits);
}

void put_value(writer &w, const msgpack::object &o, std::size_t depth);

void put_ext(writer &w, const msgpack::object_ext &ext, std::size_t depth) {
  const std::string_view payload(ext.data(), ext.size);
  switch (ext.type()) {
  case ext_atom:
    return put_special(w, "$atom", payload);
  case ext_term:
    return put_special(w, "$term", base64_encode(payload));
  case ext_handle:
    return put_special(w, "$handle", base64_encode(payload));
  case ext_tuple: {
    // Nested tuples count towards one bound, whatever the bytes.
    if (depth > max_depth)
      throw port_error(error_type::bad_frame,
                       "value nested deeper than " + std::to_string(max_depth) + " levels");
    const msgpack::unpack_limit lim(payload.size(), payload.size(), payload.size(), payload.size(),
                                    payload.size(), max_depth - depth + 1);
    msgpack::object_handle h =
        msgpack::unpack(payload.data(), payload.size(), nullptr, nullptr, lim);
    if (h.get().type != msgpack::type::ARRAY)
      throw port_error(error_type::bad_frame, "tuple payload is not an array");
    w.StartObject();
    put_string(w, "$tuple");
    put_value(w, h.get(), depth);
    w.EndObject();
    return;
  }
  case ext_bigint:
    return put_bigint(w, payload);
  default:
    throw port_error(error_type::bad_frame, "unknown ext type " + std::to_string(ext.type()));
  }
}

void put_map(writer &w, const msgpack::object_map &m, std::size_t depth) {
  bool plain = true;
  for (std::uint32_t i = 0; i < m.size && plain; ++i)
    plain = m.ptr[i].key.type == msgpack::type::STR &&
            valid_utf8({m.ptr[i].key.via.str.ptr, m.ptr[i].key.via.str.size});
  // A one-key map whose key is a $-spelling would read back as that
  // spelling: keep it a map.
  if (plain && m.size == 1)
    plain = !is_spelling({m.ptr[0].key.via.str.ptr, m.ptr[0].key.via.str.size});
  w.StartObject();
  if (plain) {
    for (std::uint32_t i = 0; i < m.size; ++i) {
      w.Key(m.ptr[i].key.via.str.ptr, m.ptr[i].key.via.str.size);
      put_value(w, m.ptr[i].val, depth + 1);
    }
    w.EndObject();
    return;
  }
  put_string(w, "$map");
  w.StartArray();
  for (std::uint32_t i = 0; i < m.size; ++i) {
    w.StartArray();
    put_value(w, m.ptr[i].key, depth + 1);
    put_value(w, m.ptr[i].val, depth + 1);
    w.EndArray();
  }
  w.EndArray();
  w.EndObject();
}

void put_value(writer &w, const msgpack::object &o, std::size_t depth) {
  switch (o.type) {
  case msgpack::type::NIL:
    w.Null();
    return;
  case msgpack::type::BOOLEAN:
    w.Bool(o.via.boolean);
    return;
  case msgpack::type::POSITIVE_INTEGER:
    w.Uint64(o.via.u64);
    return;
  case msgpack::type::NEGATIVE_INTEGER:
    w.Int64(o.via.i64);
    return;
  case msgpack::type::FLOAT32:
  case msgpack::type::FLOAT64:
    put_double(w, o.via.f64);
    return;
  case msgpack::type::STR: {
    const std::string_view s(o.via.str.ptr, o.via.str.size);
    if (valid_utf8(s))
      put_string(w, s);
    else
      put_special(w, "$bytes", base64_encode(s));
    return;
  }
  case msgpack::type::BIN:
    put_special(w, "$bytes", base64_encode({o.via.bin.ptr, o.via.bin.size}));
    return;
  case msgpack::type::ARRAY:
    w.StartArray();
    for (std::uint32_t i = 0; i < o.via.array.size; ++i)
      put_value(w, o.via.array.ptr[i], depth + 1);
    w.EndArray();
    return;
  case msgpack::type::MAP:
    put_map(w, o.via.map, depth);
    return;
  case msgpack::type::EXT:
    put_ext(w, o.via.ext, depth);
    return;
  }
}

} // namespace

std::string msgpack_to_json(const char *data, std::size_t size) {
  rapidjson::StringBuffer buf;
  writer w(buf);
  try {
    // The port packs nothing deeper than max_depth; the bound keeps
    // put_value's recursion bounded whatever the bytes.
    const msgpack::unpack_limit lim(size, size, size, size, size, max_depth);
    msgpack::object_handle h = msgpack::unpack(data, size, nullptr, nullptr, lim);
    put_value(w, h.get(), 1);
  } catch (const msgpack::unpack_error &e) {
    throw port_error(error_type::bad_frame, std::string("not msgpack: ") + e.what());
  }
  return {buf.GetString(), buf.GetSize()};
}

} // namespace pyport
