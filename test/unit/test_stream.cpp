// streams: chunking by items, bytes and time; credit; errors mid-stream.
#include "helpers.hpp"

using test::contains;

namespace {

std::vector<std::string> stream(std::string_view json, test::fake_context &ctx,
                                pyport::limits lim = {}) {
  pyport::dispatcher d(lim);
  return test::run(d, json, ctx);
}

} // namespace

TEST_CASE("items are chunked by count, then done") {
  test::fake_context ctx;
  pyport::limits lim;
  lim.chunk_items = 3;
  auto frames = stream(R"J([1,"stream_eval",{"code":"range(7)"}])J", ctx, lim);
  CHECK(frames == std::vector<std::string>{R"J([1,"chunk",[0,1,2]])J", R"J([1,"chunk",[3,4,5]])J",
                                           R"J([1,"chunk",[6]])J", R"J([1,"done",null])J"});
  CHECK(ctx.finished == std::vector<std::uint64_t>{1});
}

TEST_CASE("a chunk ends when its bytes reach the bound") {
  test::fake_context ctx;
  pyport::limits lim;
  lim.chunk_bytes = 25;
  auto frames = stream(R"J([1,"stream_eval",{"code":"('x' * 10 for _ in range(5))"}])J", ctx, lim);
  // Each item packs to 11 bytes: a chunk closes at its third item (33 >= 25).
  REQUIRE(frames.size() == 3);
  CHECK(frames[0] == R"J([1,"chunk",["xxxxxxxxxx","xxxxxxxxxx","xxxxxxxxxx"]])J");
  CHECK(frames[1] == R"J([1,"chunk",["xxxxxxxxxx","xxxxxxxxxx"]])J");
}

TEST_CASE("a slow generator streams item by item, flushed at once") {
  test::fake_context ctx;
  pyport::limits lim;
  lim.chunk_time = std::chrono::milliseconds(5);
  auto frames = stream(
      R"J([1,"stream_eval",{"code":"(__import__('time').sleep(0.02) or i for i in range(3))"}])J",
      ctx, lim);
  CHECK(frames == std::vector<std::string>{R"J([1,"chunk",[0]])J", R"J([1,"chunk",[1]])J",
                                           R"J([1,"chunk",[2]])J", R"J([1,"done",null])J"});
  CHECK(ctx.urgent_calls == 3);
}

TEST_CASE("without credit the generator is not advanced") {
  test::fake_context ctx;
  ctx.credit = 2;
  pyport::limits lim;
  lim.chunk_items = 10;
  pyport::dispatcher d(lim);
  test::run(
      d,
      R"J([1,"exec",{"code":"import itertools\nproduced = itertools.count()\ndef gen():\n    for i in produced:\n        yield i\n"}])J",
      ctx);
  auto frames = test::run(d, R"J([2,"stream_eval",{"code":"gen()","window":2}])J", ctx);
  REQUIRE(frames.size() == 3);
  CHECK(contains(frames[0], R"J([2,"chunk",[0,1,2,3,4,5,6,7,8,9]])J"));
  CHECK(contains(frames[2], R"([2,"error",{"type":"cancelled")"));
  // Two chunks of ten, and the one item that waited for credit: 21 produced.
  test::fake_context fresh;
  CHECK(test::run(d, R"J([3,"eval",{"code":"next(produced)"}])J", fresh) ==
        std::vector<std::string>{R"J([3,"ok",21])J"});
}

TEST_CASE("values that are one item") {
  test::fake_context ctx;
  CHECK(stream(R"J([1,"stream_eval",{"code":"42"}])J", ctx) ==
        std::vector<std::string>{R"J([1,"chunk",[42]])J", R"J([1,"done",null])J"});
  CHECK(stream(R"J([2,"stream_eval",{"code":"'abc'"}])J", ctx) ==
        std::vector<std::string>{R"J([2,"chunk",["abc"]])J", R"J([2,"done",null])J"});
  CHECK(stream(R"J([3,"stream_eval",{"code":"{'a': 1}"}])J", ctx) ==
        std::vector<std::string>{R"J([3,"chunk",[{"a":1}]])J", R"J([3,"done",null])J"});
  CHECK(stream(R"J([4,"stream_eval",{"code":"iter([])"}])J", ctx) ==
        std::vector<std::string>{R"J([4,"done",null])J"});
}

TEST_CASE("stream calls a function") {
  test::fake_context ctx;
  CHECK(stream(R"J([1,"stream",{"module":"builtins","function":"range","args":[2,5]}])J", ctx) ==
        std::vector<std::string>{R"J([1,"chunk",[2,3,4]])J", R"J([1,"done",null])J"});
  CHECK(
      stream(R"J([2,"stream_eval",{"code":"(x * k for x in range(3))","locals":{"k":2}}])J", ctx) ==
      std::vector<std::string>{R"J([2,"chunk",[0,2,4]])J", R"J([2,"done",null])J"});
}

TEST_CASE("an exception mid-stream ends it with an error after the chunks sent") {
  test::fake_context ctx;
  pyport::limits lim;
  lim.chunk_items = 2;
  auto frames =
      stream(R"J([1,"stream_eval",{"code":"(10 // (3 - i) for i in range(5))"}])J", ctx, lim);
  REQUIRE(frames.size() == 3);
  CHECK(frames[0] == R"J([1,"chunk",[3,5]])J");
  CHECK(frames[1] == R"J([1,"chunk",[10]])J"); // the partial chunk is sent before the error
  CHECK(contains(frames[2], R"([1,"error",{"type":"ZeroDivisionError")"));
}

TEST_CASE("an unencodable item ends the stream with encode_error") {
  test::fake_context ctx;
  auto frames = stream(R"J([1,"stream_eval",{"code":"iter([1, object()])"}])J", ctx);
  REQUIRE(frames.size() == 2);
  CHECK(frames[0] == R"J([1,"chunk",[1]])J"); // the items before it are delivered
  CHECK(contains(frames[1],
                 R"("type":"encode_error","message":"cannot encode object of type 'object'")"));
}

TEST_CASE("a bad window is a bad request") {
  test::fake_context ctx;
  auto frames = stream(R"J([1,"stream_eval",{"code":"range(3)","window":-1}])J", ctx);
  REQUIRE(frames.size() == 1);
  CHECK(contains(frames[0], "'window' must be an integer"));
}

TEST_CASE("a stream out of credit parks, holding its iterator, and resumes") {
  test::fake_context ctx;
  ctx.parks = true;
  ctx.credit = 1;
  pyport::limits lim;
  lim.chunk_items = 3;
  pyport::dispatcher d(lim);
  test::run(
      d,
      R"J([1,"exec",{"code":"produced = []\ndef gen():\n    for i in range(7):\n        produced.append(i)\n        yield i\n"}])J",
      ctx);
  ctx.finished.clear();
  auto frames = test::run(d, R"J([2,"stream_eval",{"code":"gen()","window":1}])J", ctx);
  CHECK(frames == std::vector<std::string>{R"J([2,"chunk",[0,1,2]])J"});
  REQUIRE(ctx.parked.size() == 1);
  CHECK(ctx.parked[0].id == 2);
  CHECK(ctx.finished.empty()); // no final reply: the request is live
  // One item waits with the parked stream, no more was produced.
  test::fake_context other;
  CHECK(test::run(d, R"J([3,"eval",{"code":"len(produced)"}])J", other) ==
        std::vector<std::string>{R"J([3,"ok",4])J"});
  // Credit for one chunk: the waiting item leads it, then it parks again.
  ctx.credit = 1;
  pyport::out_buffer out;
  pyport::parked_stream s = std::move(ctx.parked[0]);
  ctx.parked.clear();
  d.resume(std::move(s), out, ctx);
  CHECK(test::frames_json(out.bytes()) == std::vector<std::string>{R"J([2,"chunk",[3,4,5]])J"});
  REQUIRE(ctx.parked.size() == 1);
  // Unlimited credit: the rest, then done.
  ctx.credit = UINT64_MAX;
  out.clear();
  s = std::move(ctx.parked[0]);
  ctx.parked.clear();
  d.resume(std::move(s), out, ctx);
  CHECK(test::frames_json(out.bytes()) ==
        std::vector<std::string>{R"J([2,"chunk",[6]])J", R"J([2,"done",null])J"});
  CHECK(ctx.finished == std::vector<std::uint64_t>{2});
}

TEST_CASE("a parked stream resumed after a cancel ends cancelled") {
  test::fake_context ctx;
  ctx.parks = true;
  ctx.credit = 0;
  pyport::dispatcher &d = test::shared_dispatcher();
  auto frames = test::run(d, R"J([4,"stream_eval",{"code":"iter(int, 1)","window":0}])J", ctx);
  CHECK(frames.empty());
  REQUIRE(ctx.parked.size() == 1);
  ctx.cancelled = true;
  pyport::out_buffer out;
  pyport::parked_stream s = std::move(ctx.parked[0]);
  ctx.parked.clear();
  d.resume(std::move(s), out, ctx);
  const auto replies = test::frames_json(out.bytes());
  REQUIRE(replies.size() == 1);
  CHECK(test::contains(replies[0], R"J([4,"error",{"type":"cancelled")J"));
  CHECK(ctx.parked.empty());
}

TEST_CASE("a parked stream keeps its arrays mode across other requests") {
  test::fake_context ctx;
  ctx.parks = true;
  ctx.credit = 1;
  pyport::limits lim;
  lim.chunk_items = 1;
  pyport::dispatcher d(lim);
  auto frames = test::run(
      d,
      R"J([1,"stream_eval",{"code":"(__import__('numpy').arange(1, dtype='int8') for _ in range(3))","window":1,"arrays":"ndarray"}])J",
      ctx);
  const std::string chunk =
      R"J([1,"chunk",[{"$tuple":[{"$atom":"ndarray"},"int8",[1],{"$bytes":"AA=="}]}]])J";
  CHECK(frames == std::vector<std::string>{chunk});
  REQUIRE(ctx.parked.size() == 1);
  // A request in between with the default mode.
  test::fake_context other;
  CHECK(test::run(d, R"J([2,"eval",{"code":"__import__('numpy').arange(2)"}])J", other) ==
        std::vector<std::string>{R"J([2,"ok",[0,1]])J"});
  ctx.credit = UINT64_MAX;
  pyport::out_buffer out;
  pyport::parked_stream s = std::move(ctx.parked[0]);
  ctx.parked.clear();
  d.resume(std::move(s), out, ctx);
  CHECK(test::frames_json(out.bytes()) ==
        std::vector<std::string>{chunk, chunk, R"J([1,"done",null])J"});
}
