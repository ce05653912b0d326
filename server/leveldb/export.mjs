// `ysync import y-leveldb DIR` runs this: node export.mjs DIR
// One JSON line per document on stdout: {"name": ..., "update": base64 of its whole state}.
import { LeveldbPersistence } from 'y-leveldb'
import * as Y from 'yjs'

const ldb = new LeveldbPersistence(process.argv[2])
try {
  for (const name of await ldb.getAllDocNames()) {
    const doc = await ldb.getYDoc(name)
    const update = Buffer.from(Y.encodeStateAsUpdate(doc)).toString('base64')
    process.stdout.write(JSON.stringify({ name, update }) + '\n')
    doc.destroy()
  }
} finally {
  await ldb.destroy()
}
