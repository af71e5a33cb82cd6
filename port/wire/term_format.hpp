// The tags of Erlang's external term format (OTP's "External Term
// Format") that pyport writes (port/values/convert_term.cpp) and reads
// (convert_term_read.cpp): plain values only. Pure.
#pragma once

namespace pyport::term_tag {

inline constexpr unsigned char version = 131; // first byte of every term
inline constexpr unsigned char new_float = 70;
inline constexpr unsigned char small_integer = 97;
inline constexpr unsigned char integer = 98;
inline constexpr unsigned char atom = 100; // Latin-1 name, 16-bit length
inline constexpr unsigned char small_tuple = 104;
inline constexpr unsigned char large_tuple = 105;
inline constexpr unsigned char nil = 106;
inline constexpr unsigned char string = 107; // a list of bytes
inline constexpr unsigned char list = 108;
inline constexpr unsigned char binary = 109;
inline constexpr unsigned char small_big = 110;
inline constexpr unsigned char large_big = 111;
inline constexpr unsigned char small_atom = 115; // Latin-1 name, 8-bit length
inline constexpr unsigned char map = 116;
inline constexpr unsigned char atom_utf8 = 118;
inline constexpr unsigned char small_atom_utf8 = 119;

} // namespace pyport::term_tag
