#!/usr/bin/env python3
"""The README tells a newcomer the truth: every file or folder it names exists, every script it
says to run is executable, and every flag of hotplug-operator it mentions is one the binary's
--help lists.

Names are taken from `code spans` and code blocks. In the "Where things are" table a bare name
in the second column (`setup`, `libvirt/`) is looked up under the folder of the first column;
elsewhere a name with a slash whose first part is a folder of the project is looked up from the
project root (so `hotplug.dev/node`, a label key, is not taken for a path).

Usage: readme_test.py [README] [--binary path/to/hotplug-operator]
"""

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Placeholders and things that are not in the tree on purpose.
NOT_PATHS = re.compile(r"(^DIR|<|\.\.\.|^https?:|^/|^~)")
PATH_LIKE = re.compile(r"^[\w.-]+(/[\w.-]*)+$|^[\w-]+\.(md|yaml|yml|json|txt|py|sh)$")
BARE_NAME = re.compile(r"^[\w.-]+/?$")


def code_spans(line):
    return re.findall(r"`([^`]+)`", line)


def is_table_row(line):
    return line.lstrip().startswith("|")


def words_of_code(text):
    """Every word of the README's code outside its tables: fenced blocks and code spans."""
    words = []
    in_block = False
    for line in text.splitlines():
        if line.startswith("```"):
            in_block = not in_block
            continue
        if is_table_row(line):
            continue
        if in_block:
            words += line.split("#", 1)[0].split()
        else:
            for span in code_spans(line):
                words += span.split()
    return words


def missing_paths(text):
    problems = []
    for word in words_of_code(text):
        word = word.rstrip(",;:)")
        if NOT_PATHS.search(word) or not PATH_LIKE.match(word):
            continue
        if not os.path.isdir(os.path.join(ROOT, word.split("/", 1)[0])) and "/" in word:
            continue  # an API group or label key (hotplug.dev/node), not a path of ours
        if not os.path.exists(os.path.join(ROOT, word)):
            problems.append(f"README names {word}, which does not exist")
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not is_table_row(line):
            continue
        folders = [span for span in code_spans(cells[0]) if span.endswith("/")]
        if not folders:
            continue
        for span in code_spans(cells[1]):
            if not BARE_NAME.match(span) or span[0].isupper():
                continue  # a type or reason name (`Hypervisor`), not a file
            if not any(os.path.exists(os.path.join(ROOT, folder, span)) for folder in folders):
                problems.append(f"README's table names {span} under {' or '.join(folders)}, "
                                f"which has no such entry")
    return problems


def scripts_not_executable(text):
    problems = []
    for word in set(words_of_code(text)):
        if word.startswith("scripts/") and not word.endswith("/"):
            path = os.path.join(ROOT, word)
            if not (os.path.isfile(path) and os.access(path, os.X_OK)):
                problems.append(f"README runs {word}, which is not an executable file")
    return problems


def unknown_flags(text, binary):
    help_text = subprocess.run([binary, "--help"], capture_output=True, text=True,
                               timeout=30).stdout
    known = set(re.findall(r"--[a-z][a-z0-9-]*", help_text))
    problems = []
    for line in text.splitlines():
        if "hotplug-operator --" not in line:
            continue
        for flag in re.findall(r"hotplug-operator (--[a-z][a-z0-9-]*)", line):
            if flag not in known:
                problems.append(f"README mentions hotplug-operator {flag}, which --help "
                                f"does not list")
    return problems


def main(argv):
    readme = os.path.join(ROOT, "README.md")
    binary = None
    args = list(argv)
    if "--binary" in args:
        index = args.index("--binary")
        binary = args[index + 1]
        del args[index:index + 2]
    if args:
        readme = args[0]
    with open(readme, encoding="utf-8") as handle:
        text = handle.read()
    problems = missing_paths(text) + scripts_not_executable(text)
    if binary:
        problems += unknown_flags(text, binary)
    for problem in problems:
        print(f"FAIL {problem}")
    checked = len(set(words_of_code(text)))
    print(f"{'FAIL' if problems else 'PASS'}: {len(problems)} problems in {readme} "
          f"({checked} code words read)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
