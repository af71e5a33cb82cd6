// JSON text -> msgpack. RapidJSON's SAX reader tokenizes (iteratively, so
// nesting never deepens the C++ stack, and with numbers as their text, so
// integers of any length stay exact); the tokens are kept on a flat tape,
// and a second pass packs them, when every container's size is known and
// the $-spellings can be recognised.
#include "json.hpp"

#include "json_tape.hpp"
#include "msgpack_limits.hpp"

#include <rapidjson/error/en.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <new>
#include <unordered_map>
#include <utility>
#include <vector>

namespace pyport {

namespace {

using json_detail::is_spelling;
using json_detail::tape_builder;
using json_detail::token;

// The Id of a line that began as [Id, Op, ...] (json_error's contract),
// from what the tape holds so far.
std::uint64_t id_of(const tape_builder &b) {
  const auto &t = b.tape;
  if (t.size() < 3 || t[0].what != token::kind::array || t[1].what != token::kind::number ||
      !t[1].flag || t[2].what != token::kind::string)
    return 0;
  const std::string_view digits(b.arena.data() + t[1].at, t[1].size);
  std::uint64_t id = 0;
  const auto r = std::from_chars(digits.data(), digits.data() + digits.size(), id);
  if (r.ec != std::errc() || r.ptr != digits.data() + digits.size() || id == 0)
    return 0;
  if (std::string_view(b.arena.data() + t[2].at, t[2].size) == "credit")
    return 0;
  return id;
}

std::string reader_problem(rapidjson::ParseErrorCode code, std::string_view text,
                           std::size_t offset) {
  using namespace rapidjson;
  switch (code) {
  case kParseErrorDocumentEmpty:
    return "unexpected end of input";
  case kParseErrorDocumentRootNotSingular:
    return "unexpected text after the value";
  case kParseErrorArrayMissCommaOrSquareBracket:
    return "expected ']' or ','";
  case kParseErrorObjectMissName:
    return "expected a string key";
  case kParseErrorObjectMissColon:
    return "expected ':'";
  case kParseErrorObjectMissCommaOrCurlyBracket:
    return "expected '}' or ','";
  case kParseErrorStringMissQuotationMark:
    return "unterminated string";
  case kParseErrorStringUnicodeSurrogateInvalid:
    return "lone surrogate in \\u escape";
  case kParseErrorStringUnicodeEscapeInvalidHex:
    return "bad hex digit in \\u escape";
  case kParseErrorStringEscapeInvalid:
    return offset < text.size() && static_cast<unsigned char>(text[offset]) < 0x20
               ? "control character in string"
               : "bad escape";
  case kParseErrorNumberMissFraction:
    return "digit expected after '.'";
  case kParseErrorNumberMissExponent:
    return "digit expected in exponent";
  default:
    return GetParseError_En(code);
  }
}

struct string_sink {
  std::string &s;
  void write(const char *p, std::size_t n) { s.append(p, n); }
};
using json_packer = basic_packer<string_sink>;

// The second pass: packs the tape from index i on, one value at a time.
class tape_packer {
public:
  // out is where pk writes.
  tape_packer(const tape_builder &b, std::string &out) : t_(b.tape), arena_(b.arena), out_(out) {}

  // Packs the value at i; returns the index after it.
  std::size_t pack(std::size_t i, json_packer &pk) {
    const token &t = t_.at(i);
    switch (t.what) {
    case token::kind::null:
      pk.pack_nil();
      return i + 1;
    case token::kind::boolean:
      t.flag ? pk.pack_true() : pk.pack_false();
      return i + 1;
    case token::kind::number:
      pack_number(text(t), t.flag, pk);
      return i + 1;
    case token::kind::string:
      pk.pack_str(t.size);
      pk.pack_str_body(arena_.data() + t.at, t.size);
      return i + 1;
    case token::kind::array:
      pk.pack_array(t.size);
      ++i;
      for (std::uint32_t k = 0; k < t.size; ++k)
        i = pack(i, pk);
      return i;
    case token::kind::object:
      if (t.size == 1 && is_spelling(text(t_.at(i + 1))))
        return pack_special(i, pk);
      pk.pack_map(t.size);
      ++i;
      for (std::uint32_t k = 0; k < 2 * t.size; ++k)
        i = pack(i, pk);
      return i;
    }
    return i + 1;
  }

private:
  [[nodiscard]] std::string_view text(const token &t) const {
    return {arena_.data() + t.at, t.size};
  }

  static void pack_ext(json_packer &pk, std::int8_t type, std::string_view payload) {
    pk.pack_ext(payload.size(), type);
    pk.pack_ext_body(payload.data(), static_cast<std::uint32_t>(payload.size()));
  }

  static void pack_number(std::string_view s, bool integral, json_packer &pk) {
    const char *b = s.data();
    const char *e = b + s.size();
    if (!integral) {
      double d = 0;
      if (std::from_chars(b, e, d).ec != std::errc())
        throw port_error(error_type::bad_frame, "number out of range: " + std::string(s));
      pk.pack_float64(d);
      return;
    }
    if (*b == '-') {
      std::int64_t i = 0;
      if (std::from_chars(b, e, i).ec == std::errc())
        return void(pk.pack_int64(i));
    } else {
      std::uint64_t u = 0;
      if (std::from_chars(b, e, u).ec == std::errc())
        return void(pk.pack_uint64(u));
    }
    const bool negative = *b == '-';
    std::string payload(1, negative ? '\1' : '\0');
    payload += decimal_to_magnitude(s.substr(negative ? 1 : 0));
    pack_ext(pk, ext_bigint, payload);
  }

  // {"$name": value}, the object token at i.
  std::size_t pack_special(std::size_t i, json_packer &pk) {
    const std::string_view key = text(t_.at(i + 1));
    const token &val = t_.at(i + 2);
    const auto bad = [&](const char *what) {
      throw port_error(error_type::bad_frame, "\"" + std::string(key) + "\" needs " + what);
    };
    const bool is_str = val.what == token::kind::string;
    const bool is_arr = val.what == token::kind::array;
    if (key == "$atom") {
      if (!is_str)
        bad("a string");
      pack_ext(pk, ext_atom, text(val));
      return i + 3;
    }
    if (key == "$bytes" || key == "$term" || key == "$handle") {
      std::string raw;
      if (!is_str)
        bad("a base64 string");
      if (!base64_decode(text(val), raw))
        bad("valid base64");
      if (key == "$bytes") {
        pk.pack_bin(static_cast<std::uint32_t>(raw.size()));
        pk.pack_bin_body(raw.data(), static_cast<std::uint32_t>(raw.size()));
      } else if (key == "$handle") {
        pack_ext(pk, ext_handle, raw);
      } else {
        pack_ext(pk, ext_term, raw);
      }
      return i + 3;
    }
    if (key == "$tuple") {
      if (!is_arr)
        bad("an array");
      // Packed in place, behind room for the longest ext header: the header
      // goes at the room's end once the size is known, and the bytes of
      // room it leaves are a gap that finish() removes. Copying the
      // contents instead would copy them once per enclosing tuple.
      const std::size_t start = out_.size();
      const std::size_t gaps_before = gap_bytes_;
      out_.append(max_ext_header, '\0');
      const std::size_t next = pack(i + 2, pk);
      const std::size_t payload = out_.size() - start - max_ext_header - (gap_bytes_ - gaps_before);
      std::string header;
      string_sink hs{header};
      json_packer hp(hs);
      hp.pack_ext(payload, ext_tuple);
      const std::size_t gap = max_ext_header - header.size();
      std::copy(header.begin(), header.end(),
                out_.begin() + static_cast<std::ptrdiff_t>(start + gap));
      if (gap > 0) {
        gaps_.emplace_back(start, gap);
        gap_bytes_ += gap;
      }
      return next;
    }
    // $map
    if (!is_arr)
      bad("an array of [key, value] pairs");
    pk.pack_map(val.size);
    std::size_t at = i + 3;
    for (std::uint32_t k = 0; k < val.size; ++k) {
      const token &pair = t_.at(at);
      if (pair.what != token::kind::array || pair.size != 2)
        bad("an array of [key, value] pairs");
      at = pack(pack(at + 1, pk), pk);
    }
    return at;
  }

public:
  // Removes the gaps the tuples left in out, in one pass.
  void finish() {
    if (gaps_.empty())
      return;
    std::sort(gaps_.begin(), gaps_.end());
    std::size_t to = gaps_[0].first;
    for (std::size_t k = 0; k < gaps_.size(); ++k) {
      const std::size_t from = gaps_[k].first + gaps_[k].second;
      const std::size_t end = k + 1 < gaps_.size() ? gaps_[k + 1].first : out_.size();
      std::copy(out_.begin() + static_cast<std::ptrdiff_t>(from),
                out_.begin() + static_cast<std::ptrdiff_t>(end),
                out_.begin() + static_cast<std::ptrdiff_t>(to));
      to += end - from;
    }
    out_.resize(to);
  }

private:
  static constexpr std::size_t max_ext_header = 6; // ext 32: 0xc9, 4 bytes of size, the type
  const std::vector<token> &t_;
  const std::string &arena_;
  std::string &out_;
  std::vector<std::pair<std::size_t, std::size_t>> gaps_; // (offset, length) in out_
  std::size_t gap_bytes_ = 0;                             // the sum of their lengths
};

// json_to_msgpack's work, on a tape the caller keeps for the Id.
std::string pack_line(std::string_view text, std::size_t max_depth, tape_builder &b) {
  constexpr unsigned flags = rapidjson::kParseIterativeFlag | rapidjson::kParseNumbersAsStringsFlag;
  rapidjson::Reader reader;
  rapidjson::MemoryStream in(text.data(), text.size());
  b.stream = &in;
  rapidjson::ParseResult r = reader.Parse<flags>(in, b);
  long_int_map long_ints;
  std::string stand_in;
  if (r.Code() == rapidjson::kParseErrorNumberTooBig) {
    stand_in = stand_in_long_ints(text, long_ints);
    b = tape_builder(max_depth);
    b.long_ints = &long_ints;
    in = rapidjson::MemoryStream(stand_in.data(), stand_in.size());
    b.stream = &in;
    r = reader.Parse<flags>(in, b);
  }
  const auto fail = [&](error_type t, std::size_t offset, const std::string &problem) {
    throw json_error(t, "invalid JSON at offset " + std::to_string(offset) + ": " + problem,
                     id_of(b), b.too_deep);
  };
  if (r.IsError()) {
    const std::size_t offset = r.Offset();
    if (r.Code() == rapidjson::kParseErrorTermination)
      fail(b.problem_type_, offset, b.problem_);
    // "01": the reader takes the 0 as a whole number, then stumbles.
    if (offset > 0 && offset < text.size() && text[offset] >= '0' && text[offset] <= '9' &&
        text[offset - 1] == '0' &&
        (offset == 1 || text[offset - 2] < '0' || text[offset - 2] > '9'))
      fail(error_type::bad_frame, offset - 1, "leading zero in number");
    if (r.Code() == rapidjson::kParseErrorValueInvalid) {
      // The reader stops inside a misspelt literal (`nul`, `not json`):
      // name where the value began.
      std::size_t start = std::min(offset, text.size());
      while (start > 0 && std::isalpha(static_cast<unsigned char>(text[start - 1])))
        --start;
      fail(error_type::bad_frame, start, "not a JSON value");
    }
    fail(error_type::bad_frame, offset, reader_problem(r.Code(), text, offset));
  }
  // The stream reads a NUL byte as the end of the text.
  if (in.Tell() != text.size())
    fail(error_type::bad_frame, in.Tell(), "unexpected text after the value");
  std::string out;
  string_sink sink{out};
  json_packer pk(sink);
  try {
    tape_packer packer(b, out);
    packer.pack(0, pk);
    packer.finish();
  } catch (const port_error &e) {
    throw json_error(e.type(), e.what(), id_of(b), false);
  }
  return out;
}

} // namespace

std::string json_to_msgpack(std::string_view text, std::size_t max_depth) {
  tape_builder b(max_depth);
  try {
    return pack_line(text, max_depth, b);
  } catch (const std::bad_alloc &) {
    // Out of memory (--memory-limit) is this line's failure, not the
    // port's: answered with its Id when the tape reached it.
    throw json_error(error_type::bad_frame,
                     "out of memory converting a JSON line of " + std::to_string(text.size()) +
                         " bytes",
                     id_of(b), false);
  }
}

} // namespace pyport
