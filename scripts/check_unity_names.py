#!/usr/bin/env python3
"""Names that would collide in a unity build.

The library, the executable and the tests compile as unity builds: CMake pastes batches of 8
source files into one translation unit, so two files that each define `hex` in an anonymous
namespace (or as a file-level `static`) compile alone but not together. Which files share a
batch changes whenever a file is added, so every pair of files of one target is checked, not
today's batches. Repeating an identical `namespace fs = std::filesystem;` or a `using` declaration
is legal and not reported.

Usage: check_unity_names.py [SOURCE_DIR]    (exit 1 and a list when a name is defined twice)
"""
import collections
import pathlib
import re
import sys

# One entry per unity target: the folders whose .cpp files it compiles (see the CMakeLists).
TARGETS = {
    "neuroflux": ["neuroflux/src", "csrc"],
    "neuroflux_cli": ["neuroflux/cli"],
    "neuroflux_tests": ["tests"],
}
# Compiled outside the unity targets: standalone programs, other projects, nvcc sources.
EXCLUDED = ("tests/fuzz/", "tests/consumer/", "tests/sanitize/", "tests/main.cpp")

OPEN_ANONYMOUS = re.compile(r"^namespace\s*\{")
CLOSE_ANONYMOUS = re.compile(r"^\}\s*//\s*namespace\s*$")
LEGAL_REPEAT = re.compile(r"^(namespace\s+\w+\s*=|using\s+[\w:]+::\w+\s*;|using\s+namespace\b)")
TYPE = re.compile(r"^(?:template\s*<[^>]*>\s*)?(?:struct|class|enum\s+class|enum|union)\s+(\w+)")
ALIAS = re.compile(r"^using\s+(\w+)\s*=")
# The declared name: the last identifier before "(", "=", "[", "{" or ";", not after "::".
DECLARATION = re.compile(r"^[^=(;{]*?(?<!::)\b([A-Za-z_]\w*)\s*(?:\(|=|\[|\{|;)")
STATIC = re.compile(r"^static\s")


def file_scope_names(text):
    """Names a file defines where only it should see them: in `namespace {` or `static`."""
    names = set()
    anonymous = False
    for line in text.split("\n"):
        if OPEN_ANONYMOUS.match(line):
            anonymous = True
            continue
        if anonymous and CLOSE_ANONYMOUS.match(line):
            anonymous = False
            continue
        if not line or line[0] in " \t/#}" or LEGAL_REPEAT.match(line):
            continue
        if not anonymous and not STATIC.match(line):
            continue
        match = TYPE.match(line) or ALIAS.match(line) or DECLARATION.match(line)
        if match and match.group(1) not in ("operator", "static", "const", "constexpr"):
            names.add(match.group(1))
    return names


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
    problems = []
    for target, folders in TARGETS.items():
        owners = collections.defaultdict(list)
        for folder in folders:
            for path in sorted((root / folder).rglob("*.cpp")):
                relative = path.relative_to(root).as_posix()
                if relative.startswith(EXCLUDED) or "/cuda/" in relative:
                    continue
                for name in file_scope_names(path.read_text(errors="replace")):
                    owners[name].append(relative)
        for name, files in sorted(owners.items()):
            if len(files) > 1:
                problems.append(f"{target}: '{name}' is defined at file scope in " + ", ".join(files))
    if problems:
        print("check_unity_names: these files cannot share a unity batch; rename or share the names:")
        print("\n".join("  " + p for p in problems))
        return 1
    print("check_unity_names: no file-scope name is defined twice in one target")
    return 0


if __name__ == "__main__":
    sys.exit(main())
