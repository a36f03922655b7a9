// FakeDashScope (fake_dashscope.hpp): the documented DashScope answers on loopback.
#include "support/fake_dashscope.hpp"

#include <sys/socket.h>
#include <sys/time.h>

#include <boost/asio.hpp>
#include <chrono>

namespace reel::test {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Json = nlohmann::json;

int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

const char* reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 206: return "Partial Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 429: return "Too Many Requests";
    default: return "Error";
  }
}

std::string response(int status, const std::string& body, const std::string& type = "application/json",
                     const std::string& extra_headers = "") {
  return "HTTP/1.1 " + std::to_string(status) + " " + reason(status) + "\r\nContent-Type: " + type +
         "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n" + extra_headers + "\r\n" + body;
}

std::string error_body(const std::string& code, const std::string& message) {
  return Json{{"request_id", "req-err"}, {"code", code}, {"message", message}}.dump();
}

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }

}  // namespace

struct FakeIo {
  asio::io_context io;
};

static FakeIo& io_of(int) {   // one io_context for every fake: sockets only, no run()
  static FakeIo io;
  return io;
}

FakeDashScope::FakeDashScope(Options options) : options_(std::move(options)) {
  tcp::acceptor acceptor(io_of(0).io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  port_ = acceptor.local_endpoint().port();
  listen_fd_ = acceptor.release();
  acceptor_ = std::thread([this] { accept_loop(); });
}

FakeDashScope::~FakeDashScope() {
  stop_ = true;
  acceptor_.join();
  std::vector<std::thread> workers;
  {
    std::lock_guard<std::mutex> lock(mu_);
    workers.swap(workers_);
  }
  for (auto& w : workers) w.join();
}

void FakeDashScope::set_options(const Options& options) {
  std::lock_guard<std::mutex> lock(mu_);
  options_ = options;
}

FakeDashScope::Options FakeDashScope::options() const {
  std::lock_guard<std::mutex> lock(mu_);
  return options_;
}

int FakeDashScope::submissions() const {
  std::lock_guard<std::mutex> lock(mu_);
  return int(tasks_.size());
}

std::vector<FakeDashScope::Request> FakeDashScope::requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_;
}

std::vector<FakeDashScope::Request> FakeDashScope::requests_to(const std::string& method,
                                                               const std::string& prefix) const {
  std::vector<Request> out;
  for (auto& r : requests())
    if (r.method == method && starts_with(r.target, prefix)) out.push_back(r);
  return out;
}

int FakeDashScope::count(const std::string& method, const std::string& prefix) const {
  return int(requests_to(method, prefix).size());
}

std::string FakeDashScope::video() const {
  std::size_t n = options().video_bytes;
  std::string v(n, '\0');
  for (std::size_t i = 0; i < n; ++i) v[i] = char((i * 7 + i / 251) & 0xFF);
  return v;
}

void FakeDashScope::accept_loop() {
  tcp::acceptor acceptor(io_of(0).io, tcp::v4(), listen_fd_);
  acceptor.non_blocking(true);
  while (!stop_) {
    boost::system::error_code ec;
    tcp::socket s = acceptor.accept(ec);
    if (ec) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      continue;
    }
    int fd = s.release();
    std::lock_guard<std::mutex> lock(mu_);
    workers_.emplace_back([this, fd] { serve(fd); });
  }
}

void FakeDashScope::serve(int fd) {
  tcp::socket s(io_of(0).io, tcp::v4(), fd);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  boost::system::error_code ec;
  asio::streambuf buf;
  std::size_t head_len = asio::read_until(s, buf, "\r\n\r\n", ec);
  if (ec) return;
  std::string data(asio::buffers_begin(buf.data()), asio::buffers_end(buf.data()));
  Request r;
  r.at_ms = steady_ms();
  std::string head = data.substr(0, head_len);
  std::size_t line_end = head.find("\r\n");
  std::string line = head.substr(0, line_end);
  r.method = line.substr(0, line.find(' '));
  r.target = line.substr(r.method.size() + 1, line.rfind(' ') - r.method.size() - 1);
  for (std::size_t at = line_end + 2; at < head.size();) {
    std::size_t e = head.find("\r\n", at);
    std::string h = head.substr(at, e - at);
    at = e + 2;
    auto colon = h.find(':');
    if (colon == std::string::npos) continue;
    std::string name = h.substr(0, colon);
    for (auto& c : name) c = char(std::tolower(static_cast<unsigned char>(c)));
    r.headers[name] = h.substr(h.find_first_not_of(' ', colon + 1));
  }
  std::size_t want = r.headers.count("content-length") ? std::stoul(r.headers["content-length"]) : 0;
  if (r.headers.count("expect")) asio::write(s, asio::buffer(std::string("HTTP/1.1 100 Continue\r\n\r\n")), ec);
  r.body = data.substr(head_len);
  while (r.body.size() < want && !ec) {
    char chunk[16384];
    std::size_t n = s.read_some(asio::buffer(chunk), ec);
    r.body.append(chunk, n);
  }
  bool closed = false;
  std::string out = answer(r, fd, &closed);
  if (!closed) asio::write(s, asio::buffer(out), ec);
  s.shutdown(tcp::socket::shutdown_both, ec);
}

Json FakeDashScope::task_json(const std::string& id) {
  // Called with mu_ held.
  Task& t = tasks_[id];
  const Options& o = options_;
  std::string status;
  int n = t.polls++;
  if (t.canceled) status = "CANCELED";
  else if (n < o.pending_polls) status = "PENDING";
  else if (o.hold || n < o.pending_polls + o.running_polls) status = "RUNNING";
  else status = o.final_status;
  if (o.hold && n >= o.pending_polls && status == "RUNNING") t.polls = o.pending_polls;   // stay, not advance
  Json out = {{"task_id", id}, {"task_status", status}, {"submit_time", "2026-11-23 12:00:00.000"}};
  if (status == "SUCCEEDED") {
    out["video_url"] = endpoint() + "/video/" + id + ".mp4?Expires=1";
    out["end_time"] = "2026-11-23 12:01:00.000";
    out["orig_prompt"] = t.body["input"].value("prompt", "");
    out["actual_prompt"] = "extended: " + t.body["input"].value("prompt", "");
    return {{"request_id", "req-poll-" + id}, {"output", out},
            {"usage", {{"video_duration", t.body["parameters"].value("duration", 5)}, {"video_count", 1}, {"SR", 720}}}};
  }
  if (status == "FAILED") {
    out["code"] = o.fail_code;
    out["message"] = o.fail_message;
  }
  return {{"request_id", "req-poll-" + id}, {"output", out}};
}

std::string FakeDashScope::answer(const Request& r, int fd, bool* closed) {
  std::unique_lock<std::mutex> lock(mu_);
  requests_.push_back(r);
  const Options o = options_;
  auto auth = r.headers.find("authorization");
  const bool authorized = auth != r.headers.end() && auth->second == "Bearer " + o.api_key;

  if (r.method == "GET" && starts_with(r.target, "/video/")) {
    if (o.download_status != 200)
      return response(o.download_status, "<Error><Code>AccessDenied</Code><Message>Request has expired.</Message></Error>",
                      "application/xml");
    lock.unlock();
    const std::string v = video();
    std::size_t from = 0;
    auto range = r.headers.find("range");
    if (range != r.headers.end() && starts_with(range->second, "bytes=")) from = std::stoul(range->second.substr(6));
    lock.lock();
    const bool first = downloads_++ == 0;
    lock.unlock();
    if (first && o.break_first_download && from == 0) {
      // Promise the whole video, send half, hang up.
      std::string head = "HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nContent-Length: " + std::to_string(v.size()) +
                         "\r\nConnection: close\r\n\r\n";
      std::string half = head + v.substr(0, v.size() / 2);
      ::send(fd, half.data(), half.size(), MSG_NOSIGNAL);
      *closed = true;
      return "";
    }
    if (from > 0)
      return response(206, v.substr(from), "video/mp4",
                      "Content-Range: bytes " + std::to_string(from) + "-" + std::to_string(v.size() - 1) + "/" +
                          std::to_string(v.size()) + "\r\n");
    return response(200, v, "video/mp4");
  }
  if (r.method == "POST" && r.target == "/oss") {
    auto k = r.body.find("name=\"key\"");
    if (k == std::string::npos || r.body.find("name=\"OSSAccessKeyId\"") == std::string::npos ||
        r.body.find("name=\"file\"") == std::string::npos)
      return response(400, "<Error><Code>InvalidArgument</Code></Error>", "application/xml");
    return response(200, "", "application/xml");
  }
  if (!authorized)
    return response(401, error_body("InvalidApiKey", "Invalid API-key provided."));

  if (r.method == "GET" && starts_with(r.target, "/api/v1/uploads?action=getPolicy&model=")) {
    Json data = {{"policy", "cG9saWN5"}, {"signature", "c2ln"}, {"upload_dir", "dashscope-instant/fake/2026-11-23/abc"},
                 {"upload_host", endpoint() + "/oss"}, {"expire_in_seconds", 300}, {"max_file_size_mb", 100},
                 {"capacity_limit_mb", 999999}, {"oss_access_key_id", "LTAIfake"}, {"x_oss_object_acl", "private"},
                 {"x_oss_forbid_overwrite", "true"}};
    return response(200, Json{{"request_id", "req-upload"}, {"data", data}}.dump());
  }
  if (r.method == "POST" && r.target == "/api/v1/services/aigc/video-generation/video-synthesis") {
    if (!r.headers.count("x-dashscope-async") || r.headers.at("x-dashscope-async") != "enable")
      return response(400, error_body("InvalidParameter", "current user api does not support synchronous calls"));
    if (++submit_attempts_ <= o.submit_429s)
      return response(429, error_body("Throttling.RateQuota", "Requests rate limit exceeded, please try again later."),
                      "application/json", "Retry-After: " + o.retry_after + "\r\n");
    if (o.submit_status != 200) return response(o.submit_status, error_body(o.submit_code, o.submit_message));
    Json body = Json::parse(r.body, nullptr, false);
    if (!body.is_object() || !body.contains("input"))
      return response(400, error_body("InvalidParameter", "input is required"));
    std::string id = "task-" + std::to_string(tasks_.size() + 1);
    tasks_[id].body = body;
    return response(200, Json{{"request_id", "req-submit-" + id},
                              {"output", {{"task_id", id}, {"task_status", "PENDING"}}}}.dump());
  }
  if (r.method == "POST" && starts_with(r.target, "/api/v1/tasks/") && r.target.size() > 7 &&
      r.target.compare(r.target.size() - 7, 7, "/cancel") == 0) {
    std::string id = r.target.substr(14, r.target.size() - 14 - 7);
    auto it = tasks_.find(id);
    if (it == tasks_.end()) return response(404, error_body("NotFound", "task not found"));
    if (it->second.polls > o.pending_polls)   // DashScope cancels only PENDING tasks
      return response(400, error_body("UnsupportedOperation", "Failed to cancel the task, please confirm if the task is in PENDING status."));
    it->second.canceled = true;
    return response(200, Json{{"request_id", "req-cancel"}}.dump());
  }
  if (r.method == "GET" && starts_with(r.target, "/api/v1/tasks/")) {
    std::string id = r.target.substr(14);
    if (!tasks_.count(id))
      return response(200, Json{{"request_id", "req-unknown"}, {"output", {{"task_id", id}, {"task_status", "UNKNOWN"}}}}.dump());
    return response(200, task_json(id).dump());
  }
  return response(404, error_body("NotFound", "no such path in the fake: " + r.target));
}

}  // namespace reel::test
