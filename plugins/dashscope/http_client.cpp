// HttpClient (http_client.hpp) on libcurl's easy interface.
#include "dashscope/http_client.hpp"

#include <curl/curl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <stdexcept>

namespace reel::dashscope {
namespace {

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct Transfer {
  HttpResponse* resp = nullptr;
  const HttpOptions* options = nullptr;
  std::FILE* file = nullptr;     // download target
  bool truncate_on_200 = false;  // a Range request answered with the whole body
  bool checked_status = false;
  CURL* curl = nullptr;
  char errbuf[CURL_ERROR_SIZE] = {0};
};

size_t on_header(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  std::string line(data, size * n);
  if (line.rfind("HTTP/", 0) == 0) t->resp->headers.clear();   // a new response (redirect, 100 Continue)
  auto colon = line.find(':');
  if (colon != std::string::npos) {
    std::string name = line.substr(0, colon), value = line.substr(colon + 1);
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return char(std::tolower(c)); });
    auto first = value.find_first_not_of(" \t"), last = value.find_last_not_of(" \t\r\n");
    t->resp->headers[name] = first == std::string::npos ? "" : value.substr(first, last - first + 1);
  }
  return size * n;
}

size_t on_body(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t len = size * n;
  if (!t->file) {
    t->resp->body.append(data, len);
    return len;
  }
  if (!t->checked_status) {
    t->checked_status = true;
    long code = 0;
    curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &code);
    t->resp->status = int(code);
    if (code == 200 && t->truncate_on_200) {
      std::fflush(t->file);
      if (::ftruncate(fileno(t->file), 0) != 0 || std::fseek(t->file, 0, SEEK_SET) != 0) return 0;
    }
  }
  if (t->resp->status >= 400) {   // an error page: keep it for the message, not in the file
    if (t->resp->body.size() < 4096) t->resp->body.append(data, std::min<size_t>(len, 4096));
    return len;
  }
  return std::fwrite(data, 1, len, t->file);
}

int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* t = static_cast<Transfer*>(user);
  return t->options->cancelled && t->options->cancelled() ? 1 : 0;
}

void common_setup(CURL* c, Transfer& t, const std::string& url, const HttpOptions& o, bool bounded) {
  curl_easy_reset(c);
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "https");
  curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, o.connect_timeout_s);
  if (bounded) curl_easy_setopt(c, CURLOPT_TIMEOUT, o.request_timeout_s);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, o.stall_timeout_s);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "reel-dashscope/" REEL_VERSION);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, &t);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, t.errbuf);
}

void finish(CURL* c, CURLcode rc, Transfer& t) {
  const char* errbuf = t.errbuf;
  HttpResponse& r = *t.resp;
  if (rc == CURLE_OK) {
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    r.status = int(code);
    return;
  }
  r.status = 0;
  r.not_sent = rc == CURLE_COULDNT_RESOLVE_HOST || rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_PROXY;
  if (rc == CURLE_ABORTED_BY_CALLBACK) r.error = "cancelled";
  else r.error = std::string(curl_easy_strerror(rc)) + (errbuf[0] ? std::string(": ") + errbuf : "");
}

struct Slist {
  curl_slist* list = nullptr;
  ~Slist() { curl_slist_free_all(list); }
  void add(const std::string& h) { list = curl_slist_append(list, h.c_str()); }
};

}  // namespace

HttpClient::HttpClient(HttpOptions options) : options_(std::move(options)) {
  global_init();
  curl_ = curl_easy_init();
  if (!curl_) throw std::runtime_error("libcurl: curl_easy_init failed");
}

HttpClient::~HttpClient() { curl_easy_cleanup(static_cast<CURL*>(curl_)); }

HttpResponse HttpClient::request(const std::string& method, const std::string& url,
                                 const std::vector<std::string>& headers, const std::string& body) {
  CURL* c = static_cast<CURL*>(curl_);
  HttpResponse resp;
  Transfer t{&resp, &options_, nullptr, false, false, c};
  common_setup(c, t, url, options_, true);
  Slist h;
  for (const auto& x : headers) h.add(x);
  if (method == "POST") {
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(body.size()));
  } else if (method != "GET") {
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method.c_str());
  }
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h.list);
  finish(c, curl_easy_perform(c), t);
  return resp;
}

HttpResponse HttpClient::post_form(const std::string& url, const std::vector<FormField>& fields,
                                   const std::string& file_field, const std::string& file_path) {
  CURL* c = static_cast<CURL*>(curl_);
  HttpResponse resp;
  Transfer t{&resp, &options_, nullptr, false, false, c};
  common_setup(c, t, url, options_, true);
  curl_mime* mime = curl_mime_init(c);
  for (const auto& f : fields) {
    curl_mimepart* part = curl_mime_addpart(mime);
    curl_mime_name(part, f.name.c_str());
    curl_mime_data(part, f.value.c_str(), CURL_ZERO_TERMINATED);
  }
  curl_mimepart* part = curl_mime_addpart(mime);
  curl_mime_name(part, file_field.c_str());
  CURLcode rc = curl_mime_filedata(part, file_path.c_str());
  if (rc == CURLE_OK) {
    curl_easy_setopt(c, CURLOPT_MIMEPOST, mime);
    rc = curl_easy_perform(c);
  }
  finish(c, rc, t);
  curl_easy_setopt(c, CURLOPT_MIMEPOST, nullptr);
  curl_mime_free(mime);
  return resp;
}

HttpResponse HttpClient::download(const std::string& url, const std::string& path) {
  CURL* c = static_cast<CURL*>(curl_);
  HttpResponse resp;
  std::error_code ec;
  const auto have = std::filesystem::exists(path, ec) ? std::filesystem::file_size(path, ec) : 0;
  std::FILE* f = std::fopen(path.c_str(), "ab");
  if (!f) {
    resp.error = "cannot open " + path + " for writing";
    return resp;
  }
  Transfer t{&resp, &options_, f, false, false, c};
  t.truncate_on_200 = have > 0;
  common_setup(c, t, url, options_, false);
  if (have > 0) curl_easy_setopt(c, CURLOPT_RESUME_FROM_LARGE, curl_off_t(have));
  CURLcode rc = curl_easy_perform(c);
  if (rc == CURLE_RANGE_ERROR && have > 0) {   // the server cannot resume: start over
    std::fclose(f);
    std::filesystem::remove(path, ec);
    return download(url, path);
  }
  const int seen = resp.status;
  finish(c, rc, t);
  if (resp.status == 0 && seen >= 400) resp.status = seen;   // curl may flag an error page
  if (std::fclose(f) != 0 && resp.status > 0 && resp.status < 400) {
    resp.status = 0;
    resp.error = "cannot write " + path + "; check free space";
  }
  return resp;
}

}  // namespace reel::dashscope
