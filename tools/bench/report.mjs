// Prints the markdown report of a results file again (run.mjs and node.mjs
// write both; this is for a JSON kept elsewhere). A native section's file
// (bench-native.json, native.mjs) gets its own table:
//
//   node tools/bench/report.mjs tools/bench/results/2026-11-26-h100-node-dawn.json
import fs from 'node:fs';
import { markdown } from './lib.mjs';
import { nativeMarkdown } from './native.mjs';

for (const f of process.argv.slice(2)) {
  const res = JSON.parse(fs.readFileSync(f, 'utf8'));
  console.log(res.goBench ? nativeMarkdown(res) : markdown(res));
}
