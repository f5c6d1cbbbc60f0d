// Test support for crawler tests: run the oracles (mkfs, debugfs, dumpe2fs,
// sfdisk, sgdisk) and record what a crawler reports.
#pragma once

#include "../common/recording_sink.h"
#include "../common/shell.h"
#include "../common/temp_dir.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "dsvmi/crawl_sink.h"

namespace dsvmi::testing {

using shell::quote;
using shell::run;

}  // namespace dsvmi::testing
