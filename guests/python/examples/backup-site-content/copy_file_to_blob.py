import os
import pathlib

import cairn_sdk as df


def main(filePath: str) -> int:
    # The "blob container": a directory granted to the component read-write.
    container = pathlib.Path(os.environ.get("BACKUP_DIR", "/backups"))
    root = pathlib.PurePosixPath(filePath).anchor
    blob_path = filePath[len(root):]
    output_location = container / blob_path
    data = pathlib.Path(filePath).read_bytes()
    df.activity_context().log_info(
        f"Copying '{filePath}' to '{output_location}'. Total bytes = {len(data)}."
    )
    output_location.parent.mkdir(parents=True, exist_ok=True)
    output_location.write_bytes(data)
    return len(data)
