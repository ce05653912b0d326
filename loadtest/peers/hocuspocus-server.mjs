// Hocuspocus with no extensions (documents in memory), for the benchmark: node hocuspocus-server.mjs PORT
// Works with the v2 API (`Server.configure`) and the v3 API (`new Server`), whichever is installed.
import { Server } from '@hocuspocus/server'

const port = Number(process.argv[2])
const configuration = { port, address: '127.0.0.1', quiet: true }
const server = typeof Server === 'function' ? new Server(configuration) : Server.configure(configuration)
await server.listen()
