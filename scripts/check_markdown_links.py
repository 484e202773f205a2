#!/usr/bin/env python3
"""Checks the links of every Markdown file in the repository (README.md, docs/, results/, ...;
not the fuzz corpus): a relative link must name a file or folder inside the repository that
exists and is not git-ignored, and a #fragment must name a heading (or an HTML id) of the file it
points to. http(s) and mailto links are allowed and not fetched. Standard library only.

Usage: scripts/check_markdown_links.py [ROOT [FILE.md ...]]
Prints one line per bad link (FILE:LINE: ...) and exits 1 if there is any."""
import os
import re
import subprocess
import sys
import unicodedata
from urllib.parse import unquote

EXCLUDED = ("tests/fuzz/corpus/", "build", ".git/")
FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
# [text](target "title") and ![alt](target); the text may hold one level of brackets.
INLINE = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*(<[^>]*>|[^\s()]*(?:\([^\s()]*\)[^\s()]*)*)"
                    r"(?:\s+(?:\"[^\"]*\"|'[^']*'|\([^)]*\)))?\s*\)")
REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
ATX = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$")
SETEXT = re.compile(r"^\s{0,3}(=+|-+)\s*$")
HTML_ID = re.compile(r"<a\s[^>]*(?:name|id)\s*=\s*[\"']([^\"']+)[\"']", re.I)
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
ALLOWED_SCHEMES = ("http:", "https:", "mailto:")


def markdown_files(root):
    """Tracked *.md files (every *.md not ignored when ROOT is no git checkout)."""
    try:
        out = subprocess.run(["git", "-C", root, "ls-files", "-z", "--cached", "--others",
                              "--exclude-standard", "--", "*.md"], check=True,
                             capture_output=True).stdout.decode()
        files = [f for f in out.split("\0") if f]
    except (OSError, subprocess.CalledProcessError):
        files = []
        for folder, dirs, names in os.walk(root):
            dirs[:] = [d for d in dirs if not d.startswith(".") and not d.startswith("build")]
            files += [os.path.relpath(os.path.join(folder, n), root) for n in names
                      if n.endswith(".md")]
    return sorted(f for f in files if not f.startswith(EXCLUDED) and
                  os.path.exists(os.path.join(root, f)))


def prose_lines(text, keep_code_spans=False):
    """(line number, line) outside fenced code blocks, with code spans blanked (links in them
    are no links) unless `keep_code_spans`."""
    fence = None
    for number, line in enumerate(text.splitlines(), 1):
        m = FENCE.match(line)
        if fence:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence):
                fence = None
            continue
        if m:
            fence = m.group(1)
            continue
        yield number, line if keep_code_spans else CODE_SPAN.sub(lambda s: " " * len(s.group(0)),
                                                                 line)


def slug(heading):
    """GitHub's anchor for a heading: markup dropped, lower case, punctuation removed, spaces to
    hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links: their text
    text = re.sub(r"<[^>]+>", "", text)                         # inline HTML
    text = text.replace("`", "").lower()
    out = []
    for ch in text:
        if ch in " -":
            out.append("-")
        elif ch == "_" or unicodedata.category(ch)[0] in "LN":
            out.append(ch)
    return "".join(out)


def anchors(path, cache={}):
    """The #fragments a Markdown file defines."""
    if path not in cache:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
        found, counts, previous = set(), {}, None
        for _, line in prose_lines(text, keep_code_spans=True):
            for m in HTML_ID.finditer(line):
                found.add(m.group(1))
            heading = None
            m = ATX.match(line)
            if m:
                heading = m.group(2)
            elif previous and previous.strip() and SETEXT.match(line) and \
                    not ATX.match(previous):
                heading = previous.strip()
            previous = line
            if heading is None:
                continue
            base = slug(heading)
            n = counts.get(base, 0)
            counts[base] = n + 1
            found.add(base if n == 0 else f"{base}-{n}")
        cache[path] = found
    return cache[path]


def links(text):
    for number, line in prose_lines(text):
        for m in INLINE.finditer(line):
            yield number, m.group(1).strip("<>")
        m = REFERENCE.match(line)
        if m:
            yield number, m.group(1).strip("<>")


def ignored(root, paths):
    """The paths (relative to ROOT) git ignores; none outside a git checkout."""
    if not paths:
        return set()
    try:
        result = subprocess.run(["git", "-C", root, "check-ignore", "--stdin", "-z"],
                                input="\0".join(paths).encode(), capture_output=True)
    except OSError:
        return set()
    return {p for p in result.stdout.decode().split("\0") if p}


def check(root, files):
    root = os.path.realpath(root)
    problems, inside = [], []
    for name in files:
        path = os.path.join(root, name)
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
        for number, target in links(text):
            where = f"{name}:{number}: link '{target}'"
            if not target or SCHEME.match(target):
                if target and not target.lower().startswith(ALLOWED_SCHEMES):
                    problems.append(f"{where}: only relative links and http(s) links are allowed")
                continue
            file_part, _, fragment = target.partition("#")
            file_part = unquote(file_part)
            if file_part.startswith("/"):
                resolved = os.path.normpath(os.path.join(root, file_part.lstrip("/")))
            elif file_part:
                resolved = os.path.normpath(os.path.join(os.path.dirname(path), file_part))
            else:
                resolved = path
            relative = os.path.relpath(resolved, root)
            if relative == ".." or relative.startswith(".." + os.sep):
                problems.append(f"{where}: points outside the repository ({resolved})")
                continue
            if not os.path.exists(resolved):
                problems.append(f"{where}: no such file in the repository ({relative})")
                continue
            if relative != ".":
                inside.append((where, relative))
            if fragment and resolved.endswith(".md") and os.path.isfile(resolved):
                if unquote(fragment).lower() not in {a.lower() for a in anchors(resolved)}:
                    problems.append(f"{where}: {relative} has no heading '#{fragment}'")
    bad = ignored(root, sorted({r for _, r in inside}))
    problems += [f"{where}: {relative} is ignored by git, not part of the repository"
                 for where, relative in inside if relative in bad]
    return problems


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else \
        os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    files = sys.argv[2:] or markdown_files(root)
    problems = check(root, files)
    for p in problems:
        print(p)
    print(f"markdown links: {len(files)} files, {len(problems)} bad link(s)", file=sys.stderr)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
