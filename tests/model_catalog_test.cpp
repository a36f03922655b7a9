// Model catalog: the built-in sleep model, its JSON description and parameter validation.
#include <gtest/gtest.h>

#include "core/model_catalog.hpp"

using namespace reel;

namespace {

::testing::AssertionResult contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "'" << text << "' does not contain '" << part << "'";
}

JobSpec spec(const std::string& model, Json params = Json::object(), std::map<std::string, std::string> inputs = {}) {
  JobSpec s;
  s.model = model;
  s.params = std::move(params);
  s.inputs = std::move(inputs);
  return s;
}

// A model exercising every parameter type, a required parameter and inputs.
ModelInfo painter() {
  using T = ParamSpec::Type;
  ModelInfo m;
  m.name = "painter";
  m.provider = "paint-plugin";
  m.params = {
      {"prompt", T::string, {}, {}, {}, nullptr, "what to paint"},
      {"style", T::string, {}, {}, {"oil", "watercolor"}, "oil", ""},
      {"strength", T::number, 0.0, 1.0, {}, 0.5, ""},
      {"seed", T::integer, {}, {}, {}, 0, ""},
      {"upscale", T::boolean, {}, {}, {}, false, ""},
      {"cap", T::integer, {}, 10.0, {}, 1, ""},
  };
  m.inputs = {{"image", true, "the picture to repaint"}, {"mask", false, ""}};
  return m;
}

class Catalog : public ::testing::Test {
 protected:
  void SetUp() override {
    catalog.add(sleep_model_info());
    catalog.add(painter());
  }
  std::string error_of(const JobSpec& s) {
    try {
      catalog.validate(s);
    } catch (const ParamValidationError& e) {
      return e.what();
    }
    ADD_FAILURE() << "no ParamValidationError for " << s.to_json().dump();
    return "";
  }
  ModelCatalog catalog;
};

}  // namespace

TEST(SleepModel, Description) {
  ModelInfo m = sleep_model_info();
  EXPECT_EQ(m.name, "sleep");
  EXPECT_EQ(m.provider, "builtin");
  EXPECT_EQ(m.description, "Diagnostic model: sleeps in steps, reporting progress; for testing the job path");
  ASSERT_EQ(m.params.size(), 3u);
  EXPECT_EQ(m.params[0].name, "seconds");
  EXPECT_EQ(m.params[0].type, ParamSpec::Type::number);
  EXPECT_EQ(m.params[0].min, 0.0);
  EXPECT_EQ(m.params[0].max, 86400.0);
  EXPECT_EQ(m.params[0].default_value, Json(1));
  EXPECT_EQ(m.params[1].name, "steps");
  EXPECT_EQ(m.params[1].type, ParamSpec::Type::integer);
  EXPECT_EQ(m.params[1].min, 1.0);
  EXPECT_EQ(m.params[1].max, 100000.0);
  EXPECT_EQ(m.params[1].default_value, Json(10));
  EXPECT_EQ(m.params[2].name, "fail_at_step");
  EXPECT_EQ(m.params[2].min, 0.0);
  EXPECT_EQ(m.params[2].max, 100000.0);
  EXPECT_EQ(m.params[2].default_value, Json(0));
  EXPECT_TRUE(contains(m.params[2].help, "0 never fails"));
  EXPECT_TRUE(m.inputs.empty());
}

TEST(SleepModel, ToJson) {
  Json j = sleep_model_info().to_json();
  EXPECT_EQ(j["name"], "sleep");
  EXPECT_EQ(j["provider"], "builtin");
  EXPECT_EQ(j["description"], sleep_model_info().description);
  EXPECT_EQ(j["inputs"], Json::array());
  ASSERT_EQ(j["params"].size(), 3u);
  EXPECT_EQ(j["params"][1], Json::parse(R"({"name": "steps", "type": "integer", "min": 1, "max": 100000,
      "choices": [], "default": 10, "help": "progress steps the sleep is divided into"})"));
  EXPECT_EQ(j["params"][0]["type"], "number");
  EXPECT_EQ(j["params"][0]["max"], 86400);
}

TEST(ModelInfoJson, OptionalFieldsAndInputs) {
  Json j = painter().to_json();
  EXPECT_EQ(j["params"][0]["min"], nullptr);
  EXPECT_EQ(j["params"][0]["max"], nullptr);
  EXPECT_EQ(j["params"][0]["default"], nullptr);
  EXPECT_EQ(j["params"][1]["choices"], Json::parse(R"(["oil", "watercolor"])"));
  EXPECT_EQ(j["params"][2]["max"], 1);
  EXPECT_EQ(j["params"][2]["default"], 0.5);
  EXPECT_EQ(j["params"][4]["type"], "boolean");
  EXPECT_EQ(j["inputs"], Json::parse(R"([{"role": "image", "required": true, "help": "the picture to repaint"},
                                         {"role": "mask", "required": false, "help": ""}])"));
}

TEST(ParamType, Names) {
  EXPECT_STREQ(to_string(ParamSpec::Type::integer), "integer");
  EXPECT_STREQ(to_string(ParamSpec::Type::number), "number");
  EXPECT_STREQ(to_string(ParamSpec::Type::boolean), "boolean");
  EXPECT_STREQ(to_string(ParamSpec::Type::string), "string");
}

TEST_F(Catalog, FindAndList) {
  ASSERT_NE(catalog.find("sleep"), nullptr);
  EXPECT_EQ(catalog.find("sleep")->provider, "builtin");
  EXPECT_EQ(catalog.find("nope"), nullptr);
  EXPECT_EQ(catalog.models().size(), 2u);
}

TEST_F(Catalog, DefaultsAreFilledIn) {
  EXPECT_EQ(catalog.validate(spec("sleep")), Json::parse(R"({"seconds": 1, "steps": 10, "fail_at_step": 0})"));
  EXPECT_EQ(catalog.validate(spec("sleep", {{"seconds", 2.5}})),
            Json::parse(R"({"seconds": 2.5, "steps": 10, "fail_at_step": 0})"));
}

TEST_F(Catalog, AllTypesAccepted) {
  Json out = catalog.validate(spec("painter",
                                   {{"prompt", "a cat"}, {"style", "watercolor"}, {"strength", 1},
                                    {"seed", -7}, {"upscale", true}},
                                   {{"image", "/a.png"}, {"mask", "/m.png"}}));
  EXPECT_EQ(out, Json::parse(R"({"prompt": "a cat", "style": "watercolor", "strength": 1, "seed": -7,
                                 "upscale": true, "cap": 1})"));
}

TEST_F(Catalog, UnknownModel) {
  EXPECT_EQ(error_of(spec("video")), "unknown model 'video'; available: sleep, painter");
  EXPECT_EQ(error_of(spec("slep")), "unknown model 'slep' (did you mean 'sleep'?); available: sleep, painter");
  EXPECT_EQ([] {
    try {
      ModelCatalog().validate(spec("sleep"));
    } catch (const ParamValidationError& e) {
      return std::string(e.what());
    }
    return std::string();
  }(),
            "unknown model 'sleep'; available: none");
}

TEST_F(Catalog, UnknownParameter) {
  EXPECT_EQ(error_of(spec("sleep", {{"secs", 1}})),
            "model 'sleep' has no parameter 'secs' (did you mean 'seconds'?); parameters: seconds, steps, fail_at_step");
  EXPECT_EQ(error_of(spec("sleep", {{"colour", 1}})),
            "model 'sleep' has no parameter 'colour'; parameters: seconds, steps, fail_at_step");
}

TEST_F(Catalog, IntegerMustBeAnInteger) {
  EXPECT_EQ(error_of(spec("sleep", {{"steps", 2.0}})),
            "model 'sleep', parameter 'steps': expected an integer, got a float (2.0)");
  EXPECT_EQ(error_of(spec("sleep", {{"steps", "2"}})),
            "model 'sleep', parameter 'steps': expected an integer, got a string (\"2\")");
}

TEST_F(Catalog, OtherTypeErrors) {
  EXPECT_EQ(error_of(spec("sleep", {{"seconds", "2"}})),
            "model 'sleep', parameter 'seconds': expected a number, got a string (\"2\")");
  EXPECT_EQ(error_of(spec("sleep", {{"seconds", nullptr}})), "model 'sleep', parameter 'seconds': expected a number, got null");
  EXPECT_EQ(error_of(spec("painter", {{"prompt", 3}}, {{"image", "/a"}})),
            "model 'painter', parameter 'prompt': expected a string, got an integer (3)");
  EXPECT_EQ(error_of(spec("painter", {{"prompt", "p"}, {"upscale", 1}}, {{"image", "/a"}})),
            "model 'painter', parameter 'upscale': expected a boolean, got an integer (1)");
  EXPECT_EQ(error_of(spec("painter", {{"prompt", Json::array()}}, {{"image", "/a"}})),
            "model 'painter', parameter 'prompt': expected a string, got an array");
}

TEST_F(Catalog, RangesAreInclusive) {
  EXPECT_NO_THROW(catalog.validate(spec("sleep", {{"seconds", 0}, {"steps", 1}, {"fail_at_step", 0}})));
  EXPECT_NO_THROW(catalog.validate(spec("sleep", {{"seconds", 86400}, {"steps", 100000}, {"fail_at_step", 100000}})));
  EXPECT_EQ(error_of(spec("sleep", {{"seconds", -0.5}})),
            "model 'sleep', parameter 'seconds': must be between 0 and 86400, got -0.5");
  EXPECT_EQ(error_of(spec("sleep", {{"seconds", 86401}})),
            "model 'sleep', parameter 'seconds': must be between 0 and 86400, got 86401");
  EXPECT_EQ(error_of(spec("sleep", {{"steps", 0}})), "model 'sleep', parameter 'steps': must be between 1 and 100000, got 0");
  EXPECT_EQ(error_of(spec("sleep", {{"fail_at_step", 100001}})),
            "model 'sleep', parameter 'fail_at_step': must be between 0 and 100000, got 100001");
  EXPECT_EQ(error_of(spec("painter", {{"prompt", "p"}, {"cap", 11}}, {{"image", "/a"}})),
            "model 'painter', parameter 'cap': must be at most 10, got 11");
}

TEST_F(Catalog, Choices) {
  EXPECT_EQ(error_of(spec("painter", {{"prompt", "p"}, {"style", "oli"}}, {{"image", "/a"}})),
            "model 'painter', parameter 'style': must be one of oil, watercolor; got 'oli' (did you mean 'oil'?)");
}

TEST_F(Catalog, RequiredParameter) {
  EXPECT_EQ(error_of(spec("painter", Json::object(), {{"image", "/a"}})),
            "model 'painter' requires parameter 'prompt' (what to paint)");
}

TEST_F(Catalog, Inputs) {
  EXPECT_EQ(error_of(spec("painter", {{"prompt", "p"}})),
            "model 'painter' requires input 'image' (the picture to repaint)");
  EXPECT_EQ(error_of(spec("painter", {{"prompt", "p"}}, {{"image", "/a"}, {"mask2", "/m"}})),
            "model 'painter' has no input 'mask2' (did you mean 'mask'?); inputs: image, mask");
  EXPECT_EQ(error_of(spec("sleep", Json::object(), {{"image", "/a"}})), "model 'sleep' has no input 'image'; inputs: none");
}

TEST_F(Catalog, ParamsMustBeAnObject) {
  EXPECT_EQ(error_of(spec("sleep", Json::array())), "model 'sleep': params must be an object, got an array");
}

TEST(CatalogAdd, RefusesDuplicatesAndBadDescriptions) {
  ModelCatalog c;
  c.add(sleep_model_info());
  ModelInfo again = sleep_model_info();
  again.provider = "other";
  try {
    c.add(again);
    FAIL() << "no error";
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()), "model 'sleep' from 'other' is already provided by 'builtin'");
  }

  ModelInfo bad = painter();
  bad.params[2].default_value = 2.0;  // outside 0..1
  try {
    c.add(bad);
    FAIL() << "no error";
  } catch (const std::invalid_argument& e) {
    EXPECT_TRUE(contains(e.what(), "model 'painter', parameter 'strength': default: must be between 0 and 1"));
  }

  ModelInfo twice = painter();
  twice.params.push_back(twice.params[0]);
  EXPECT_THROW(c.add(twice), std::invalid_argument);
  EXPECT_EQ(c.models().size(), 1u);
}
