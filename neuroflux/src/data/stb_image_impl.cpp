// The one translation unit that compiles stb_image's and stb_image_resize's implementations
// (Debian's libstb-dev ships them as headers; see README "Image folders" for why stb). Only the
// JPEG and PNG decoders are built: a file named .png that holds a GIF is then refused as
// corrupt rather than decoded by a decoder nobody asked for. Files are read by NeuroFlux (for
// its error messages), so stb needs no stdio.
#include "data/stb_config.h"

#define STB_IMAGE_IMPLEMENTATION
#include <stb_image.h>

#define STB_IMAGE_RESIZE_IMPLEMENTATION
#include <stb_image_resize.h>
