// CheckJsonDepth: the nesting limit is enforced by a scan of the raw text,
// before any DOM exists, and only brackets outside strings count.
#include "common/json_limits.h"

#include <gtest/gtest.h>

#include <string>

#include "common/error.h"
#include "common/json_util.h"

namespace baton {
namespace {

// `depth` arrays open, then closed: "[[...]]".
std::string Arrays(int depth) { return std::string(depth, '[') + std::string(depth, ']'); }

// `depth` objects, each the value of "a" in its parent: {"a":{"a":...{}}}.
std::string Objects(int depth) {
  std::string text;
  for (int i = 1; i < depth; ++i) text += R"({"a":)";
  return text + "{}" + std::string(depth - 1, '}');
}

// The message CheckJsonDepth throws, or "" when it accepts.
std::string Rejection(const std::string& text, int max_depth = kMaxJsonDepth) {
  try {
    CheckJsonDepth(text, max_depth, "body");
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    return e.what();
  }
  return "";
}

TEST(JsonDepthTest, RejectsTenThousandNestedArraysAtTheFirstBracketTooDeep) {
  // Brackets 0..63 are levels 1..64; the one at byte 64 is level 65.
  EXPECT_EQ(Rejection(Arrays(10000)), "body: JSON nested deeper than 64 levels (at byte 64)");
}

TEST(JsonDepthTest, RejectsTenThousandNestedObjectsNamingTheByteOffset) {
  // Each level is the 5 bytes {"a": ; level 65's '{' starts at 64 * 5.
  EXPECT_EQ(Rejection(Objects(10000)), "body: JSON nested deeper than 64 levels (at byte 320)");
}

TEST(JsonDepthTest, AcceptsExactlyTheLimit) {
  EXPECT_EQ(Rejection(Arrays(kMaxJsonDepth)), "");
  EXPECT_EQ(Rejection(Objects(kMaxJsonDepth)), "");
  // ... and the parser then builds it.
  EXPECT_NO_THROW(ParseJson(Objects(kMaxJsonDepth), "body"));
  EXPECT_NE(Rejection(Arrays(kMaxJsonDepth + 1)), "");
}

TEST(JsonDepthTest, DepthIsWhatIsOpenAtOnceNotTheTotal) {
  std::string siblings;
  for (int i = 0; i < 1000; ++i) siblings += (i ? "," : "") + Arrays(kMaxJsonDepth - 1);
  EXPECT_EQ(Rejection("[" + siblings + "]"), "");
}

TEST(JsonDepthTest, BracketsInsideStringsDoNotCount) {
  const std::string brackets(10000, '[');
  EXPECT_EQ(Rejection(R"({"k": ")" + brackets + R"("})"), "");
  // An escaped quote does not end the string; the brackets after it are still inside.
  EXPECT_EQ(Rejection(R"(["a\"[[[[", "{{{{"])", /*max_depth=*/1), "");
  // An escaped backslash does end before the quote: the string closes there.
  EXPECT_EQ(Rejection(R"(["a\\", [[]]])", /*max_depth=*/2), "body: JSON nested deeper than 2 levels (at byte 9)");
}

TEST(JsonDepthTest, MixedArraysObjectsAndStrings) {
  // Depths: { 1, [ 2, { 3, [ 4; the strings hold brackets that must not count.
  const std::string text = R"({"x": [ {"y": "]]}}", "z": [1, "[{", 2]} ]})";
  EXPECT_EQ(Rejection(text, /*max_depth=*/4), "");
  EXPECT_EQ(Rejection(text, /*max_depth=*/3), "body: JSON nested deeper than 3 levels (at byte 27)");
  EXPECT_NO_THROW(ParseJson(text, "body"));
}

TEST(JsonDepthTest, ExtraClosersDoNotBuyDepth) {
  EXPECT_NE(Rejection("]]]]" + Arrays(3), /*max_depth=*/2), "");
}

}  // namespace
}  // namespace baton
