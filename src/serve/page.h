// The web page GET / serves (page.html, compiled into the library).
#pragma once

#include <string_view>

namespace qkv::serve {
std::string_view page_html();
}  // namespace qkv::serve
