// describe_throws: a deliberately broken plugin whose describe() throws a plain
// std::runtime_error. The SDK must turn it into REEL_ERR_INTERNAL with the message.
#include <stdexcept>

#include "sdk/reel_plugin.hpp"

namespace {

class DescribeThrows : public reel::sdk::Plugin {
 public:
  reel::sdk::json describe() override { throw std::runtime_error("broken on purpose"); }
  reel::sdk::json estimate(const reel::sdk::json&, const reel::sdk::json&) override {
    throw std::runtime_error("broken on purpose");
  }
  std::unique_ptr<reel::sdk::Model> load(const std::string&, const reel::sdk::json&, const std::string&) override {
    throw std::runtime_error("broken on purpose");
  }
};

}  // namespace

REEL_PLUGIN(DescribeThrows, "describe_throws", "0.0.0")
