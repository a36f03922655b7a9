// The control protocol between reelctl (or any client) and reeld; also the framing
// reeld uses with its worker processes.
//
// Framing: one JSON object per line ('\n'-terminated UTF-8), no line longer than the
// configured max_request_bytes. A connection starts with a hello carrying the
// protocol version; the server refuses any other request before it.
//   request:  {"id": 7, "method": "show", "params": {"id": "k3xq9a"}}
//   reply:    {"id": 7, "ok": true,  "result": {...}}
//             {"id": 7, "ok": false, "error": {"code": "not_found", "message": "..."}}
//   stream:   {"id": 7, "event": {...}}          (follow: zero or more, then a reply)
// Methods and their params/results are listed in docs/PROTOCOL.md. Everything here is
// pure (no I/O) so the server, reelctl and the fuzzers share one parser.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/job.hpp"

namespace reel {

inline constexpr int kProtocolVersion = 1;

// Error codes on the wire; reelctl maps them to exit codes.
namespace err {
inline constexpr const char* parse_error = "parse_error";          // not JSON
inline constexpr const char* bad_request = "bad_request";          // JSON, but not a valid request
inline constexpr const char* too_large = "too_large";              // line over the limit
inline constexpr const char* unknown_method = "unknown_method";
inline constexpr const char* hello_required = "hello_required";
inline constexpr const char* protocol_mismatch = "protocol_mismatch";
inline constexpr const char* not_found = "not_found";
inline constexpr const char* conflict = "conflict";
inline constexpr const char* invalid_state = "invalid_state";
inline constexpr const char* queue_full = "queue_full";
inline constexpr const char* storage = "storage";                  // the database failed (I/O error, ...)
inline constexpr const char* disk_full = "disk_full";              // no space for the database: nothing changed
inline constexpr const char* read_only = "read_only";              // the database cannot be written: nothing changed
inline constexpr const char* unknown_model = "unknown_model";
inline constexpr const char* invalid_params = "invalid_params";
inline constexpr const char* input_not_allowed = "input_not_allowed";  // a local input outside jobs.input_roots
inline constexpr const char* draining = "draining";
inline constexpr const char* missing_weights = "missing_weights";  // the model's checkpoint files are absent or corrupt
inline constexpr const char* internal = "internal";
}  // namespace err

struct Request {
  Json id;                 // echoed back verbatim: number or string
  std::string method;
  Json params = Json::object();
};

struct ProtocolError {
  std::string code;
  std::string message;
  Json id;                 // null when the request's id could not be read
};

// Parses one line (without its '\n'). Returns the request, or the error to send back.
// Never throws, whatever the input.
struct ParsedRequest {
  std::optional<Request> request;
  std::optional<ProtocolError> error;
};
ParsedRequest parse_request(std::string_view line);

// Encoders: each returns one line including the trailing '\n'.
std::string encode_request(const Json& id, const std::string& method, const Json& params);
std::string encode_result(const Json& id, const Json& result);
std::string encode_error(const Json& id, const std::string& code, const std::string& message);
std::string encode_event(const Json& id, const Json& event);

// A decoded server line, for clients.
struct Reply {
  Json id;
  enum class Kind { result, error, event } kind = Kind::result;
  Json body;                // result, event, or {"code","message"}
};
// Throws std::runtime_error with a readable message on a malformed server line.
Reply decode_reply(std::string_view line);

// Typed access to request params that produces bad_request messages naming the field.
// Throw ParamError; the server turns it into {"code": "bad_request"}.
struct ParamError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
std::string require_string(const Json& params, const char* name);
std::optional<std::string> optional_string(const Json& params, const char* name);
std::optional<int64_t> optional_int(const Json& params, const char* name, int64_t min, int64_t max);

}  // namespace reel
