// Test helpers: requests written as JSON, replies read back as JSON, and a
// run_context whose credit and cancellation the test controls.
#pragma once

#include "dispatch.hpp"
#include "json.hpp"
#include "request.hpp"

#include <doctest/doctest.h>

#include <cstring>
#include <string>
#include <vector>

namespace test {

inline pyport::frame make_frame(std::string_view bytes) {
  pyport::frame f{std::make_unique_for_overwrite<char[]>(bytes.size()), bytes.size()};
  std::memcpy(f.data.get(), bytes.data(), bytes.size());
  return f;
}

inline std::string be32(std::uint32_t n) {
  return {static_cast<char>(n >> 24), static_cast<char>(n >> 16), static_cast<char>(n >> 8),
          static_cast<char>(n)};
}

// A request from its --json spelling. REQUIREs that it decodes.
inline pyport::request make_request(std::string_view json) {
  pyport::decoded d = pyport::decode_frame(make_frame(pyport::json_to_msgpack(json)));
  auto *r = std::get_if<pyport::request>(&d);
  if (!r) {
    auto *f = std::get_if<pyport::decode_failure>(&d);
    FAIL("not a request: " << (f ? f->error.message : "a credit"));
  }
  return std::move(*r);
}

// Every frame in a binary out_buffer, as JSON text.
inline std::vector<std::string> frames_json(const std::string &bytes) {
  std::vector<std::string> frames;
  std::size_t at = 0;
  while (at + 4 <= bytes.size()) {
    const auto *p = reinterpret_cast<const unsigned char *>(bytes.data() + at);
    const std::size_t n =
        (std::size_t{p[0]} << 24) | (std::size_t{p[1]} << 16) | (std::size_t{p[2]} << 8) | p[3];
    REQUIRE(at + 4 + n <= bytes.size());
    frames.push_back(pyport::msgpack_to_json(bytes.data() + at + 4, n));
    at += 4 + n;
  }
  REQUIRE(at == bytes.size());
  return frames;
}

struct fake_context final : pyport::run_context {
  std::uint64_t credit = UINT64_MAX; // chunks the "client" grants in all
  bool cancelled = false;
  int ready_calls = 0, urgent_calls = 0;
  std::vector<std::uint64_t> finished;

  bool acquire_credit(std::uint64_t) override {
    if (cancelled || credit == 0)
      return false;
    if (credit != UINT64_MAX)
      --credit;
    return true;
  }
  void frames_ready(pyport::out_buffer &, bool urgent) override {
    ++ready_calls;
    urgent_calls += urgent ? 1 : 0;
  }
  bool finish(std::uint64_t id) override {
    finished.push_back(id);
    return !cancelled;
  }
  // With parks set, a stream out of credit parks here instead of stopping.
  bool parks = false;
  std::vector<pyport::parked_stream> parked;
  using answer = pyport::run_context::credit;
  answer take_credit(std::uint64_t id) override {
    if (parks && !cancelled && credit == 0)
      return answer::park;
    return acquire_credit(id) ? answer::go : answer::stop;
  }
  void park(pyport::parked_stream &&s) override { parked.push_back(std::move(s)); }
};

// The dispatcher most tests share (one interpreter, one namespace).
inline pyport::dispatcher &shared_dispatcher() {
  static pyport::dispatcher d{pyport::limits{}};
  return d;
}

// Runs a request given as JSON and returns its reply frames as JSON.
inline std::vector<std::string> run(pyport::dispatcher &d, std::string_view json,
                                    fake_context &ctx) {
  pyport::request r = make_request(json);
  pyport::out_buffer out;
  d.run(r, out, ctx);
  return frames_json(out.bytes());
}

inline std::vector<std::string> run(std::string_view json) {
  fake_context ctx;
  auto frames = run(shared_dispatcher(), json, ctx);
  CHECK(ctx.finished.size() == 1);
  return frames;
}

// The one reply of a request that is expected to have exactly one.
inline std::string reply(std::string_view json) {
  auto frames = run(json);
  REQUIRE(frames.size() == 1);
  return frames[0];
}

inline bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

} // namespace test
