// What one input file of standalone mode holds: its documents decoded and checked the way the
// folder source takes them (a usable namespace and name, the fields Kubernetes would own
// cleared, the operator's own annotations dropped), and the problems no object can carry.
// A pure function of the file's bytes: the folder scanner's parsing, and a fuzz target.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "crd/elasticvm.h"

namespace hotplug::controller::standalone {

struct InputDocument {
  int index = 0;  // 1-based position in the file
  crd::ElasticVM object;
};

struct ParsedInputFile {
  std::vector<InputDocument> documents;  // in file order
  std::vector<std::string> errors;       // per document, "document N: ..."
  // Set when the file cannot be read past some point (a syntax error, a limit): the
  // documents before it are in `documents`, what follows is unknown.
  std::string syntax_error;
};

ParsedInputFile ParseInputFile(std::string_view text);

}  // namespace hotplug::controller::standalone
