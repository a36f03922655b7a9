// A small blocking HTTP(S) client on libcurl's C API, for the DashScope plugin: JSON
// requests, a multipart form upload, and downloads that resume with Range. TLS peers are
// always verified (libcurl's defaults are kept; nothing here turns them off). No retries
// here: the caller decides with dashscope::retry_delay_ms. Header values are never
// logged (they carry the API key).
// One HttpClient per thread; it is not thread-safe. `cancelled` is polled during
// transfers and aborts them (the response then has status 0 and error "cancelled").
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace reel::dashscope {

struct HttpResponse {
  int status = 0;                              // 0: no HTTP answer (network error, timeout, cancelled)
  std::map<std::string, std::string> headers;  // names lower-cased; the last value wins
  std::string body;                            // for download(): the body only when status >= 400
  std::string error;                           // status 0: what went wrong
  bool not_sent = false;                       // status 0 before any byte left: safe to repeat
  std::string header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? "" : it->second;
  }
};

struct HttpOptions {
  long connect_timeout_s = 15;
  long request_timeout_s = 60;     // JSON requests and uploads; downloads use the stall limit only
  long stall_timeout_s = 30;       // abort a transfer below 1 byte/s for this long
  std::function<bool()> cancelled;
};

struct FormField {
  std::string name, value;
};

class HttpClient {
 public:
  explicit HttpClient(HttpOptions options);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // method "GET" or "POST"; headers "Name: value".
  HttpResponse request(const std::string& method, const std::string& url, const std::vector<std::string>& headers,
                       const std::string& body = "");
  // multipart/form-data POST: the fields in order, then the file as field `file_field`.
  HttpResponse post_form(const std::string& url, const std::vector<FormField>& fields, const std::string& file_field,
                         const std::string& file_path);
  // GETs url into `path`, continuing from the bytes already there with a Range request; a
  // server that ignores Range (200) makes it start over. On success the status is 200 or
  // 206 and `path` holds the whole body.
  HttpResponse download(const std::string& url, const std::string& path);

 private:
  void* curl_;   // CURL*
  HttpOptions options_;
};

}  // namespace reel::dashscope
