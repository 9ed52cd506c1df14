// Shared pieces of the builtins (filters.cpp, globals.cpp): argument access as Jinja binds
// filter and method arguments (positional, then by name), and Python's str operations.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "chat/value.h"

namespace qkv::chat {

class Interp;

// Names of the filters and tests the interpreter knows, so that a template using another one is
// refused when it is parsed, as Jinja refuses it when compiling.
bool is_known_filter(const std::string& name);
bool is_known_test(const std::string& name);

// A filter: value | name(args).
using FilterFn = Value (*)(Interp&, const Value&, CallArgs&);
// The filters of chat/layout_filters.cpp (center, truncate, batch, groupby, urlencode, ...).
const std::unordered_map<std::string, FilterFn>& layout_filters();
// The filters of chat/text_filters.cpp (format, wordwrap, striptags, urlize, pprint, random).
const std::unordered_map<std::string, FilterFn>& text_filters();
// Jinja's urlize filter (chat/urlize.cpp).
Value urlize(Interp& in, const Value& v, CallArgs& a);

// Jinja's attribute path ("a.b.0") as sort, map, groupby ... follow it; with a default (map's),
// an undefined step becomes the default before the next one.
Value attr_path(Interp& in, const Value& v, const std::string& path, const Value* dflt = nullptr);
// Jinja's escape: & < > " ' as HTML entities.
std::string html_escape(const std::string& s);
// Python's float(str); nullopt where Python raises ValueError.
std::optional<double> py_float(const std::string& text);
// Python's \w for one character: str.isalnum() or '_' (chat/casing.cpp).
bool py_is_word_char(uint32_t cp);
// Python's \d for one character: a decimal digit (Nd) of any script (chat/casing.cpp).
bool py_is_decimal(uint32_t cp);
// str.isalpha() (a letter, L*) and str.isdigit() (Numeric_Type Decimal or Digit: '²' too).
bool py_isalpha(uint32_t cp);
bool py_isdigit(uint32_t cp);
bool py_isnumeric(uint32_t cp);  // str.isnumeric(): any Numeric_Type ('½', '٣', 'Ⅷ')
// str.splitlines(keepends): Python's line boundaries (\n \r \r\n \v \f \x1c-\x1e U+0085
// U+2028 U+2029).
std::vector<Value> py_splitlines(const std::string& s, bool keepends);

// Positional argument i or keyword `name` (after the value a filter applies to); null if absent.
const Value* arg(const CallArgs& a, size_t i, const char* name);
bool arg_bool(const CallArgs& a, size_t i, const char* name, bool dflt);
int64_t arg_int(const CallArgs& a, size_t i, const char* name, int64_t dflt);
std::string arg_str(const CallArgs& a, size_t i, const char* name, const std::string& dflt);
const std::string& need_str(const Value& v, const char* what);

// Python's str methods. The case changes and case tests cover all of Unicode (chat/casing.cpp);
// ascii_lower is for keywords ("inf", "nan").
std::string ascii_lower(std::string s);
std::string py_lower(std::string_view s);
std::string py_upper(std::string_view s);
std::string py_title(std::string_view s);
std::string py_capitalize(std::string_view s);
std::string py_swapcase(std::string_view s);
bool py_islower(std::string_view s);
bool py_isupper(std::string_view s);
std::vector<Value> py_split(const std::string& s, const Value* sep, int64_t maxsplit);
std::vector<Value> py_rsplit(const std::string& s, const Value* sep, int64_t maxsplit);
std::string py_replace(const std::string& s, const std::string& old, const std::string& repl,
                       int64_t count, Interp& in);
// str.format(*args, **kwargs) (chat/format.cpp).
std::string py_format(Interp& in, const std::string& s, const CallArgs& a);
// str % operand, Python's printf-style formatting (chat/printf.cpp); the format filter too.
std::string py_percent_format(Interp& in, const std::string& format, const Value& operand);
bool prefix_match(const std::string& s, const Value& prefix, bool suffix);  // str or tuple
Value pairs(const Dict& d);                                                 // [(key, value), ...]

}  // namespace qkv::chat
