// The first pass of the --json reader (json.cpp): RapidJSON's SAX events
// collected on a flat tape of tokens, with the bounds that apply while
// reading. Internal to json.cpp; a header of its own for its size.
#pragma once

#include "json.hpp"
#include "msgpack_limits.hpp"

#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pyport::json_detail {

struct token {
  enum class kind : std::uint8_t { null, boolean, number, string, array, object } what;
  bool flag = false;      // boolean: its value; number: integral
  std::uint32_t size = 0; // string, number: length in the arena; array, object: elements
  std::size_t at = 0;     // string, number: offset in the arena
};

// The keys of {"$name": value} (PROTOCOL.md section 4).
inline bool is_spelling(std::string_view key) {
  return key == "$atom" || key == "$bytes" || key == "$term" || key == "$tuple" || key == "$map" ||
         key == "$handle";
}

// Collects tokens. Returns false (stopping the reader) past the JSON depth
// bound or max_depth frame levels (PROTOCOL.md section 3), or at an integer
// with too many digits, with the reason in problem.
class tape_builder {
public:
  explicit tape_builder(std::size_t max_depth) : max_depth_(max_depth) {}

  bool Null() { return push({token::kind::null}); }
  bool Bool(bool b) { return push({token::kind::boolean, b}); }
  // Numbers arrive as text (kParseNumbersAsStringsFlag): these four are
  // never called.
  bool Int(int) { return false; }
  bool Uint(unsigned) { return false; }
  bool Int64(std::int64_t) { return false; }
  bool Uint64(std::uint64_t) { return false; }
  bool Double(double) { return false; }
  bool RawNumber(const char *s, rapidjson::SizeType n, bool) {
    std::string_view text(s, n);
    if (long_ints && !long_ints->empty()) {
      // The stream stands right after the number: where it began tells
      // whether it is a stand-in (see json_to_msgpack).
      const auto real = long_ints->find(stream->Tell() - n);
      if (real != long_ints->end())
        text = real->second;
    }
    const bool integral = text.find_first_of(".eE") == std::string_view::npos;
    if (integral) {
      const std::size_t digits = text.size() - (text[0] == '-' ? 1 : 0);
      if (digits > max_json_int_digits) {
        problem_ = "an integer of " + std::to_string(digits) + " digits exceeds the limit of " +
                   std::to_string(max_json_int_digits) +
                   " digits (Python's sys.int_info.default_max_str_digits)";
        problem_type_ = error_type::bad_request;
        return false;
      }
    }
    return push(text_token(token::kind::number, text, integral));
  }
  bool String(const char *s, rapidjson::SizeType n, bool) {
    const std::string_view text(s, n);
    if (!valid_utf8(text)) { // a lone low surrogate escape gets past the reader
      problem_ = "string is not valid UTF-8 (a lone surrogate in a \\u escape?)";
      return false;
    }
    return push(text_token(token::kind::string, text, false));
  }
  bool Key(const char *s, rapidjson::SizeType n, bool copy) {
    // An object's first key: a $-spelling's array is no level of its own.
    if (!open_.empty() && open_.back() + 1 == tape.size() && is_spelling({s, n}))
      roles_.back() = std::string_view(s, n) == "$map" ? role::map_spelling : role::spelling;
    return String(s, n, copy);
  }
  bool StartArray() { return open(token::kind::array); }
  bool EndArray(rapidjson::SizeType n) { return close(n); }
  bool StartObject() { return open(token::kind::object); }
  bool EndObject(rapidjson::SizeType n) { return close(n); }

  std::vector<token> tape;
  std::string arena;
  // Integers too long for the reader, by offset, and where it reads.
  const long_int_map *long_ints = nullptr;
  const rapidjson::MemoryStream *stream = nullptr;
  std::string problem_;
  error_type problem_type_ = error_type::bad_frame;
  bool too_deep = false;

private:
  token text_token(token::kind k, std::string_view text, bool flag) {
    token t{k, flag, static_cast<std::uint32_t>(text.size()), arena.size()};
    arena.append(text);
    return t;
  }
  bool push(token t) {
    tape.push_back(t);
    return true;
  }
  bool open(token::kind k) {
    if (open_.size() >= max_depth_) {
      problem_ = "nesting deeper than " + std::to_string(max_depth_) + " levels";
      too_deep = true;
      return false;
    }
    // The frame's levels (PROTOCOL.md section 3), bounded while reading:
    // packing copies a $-spelling's contents once per enclosing one.
    const role r = role_of(k);
    if (r == role::level && ++frame_levels_ > pyport::max_depth) {
      problem_ = "nesting deeper than " + std::to_string(pyport::max_depth) + " frame levels";
      too_deep = true;
      return false;
    }
    open_.push_back(tape.size());
    roles_.push_back(r);
    return push({k});
  }
  bool close(rapidjson::SizeType n) {
    tape[open_.back()].size = n;
    open_.pop_back();
    if (roles_.back() != role::spelling_array && roles_.back() != role::map_pairs)
      --frame_levels_;
    roles_.pop_back();
    return true;
  }
  std::size_t max_depth_;
  std::vector<std::size_t> open_; // tape indexes of the open containers
  // What each open container is in the frame. A spelling's array, a $map's
  // array of pairs and those pairs are no levels; the rest are one each (a
  // map whose first key is a $-spelling among more keys is counted one
  // short: the bound only caps the work, decode_frame's is exact).
  enum class role : std::uint8_t {
    level,          // an array or a map
    spelling,       // {"$tuple" | "$atom" | ...: value}: one level
    map_spelling,   // {"$map": pairs}: one level
    spelling_array, // the array of a spelling
    map_pairs,      // the array of a $map's pairs
  };
  [[nodiscard]] role role_of(token::kind k) const {
    if (k != token::kind::array || roles_.empty())
      return role::level;
    switch (roles_.back()) {
    case role::spelling:
      return role::spelling_array;
    case role::map_spelling:
      return role::map_pairs;
    case role::map_pairs:
      return role::spelling_array; // a [Key, Value] pair
    default:
      return role::level;
    }
  }
  std::vector<role> roles_;
  std::size_t frame_levels_ = 0;
};

} // namespace pyport::json_detail
