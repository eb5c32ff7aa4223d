import os
from os.path import join


def raise_error(error: OSError):
    # os.walk skips directories it cannot read; a backup must not.
    raise error


def main(rootDirectory: str) -> list:
    all_file_paths = []
    # We walk the file system
    for path, _, files in os.walk(rootDirectory, onerror=raise_error):
        # We copy the code for activities and orchestrators
        for name in files:
            all_file_paths.append(join(path, name))
    return sorted(all_file_paths)
