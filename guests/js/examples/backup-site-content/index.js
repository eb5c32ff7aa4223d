// Durable Functions' fan-out/fan-in sample E2, BackupSiteContent, with
// activities that do real file I/O (the same functions as
// guests/python/examples/backup-site-content):
// - orchestrator `E2_BackupSiteContent`, input a directory: lists its files
//   with `E2_GetFileList`, copies each with `E2_CopyFileToBlob` in
//   parallel, returns the total number of bytes copied;
// - activity `E2_GetFileList`, input a directory: every file under it;
// - activity `E2_CopyFileToBlob`, input a file path: copies it into the
//   backup directory (`/backups`, or $BACKUP_DIR when granted), keeping its
//   path; returns its size.
//
// One file per Durable Functions function, registered here by name (the
// role of function.json). cairn.json asks for WASI activities: the build
// makes backup-site-content.wasm (orchestrator) and
// backup-site-content.activities.wasm (activities); deploy both with
//   cairn deploy target/guests/js/backup-site-content.wasm \
//     --allow-dir ./site:/site --allow-dir ./backups:/backups:rw

import * as df from "cairn-sdk";
import E2_BackupSiteContent from "./E2_BackupSiteContent.js";
import E2_GetFileList from "./E2_GetFileList.js";
import E2_CopyFileToBlob from "./E2_CopyFileToBlob.js";

export const functions = df.app({
  orchestrators: { E2_BackupSiteContent },
  activities: { E2_GetFileList, E2_CopyFileToBlob },
});
