import { fs, path } from "cairn-sdk";

// The "blob container": a directory granted read-write (BACKUP_DIR, when
// granted with --allow-env, names another one).
const container = () => process.env["BACKUP_DIR"] ?? "/backups";

export default function (context, filePath) {
  const root = path.parse(filePath).root;
  const blobPath = filePath.substring(root.length).replace("\\", "/");
  const outputLocation = path.join(container(), blobPath);

  const stats = fs.statSync(filePath);
  context.log(`Copying '${filePath}' to '${outputLocation}'. Total bytes = ${stats.size}.`);
  fs.mkdirSync(path.dirname(outputLocation), { recursive: true });
  fs.writeFileSync(outputLocation, fs.readFileSync(filePath));
  return stats.size;
}
