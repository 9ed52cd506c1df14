// The built-in corpus (qkv/train.h): implemented in the next commit.
#include "qkv/train.h"
