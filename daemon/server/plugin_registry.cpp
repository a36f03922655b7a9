#include "server/plugin_registry.hpp"

#include <algorithm>
#include <filesystem>

#include <spdlog/spdlog.h>

#include "sdk/plugin_host.hpp"
#include "worker/plugin_sources.hpp"

namespace reel {

namespace fs = std::filesystem;

Json PluginStatus::to_json() const {
  return Json{{"source", source}, {"name", name}, {"version", version}, {"loaded", loaded},
              {"error", error},   {"models", models}};
}

struct PluginRegistry::Planner {
  size_t index = 0;   // into plugins_
  std::string source;
  std::shared_ptr<WorkerProcess> worker;
  bool ready = false;
};

PluginRegistry::PluginRegistry(boost::asio::io_context& io, std::string worker_exe)
    : io_(io), worker_exe_(std::move(worker_exe)) {}

std::vector<std::string> discover_plugins(const std::vector<std::string>& dirs) {
  std::vector<std::string> out = builtin_plugin_names();
  for (const auto& dir : dirs) {
    std::error_code ec;
    std::vector<std::string> found;
    for (const auto& e : fs::directory_iterator(dir, ec))
      if (e.path().extension() == ".so") found.push_back(e.path().string());
    if (ec && ec != std::errc::no_such_file_or_directory)
      spdlog::warn("cannot read plugin folder {}: {}; fix its permissions or plugins.dirs", dir, ec.message());
    std::sort(found.begin(), found.end());
    out.insert(out.end(), found.begin(), found.end());
  }
  return out;
}

void PluginRegistry::load(const std::vector<std::string>& sources, std::chrono::milliseconds timeout) {
  size_t waiting = 0;
  for (const auto& src : sources) {
    PluginStatus st;
    st.source = src;
    plugins_.push_back(st);
    auto p = std::make_shared<Planner>();
    p->index = plugins_.size() - 1;
    p->source = src;
    planners_[src] = p;
    ++waiting;
    start_planner(p, [&waiting] { --waiting; });
  }
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (waiting > 0 && std::chrono::steady_clock::now() < deadline) io_.run_one_for(std::chrono::milliseconds(50));
  for (auto& [src, p] : planners_) {
    auto& st = plugins_[p->index];
    if (!p->ready && st.error.empty()) {
      st.error = "did not describe itself within " + std::to_string(timeout.count() / 1000) + " s";
      spdlog::error("plugin {} refused: {}; check it loads with `reeld --check-plugin {}`", src, st.error, src);
      if (p->worker) p->worker->kill();
    }
  }
  rebuild_catalog();
}

void PluginRegistry::start_planner(const std::shared_ptr<Planner>& p, std::function<void()> opened) {
  auto fail = [this, p](const std::string& why) {
    auto& s = plugins_[p->index];
    s.loaded = false;
    s.error = why;
    p->ready = false;
    spdlog::error("plugin {} refused: {}; the daemon serves on without it", p->source, why);
  };
  try {
    // Weak: the planner owns its worker, so a strong capture here would be a cycle that
    // outlives the registry (LeakSanitizer reported it at every clean shutdown).
    p->worker = WorkerProcess::spawn(io_, worker_exe_, {}, "planner " + p->source,
                                     [weak = std::weak_ptr<Planner>(p)](const std::string& how) {
      auto p = weak.lock();
      if (!p) return;
      if (p->ready) spdlog::warn("planner for {} exited ({}); it restarts on the next submission", p->source, how);
      p->ready = false;
    });
  } catch (const std::exception& e) {
    fail(e.what());
    if (opened) opened();
    return;
  }
  p->worker->call("open", Json{{"plugin", p->source}}, [this, p, fail, opened](const Reply& r) {
    if (r.kind == Reply::Kind::error) {
      fail(r.body.value("message", "unknown error"));
    } else {
      try {
        auto models = models_from_description(r.body.value("description", Json::object()), r.body.value("name", ""));
        infos_[p->source] = models;
        auto& s = plugins_[p->index];
        s.name = r.body.value("name", "");
        s.version = r.body.value("version", "");
        s.loaded = true;
        s.error.clear();
        s.models.clear();
        for (const auto& m : models) s.models.push_back(m.name);
        p->ready = true;
        spdlog::info("plugin {} {} loaded from {}: {}", s.name, s.version, p->source, [&] {
          std::string names;
          for (const auto& n : s.models) names += (names.empty() ? "" : ", ") + n;
          return names;
        }());
        for (const auto& m : r.body["description"].value("models", Json::array()))
          model_ladders_[m.value("name", "")] = m.value("ladder", Json::array());
      } catch (const std::exception& e) {
        fail(e.what());
      }
    }
    if (opened) opened();
  });
}

void PluginRegistry::rebuild_catalog() {
  catalog_ = ModelCatalog{};
  model_source_.clear();
  for (const auto& st : plugins_) {
    if (!st.loaded) continue;
    for (const auto& info : infos_[st.source]) {
      if (auto taken = model_source_.find(info.name); taken != model_source_.end()) {
        spdlog::warn("model {} is offered by both {} and {}; using the first, remove one of the plugins", info.name,
                     taken->second, st.source);
        continue;
      }
      model_source_[info.name] = st.source;
      catalog_.add(info);
    }
  }
}

std::string PluginRegistry::source_of(const std::string& model) const {
  auto it = model_source_.find(model);
  return it == model_source_.end() ? "" : it->second;
}

Json PluginRegistry::ladder_rung(const std::string& model, const std::string& rung) const {
  auto it = model_ladders_.find(model);
  if (it == model_ladders_.end()) return nullptr;
  for (const auto& r : it->second)
    if (r.value("name", "") == rung) return r;
  return nullptr;
}

void PluginRegistry::plan(const Json& job, PlanFn done) {
  const std::string model = job.value("model", "");
  auto src = source_of(model);
  auto it = planners_.find(src);
  if (src.empty() || it == planners_.end()) {
    done(false, Json{{"code", "unknown_model"}, {"message", "no plugin offers model '" + model + "'"}});
    return;
  }
  auto p = it->second;
  auto ask = [p, job, done] {
    p->worker->call("plan", Json{{"job", job}}, [done](const Reply& r) {
      if (r.kind == Reply::Kind::error) done(false, r.body);
      else done(true, r.body.value("plan", Json::array()));
    });
  };
  if (p->ready && p->worker && !p->worker->exited()) {
    ask();
    return;
  }
  start_planner(p, [p, ask, done] {
    if (p->ready) ask();
    else done(false, Json{{"code", "internal"}, {"message", "the planner for " + p->source + " could not restart"}});
  });
}

}  // namespace reel
