// stb_image's build options, included before every #include <stb_image.h> so the declarations
// match the one implementation (stb_image_impl.cpp).
#pragma once

#define STBI_ONLY_JPEG
#define STBI_ONLY_PNG
#define STBI_NO_STDIO
// Sides beyond 2^15 are no image anyone trains on (the IDX reader has the same bound); stb then
// refuses them before allocating.
#define STBI_MAX_DIMENSIONS (1 << 15)
