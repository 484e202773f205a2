"""Reading and writing the JSON and text files the result scripts share: a file is either its
old version or its new one, never half-written (a temporary name, then a rename)."""
import json
import os


def load(path):
    with open(path) as f:
        return json.load(f)


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
