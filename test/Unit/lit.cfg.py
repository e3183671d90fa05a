# -*- Python -*-
# Runs every GoogleTest binary in <build>/unittests/bin (names end in "Tests").

import os

import lit.formats

config.name = "MIXQ-Unit"
config.suffixes = []
config.test_exec_root = os.path.join(config.mixq_obj_root, "unittests")
config.test_source_root = config.test_exec_root
config.test_format = lit.formats.GoogleTest("bin", "Tests")
