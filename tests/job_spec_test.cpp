// Job specs from TOML files, JSON files, the wire and reelctl's key=value flags.
#include <filesystem>
#include <regex>

#include <gtest/gtest.h>

#include "core/job_spec.hpp"
#include "support/test_support.hpp"

using namespace reel;
using reel::test::TempDir;
using reel::test::write_file;

namespace {

::testing::AssertionResult contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "'" << text << "' does not contain '" << part << "'";
}

std::string error_of(const std::string& text, const std::string& name, const std::string& base = "") {
  try {
    parse_job_spec(text, name, base);
  } catch (const JobSpecError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no JobSpecError for " << name << ":\n" << text;
  return "";
}

std::string wire_error(const Json& j) {
  try {
    job_spec_from_json(j, "submit");
  } catch (const JobSpecError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no JobSpecError for " << j.dump();
  return "";
}

std::string file_error(const std::string& path) {
  try {
    load_job_spec_file(path);
  } catch (const JobSpecError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no JobSpecError for " << path;
  return "";
}

}  // namespace

// ---- happy paths ----

TEST(JobSpecToml, AllFields) {
  JobSpec s = parse_job_spec(R"(
model = "sleep"
priority = -5
max_attempts = 4
idempotency_key = "night-run-1"
source = "watch:/in"

[params]
seconds = 2.5
steps = 3
label = "hi"
fast = true
sizes = [1, 2, 3]
nested = { a = 1, b = ["x"] }

[inputs]
image = "cat.png"
audio = "../sounds/a.wav"
mask = "/abs/mask.png"
ref = "https://example.com/r.png"
)",
                             "job.toml", "/jobs/in");
  EXPECT_EQ(s.model, "sleep");
  EXPECT_EQ(s.priority, -5);
  EXPECT_EQ(s.max_attempts, 4);
  EXPECT_EQ(s.idempotency_key, "night-run-1");
  EXPECT_EQ(s.source, "watch:/in");
  EXPECT_EQ(s.params, Json::parse(R"({"seconds": 2.5, "steps": 3, "label": "hi", "fast": true,
                                      "sizes": [1, 2, 3], "nested": {"a": 1, "b": ["x"]}})"));
  EXPECT_TRUE(s.params["steps"].is_number_integer());
  EXPECT_EQ(s.inputs.at("image"), "/jobs/in/cat.png");
  EXPECT_EQ(s.inputs.at("audio"), "/jobs/sounds/a.wav");
  EXPECT_EQ(s.inputs.at("mask"), "/abs/mask.png");
  EXPECT_EQ(s.inputs.at("ref"), "https://example.com/r.png");
}

TEST(JobSpecToml, DefaultsForOptionalFields) {
  JobSpec s = parse_job_spec("model = \"sleep\"\n", "job.toml", "");
  EXPECT_EQ(s.priority, 0);
  EXPECT_EQ(s.max_attempts, 0);  // 0: the daemon's default
  EXPECT_EQ(s.idempotency_key, "");
  EXPECT_EQ(s.source, "ctl");
  EXPECT_EQ(s.params, Json::object());
  EXPECT_TRUE(s.inputs.empty());
}

TEST(JobSpecToml, RelativeInputsKeptWithoutBaseDir) {
  JobSpec s = parse_job_spec("model = \"m\"\n[inputs]\nimage = \"cat.png\"\n", "job.toml", "");
  EXPECT_EQ(s.inputs.at("image"), "cat.png");
}

TEST(JobSpecJson, AllFields) {
  JobSpec s = parse_job_spec(R"({"model": "sleep", "priority": 1000, "max_attempts": 1,
    "idempotency_key": "k", "source": "api", "params": {"seconds": 2, "x": null},
    "inputs": {"image": "img/cat.png"}})",
                             "job.json", "/base");
  EXPECT_EQ(s.model, "sleep");
  EXPECT_EQ(s.priority, 1000);
  EXPECT_EQ(s.max_attempts, 1);
  EXPECT_EQ(s.idempotency_key, "k");
  EXPECT_EQ(s.source, "api");
  EXPECT_EQ(s.params, Json::parse(R"({"seconds": 2, "x": null})"));
  EXPECT_EQ(s.inputs.at("image"), "/base/img/cat.png");
}

TEST(JobSpec, FormatIsSniffedWithoutAKnownExtension) {
  EXPECT_EQ(parse_job_spec("  \n{\"model\": \"a\"}", "-", "").model, "a");
  EXPECT_EQ(parse_job_spec("model = \"b\"", "spec.txt", "").model, "b");
  // The extension wins over the content.
  EXPECT_TRUE(contains(error_of("{\"model\": \"a\"}", "job.toml"), "job.toml:1:"));
}

TEST(JobSpecFile, LoadsAndResolvesAgainstItsFolder) {
  TempDir d;
  std::filesystem::create_directories(d.file("in"));
  write_file(d.file("in/job.toml"), "model = \"sleep\"\n[inputs]\nimage = \"cat.png\"\n");
  JobSpec s = load_job_spec_file(d.file("in/job.toml"));
  EXPECT_EQ(s.model, "sleep");
  EXPECT_EQ(s.inputs.at("image"), d.file("in/cat.png"));

  write_file(d.file("in/job.json"), "{\"model\": \"sleep\", \"inputs\": {\"a\": \"x/y.wav\"}}");
  EXPECT_EQ(load_job_spec_file(d.file("in/job.json")).inputs.at("a"), d.file("in/x/y.wav"));
}

TEST(JobSpecFile, ErrorsNameThePath) {
  TempDir d;
  write_file(d.file("job.toml"), "model = \"sleep\"\npriority = \"high\"\n");
  EXPECT_EQ(file_error(d.file("job.toml")), d.file("job.toml") + ":2: priority: expected an integer, got a string (\"high\")");
}

TEST(JobSpecFile, MissingFile) {
  TempDir d;
  EXPECT_EQ(file_error(d.file("none.toml")),
            "cannot read job file '" + d.file("none.toml") + "': No such file or directory");
}

TEST(JobSpecFile, Directory) {
  TempDir d;
  EXPECT_EQ(file_error(d.path()), "cannot read job file '" + d.path() + "': Is a directory");
}

TEST(JobSpecFile, TooLarge) {
  TempDir d;
  write_file(d.file("big.toml"), "model = \"sleep\"\n" + std::string(1 << 20, '#'));
  EXPECT_EQ(file_error(d.file("big.toml")),
            "cannot read job file '" + d.file("big.toml") + "': larger than the limit of 1048576 bytes");
  // Exactly at the limit is fine.
  std::string head = "model = \"sleep\"\n#";
  write_file(d.file("max.toml"), head + std::string((1 << 20) - head.size(), 'x'));
  EXPECT_EQ(load_job_spec_file(d.file("max.toml")).model, "sleep");
}

// ---- TOML errors ----

TEST(JobSpecToml, UnknownFieldWithLineAndSuggestion) {
  EXPECT_TRUE(contains(error_of("priority = 1\n\nmodle = \"sleep\"\n", "job.toml"),
                       "job.toml:3: unknown field 'modle' (did you mean 'model'?)"));
  std::string e = error_of("model = \"x\"\ncolour = 1\n", "job.toml");
  EXPECT_TRUE(contains(e, "job.toml:2: unknown field 'colour'; fields: model, priority"));
}

TEST(JobSpecToml, MissingModel) {
  EXPECT_EQ(error_of("priority = 1\n", "job.toml"), "job.toml: missing required field 'model'");
  EXPECT_EQ(error_of("model = \"\"\n", "job.toml"), "job.toml:1: model: must not be empty");
}

TEST(JobSpecToml, WrongTypesNameFieldAndLine) {
  EXPECT_EQ(error_of("model = 3\n", "job.toml"), "job.toml:1: model: expected a string, got an integer (3)");
  EXPECT_EQ(error_of("model = \"m\"\npriority = 1.5\n", "job.toml"),
            "job.toml:2: priority: expected an integer, got a float (1.5)");
  EXPECT_EQ(error_of("model = \"m\"\nmax_attempts = true\n", "job.toml"),
            "job.toml:2: max_attempts: expected an integer, got a boolean (true)");
  EXPECT_EQ(error_of("model = \"m\"\nidempotency_key = 7\n", "job.toml"),
            "job.toml:2: idempotency_key: expected a string, got an integer (7)");
  EXPECT_EQ(error_of("model = \"m\"\nsource = []\n", "job.toml"), "job.toml:2: source: expected a string, got an array");
  EXPECT_EQ(error_of("model = \"m\"\nparams = 5\n", "job.toml"), "job.toml:2: params: expected a table, got an integer (5)");
  EXPECT_EQ(error_of("model = \"m\"\ninputs = \"a.png\"\n", "job.toml"),
            "job.toml:2: inputs: expected a table, got a string (\"a.png\")");
}

TEST(JobSpecToml, OutOfRange) {
  EXPECT_EQ(error_of("model = \"m\"\npriority = 1001\n", "job.toml"),
            "job.toml:2: priority: must be between -1000 and 1000, got 1001");
  EXPECT_EQ(error_of("model = \"m\"\npriority = -1001\n", "job.toml"),
            "job.toml:2: priority: must be between -1000 and 1000, got -1001");
  EXPECT_EQ(error_of("model = \"m\"\nmax_attempts = 0\n", "job.toml"),
            "job.toml:2: max_attempts: must be between 1 and 100, got 0");
  EXPECT_EQ(error_of("model = \"m\"\nmax_attempts = 101\n", "job.toml"),
            "job.toml:2: max_attempts: must be between 1 and 100, got 101");
  EXPECT_EQ(error_of("model = \"m\"\nidempotency_key = \"" + std::string(201, 'k') + "\"\n", "job.toml"),
            "job.toml:2: idempotency_key: must be at most 200 characters, got 201");
  EXPECT_EQ(parse_job_spec("model = \"m\"\nidempotency_key = \"" + std::string(200, 'k') + "\"\n", "j.toml", "")
                .idempotency_key.size(),
            200u);
}

TEST(JobSpecToml, BadInputs) {
  EXPECT_EQ(error_of("model = \"m\"\n[inputs]\nimage = \"\"\n", "job.toml"), "job.toml:3: inputs.image: the path is empty");
  EXPECT_EQ(error_of("model = \"m\"\n[inputs]\n\nimage = 4\n", "job.toml"),
            "job.toml:4: inputs.image: expected a file path string, got an integer (4)");
}

TEST(JobSpecToml, DatesAreRefused) {
  EXPECT_EQ(error_of("model = \"m\"\n[params]\nwhen = 1979-05-27T07:32:00Z\n", "job.toml"),
            "job.toml:3: params.when: dates and times are not supported (use a string)");
  EXPECT_EQ(error_of("model = \"m\"\n[params]\nlist = [1,\n  07:32:00]\n", "job.toml"),
            "job.toml:4: params.list[1]: dates and times are not supported (use a string)");
  EXPECT_EQ(error_of("model = \"m\"\n[params]\nx = nan\n", "job.toml"), "job.toml:3: params.x: nan and inf are not supported");
}

TEST(JobSpecToml, ParseErrorHasLineAndColumn) {
  std::string e = error_of("model = \"m\"\npriority = = 1\n", "job.toml");
  EXPECT_TRUE(std::regex_search(e, std::regex(R"(^job\.toml:2:\d+: \S)"))) << e;
}

// ---- JSON errors ----

TEST(JobSpecJson, ParseErrorHasBytePosition) {
  std::string e = error_of("{\"model\": \"m\",, }", "job.json");
  EXPECT_TRUE(contains(e, "job.json: invalid JSON at byte 15: parse error at line 1, column 15")) << e;
  EXPECT_TRUE(e.find("[json.exception") == std::string::npos) << e;
}

// Found by fuzz/job_spec_json_fuzz: a number too large for a double is not a
// parse_error in nlohmann::json but out_of_range, which escaped and aborted reelctl
// (and would have aborted reeld reading a watched folder's job file).
TEST(JobSpecJson, NumberOverflowIsAJobSpecError) {
  const std::string fuzz_input =
      "\t\t\t\t\t\t\t\t\t5e555\x01" "f\t\t\t\t\t\t\t\t\t\t\t\t\t{\"modl\"5e555\x01\xf6" "e\xf6\x82";
  EXPECT_TRUE(contains(error_of(fuzz_input, "job.json"), "job.json: invalid JSON: number overflow parsing '5e555'"));
  EXPECT_TRUE(contains(error_of(R"({"model": "sleep", "params": {"seconds": 1e999}})", "job.json"),
                       "job.json: invalid JSON: number overflow parsing '1e999'"));
}

TEST(JobSpecJson, TopLevelMustBeAnObject) {
  EXPECT_EQ(error_of("[1, 2]", "job.json"), "job.json: a job spec must be an object, got an array");
}

TEST(JobSpecJson, FieldErrorsNameFileAndField) {
  EXPECT_EQ(error_of("{\"modle\": \"m\"}", "job.json"),
            "job.json: unknown field 'modle' (did you mean 'model'?); fields: model, priority, max_attempts, "
            "idempotency_key, source, params, inputs, policy");
  EXPECT_EQ(error_of("{\"model\": \"m\", \"priority\": 2.0}", "job.json"),
            "job.json: priority: expected an integer, got a float (2.0)");
  EXPECT_EQ(error_of("{\"model\": \"m\", \"priority\": 18446744073709551615}", "job.json"),
            "job.json: priority: must be between -1000 and 1000, got 18446744073709551615");
  EXPECT_EQ(error_of("{\"model\": \"m\", \"params\": [1]}", "job.json"), "job.json: params: expected an object, got an array");
  EXPECT_EQ(error_of("{\"priority\": 1}", "job.json"), "job.json: missing required field 'model'");
  EXPECT_EQ(error_of("{\"model\": null}", "job.json"), "job.json: model: expected a string, got null");
}

// ---- the wire ----

TEST(JobSpecWire, SameValidationAndSourceKept) {
  JobSpec s = job_spec_from_json(
      Json::parse(R"({"model": "sleep", "params": {"seconds": 1}, "source": "watch:/in", "inputs": {"i": "rel.png"}})"),
      "submit");
  EXPECT_EQ(s.model, "sleep");
  EXPECT_EQ(s.source, "watch:/in");
  EXPECT_EQ(s.params["seconds"], 1);
  EXPECT_EQ(s.inputs.at("i"), "rel.png");  // no base dir on the wire
  EXPECT_EQ(job_spec_from_json(Json{{"model", "sleep"}}, "submit").source, "ctl");
}

TEST(JobSpecWire, Errors) {
  EXPECT_EQ(wire_error(Json::object()), "submit: missing required field 'model'");
  EXPECT_EQ(wire_error(Json{{"model", 1}}), "submit: model: expected a string, got an integer (1)");
  EXPECT_EQ(wire_error(Json{{"model", "m"}, {"max_attempts", 0}}), "submit: max_attempts: must be between 1 and 100, got 0");
  EXPECT_EQ(wire_error(Json::array()), "submit: a job spec must be an object, got an array");
  EXPECT_TRUE(contains(wire_error(Json{{"model", "m"}, {"prio", 1}}), "submit: unknown field 'prio' (did you mean 'priority'?)"));
  EXPECT_EQ(wire_error(Json{{"model", "m"}, {"inputs", {{"", "a"}}}}), "submit: inputs: an input role cannot be empty");
}

// ---- key=value ----

TEST(ParamAssignment, ValuesAreJsonWhenTheyParse) {
  EXPECT_EQ(parse_param_assignment("seconds=2"), std::make_pair(std::string("seconds"), Json(2)));
  EXPECT_TRUE(parse_param_assignment("seconds=2").second.is_number_integer());
  EXPECT_EQ(parse_param_assignment("s=2.5").second, Json(2.5));
  EXPECT_EQ(parse_param_assignment("x=true").second, Json(true));
  EXPECT_EQ(parse_param_assignment("x=null").second, Json(nullptr));
  EXPECT_EQ(parse_param_assignment("x=\"2\"").second, Json("2"));
  EXPECT_EQ(parse_param_assignment("x=[1,2]").second, Json::parse("[1,2]"));
  EXPECT_EQ(parse_param_assignment("x={\"a\":1}").second, Json::parse("{\"a\":1}"));
}

TEST(ParamAssignment, EverythingElseIsAString) {
  EXPECT_EQ(parse_param_assignment("name=hello world"), std::make_pair(std::string("name"), Json("hello world")));
  EXPECT_EQ(parse_param_assignment("x=2abc").second, Json("2abc"));
  EXPECT_EQ(parse_param_assignment("x=").second, Json(""));
  EXPECT_EQ(parse_param_assignment("x=a=b").second, Json("a=b"));  // split at the first '='
  EXPECT_EQ(parse_param_assignment("x=True").second, Json("True"));
}

TEST(ParamAssignment, Errors) {
  try {
    parse_param_assignment("seconds");
    FAIL() << "no error";
  } catch (const JobSpecError& e) {
    EXPECT_TRUE(contains(e.what(), "parameter 'seconds' must be key=value"));
  }
  try {
    parse_param_assignment("=2");
    FAIL() << "no error";
  } catch (const JobSpecError& e) {
    EXPECT_TRUE(contains(e.what(), "parameter '=2' has an empty name"));
  }
}

namespace reel {
namespace {

TEST(JobSpecPolicy, APolicyTableIsValidatedWhereItIsWritten) {
  JobSpec ok = parse_job_spec("model = \"m\"\n[policy]\nquality_fallback = true\nfloor = { steps = 20 }\n", "job.toml", "");
  EXPECT_EQ(ok.policy["quality_fallback"], true);
  EXPECT_EQ(ok.policy["floor"]["steps"], 20);
  try {
    parse_job_spec("model = \"m\"\n[policy]\nflor = { steps = 20 }\n", "job.toml", "");
    FAIL() << "a misspelt policy key must be refused";
  } catch (const JobSpecError& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("job.toml:2"), std::string::npos) << msg;
    EXPECT_NE(msg.find("did you mean 'floor'"), std::string::npos) << msg;
  }
}

}  // namespace
}  // namespace reel
