#!/usr/bin/env python3
"""Checks every #include under neuroflux/ and csrc/ against the layers in docs/layering.md: a
file may include its own folder and the folders of the layers above it, nothing else.
Usage: scripts/check_layering.py [ROOT]   (exit 1 and one line per include that points up)"""
import os
import re
import sys

# Headers at the root of include/neuroflux/, and the layer folder each belongs to.
ROOT_HEADERS = {"trainer.h": "train"}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def read_layers(root):
    with open(os.path.join(root, "docs", "layering.md")) as f:
        text = f.read()
    block = re.search(r"```layers\n(.*?)```", text, re.S)
    if not block:
        sys.exit("check_layering: docs/layering.md has no ```layers block")
    rank = {}
    for level, line in enumerate(l for l in block.group(1).splitlines() if l.strip()):
        for folder in line.split():
            rank[folder] = level
    return rank


def folder_of_file(relpath):
    """The layer folder a source file belongs to, or None for files outside the layering."""
    parts = relpath.split("/")
    if parts[0] == "csrc":
        return "ops"
    if parts[0] != "neuroflux" or len(parts) < 3:
        return None
    if parts[1] in ("cli", "examples"):
        return parts[1]
    if parts[1] == "src":
        return parts[2] if len(parts) > 3 else None
    if parts[1] == "include" and len(parts) >= 4:
        return parts[3] if len(parts) > 4 else ROOT_HEADERS.get(parts[3])
    return None


def folder_of_include(include, including_folder):
    """The layer folder an include names: "neuroflux/<folder>/...", "neuroflux/<root header>",
    "csrc/...", or a private header "<folder>/..." relative to neuroflux/src."""
    parts = include.split("/")
    if parts[0] == "neuroflux":
        if len(parts) == 2:
            return ROOT_HEADERS.get(parts[1])
        return "ops" if parts[1] == "ops" else parts[1]
    if parts[0] == "csrc":
        return "ops"
    if len(parts) > 1:
        return parts[0]
    return including_folder  # a header beside the file


def violations(root, rank):
    found = []
    for top in ("neuroflux", "csrc"):
        for directory, _, files in os.walk(os.path.join(root, top)):
            for name in sorted(files):
                if not name.endswith((".h", ".cpp", ".cu", ".cuh")):
                    continue
                path = os.path.join(directory, name)
                relpath = os.path.relpath(path, root).replace(os.sep, "/")
                folder = folder_of_file(relpath)
                if folder is None:
                    continue
                if folder not in rank:
                    found.append(f"{relpath}: folder '{folder}' is not in docs/layering.md")
                    continue
                with open(path, errors="replace") as f:
                    for number, line in enumerate(f, 1):
                        match = INCLUDE.match(line)
                        if not match:
                            continue
                        target = folder_of_include(match.group(1), folder)
                        if target is None or target == folder or target not in rank:
                            continue
                        if rank[target] >= rank[folder]:
                            found.append(f"{relpath}:{number}: {folder} includes "
                                         f"\"{match.group(1)}\" from {target}, which is not "
                                         "below it")
    return found


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))
    found = violations(root, read_layers(root))
    for line in found:
        print(line)
    if found:
        print(f"check_layering: {len(found)} include(s) against docs/layering.md")
        return 1
    print("check_layering: every include points down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
