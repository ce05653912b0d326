// One writer of the ysync fault suite (loadtest/chaos.py): a real Yjs document
// and y-websocket provider appending numbered edits to the array "edits".
//
//   node writer.mjs <log file> <room> <writer id> <rate per s> <url> [<url> ...]
//
// Every edit and every connection event is appended to the log file with
// writeSync before anything else happens, so a SIGKILLed writer's log is
// complete up to its last edit. One JSON object per line:
//   {"t": ms since epoch, "ev": "edit", "id": "w3-17", "url": ..., "synced": bool}
//   {"t": ..., "ev": "status" | "synced" | "switch", "url": ..., ...}
// When its connection drops, it moves to the next URL with the same document
// (as a load balancer would send it elsewhere); offline edits sync when it
// reconnects. On SIGTERM it stops editing, waits until synced with a node, and
// exits 0 (exit 3 if it could not sync within 30 s).
import * as fs from 'node:fs'
import WebSocket from 'ws'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'

if (globalThis.WebSocket === undefined) globalThis.WebSocket = WebSocket

const [logPath, room, writer, rateText, ...urls] = process.argv.slice(2)
const fd = fs.openSync(logPath, 'a')
const log = (entry) => fs.writeSync(fd, JSON.stringify({ t: Date.now(), ...entry }) + '\n')

const doc = new Y.Doc()
const edits = doc.getArray('edits')
let urlIndex = Number(writer.replace(/\D/g, '') || 0) % urls.length
let provider = null
let synced = false
let stopping = false
let count = 0

function open () {
  const url = urls[urlIndex]
  synced = false
  provider = new WebsocketProvider(url, room, doc, { WebSocketPolyfill: WebSocket, maxBackoffTime: 500 })
  provider.on('status', ({ status }) => {
    log({ ev: 'status', status, url })
    if (status === 'disconnected' && !stopping) switchNode()
  })
  provider.on('sync', (isSynced) => {
    synced = isSynced
    log({ ev: 'synced', synced: isSynced, url })
  })
}

let switching = false
function switchNode () {
  if (switching) return
  switching = true
  setTimeout(() => {
    provider.destroy()
    urlIndex = (urlIndex + 1) % urls.length
    log({ ev: 'switch', url: urls[urlIndex] })
    open()
    switching = false
  }, 200)
}

function edit () {
  if (stopping) return
  count += 1
  const id = `${writer}-${count}`
  log({ ev: 'edit', id, url: urls[urlIndex], synced: synced && provider.wsconnected })
  edits.push([id])
}

open()
const timer = setInterval(edit, 1000 / Number(rateText))

process.on('SIGTERM', () => {
  stopping = true
  clearInterval(timer)
  const deadline = Date.now() + 30000
  // Synced after the last edit: the node answered our SyncStep1, and our
  // SyncStep2 (all it lacked) went out before; give it a moment to arrive.
  let sinceSynced = 0
  const check = setInterval(() => {
    if (synced && provider.wsconnected) sinceSynced += 1
    else sinceSynced = 0
    if (sinceSynced >= 10) {
      log({ ev: 'done', edits: count, url: urls[urlIndex] })
      clearInterval(check)
      provider.destroy()
      process.exit(0)
    }
    if (Date.now() > deadline) {
      log({ ev: 'unsynced', edits: count })
      process.exit(3)
    }
  }, 100)
})
