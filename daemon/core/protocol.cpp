#include "core/protocol.hpp"

#include <cstdint>
#include <stdexcept>

namespace reel {

ParsedRequest parse_request(std::string_view line) {
  ParsedRequest out;
  Json j = Json::parse(line.begin(), line.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    out.error = ProtocolError{err::parse_error, "request is not valid JSON", nullptr};
    return out;
  }
  if (!j.is_object()) {
    out.error = ProtocolError{err::bad_request, "request must be a JSON object", nullptr};
    return out;
  }
  Json id = nullptr;
  if (auto it = j.find("id"); it != j.end()) {
    if (!it->is_number() && !it->is_string()) {
      out.error = ProtocolError{err::bad_request, "'id' must be a number or a string", nullptr};
      return out;
    }
    id = *it;
  }
  auto method = j.find("method");
  if (method == j.end() || !method->is_string() || method->get_ref<const std::string&>().empty()) {
    out.error = ProtocolError{err::bad_request, "'method' must be a non-empty string", id};
    return out;
  }
  Json params = Json::object();
  if (auto it = j.find("params"); it != j.end() && !it->is_null()) {
    if (!it->is_object()) {
      out.error = ProtocolError{err::bad_request, "'params' must be an object", id};
      return out;
    }
    params = *it;
  }
  out.request = Request{id, method->get<std::string>(), std::move(params)};
  return out;
}

namespace {
// error_handler_t::replace: a client can send invalid UTF-8 in a string we echo back;
// that must never make the encoder throw.
std::string line_of(const Json& j) {
  return j.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
}
}  // namespace

std::string encode_request(const Json& id, const std::string& method, const Json& params) {
  return line_of(Json{{"id", id}, {"method", method}, {"params", params}});
}

std::string encode_result(const Json& id, const Json& result) {
  return line_of(Json{{"id", id}, {"ok", true}, {"result", result}});
}

std::string encode_error(const Json& id, const std::string& code, const std::string& message) {
  return line_of(Json{{"id", id}, {"ok", false}, {"error", {{"code", code}, {"message", message}}}});
}

std::string encode_event(const Json& id, const Json& event) {
  return line_of(Json{{"id", id}, {"event", event}});
}

Reply decode_reply(std::string_view line) {
  Json j = Json::parse(line.begin(), line.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) throw std::runtime_error("malformed reply from reeld (not a JSON object)");
  Reply r;
  r.id = j.value("id", Json(nullptr));
  if (auto ev = j.find("event"); ev != j.end()) {
    r.kind = Reply::Kind::event;
    r.body = *ev;
    return r;
  }
  auto ok = j.find("ok");
  if (ok == j.end() || !ok->is_boolean()) throw std::runtime_error("malformed reply from reeld (no 'ok')");
  if (ok->get<bool>()) {
    r.kind = Reply::Kind::result;
    r.body = j.value("result", Json::object());
  } else {
    r.kind = Reply::Kind::error;
    Json e = j.value("error", Json::object());
    if (!e.is_object()) e = Json::object();
    r.body = Json{{"code", e.value("code", std::string(err::internal))}, {"message", e.value("message", "")}};
  }
  return r;
}

std::string require_string(const Json& params, const char* name) {
  auto it = params.find(name);
  if (it == params.end() || !it->is_string() || it->get_ref<const std::string&>().empty())
    throw ParamError(std::string("'") + name + "' must be a non-empty string");
  return it->get<std::string>();
}

std::optional<std::string> optional_string(const Json& params, const char* name) {
  auto it = params.find(name);
  if (it == params.end() || it->is_null()) return std::nullopt;
  if (!it->is_string()) throw ParamError(std::string("'") + name + "' must be a string");
  return it->get<std::string>();
}

std::optional<int64_t> optional_int(const Json& params, const char* name, int64_t min, int64_t max) {
  auto it = params.find(name);
  if (it == params.end() || it->is_null()) return std::nullopt;
  if (!it->is_number_integer() ||
      (it->is_number_unsigned() && it->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)))
    throw ParamError(std::string("'") + name + "' must be an integer");
  int64_t v = it->get<int64_t>();
  if (v < min || v > max)
    throw ParamError(std::string("'") + name + "' must be between " + std::to_string(min) + " and " +
                     std::to_string(max));
  return v;
}

}  // namespace reel
