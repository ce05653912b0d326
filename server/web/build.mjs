// Bundle src/ into dist/: `npm run build` (which first installs the locked packages).
// `node build.mjs OUTDIR` writes elsewhere (the test that checks the committed
// bundle builds into a temporary directory and compares). The output depends only
// on the sources and the locked packages: minified, no source maps, no paths.

import { copyFile, mkdir, rm } from 'node:fs/promises'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import * as esbuild from 'esbuild'

const here = path.dirname(fileURLToPath(import.meta.url))
const outdir = path.resolve(process.argv[2] ?? path.join(here, 'dist'))
const PAGES = ['index.html', 'inspect.html']

await rm(outdir, { recursive: true, force: true })
await mkdir(outdir, { recursive: true })
await esbuild.build({
  absWorkingDir: here,
  entryPoints: { demo: 'src/demo/main.js', inspect: 'src/inspect/main.js', style: 'src/style.css' },
  outdir,
  bundle: true,
  format: 'esm',
  target: ['es2020', 'chrome100', 'firefox100', 'safari15'],
  minify: true,
  sourcemap: false,
  legalComments: 'eof',
  charset: 'utf8',
  logLevel: 'warning'
})
for (const page of PAGES) await copyFile(path.join(here, 'src', page), path.join(outdir, page))
