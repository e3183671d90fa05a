# -*- Python -*-
# lit configuration for MixQ's IR and tool tests.

import os

import lit.formats
from lit.llvm import llvm_config
from lit.llvm.subst import ToolSubst

config.name = "MIXQ"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".test"]
config.excludes = ["Inputs", "CMakeLists.txt", "lit.cfg.py",
                   "lit.site.cfg.py"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.mixq_obj_root, "test")

config.environment["FILECHECK_OPTS"] = (
    "-enable-var-scope --allow-unused-prefixes=false")

llvm_config.use_default_substitutions()
config.substitutions.append(("%PATH%", config.environment["PATH"]))
config.substitutions.append(("%mixq_data", config.mixq_data_dir))
config.substitutions.append(("%mixq_src", config.mixq_src_root))
config.substitutions.append(("%mixq_obj", config.mixq_obj_root))
config.substitutions.append(("%inputs", os.path.join(config.test_source_root,
                                                      "Inputs")))

if os.path.isdir(config.mixq_data_dir):
    config.available_features.add("data")
if config.mixq_have_torch in ("1", "ON", "TRUE"):
    config.available_features.add("torch")

tool_dirs = [config.mixq_tools_dir, config.llvm_tools_dir]
tools = [ToolSubst(t, unresolved="fatal")
         for t in config.mixq_tool_names.split(",") if t]
llvm_config.add_tool_substitutions(tools, tool_dirs)
llvm_config.with_environment("PATH", config.mixq_tools_dir, append_path=True)
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)
