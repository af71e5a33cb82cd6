#include "line_splitter.hpp"

namespace pyport {

void line_splitter::emit(std::string_view line, const sink &out) {
  if (!line.empty() && line.back() == '\r')
    line.remove_suffix(1);
  out(line);
}

void line_splitter::feed(std::string_view bytes, const sink &out) {
  while (!bytes.empty()) {
    const std::size_t nl = bytes.find('\n');
    const std::string_view part = bytes.substr(0, nl); // up to the newline, or all
    held_.append(part);
    bytes.remove_prefix(nl == std::string_view::npos ? bytes.size() : nl + 1);
    // A line past the bound goes out in pieces, each ending on a character.
    while (held_.size() > max_) {
      std::size_t cut = max_;
      while (cut > 0 && (static_cast<unsigned char>(held_[cut]) & 0xC0) == 0x80)
        --cut;
      if (cut == 0)
        cut = max_; // not UTF-8 at all: cut anywhere
      emit(std::string_view(held_).substr(0, cut), out);
      held_.erase(0, cut);
    }
    if (nl != std::string_view::npos) {
      emit(held_, out);
      held_.clear();
    }
  }
}

void line_splitter::flush(const sink &out) {
  if (held_.empty())
    return;
  emit(held_, out);
  held_.clear();
}

} // namespace pyport
