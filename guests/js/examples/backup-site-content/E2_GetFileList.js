import { fs, path } from "cairn-sdk";

// Every file under rootDirectory (the Durable Functions sample walks it
// with readdirp; the SDK's fs has the synchronous calls).
export default function (context, rootDirectory) {
  context.log(`Searching for files under '${rootDirectory}'...`);
  const allFilePaths = [];
  const walk = (dir) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const fullPath = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(fullPath);
      else allFilePaths.push(fullPath);
    }
  };
  walk(rootDirectory);
  context.log(`Found ${allFilePaths.length} under ${rootDirectory}.`);
  return allFilePaths;
}
