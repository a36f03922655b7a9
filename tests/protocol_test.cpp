// The control protocol's parser and encoders (core/protocol.hpp), including every
// kind of malformed input a client can send.
#include <gtest/gtest.h>

#include "core/protocol.hpp"

namespace reel {
namespace {

std::string error_code_of(std::string_view line) {
  auto p = parse_request(line);
  EXPECT_FALSE(p.request.has_value()) << line;
  return p.error ? p.error->code : "";
}

TEST(Protocol, ParsesAWellFormedRequest) {
  auto p = parse_request(R"({"id":7,"method":"show","params":{"id":"abc"}})");
  ASSERT_TRUE(p.request);
  EXPECT_EQ(p.request->id, 7);
  EXPECT_EQ(p.request->method, "show");
  EXPECT_EQ(p.request->params["id"], "abc");
}

TEST(Protocol, IdMayBeAStringOrAbsentAndParamsMayBeOmitted) {
  auto p = parse_request(R"({"id":"x-1","method":"status"})");
  ASSERT_TRUE(p.request);
  EXPECT_EQ(p.request->id, "x-1");
  EXPECT_TRUE(p.request->params.is_object());
  auto q = parse_request(R"({"method":"status","params":null})");
  ASSERT_TRUE(q.request);
  EXPECT_TRUE(q.request->id.is_null());
}

TEST(Protocol, RejectsMalformedInput) {
  EXPECT_EQ(error_code_of(""), err::parse_error);
  EXPECT_EQ(error_code_of("{"), err::parse_error);
  EXPECT_EQ(error_code_of("not json"), err::parse_error);
  EXPECT_EQ(error_code_of("{\"method\":\"x\"} trailing"), err::parse_error);
  EXPECT_EQ(error_code_of("[1,2,3]"), err::bad_request);
  EXPECT_EQ(error_code_of("42"), err::bad_request);
  EXPECT_EQ(error_code_of("{}"), err::bad_request);
  EXPECT_EQ(error_code_of(R"({"method":""})"), err::bad_request);
  EXPECT_EQ(error_code_of(R"({"method":5})"), err::bad_request);
  EXPECT_EQ(error_code_of(R"({"method":"x","params":[1]})"), err::bad_request);
  EXPECT_EQ(error_code_of(R"({"id":{"a":1},"method":"x"})"), err::bad_request);
  EXPECT_EQ(error_code_of(R"({"id":[1],"method":"x"})"), err::bad_request);
}

TEST(Protocol, ErrorsKeepTheRequestIdWhenItCouldBeRead) {
  auto p = parse_request(R"({"id":9,"method":7})");
  ASSERT_TRUE(p.error);
  EXPECT_EQ(p.error->id, 9);
}

TEST(Protocol, SurvivesHostileBytes) {
  std::string nul_inside = std::string("{\"method\":\"a") + '\0' + "b\"}";
  EXPECT_FALSE(parse_request(nul_inside).request && parse_request(nul_inside).request->method == "a");
  std::string invalid_utf8 = "{\"method\":\"\xff\xfe\"}";
  EXPECT_EQ(error_code_of(invalid_utf8), err::parse_error);
  std::string deep(10000, '[');
  EXPECT_FALSE(parse_request(deep).request);
}

TEST(Protocol, EncodersWriteOneLineEach) {
  for (const auto& line : {encode_request(1, "status", Json::object()), encode_result(1, Json{{"a", "b\nc"}}),
                           encode_error(1, err::not_found, "no\njob"), encode_event(1, Json{{"seq", 1}})}) {
    ASSERT_FALSE(line.empty());
    EXPECT_EQ(line.back(), '\n');
    EXPECT_EQ(line.find('\n'), line.size() - 1) << "embedded newline in " << line;
  }
}

TEST(Protocol, EncodingInvalidUtf8DoesNotThrow) {
  Json bad = std::string("\xff\xfe");
  EXPECT_NO_THROW(encode_result(1, Json{{"x", bad}}));
}

TEST(Protocol, DecodesRepliesOfEveryKind) {
  auto r = decode_reply(encode_result(3, Json{{"x", 1}}));
  EXPECT_EQ(r.kind, Reply::Kind::result);
  EXPECT_EQ(r.id, 3);
  EXPECT_EQ(r.body["x"], 1);
  auto e = decode_reply(encode_error(4, err::conflict, "dup"));
  EXPECT_EQ(e.kind, Reply::Kind::error);
  EXPECT_EQ(e.body["code"], err::conflict);
  EXPECT_EQ(e.body["message"], "dup");
  auto v = decode_reply(encode_event(5, Json{{"seq", 2}}));
  EXPECT_EQ(v.kind, Reply::Kind::event);
  EXPECT_EQ(v.body["seq"], 2);
  EXPECT_THROW(decode_reply("garbage"), std::runtime_error);
  EXPECT_THROW(decode_reply(R"({"id":1})"), std::runtime_error);
}

TEST(Protocol, TypedParamAccessNamesTheField) {
  Json p = {{"id", "abc"}, {"n", 5}, {"s", 3}, {"big", 1e30}};
  EXPECT_EQ(require_string(p, "id"), "abc");
  EXPECT_EQ(optional_int(p, "n", 0, 10), 5);
  EXPECT_FALSE(optional_int(p, "missing", 0, 10).has_value());
  try {
    optional_int(p, "n", 6, 10);
    FAIL();
  } catch (const ParamError& e) {
    EXPECT_NE(std::string(e.what()).find("'n'"), std::string::npos);
  }
  EXPECT_THROW(require_string(p, "n"), ParamError);
  EXPECT_THROW(require_string(p, "missing"), ParamError);
  EXPECT_THROW(optional_string(p, "s"), ParamError);
  EXPECT_THROW(optional_int(p, "big", 0, 10), ParamError);
  Json huge = {{"u", 18446744073709551615ULL}};
  EXPECT_THROW(optional_int(huge, "u", 0, 10), ParamError) << "unsigned overflow must not wrap into range";
}

}  // namespace
}  // namespace reel
