// Loads a Postman collection file with Postman's own library (the `postman-collection`
// npm package) and prints what it found as JSON: {name, folders, requests, responses}.
// Used by tests/data/postman.rs to check that docsai's exports are files Postman reads.
//
//   node tests/postman_load.mjs export.json
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

// Resolved from the working directory up (the repository's node_modules).
const require = createRequire(`${process.cwd()}/`);
const { Collection, ItemGroup } = require("postman-collection");

const json = JSON.parse(readFileSync(process.argv[2], "utf8"));
const collection = new Collection(json);
let folders = 0;
let requests = 0;
let responses = 0;
collection.forEachItemGroup(() => {
  folders += 1;
});
collection.forEachItem((item) => {
  requests += 1;
  responses += item.responses.count();
  // Reading each part makes the library parse it (url, headers, body, auth).
  item.request.url.toString();
  item.request.headers.toObject();
  if (item.request.auth) item.request.auth.parameters().toObject();
});
if (!ItemGroup.isItemGroup(collection)) throw new Error("not a collection");
process.stdout.write(JSON.stringify({ name: collection.name, folders, requests, responses }));
