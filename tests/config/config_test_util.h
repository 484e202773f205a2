// The error a config is refused with, for tests of bad input.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "neuroflux/config/config.h"
#include "neuroflux/util/errors.h"

/// Config::from_json(j)'s ConfigError message; "" when the config is accepted.
inline std::string error_of(const nlohmann::json& j) {
  try {
    neuroflux::Config::from_json(j);
  } catch (const neuroflux::ConfigError& e) {
    return e.what();
  }
  return "";
}
