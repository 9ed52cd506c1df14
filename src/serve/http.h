// The HTTP/1.1 connection loop under qkv::Server. cpp-httplib 0.11 reads each request through a
// stream that lives for that request only, with a read-ahead buffer of 4 KiB: bytes of the next
// request that arrived with this one (a pipelining client, or one whose writes split
// unluckily) were read into that buffer and dropped with it, so the next request waited for the
// keep-alive timeout and was never answered, or was parsed from its middle (a 400). HttpServer
// keeps one buffered stream per connection, so every request is read from where the previous
// one ended, and answers requests in order as they come.
#pragma once

#include <httplib.h>

#include <functional>
#include <optional>
#include <string>

namespace qkv::serve {

// Whether httplib parsed the request's line and headers (it sets REMOTE_ADDR once it has); a
// response to one that did not ends the connection, since where the request ends is not known.
bool request_parsed(const httplib::Request& req);

// What was wrong with a request that did not parse, as far as its parsed parts tell (httplib
// answers all of them with a bare 400): 400 for a request line that is not "METHOD TARGET
// HTTP/1.1" or a malformed header, 501 for a method it does not know, 505 for another version,
// 431 for a line and headers over HttpServer::kMaxHeadBytes.
struct Refusal {
  int status;
  std::string message;
};
Refusal diagnose_unparsed(const httplib::Request& req);

// A head httplib parsed that HTTP/1.1 says to refuse (400): a folded header line, a bare CR or
// a NUL in it, a header name that is not a token, no Host (HTTP/1.1) or two of them. And body
// framing the server cannot follow (RFC 9112 6.1, 6.3): a transfer coding other than
// chunked (501; httplib read such a body until the client closed), a Content-Length that is not
// a decimal number (httplib read "abc" as 0 and the body as the next request), two that
// differ, or a body on a GET, HEAD or OPTIONS (httplib reads none for them). The answer must close the connection: where the body ends is not known.
std::optional<Refusal> framing_error(const httplib::Request& req);

class HttpServer : public httplib::Server {
 public:
  // Most requests one connection may make before the server closes it (httplib's default, 5,
  // closed a pipelining client's connection with its later requests unread).
  static constexpr size_t kMaxRequestsPerConnection = 1000;
  // Largest request line plus headers (a 431 past it); browsers send a few KiB, large cookies
  // and tokens a few tens.
  static constexpr size_t kMaxHeadBytes = 65536;
  HttpServer();

  // Called while answering a request (on its handler's thread): close the connection after this
  // response, for requests whose end cannot be told (a malformed request line or headers).
  static void close_after_response();
  // Whether close_after_response() was called for the request being answered (its response then
  // says Connection: close rather than Keep-Alive).
  static bool closing_after_response();
  // Called once the head of a request with a chunked body has been read and the body will be:
  // the connection then checks its framing as httplib reads it and reads and drops its trailer
  // fields (RFC 9112 7.1.2), which httplib cannot read.
  static void start_chunked_body();
  // Why the chunked body of the request being answered could not be read, when its framing (or
  // the size of its trailer fields: 431) was at fault; nullopt otherwise.
  static std::optional<Refusal> body_refusal();

  // Called with the status of each response the connection loop writes itself, outside httplib
  // (whose logger sees only its own): a 431 for a request line over the limit.
  void set_loop_logger(std::function<void(int status)> log) { loop_logger_ = std::move(log); }

 private:
  bool process_and_close_socket(socket_t sock) override;
  std::function<void(int status)> loop_logger_;
};

}  // namespace qkv::serve
