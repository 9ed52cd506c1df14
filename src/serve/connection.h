// Whether the client of a request that is not streamed is still there. cpp-httplib 0.11 gives a
// handler neither its socket nor a way to ask whether the peer has gone (newer versions have
// Request::is_connection_closed), so a client that gave up on a long generation left its slot
// generating to the end, and a client retrying on a timeout ran the same request twice. The
// socket is found by its two addresses, which the request carries, among the process's open
// sockets (Linux: /proc/self/fd); httplib keeps it open until the handler returns.
#pragma once

#include <httplib.h>

namespace qkv::serve {

// The socket the request came on, or -1 when it cannot be told (not Linux, not found).
int connection_socket(const httplib::Request& req);

// True once the peer has closed or reset the connection (or shut its sending side down, as
// httplib's own check counts it). Never blocks.
bool peer_closed(int socket);

}  // namespace qkv::serve
