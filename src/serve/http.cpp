// One buffered stream per connection, requests read back to back from it (http.h).
#include "serve/http.h"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <string_view>

namespace qkv::serve {

namespace {

thread_local bool t_close_after_response = false;
// Set when the request being read has a line and headers over kMaxHeadBytes.
thread_local bool t_head_too_large = false;

// Waits up to `ms` for `events` on `sock`; true when they came (or the peer hung up, so that a
// read sees the end).
bool wait_for(int sock, short events, int64_t ms) {
  pollfd p{sock, events, 0};
  for (;;) {
    const int n = poll(&p, 1, static_cast<int>(std::min<int64_t>(ms, 1 << 30)));
    if (n < 0 && errno == EINTR) continue;
    return n > 0;
  }
}

std::string head_too_large_message() {
  return "the request line and headers are larger than " +
         std::to_string(HttpServer::kMaxHeadBytes) + " bytes";
}

int64_t to_ms(time_t sec, time_t usec) {
  return static_cast<int64_t>(sec) * 1000 + static_cast<int64_t>(usec) / 1000;
}

void ip_and_port(const sockaddr_storage& a, socklen_t len, std::string& ip, int& port) {
  char host[NI_MAXHOST];
  char serv[NI_MAXSERV];
  if (getnameinfo(reinterpret_cast<const sockaddr*>(&a), len, host, sizeof host, serv, sizeof serv,
                  NI_NUMERICHOST | NI_NUMERICSERV) == 0) {
    ip = host;
    port = std::atoi(serv);
  }
}

// httplib's SocketStream, with its read-ahead buffer kept for the connection's lifetime.
class ConnectionStream final : public httplib::Stream {
 public:
  ConnectionStream(int sock, int64_t read_ms, int64_t write_ms,
                   const std::atomic<socket_t>& listener)
      : sock_(sock), read_ms_(read_ms), write_ms_(write_ms), listener_(listener) {}

  // Waits up to `ms` for input, in slices, so that a client stalled inside a request does not
  // hold up stop() (it closes the listening socket) for the read timeout.
  bool wait_readable(int64_t ms) const {
    const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    for (;;) {
      if (listener_ == INVALID_SOCKET) return false;
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                            end - std::chrono::steady_clock::now())
                            .count();
      if (left <= 0) return false;
      if (wait_for(sock_, POLLIN, std::min<int64_t>(left, 100))) return true;
    }
  }

  bool has_buffered() const { return begin_ < end_; }
  // A read failed (timeout, end of input, a line over the limit): the connection cannot go on.
  bool failed() const { return failed_; }

  // A new request starts: its line and headers are counted until the blank line that ends them.
  void start_request() {
    in_head_ = true;
    head_bytes_ = 0;
    crlf_matched_ = 0;
  }

  bool is_readable() const override { return has_buffered() || wait_readable(read_ms_); }

  // Writable, and the peer has not closed its side (httplib's own test: a readable socket with
  // nothing to read has reached its end).
  bool is_writable() const override {
    if (!wait_for(sock_, POLLOUT, write_ms_)) return false;
    if (!wait_for(sock_, POLLIN, 0)) return true;
    char c = 0;
    return recv(sock_, &c, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
  }

  ssize_t read(char* ptr, size_t size) override {
    if (!has_buffered()) {
      if (!wait_readable(read_ms_)) return fail();
      ssize_t n = 0;
      do {
        n = recv(sock_, buf_.data(), buf_.size(), 0);
      } while (n < 0 && errno == EINTR);
      if (n <= 0) {
        failed_ = true;
        return n;
      }
      begin_ = 0;
      end_ = static_cast<size_t>(n);
    }
    const size_t n = std::min(size, end_ - begin_);
    std::memcpy(ptr, buf_.data() + begin_, n);
    begin_ += n;
    // httplib reads lines a byte at a time into a buffer that grows without bound, and checks a
    // line's length (and never the number of headers) only once the line has ended. So the head
    // is bounded here, and so is any other line read byte by byte (a chunked body's size lines).
    for (size_t i = 0; i < n && in_head_; ++i) {
      static constexpr char kEnd[] = "\r\n\r\n";
      crlf_matched_ = ptr[i] == kEnd[crlf_matched_] ? crlf_matched_ + 1 : (ptr[i] == '\r' ? 1 : 0);
      if (crlf_matched_ == 4) in_head_ = false;
      if (++head_bytes_ > HttpServer::kMaxHeadBytes) {
        t_head_too_large = true;
        return fail();
      }
    }
    if (size == 1 && !in_head_) {
      line_bytes_ = *ptr == '\n' ? 0 : line_bytes_ + 1;
      if (line_bytes_ > HttpServer::kMaxHeadBytes) return fail();
    } else {
      line_bytes_ = 0;
    }
    return static_cast<ssize_t>(n);
  }

  ssize_t write(const char* ptr, size_t size) override {
    if (!wait_for(sock_, POLLOUT, write_ms_)) return -1;
    ssize_t n = 0;
    do {
      n = send(sock_, ptr, size, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n;
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    sockaddr_storage a{};
    socklen_t len = sizeof a;
    if (getpeername(sock_, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
      ip_and_port(a, len, ip, port);
    }
  }

  void get_local_ip_and_port(std::string& ip, int& port) const override {
    sockaddr_storage a{};
    socklen_t len = sizeof a;
    if (getsockname(sock_, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
      ip_and_port(a, len, ip, port);
    }
  }

  socket_t socket() const override { return sock_; }

 private:
  ssize_t fail() {
    failed_ = true;
    return -1;
  }

  int sock_;
  int64_t read_ms_, write_ms_;
  const std::atomic<socket_t>& listener_;  // INVALID_SOCKET once the server stops
  // What was read from the socket and not yet taken: the rest of this request or the next ones.
  std::array<char, 16384> buf_{};
  size_t begin_ = 0, end_ = 0;
  bool in_head_ = false;
  size_t head_bytes_ = 0;
  int crlf_matched_ = 0;   // how much of "\r\n\r\n" the last bytes read match
  size_t line_bytes_ = 0;  // bytes of the line being read byte by byte, after the head
  bool failed_ = false;
};

// The answer to a head over the limit that httplib gave up on before writing anything (in the
// request line).
void send_head_too_large(int sock) {
  const std::string body = std::string(R"({"error":{"message":")") + head_too_large_message() +
                           R"(","type":"invalid_request_error","param":null,"code":null}})";
  const std::string response =
      "HTTP/1.1 431 Request Header Fields Too Large\r\n"
      "Content-Type: application/json\r\nContent-Length: " +
      std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
  if (wait_for(sock, POLLOUT, 5000)) send(sock, response.data(), response.size(), MSG_NOSIGNAL);
}

}  // namespace

bool request_parsed(const httplib::Request& req) {
  return req.has_header("REMOTE_ADDR");
}

Refusal diagnose_unparsed(const httplib::Request& req) {
  static constexpr std::string_view kMethods[] = {"GET",     "HEAD",  "POST",  "PUT", "DELETE",
                                                  "CONNECT", "TRACE", "PATCH", "PRI", "OPTIONS"};
  if (t_head_too_large) return {431, head_too_large_message()};
  if (req.version.empty()) {
    return {400,
            "the request line is not 'METHOD TARGET HTTP/1.1' ending in CRLF (\\r\\n), as every "
            "line of a request must"};
  }
  if (std::find(std::begin(kMethods), std::end(kMethods), req.method) == std::end(kMethods)) {
    return {501, "the method '" + req.method +
                     "' is not supported; the server answers GET, HEAD, POST and OPTIONS"};
  }
  if (req.version != "HTTP/1.1" && req.version != "HTTP/1.0") {
    return {505, "'" + req.version + "' is not supported: send HTTP/1.1"};
  }
  return {400,
          "a header line is malformed (not 'Name: value' ending in CRLF) or longer than 8192 "
          "bytes"};
}

std::optional<Refusal> framing_error(const httplib::Request& req) {
  // RFC 9112 5.1: no whitespace between a field's name and its colon (httplib keeps it in the
  // name, so "Content-Length : 5" was no length at all and the body was read as a request).
  for (const auto& [name, value] : req.headers) {
    if (name.find_first_of(" \t") != std::string::npos) {
      return Refusal{400, "the header '" + name + "' has whitespace before its colon"};
    }
  }
  // httplib reads no body for these: one that came would be read as the next request.
  if (req.method == "GET" || req.method == "HEAD" || req.method == "OPTIONS") {
    const std::string length = req.get_header_value("Content-Length");
    if (req.has_header("Transfer-Encoding") || (!length.empty() && length != "0")) {
      return Refusal{400, "a " + req.method + " request has no body here: send it without one"};
    }
  }
  if (req.has_header("Transfer-Encoding")) {
    const std::string te = req.get_header_value("Transfer-Encoding");
    std::string lower = te;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lower != "chunked" || req.get_header_value_count("Transfer-Encoding") > 1) {
      return Refusal{501, "Transfer-Encoding '" + te +
                              "' is not supported: send the body as it is, with its "
                              "Content-Length, or as Transfer-Encoding: chunked"};
    }
    return std::nullopt;  // chunked: any Content-Length is ignored, as RFC 9112 6.3 says
  }
  const size_t n = req.get_header_value_count("Content-Length");
  std::string first;
  for (size_t i = 0; i < n; ++i) {
    const std::string v = req.get_header_value("Content-Length", i);
    if (v.empty() || v.size() > 18 ||
        !std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return Refusal{400, "Content-Length '" + v + "' is not a length in bytes (a decimal number)"};
    }
    if (i == 0) {
      first = v;
    } else if (std::stoll(v) != std::stoll(first)) {
      return Refusal{400, "the request has two Content-Length headers that differ (" + first +
                              " and " + v + ")"};
    }
  }
  return std::nullopt;
}

HttpServer::HttpServer() {
  set_keep_alive_max_count(kMaxRequestsPerConnection);
}

void HttpServer::close_after_response() {
  t_close_after_response = true;
}

bool HttpServer::closing_after_response() {
  return t_close_after_response;
}

bool HttpServer::process_and_close_socket(socket_t sock) {
  ConnectionStream strm(sock, to_ms(read_timeout_sec_, read_timeout_usec_),
                        to_ms(write_timeout_sec_, write_timeout_usec_), svr_sock_);
  bool ok = false;
  for (size_t count = keep_alive_max_count_; count > 0; --count) {
    // The next request: already buffered, or the first byte within the keep-alive timeout
    // (watched in slices, so that stop() closes idle connections at once).
    bool ready = strm.has_buffered() || strm.wait_readable(int64_t{keep_alive_timeout_sec_} * 1000);
    if (!ready || svr_sock_ == INVALID_SOCKET) break;
    bool closed = false;
    t_close_after_response = false;
    t_head_too_large = false;
    strm.start_request();
    ok = process_request(strm, count == 1, closed, nullptr);
    if (!ok && t_head_too_large) {
      send_head_too_large(sock);
      if (loop_logger_) loop_logger_(431);
    }
    if (!ok || closed || t_close_after_response || strm.failed()) break;
  }
  // Closing a socket with unread input sends a reset, which can destroy the last response before
  // the client reads it (the requests after a malformed one, a pipeline past the last request).
  // So the sending side is shut first and the input read and dropped until the client closes
  // (at most 1 s and 1 MiB).
  if (strm.has_buffered() || wait_for(sock, POLLIN, 0)) {
    shutdown(sock, SHUT_WR);
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    std::array<char, 16384> sink{};
    for (size_t dropped = 0; dropped < (size_t{1} << 20);) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          end - std::chrono::steady_clock::now());
      if (left.count() <= 0 || !wait_for(sock, POLLIN, left.count())) break;
      const ssize_t n = recv(sock, sink.data(), sink.size(), 0);
      if (n <= 0) break;
      dropped += static_cast<size_t>(n);
    }
  }
  shutdown(sock, SHUT_RDWR);
  close(sock);
  return ok;
}

}  // namespace qkv::serve
