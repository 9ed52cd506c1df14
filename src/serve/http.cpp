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
// Why the request's chunked body could not be read, when its framing was at fault.
thread_local std::optional<Refusal> t_body_refusal;
// What is wrong with the bytes of the request's line and headers that httplib accepts.
thread_local std::optional<std::string> t_head_problem;

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

uint64_t hex_value(char c) {
  return static_cast<uint64_t>(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
}

bool is_tchar(char c) {  // a character of a field name (RFC 9110 5.6.2)
  return std::isalnum(static_cast<unsigned char>(c)) != 0 ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// The framing of a chunked body (RFC 9112 7.1), checked as httplib reads it: sizes in hex,
// each chunk's data followed by CRLF, and after the last chunk the trailer section, which
// httplib 0.11 cannot read (it wants the CRLF that ends the body at once, so a body with trailer
// fields was refused). The trailer fields are read and dropped here (7.1.2 lets a recipient
// discard them), bounded as the head is, so that httplib sees the body end. httplib also read a
// size of "0x10" or " 5" (strtoul) and took a chunk whose data was not followed by CRLF as the
// end of the body, with what came after it as the next request.
class ChunkedFraming {
 public:
  enum class State { off, size, ext, size_lf, data, data_cr, data_lf, trailers, end_lf };

  void start() {
    state_ = State::size;
    line_ = Line::start;
    digits_ = 0;
    size_ = 0;
    trailer_bytes_ = 0;
  }
  void stop() { state_ = State::off; }
  State state() const { return state_; }

  // Checks the next bytes httplib takes, [p, p + n), none of them in the trailer section.
  // Returns how many may be given to httplib now (fewer than n where the trailer section starts
  // after them), or -1 (t_body_refusal set) when the framing is wrong.
  ssize_t take(const char* p, size_t n) {
    for (size_t i = 0; i < n; ++i) {
      const char c = p[i];
      switch (state_) {
        case State::off:
          return static_cast<ssize_t>(n);
        case State::size:
          if (std::isxdigit(static_cast<unsigned char>(c)) != 0) {
            // 2^60 is far past any body limit; the check keeps the sum from wrapping.
            if (size_ >> 60 != 0) return refuse(400, "a chunk size is too large");
            size_ = size_ * 16 + hex_value(c);
            ++digits_;
          } else if (digits_ > 0 && (c == ';' || c == ' ' || c == '\t')) {
            state_ = State::ext;  // a chunk extension, ignored (7.1.1)
          } else if (digits_ > 0 && c == '\r') {
            state_ = State::size_lf;
          } else {
            return refuse(400,
                          "a chunk size is not a hexadecimal number followed by CRLF (RFC 9112 "
                          "7.1)");
          }
          break;
        case State::ext:
          if (c == '\r') state_ = State::size_lf;
          if (c == '\n') return refuse(400, "a chunk size line ends in LF without CR");
          break;
        case State::size_lf:
          if (c != '\n') return refuse(400, "a chunk size line does not end in CRLF");
          if (size_ == 0) {
            state_ = State::trailers;
            return static_cast<ssize_t>(i + 1);
          }
          state_ = State::data;
          break;
        case State::data: {
          const size_t run = static_cast<size_t>(std::min<uint64_t>(size_, n - i));
          size_ -= run;
          i += run - 1;
          if (size_ == 0) state_ = State::data_cr;
          break;
        }
        case State::data_cr:
        case State::data_lf:
          if (c != (state_ == State::data_cr ? '\r' : '\n')) {
            return refuse(400, "a chunk's data is not followed by CRLF (RFC 9112 7.1)");
          }
          if (state_ == State::data_lf) {
            state_ = State::size;
            digits_ = 0;
          } else {
            state_ = State::data_lf;
          }
          break;
        case State::trailers:
          // take() is called with the trailer fields skipped: the CRLF that ends the body.
          if (c != '\r') return refuse(400, "the chunked body does not end in CRLF");
          state_ = State::end_lf;
          break;
        case State::end_lf:
          if (c != '\n') return refuse(400, "the chunked body does not end in CRLF");
          state_ = State::off;
          return static_cast<ssize_t>(i + 1);
      }
    }
    return static_cast<ssize_t>(n);
  }

  // In the trailer section: takes the bytes of its field lines from [p, p + n) (not the CRLF
  // that ends it). Returns how many were taken; *done once the final CRLF is next; -1 (with
  // t_body_refusal set) for a malformed field line or trailer fields over kMaxHeadBytes.
  ssize_t skip_trailers(const char* p, size_t n, bool* done) {
    *done = false;
    for (size_t i = 0; i < n; ++i) {
      const char c = p[i];
      if (line_ == Line::start && c == '\r') {
        *done = true;
        return static_cast<ssize_t>(i);
      }
      if (++trailer_bytes_ > HttpServer::kMaxHeadBytes) {
        return refuse(431, "the chunked body's trailer fields are larger than " +
                               std::to_string(HttpServer::kMaxHeadBytes) + " bytes");
      }
      switch (line_) {
        case Line::start:
        case Line::name:
          if (c == ':' && line_ == Line::name) {
            line_ = Line::value;
          } else if (is_tchar(c)) {
            line_ = Line::name;
          } else {
            return refuse(400, "a trailer field is not 'Name: value' ending in CRLF");
          }
          break;
        case Line::value:
          if (c == '\r') line_ = Line::lf;
          if (c == '\n' || c == '\0') {
            return refuse(400, "a trailer field is not 'Name: value' ending in CRLF");
          }
          break;
        case Line::lf:
          if (c != '\n') return refuse(400, "a trailer field is not 'Name: value' ending in CRLF");
          line_ = Line::start;
          break;
      }
    }
    return static_cast<ssize_t>(n);
  }

 private:
  enum class Line { start, name, value, lf };

  ssize_t refuse(int status, std::string message) {
    t_body_refusal = Refusal{status, std::move(message)};
    state_ = State::off;
    return -1;
  }

  State state_ = State::off;
  Line line_ = Line::start;
  int digits_ = 0;
  uint64_t size_ = 0;  // the chunk size being read, then the bytes of its data still to come
  size_t trailer_bytes_ = 0;
};

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
    chunked_.stop();
  }
  // The request's body, read next, is chunked.
  void start_chunked_body() { chunked_.start(); }

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
    if (chunked_.state() == ChunkedFraming::State::trailers) {
      for (bool done = false; !done;) {
        if (!has_buffered()) {
          if (const ssize_t got = fill(); got <= 0) return got;
        }
        const ssize_t k = chunked_.skip_trailers(buf_.data() + begin_, end_ - begin_, &done);
        if (k < 0) return fail();
        begin_ += static_cast<size_t>(k);
      }
    }
    if (!has_buffered()) {
      if (const ssize_t got = fill(); got <= 0) return got;
    }
    const ssize_t allowed = chunked_.take(buf_.data() + begin_, std::min(size, end_ - begin_));
    if (allowed < 0) return fail();
    const size_t n = static_cast<size_t>(allowed);
    std::memcpy(ptr, buf_.data() + begin_, n);
    begin_ += n;
    // httplib reads lines a byte at a time into a buffer that grows without bound, and checks a
    // line's length (and never the number of headers) only once the line has ended. So the head
    // is bounded here, and so is any other line read byte by byte (a chunked body's size lines).
    for (size_t i = 0; i < n && in_head_; ++i) {
      static constexpr char kEnd[] = "\r\n\r\n";
      // What httplib lets through that RFC 9112 says a server must refuse (or repair): a line
      // folded onto the one before it (obs-fold, 5.2), a CR that does not end a line (2.2), a
      // NUL (RFC 9110 5.5). Noted here, refused once the head is parsed (framing_error).
      if (!t_head_problem) {
        if (crlf_matched_ == 2 && (ptr[i] == ' ' || ptr[i] == '\t')) {
          t_head_problem =
              "a header line starts with whitespace (a folded line, which HTTP/1.1 "
              "no longer allows)";
        } else if ((crlf_matched_ == 1 || crlf_matched_ == 3) && ptr[i] != '\n') {
          t_head_problem = "the request's head has a CR that is not followed by LF";
        } else if (ptr[i] == '\0') {
          t_head_problem = "the request's head has a NUL byte";
        }
      }
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

  // Reads what the socket has into the empty buffer: the bytes read, 0 at the end of input, -1
  // on a timeout or error.
  ssize_t fill() {
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
    return n;
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
  ChunkedFraming chunked_;
};

// The stream of the connection this thread serves.
thread_local ConnectionStream* t_stream = nullptr;

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
  if (t_head_problem) return {400, *t_head_problem};
  // "HTTP/" DIGIT "." DIGIT (RFC 9112 2.3); anything else is a malformed line ("GET /a b
  // HTTP/1.1": a space in the target).
  const std::string& v = req.version;
  if (v.size() != 8 || v.rfind("HTTP/", 0) != 0 ||
      !std::isdigit(static_cast<unsigned char>(v[5])) || v[6] != '.' ||
      !std::isdigit(static_cast<unsigned char>(v[7]))) {
    return {400,
            "the request line is not 'METHOD TARGET HTTP/1.1' (a space in the target must be "
            "written %20)"};
  }
  if (v != "HTTP/1.1" && v != "HTTP/1.0") {
    return {505, "'" + v + "' is not supported: send HTTP/1.1"};
  }
  return {400,
          "a header line is malformed (not 'Name: value' ending in CRLF) or longer than 8192 "
          "bytes"};
}

std::optional<Refusal> framing_error(const httplib::Request& req) {
  if (t_head_problem) return Refusal{400, *t_head_problem};
  // RFC 9112 5.1: no whitespace between a field's name and its colon (httplib keeps it in the
  // name, so "Content-Length : 5" was no length at all and the body was read as a request).
  for (const auto& [name, value] : req.headers) {
    if (name.find_first_of(" \t") != std::string::npos) {
      return Refusal{400, "the header '" + name + "' has whitespace before its colon"};
    }
    // A field name is a token (RFC 9110 5.1). The names httplib adds itself are not sent.
    if (name.empty() || !std::all_of(name.begin(), name.end(), is_tchar)) {
      return Refusal{400, "the header name '" + name + "' is not a token (RFC 9110 5.1)"};
    }
  }
  // RFC 9112 3.2: exactly one Host in an HTTP/1.1 request.
  const size_t n_host = req.get_header_value_count("Host");
  if (n_host > 1) return Refusal{400, "the request has more than one Host header"};
  if (n_host == 0 && req.version == "HTTP/1.1") {
    return Refusal{400, "an HTTP/1.1 request must have a Host header"};
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

void HttpServer::start_chunked_body() {
  if (t_stream != nullptr) t_stream->start_chunked_body();
}

std::optional<Refusal> HttpServer::body_refusal() {
  return t_body_refusal;
}

bool HttpServer::process_and_close_socket(socket_t sock) {
  ConnectionStream strm(sock, to_ms(read_timeout_sec_, read_timeout_usec_),
                        to_ms(write_timeout_sec_, write_timeout_usec_), svr_sock_);
  t_stream = &strm;
  bool ok = false;
  for (size_t count = keep_alive_max_count_; count > 0; --count) {
    // The next request: already buffered, or the first byte within the keep-alive timeout
    // (watched in slices, so that stop() closes idle connections at once).
    bool ready = strm.has_buffered() || strm.wait_readable(int64_t{keep_alive_timeout_sec_} * 1000);
    if (!ready || svr_sock_ == INVALID_SOCKET) break;
    bool closed = false;
    t_close_after_response = false;
    t_head_too_large = false;
    t_body_refusal.reset();
    t_head_problem.reset();
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
  t_stream = nullptr;
  shutdown(sock, SHUT_RDWR);
  close(sock);
  return ok;
}

}  // namespace qkv::serve
