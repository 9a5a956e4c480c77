// Bundles src/viewer.js (our page code) with d3-flame-graph and d3 into ../static/viewer.{js,css},
// which otelprof/viewer/html.py inlines into every report. Run by `make assets`.
import { build } from "esbuild";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const version = (name) =>
  JSON.parse(readFileSync(join(here, "node_modules", name, "package.json"), "utf8")).version;

// The bundle carries third-party code into every report: name it and its licence up front.
const banner =
  `/* otelprof viewer. Bundled: d3-flame-graph ${version("d3-flame-graph")} (Apache-2.0, ` +
  `Martin Spier), d3-selection ${version("d3-selection")} and other d3 modules (ISC, Mike ` +
  `Bostock). */`;

await build({
  entryPoints: [join(here, "src", "viewer.js")],
  outdir: join(here, "..", "static"),
  bundle: true,
  format: "iife",
  minify: true,
  target: ["es2019"],
  legalComments: "none",
  banner: { js: banner, css: banner },
  logLevel: "warning",
});
