// Hocuspocus 3 keeping documents with @hocuspocus/extension-sqlite, for the import tests:
// PORT=P node hocuspocus-sqlite.mjs DATABASE
import { Server } from '@hocuspocus/server'
import { SQLite } from '@hocuspocus/extension-sqlite'

const database = process.argv[2]
const port = process.env.PORT
const server = new Server({
  port: Number(port),
  address: '127.0.0.1',
  quiet: true,
  extensions: [new SQLite({ database })],
})
await server.listen()
process.on('SIGTERM', async () => {
  await server.destroy()
  process.exit(0)
})
