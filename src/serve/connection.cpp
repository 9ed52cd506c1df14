// Finding a request's socket and watching for its peer to go (connection.h).
#include "serve/connection.h"

#include <netdb.h>
#include <sys/socket.h>

#include <cstdlib>
#include <string>

#ifdef __linux__
#include <dirent.h>
#include <poll.h>
#endif

namespace qkv::serve {

namespace {

// The numeric host and port of a socket address, written as httplib writes the request's.
bool host_and_port(const sockaddr_storage& a, socklen_t len, std::string& host, int& port) {
  char h[NI_MAXHOST];
  char p[NI_MAXSERV];
  if (getnameinfo(reinterpret_cast<const sockaddr*>(&a), len, h, sizeof h, p, sizeof p,
                  NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
    return false;
  }
  host = h;
  port = std::atoi(p);
  return true;
}

}  // namespace

int connection_socket(const httplib::Request& req) {
#ifdef __linux__
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  int found = -1;
  while (const dirent* e = readdir(dir)) {
    char* end = nullptr;
    const long fd = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0' || fd == dirfd(dir)) continue;
    sockaddr_storage peer{}, local{};
    socklen_t peer_len = sizeof peer, local_len = sizeof local;
    // Descriptors that are not connected sockets fail here (ENOTSOCK, ENOTCONN).
    if (getpeername(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&peer), &peer_len) != 0 ||
        getsockname(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&local), &local_len) != 0) {
      continue;
    }
    std::string peer_host, local_host;
    int peer_port = -1, local_port = -1;
    if (host_and_port(peer, peer_len, peer_host, peer_port) &&
        host_and_port(local, local_len, local_host, local_port) && peer_port == req.remote_port &&
        local_port == req.local_port && peer_host == req.remote_addr) {
      found = static_cast<int>(fd);
      break;
    }
  }
  closedir(dir);
  return found;
#else
  (void)req;
  return -1;
#endif
}

bool peer_closed(int socket) {
#ifdef __linux__
  if (socket < 0) return false;
  pollfd p{socket, POLLRDHUP, 0};
  return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
#else
  (void)socket;
  return false;
#endif
}

}  // namespace qkv::serve
