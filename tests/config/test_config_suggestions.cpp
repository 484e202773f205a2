// An unknown config key names the closest known key of its object, when one is close.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "config/config_test_util.h"

using nlohmann::json;

TEST_CASE("an unknown key suggests the closest known key of its object", "[config][unit]") {
  CHECK(error_of({{"train", {{"epochz", 3}}}})
            .rfind("/train/epochz: unknown key; did you mean 'epochs'? (known here: ", 0) == 0);
  CHECK(error_of({{"trian", {{"epochs", 3}}}})
            .rfind("/trian: unknown key; did you mean 'train'? (known here: ", 0) == 0);
  CHECK(error_of({{"memory", {{"bugdet", "16MiB"}}}})
            .rfind("/memory/bugdet: unknown key; did you mean 'budget'?", 0) == 0);
  CHECK(error_of({{"neuroflux", {{"cache", {{"were", "disk"}}}}}})
            .rfind("/neuroflux/cache/were: unknown key; did you mean 'where'?", 0) == 0);
}

TEST_CASE("an unknown key far from every known one gets no suggestion", "[config][unit]") {
  const std::string error = error_of({{"train", {{"frobnicate", 1}}}});
  CHECK(error.rfind("/train/frobnicate: unknown key (known here: ", 0) == 0);
  CHECK(error.find("did you mean") == std::string::npos);
}
