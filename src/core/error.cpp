#include "core/error.h"

// The error types are header-only; this unit keeps their vtables in one place.
namespace qkv::core {}
