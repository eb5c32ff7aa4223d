"""Durable Functions' fan-out/fan-in sample E2, BackupSiteContent, with
activities that do real I/O (files and an environment variable).

- Orchestrator `E2_BackupSiteContent`, input a directory: lists its files
  with `E2_GetFileList`, copies each with `E2_CopyFileToBlob` in parallel,
  returns the total number of bytes copied.
- Activity `E2_GetFileList`, input a directory: every file under it
  (recursively), as paths.
- Activity `E2_CopyFileToBlob`, input a file path: copies the file into the
  backup directory (the "blob container": `$BACKUP_DIR`, default
  `/backups`), keeping its path below the root; returns its size.

The project is built in two parts (cairn.json asks for WASI activities):
the orchestrator without WASI, the activities with it. Deploy both with the
directories granted, e.g. ::

    cairn deploy target/guests/python/backup-site-content.wasm \\
        --allow-dir ./site:/site --allow-dir ./backups:/backups:rw
    cairn start E2_BackupSiteContent --input '"/site"' --wait

The functions are in `backup_site_content.py`, `get_file_list.py` and
`copy_file_to_blob.py`, one per Durable Functions function.
"""

import cairn_sdk as df

from backup_site_content import main as backup_site_content
from copy_file_to_blob import main as copy_file_to_blob
from get_file_list import main as get_file_list

app = df.App()
app.orchestrator("E2_BackupSiteContent")(backup_site_content)
app.activity("E2_GetFileList")(get_file_list)
app.activity("E2_CopyFileToBlob")(copy_file_to_blob)

from cairn_sdk import Functions  # noqa: E402,F401  (the component's export)
