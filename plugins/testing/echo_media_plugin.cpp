// echo-media: a test-only plugin for watched folders. It takes an optional image and
// audio input and a prompt, and writes a stand-in "video" (out.mp4: the inputs'
// bytes, concatenated) and a sidecar (out.json: what it was given, with each input's
// size), so tests can check that a media set became one job with every member.
#include <sys/stat.h>

#include <chrono>
#include <fstream>
#include <iterator>
#include <thread>

#include "sdk/reel_plugin.hpp"

namespace {

using reel::sdk::json;
namespace sdk = reel::sdk;

class EchoMediaModel : public sdk::Model {
 public:
  json run(const json& job, const json&, const sdk::RunDirs& dirs, sdk::Host& host) override {
    const double seconds = sdk::param<double>(job, "seconds", 0.0);
    host.progress(0, 1, "echo");
    auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (std::chrono::steady_clock::now() < end) {
      host.check_cancelled("while echoing");
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    json inputs = json::object();
    std::string video = "ECHO\n";
    const json given = job.value("inputs", json::object());
    for (const auto& [role, path] : given.items()) {
      std::ifstream in(path.get<std::string>(), std::ios::binary);
      if (!in) throw sdk::BadInputError("echo-media: cannot read the " + role + " input " + path.get<std::string>());
      std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      inputs[role] = {{"path", path}, {"size", bytes.size()}};
      video += bytes;
    }
    std::string mp4 = dirs.output_dir + "/out.mp4", sidecar = dirs.output_dir + "/out.json";
    std::ofstream(mp4, std::ios::binary | std::ios::trunc) << video;
    std::ofstream(sidecar, std::ios::trunc)
        << json{{"model", "echo-media"}, {"prompt", sdk::param<std::string>(job, "prompt", "")}, {"inputs", inputs}}
               .dump(2)
        << "\n";
    host.progress(1, 1, "echo");
    return {{"outputs", {mp4, sidecar}}};
  }
};

class EchoMediaPlugin : public sdk::Plugin {
 public:
  json describe() override {
    return json::parse(R"({"models": [{
      "name": "echo-media",
      "description": "Test model: echoes its image/audio inputs and prompt into out.mp4 and out.json",
      "params": [
        {"name": "prompt", "type": "string", "default": "", "help": "echoed into the sidecar"},
        {"name": "seconds", "type": "number", "min": 0, "max": 3600, "default": 0, "help": "time to take"}
      ],
      "inputs": [{"role": "image", "required": false, "help": "any file"},
                 {"role": "audio", "required": false, "help": "any file"}],
      "outputs": ["video/mp4", "application/json"],
      "ladder": [{"name": "default", "kind": "placement", "help": "host only", "settings": {}}],
      "budget": "memory"
    }]})");
  }

  json estimate(const json&, const json&) override {
    return {{"device_bytes", 0}, {"host_bytes", 1 << 20}, {"resident_device_bytes", 0}, {"resident_host_bytes", 0},
            {"relative_time", 1.0}, {"cpu_only", true}, {"effective", json::object()}};
  }

  std::unique_ptr<sdk::Model> load(const std::string& model, const json&, const std::string&) override {
    if (model != "echo-media") throw sdk::BadInputError("echo-media: no model '" + model + "'");
    return std::make_unique<EchoMediaModel>();
  }
};

}  // namespace

REEL_PLUGIN(EchoMediaPlugin, "echo-media", "0.1.0")
