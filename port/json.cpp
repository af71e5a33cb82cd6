#include "json.hpp"

#include "errors.hpp"
#include "msgpack_limits.hpp"

#include <array>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <variant>
#include <vector>

namespace pyport {

namespace {

// ---- JSON text -> a small tree -> msgpack ----

struct jnode;
using jarray = std::vector<jnode>;
using jobject = std::vector<std::pair<std::string, jnode>>;
struct bignum {
  bool negative;
  std::string digits;
};
struct jnode {
  std::variant<std::monostate, bool, std::int64_t, std::uint64_t, bignum, double, std::string,
               jarray, jobject>
      v;
};

class json_parser {
public:
  json_parser(std::string_view text, std::size_t max_depth) : s_(text), max_depth_(max_depth) {}

  jnode parse_document() {
    jnode n = parse_value(0);
    skip_ws();
    if (pos_ != s_.size())
      fail("unexpected text after the value");
    return n;
  }

private:
  [[noreturn]] void fail(const std::string &what) const {
    throw port_error(error_type::bad_frame,
                     "invalid JSON at offset " + std::to_string(pos_) + ": " + what);
  }
  void skip_ws() {
    while (pos_ < s_.size() &&
           (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r'))
      ++pos_;
  }
  bool eat(char c) {
    skip_ws();
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  void expect(char c) {
    if (!eat(c))
      fail(std::string("expected '") + c + "'");
  }
  bool literal(std::string_view word) {
    if (s_.substr(pos_, word.size()) == word) {
      pos_ += word.size();
      return true;
    }
    return false;
  }

  jnode parse_value(std::size_t depth) {
    if (depth > max_depth_)
      fail("nesting deeper than " + std::to_string(max_depth_));
    skip_ws();
    if (pos_ >= s_.size())
      fail("unexpected end of input");
    const char c = s_[pos_];
    if (c == '{')
      return parse_object(depth);
    if (c == '[')
      return parse_array(depth);
    if (c == '"')
      return jnode{parse_string()};
    if (literal("null"))
      return jnode{};
    if (literal("true"))
      return jnode{true};
    if (literal("false"))
      return jnode{false};
    if (c == '-' || (c >= '0' && c <= '9'))
      return parse_number();
    fail(std::string("unexpected character '") + c + "'");
  }

  jnode parse_array(std::size_t depth) {
    ++pos_;
    jarray items;
    if (eat(']'))
      return jnode{std::move(items)};
    do
      items.push_back(parse_value(depth + 1));
    while (eat(','));
    expect(']');
    return jnode{std::move(items)};
  }

  jnode parse_object(std::size_t depth) {
    ++pos_;
    jobject members;
    if (eat('}'))
      return jnode{std::move(members)};
    do {
      skip_ws();
      if (pos_ >= s_.size() || s_[pos_] != '"')
        fail("expected a string key");
      std::string key = parse_string();
      expect(':');
      members.emplace_back(std::move(key), parse_value(depth + 1));
    } while (eat(','));
    expect('}');
    return jnode{std::move(members)};
  }

  unsigned hex4() {
    if (pos_ + 4 > s_.size())
      fail("truncated \\u escape");
    unsigned v = 0;
    for (int i = 0; i < 4; ++i) {
      const char h = s_[pos_++];
      v <<= 4;
      if (h >= '0' && h <= '9')
        v |= static_cast<unsigned>(h - '0');
      else if (h >= 'a' && h <= 'f')
        v |= static_cast<unsigned>(h - 'a' + 10);
      else if (h >= 'A' && h <= 'F')
        v |= static_cast<unsigned>(h - 'A' + 10);
      else
        fail("bad hex digit in \\u escape");
    }
    return v;
  }

  static void put_utf8(std::string &out, unsigned cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  std::string parse_string() {
    ++pos_; // opening quote
    std::string out;
    const std::size_t start = pos_;
    for (;;) {
      if (pos_ >= s_.size())
        fail("unterminated string");
      const char c = s_[pos_++];
      if (c == '"')
        break;
      if (static_cast<unsigned char>(c) < 0x20)
        fail("control character in string");
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= s_.size())
        fail("unterminated escape");
      const char e = s_[pos_++];
      switch (e) {
      case '"':
        out += '"';
        break;
      case '\\':
        out += '\\';
        break;
      case '/':
        out += '/';
        break;
      case 'b':
        out += '\b';
        break;
      case 'f':
        out += '\f';
        break;
      case 'n':
        out += '\n';
        break;
      case 'r':
        out += '\r';
        break;
      case 't':
        out += '\t';
        break;
      case 'u': {
        unsigned cp = hex4();
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          if (!literal("\\u"))
            fail("lone surrogate in \\u escape");
          const unsigned lo = hex4();
          if (lo < 0xDC00 || lo > 0xDFFF)
            fail("lone surrogate in \\u escape");
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
          fail("lone surrogate in \\u escape");
        }
        put_utf8(out, cp);
        break;
      }
      default:
        fail(std::string("bad escape '\\") + e + "'");
      }
    }
    if (!valid_utf8(out)) {
      pos_ = start;
      fail("string is not valid UTF-8");
    }
    return out;
  }

  jnode parse_number() {
    const std::size_t start = pos_;
    bool integral = true;
    if (s_[pos_] == '-')
      ++pos_;
    const std::size_t int_start = pos_;
    while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9')
      ++pos_;
    if (pos_ == int_start)
      fail("digit expected");
    if (s_[int_start] == '0' && pos_ - int_start > 1)
      fail("leading zero in number");
    if (pos_ < s_.size() && s_[pos_] == '.') {
      integral = false;
      ++pos_;
      const std::size_t f = pos_;
      while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9')
        ++pos_;
      if (pos_ == f)
        fail("digit expected after '.'");
    }
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      integral = false;
      ++pos_;
      if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-'))
        ++pos_;
      const std::size_t e = pos_;
      while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9')
        ++pos_;
      if (pos_ == e)
        fail("digit expected in exponent");
    }
    const char *b = s_.data() + start;
    const char *e = s_.data() + pos_;
    if (!integral) {
      double d = 0;
      auto r = std::from_chars(b, e, d);
      if (r.ec != std::errc())
        fail("number out of range");
      return jnode{d};
    }
    if (*b == '-') {
      std::int64_t i = 0;
      if (std::from_chars(b, e, i).ec == std::errc())
        return jnode{i};
    } else {
      std::uint64_t u = 0;
      if (std::from_chars(b, e, u).ec == std::errc())
        return jnode{u};
    }
    return jnode{bignum{*b == '-', std::string(s_.data() + int_start, e)}};
  }

  std::string_view s_;
  std::size_t max_depth_;
  std::size_t pos_ = 0;
};

struct string_sink {
  std::string &s;
  void write(const char *p, std::size_t n) { s.append(p, n); }
};
using json_packer = basic_packer<string_sink>;

void pack_node(const jnode &n, json_packer &pk);

void pack_ext(json_packer &pk, std::int8_t type, std::string_view payload) {
  pk.pack_ext(payload.size(), type);
  pk.pack_ext_body(payload.data(), static_cast<std::uint32_t>(payload.size()));
}

// The $-spellings; false if the object is an ordinary map.
bool pack_special(const jobject &o, json_packer &pk) {
  if (o.size() != 1 || o[0].first.empty() || o[0].first[0] != '$')
    return false;
  const std::string &key = o[0].first;
  const jnode &val = o[0].second;
  const auto *str = std::get_if<std::string>(&val.v);
  const auto *arr = std::get_if<jarray>(&val.v);
  auto bad = [&](const char *what) {
    throw port_error(error_type::bad_frame, "\"" + key + "\" needs " + what);
  };
  if (key == "$atom") {
    if (!str)
      bad("a string");
    pack_ext(pk, ext_atom, *str);
  } else if (key == "$bytes" || key == "$term") {
    if (!str)
      bad("a base64 string");
    std::string raw;
    if (!base64_decode(*str, raw))
      bad("valid base64");
    if (key == "$bytes") {
      pk.pack_bin(static_cast<std::uint32_t>(raw.size()));
      pk.pack_bin_body(raw.data(), static_cast<std::uint32_t>(raw.size()));
    } else {
      pack_ext(pk, ext_term, raw);
    }
  } else if (key == "$tuple") {
    if (!arr)
      bad("an array");
    std::string inner;
    string_sink sink{inner};
    json_packer ipk(sink);
    pack_node(val, ipk);
    pack_ext(pk, ext_tuple, inner);
  } else if (key == "$map") {
    if (!arr)
      bad("an array of [key, value] pairs");
    pk.pack_map(static_cast<std::uint32_t>(arr->size()));
    for (const jnode &pair : *arr) {
      const auto *kv = std::get_if<jarray>(&pair.v);
      if (!kv || kv->size() != 2)
        bad("an array of [key, value] pairs");
      pack_node((*kv)[0], pk);
      pack_node((*kv)[1], pk);
    }
  } else {
    return false;
  }
  return true;
}

void pack_node(const jnode &n, json_packer &pk) {
  std::visit(
      [&](const auto &v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::monostate>) {
          pk.pack_nil();
        } else if constexpr (std::is_same_v<T, bool>) {
          v ? pk.pack_true() : pk.pack_false();
        } else if constexpr (std::is_same_v<T, std::int64_t>) {
          pk.pack_int64(v);
        } else if constexpr (std::is_same_v<T, std::uint64_t>) {
          pk.pack_uint64(v);
        } else if constexpr (std::is_same_v<T, bignum>) {
          std::string payload(1, v.negative ? '\1' : '\0');
          payload += decimal_to_magnitude(v.digits);
          pack_ext(pk, ext_bigint, payload);
        } else if constexpr (std::is_same_v<T, double>) {
          pk.pack_float64(v);
        } else if constexpr (std::is_same_v<T, std::string>) {
          pk.pack_str(static_cast<std::uint32_t>(v.size()));
          pk.pack_str_body(v.data(), static_cast<std::uint32_t>(v.size()));
        } else if constexpr (std::is_same_v<T, jarray>) {
          pk.pack_array(static_cast<std::uint32_t>(v.size()));
          for (const jnode &item : v)
            pack_node(item, pk);
        } else if constexpr (std::is_same_v<T, jobject>) {
          if (pack_special(v, pk))
            return;
          pk.pack_map(static_cast<std::uint32_t>(v.size()));
          for (const auto &[key, value] : v) {
            pk.pack_str(static_cast<std::uint32_t>(key.size()));
            pk.pack_str_body(key.data(), static_cast<std::uint32_t>(key.size()));
            pack_node(value, pk);
          }
        }
      },
      n.v);
}

// ---- msgpack -> JSON text ----

bool is_spelling(std::string_view key) {
  return key == "$atom" || key == "$bytes" || key == "$term" || key == "$tuple" || key == "$map";
}

void put_json_string(std::string &out, std::string_view s) {
  out += '"';
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    switch (c) {
    case '"':
      out += "\\\"";
      break;
    case '\\':
      out += "\\\\";
      break;
    case '\n':
      out += "\\n";
      break;
    case '\r':
      out += "\\r";
      break;
    case '\t':
      out += "\\t";
      break;
    default:
      if (u < 0x20) {
        static constexpr char hex[] = "0123456789abcdef";
        out += "\\u00";
        out += hex[u >> 4];
        out += hex[u & 15];
      } else {
        out += c;
      }
    }
  }
  out += '"';
}

void put_special(std::string &out, std::string_view key, std::string_view string_value) {
  out += "{\"";
  out += key;
  out += "\":";
  put_json_string(out, string_value);
  out += '}';
}

void put_value(std::string &out, const msgpack::object &o);

void put_double(std::string &out, double d) {
  if (std::isnan(d))
    return put_special(out, "$atom", "nan");
  if (std::isinf(d))
    return put_special(out, "$atom", d > 0 ? "infinity" : "neg_infinity");
  std::array<char, 32> buf{};
  auto r = std::to_chars(buf.data(), buf.data() + buf.size(), d);
  std::string_view text(buf.data(), static_cast<std::size_t>(r.ptr - buf.data()));
  out += text;
  if (text.find_first_of(".e") == std::string_view::npos)
    out += ".0"; // keep it a float when read back
}

void put_ext(std::string &out, const msgpack::object_ext &ext) {
  const std::string_view payload(ext.data(), ext.size);
  switch (ext.type()) {
  case ext_atom:
    return put_special(out, "$atom", payload);
  case ext_term:
    return put_special(out, "$term", base64_encode(payload));
  case ext_tuple: {
    msgpack::object_handle h = msgpack::unpack(payload.data(), payload.size());
    if (h.get().type != msgpack::type::ARRAY)
      throw port_error(error_type::bad_frame, "tuple payload is not an array");
    out += "{\"$tuple\":";
    put_value(out, h.get());
    out += '}';
    return;
  }
  case ext_bigint:
    if (payload.empty())
      throw port_error(error_type::bad_frame, "empty big integer");
    if (payload[0] == '\1')
      out += '-';
    out += magnitude_to_decimal(payload.substr(1));
    return;
  default:
    throw port_error(error_type::bad_frame, "unknown ext type " + std::to_string(ext.type()));
  }
}

void put_value(std::string &out, const msgpack::object &o) {
  switch (o.type) {
  case msgpack::type::NIL:
    out += "null";
    return;
  case msgpack::type::BOOLEAN:
    out += o.via.boolean ? "true" : "false";
    return;
  case msgpack::type::POSITIVE_INTEGER:
    out += std::to_string(o.via.u64);
    return;
  case msgpack::type::NEGATIVE_INTEGER:
    out += std::to_string(o.via.i64);
    return;
  case msgpack::type::FLOAT32:
  case msgpack::type::FLOAT64:
    put_double(out, o.via.f64);
    return;
  case msgpack::type::STR: {
    std::string_view s(o.via.str.ptr, o.via.str.size);
    if (valid_utf8(s))
      put_json_string(out, s);
    else
      put_special(out, "$bytes", base64_encode(s));
    return;
  }
  case msgpack::type::BIN:
    put_special(out, "$bytes", base64_encode({o.via.bin.ptr, o.via.bin.size}));
    return;
  case msgpack::type::ARRAY:
    out += '[';
    for (std::uint32_t i = 0; i < o.via.array.size; ++i) {
      if (i)
        out += ',';
      put_value(out, o.via.array.ptr[i]);
    }
    out += ']';
    return;
  case msgpack::type::MAP: {
    const auto &m = o.via.map;
    bool plain = true;
    for (std::uint32_t i = 0; i < m.size && plain; ++i)
      plain = m.ptr[i].key.type == msgpack::type::STR &&
              valid_utf8({m.ptr[i].key.via.str.ptr, m.ptr[i].key.via.str.size});
    // A one-key map whose key is a $-spelling would read back as that
    // spelling: keep it a map.
    if (plain && m.size == 1)
      plain = !is_spelling({m.ptr[0].key.via.str.ptr, m.ptr[0].key.via.str.size});
    out += plain ? "{" : "{\"$map\":[";
    for (std::uint32_t i = 0; i < m.size; ++i) {
      if (i)
        out += ',';
      if (plain) {
        put_json_string(out, {m.ptr[i].key.via.str.ptr, m.ptr[i].key.via.str.size});
        out += ':';
      } else {
        out += '[';
        put_value(out, m.ptr[i].key);
        out += ',';
      }
      put_value(out, m.ptr[i].val);
      if (!plain)
        out += ']';
    }
    out += plain ? "}" : "]}";
    return;
  }
  case msgpack::type::EXT:
    put_ext(out, o.via.ext);
    return;
  }
}

} // namespace

std::string json_to_msgpack(std::string_view text, std::size_t max_depth) {
  jnode root = json_parser(text, max_depth).parse_document();
  std::string out;
  string_sink sink{out};
  json_packer pk(sink);
  pack_node(root, pk);
  return out;
}

std::string msgpack_to_json(const char *data, std::size_t size) {
  std::string out;
  try {
    msgpack::object_handle h = msgpack::unpack(data, size);
    put_value(out, h.get());
  } catch (const msgpack::unpack_error &e) {
    throw port_error(error_type::bad_frame, std::string("not msgpack: ") + e.what());
  }
  return out;
}

std::string base64_encode(std::string_view bytes) {
  static constexpr char alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const auto n = (std::uint32_t(std::uint8_t(bytes[i])) << 16) |
                   (std::uint32_t(std::uint8_t(bytes[i + 1])) << 8) | std::uint8_t(bytes[i + 2]);
    out += alphabet[n >> 18];
    out += alphabet[(n >> 12) & 63];
    out += alphabet[(n >> 6) & 63];
    out += alphabet[n & 63];
  }
  if (i < bytes.size()) {
    std::uint32_t n = std::uint32_t(std::uint8_t(bytes[i])) << 16;
    if (i + 1 < bytes.size())
      n |= std::uint32_t(std::uint8_t(bytes[i + 1])) << 8;
    out += alphabet[n >> 18];
    out += alphabet[(n >> 12) & 63];
    out += i + 1 < bytes.size() ? alphabet[(n >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

bool base64_decode(std::string_view text, std::string &out) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z')
      return c - 'A';
    if (c >= 'a' && c <= 'z')
      return c - 'a' + 26;
    if (c >= '0' && c <= '9')
      return c - '0' + 52;
    if (c == '+')
      return 62;
    if (c == '/')
      return 63;
    return -1;
  };
  while (!text.empty() && text.back() == '=')
    text.remove_suffix(1);
  if (text.size() % 4 == 1)
    return false;
  out.clear();
  std::uint32_t acc = 0;
  int bits = 0;
  for (const char c : text) {
    const int v = value(c);
    if (v < 0)
      return false;
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xFF);
    }
  }
  return true;
}

bool valid_utf8(std::string_view s) noexcept {
  const auto *p = reinterpret_cast<const unsigned char *>(s.data());
  const auto *end = p + s.size();
  while (p < end) {
    const unsigned c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    int n = 0;
    std::uint32_t cp = 0;
    if ((c & 0xE0) == 0xC0) {
      n = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3;
      cp = c & 0x07;
    } else
      return false;
    if (end - p <= n)
      return false;
    for (int i = 1; i <= n; ++i) {
      if ((p[i] & 0xC0) != 0x80)
        return false;
      cp = (cp << 6) | (p[i] & 0x3F);
    }
    static constexpr std::uint32_t min_for[] = {0, 0x80, 0x800, 0x10000};
    if (cp < min_for[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    p += n + 1;
  }
  return true;
}

std::string magnitude_to_decimal(std::string_view magnitude) {
  std::vector<std::uint8_t> mag(magnitude.begin(), magnitude.end());
  std::vector<std::uint32_t> groups; // base 1e9, least significant first
  std::size_t first = 0;
  while (first < mag.size() && mag[first] == 0)
    ++first;
  while (first < mag.size()) {
    std::uint64_t rem = 0;
    for (std::size_t i = first; i < mag.size(); ++i) {
      const std::uint64_t cur = (rem << 8) | mag[i];
      mag[i] = static_cast<std::uint8_t>(cur / 1000000000u);
      rem = cur % 1000000000u;
    }
    groups.push_back(static_cast<std::uint32_t>(rem));
    while (first < mag.size() && mag[first] == 0)
      ++first;
  }
  if (groups.empty())
    return "0";
  std::string out = std::to_string(groups.back());
  for (std::size_t i = groups.size() - 1; i-- > 0;) {
    std::string g = std::to_string(groups[i]);
    out.append(9 - g.size(), '0');
    out += g;
  }
  return out;
}

std::string decimal_to_magnitude(std::string_view digits) {
  std::vector<std::uint8_t> mag; // big-endian
  for (const char d : digits) {
    std::uint32_t carry = static_cast<std::uint32_t>(d - '0');
    for (std::size_t i = mag.size(); i-- > 0;) {
      const std::uint32_t cur = mag[i] * 10u + carry;
      mag[i] = static_cast<std::uint8_t>(cur & 0xFF);
      carry = cur >> 8;
    }
    while (carry) {
      mag.insert(mag.begin(), static_cast<std::uint8_t>(carry & 0xFF));
      carry >>= 8;
    }
  }
  std::size_t first = 0;
  while (first < mag.size() && mag[first] == 0)
    ++first;
  return {mag.begin() + static_cast<std::ptrdiff_t>(first), mag.end()};
}

} // namespace pyport
