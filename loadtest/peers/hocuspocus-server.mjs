// Hocuspocus for the benchmark: node hocuspocus-server.mjs PORT
// Works with the v2 API (`Server.configure`) and the v3 API (`new Server`), whichever is installed.
// Documents stay in memory unless the environment asks for what its users run:
//   HOCUSPOCUS_SQLITE=path   @hocuspocus/extension-sqlite (its default debounced stores)
//   HOCUSPOCUS_REDIS_PORT=n  @hocuspocus/extension-redis on 127.0.0.1:n (one node of a cluster)
import { Server } from '@hocuspocus/server'

const port = Number(process.argv[2])
const extensions = []
if (process.env.HOCUSPOCUS_SQLITE) {
  const { SQLite } = await import('@hocuspocus/extension-sqlite')
  extensions.push(new SQLite({ database: process.env.HOCUSPOCUS_SQLITE }))
}
if (process.env.HOCUSPOCUS_REDIS_PORT) {
  const { Redis } = await import('@hocuspocus/extension-redis')
  extensions.push(new Redis({ host: '127.0.0.1', port: Number(process.env.HOCUSPOCUS_REDIS_PORT) }))
}
const configuration = { port, address: '127.0.0.1', quiet: true, extensions }
const server = typeof Server === 'function' ? new Server(configuration) : Server.configure(configuration)
await server.listen()
