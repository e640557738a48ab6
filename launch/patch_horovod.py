#!/usr/bin/env python3
"""Patch an unpacked Horovod 0.28.1 sdist so it builds and runs here.

Usage: python launch/patch_horovod.py SRC_DIR

Edits (each must match exactly once, otherwise this script exits non-zero
without having written anything):

1. ``CMakeLists.txt`` and ``horovod/torch/CMakeLists.txt``:
   ``set(CMAKE_CXX_STANDARD 14)`` -> ``17`` (PyTorch 2.x headers need C++17).
2. ``horovod/runner/mpi_run.py``: ``_NO_BINDING_ARGS`` uses the double-dash
   ``--bind-to none`` / ``--map-by slot`` forms (Open MPI 5's mpirun ignores
   the single-dash ones, so ``horovodrun`` with more ranks than cores fails
   to bind).

Note: the cache key of launch/build_horovod.sh includes this file's
contents, so any change here forces a rebuild.
"""
import os
import sys

EDITS = [
    # (relative path, expected old text, new text)
    ("CMakeLists.txt",
     "set(CMAKE_CXX_STANDARD 14)\n",
     "set(CMAKE_CXX_STANDARD 17)\n"),
    ("horovod/torch/CMakeLists.txt",
     "    set(CMAKE_CXX_STANDARD 14)\n",
     "    set(CMAKE_CXX_STANDARD 17)\n"),
    ("horovod/runner/mpi_run.py",
     "_NO_BINDING_ARGS = ['-bind-to none', '-map-by slot']\n",
     "_NO_BINDING_ARGS = ['--bind-to none', '--map-by slot']\n"),
]


def main(argv):
    if len(argv) != 2:
        print(f"usage: {argv[0]} SRC_DIR", file=sys.stderr)
        return 2
    src = argv[1]
    if not os.path.isfile(os.path.join(src, "setup.py")):
        print(f"patch_horovod: ERROR: {src} has no setup.py; "
              "is it an unpacked horovod sdist?", file=sys.stderr)
        return 1

    # Check every edit before writing any, so a failure leaves the tree as is.
    new_texts = {}
    errors = []
    for rel, old, new in EDITS:
        path = os.path.join(src, rel)
        if path in new_texts:
            text = new_texts[path]
        elif os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                text = f.read()
        else:
            errors.append(f"{rel}: file not found")
            continue
        count = text.count(old)
        if count != 1:
            errors.append(f"{rel}: expected exactly 1 occurrence of "
                          f"{old.strip()!r}, found {count}")
            continue
        new_texts[path] = text.replace(old, new)

    if errors:
        print("patch_horovod: ERROR: the source does not look like "
              "horovod 0.28.1 (or it is already patched):", file=sys.stderr)
        for e in errors:
            print(f"  - {e}", file=sys.stderr)
        return 1

    for path, text in new_texts.items():
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    for rel, old, new in EDITS:
        print(f"patch_horovod: {rel}: {old.strip()} -> {new.strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
