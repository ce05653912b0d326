// The benchmark's load generator: one Node process, real Yjs clients, neutral to every server.
//
// Usage: node loadgen.mjs '<json config>'   (loadtest/bench.py builds the config and reads stdout)
//
// Clients are writers (own a Y.Doc, edit it at a fixed rate, send each real Yjs update), probes
// (read every update and time each edit in it) or drainers (read and drop frames: they only
// answer the sync handshake and pings). Probes and drainers are most of the clients, so they skip
// the ws library and Yjs: a plain TCP socket and a frame-boundary scanner that allocates nothing
// per dropped frame, which keeps the generator's own CPU and GC pauses out of what it measures.
// Each edit sets the writer's own key in the map "e" to a string that carries its send time
// (performance.now(), ms) after a marker, so a probe reads the latency from the edit's bytes
// without a Y.Doc (the test suite, not the benchmark, checks that servers relay valid updates).
// Only edits sent inside the measurement window count; a delivery counts if a probe sees
// it before the drain deadline.
//
// Cursors (cursor_rate > 0): every client also moves its cursor, an awareness state carrying
// its send time; probes credit each move when its state, or a later one of the same client,
// arrives (a server that coalesces sends only the latest). Seeding (seed_bytes, seed_elements)
// gives each room starting content before the window: cold start and big documents.
//
// stdout is one JSON object per line: {"event":"connected",...}, {"event":"seeded",...},
// {"event":"hold_start"}, {"event":"hold_end"}, {"event":"measure_start"},
// {"event":"measure_end"}, {"event":"result",...}. Everything is bounded by config.deadline.
//
// Protocols: "y-websocket" (room = URL path) and "hocuspocus" (every message starts with the
// document name; the client authenticates with an empty token before syncing).

import { randomBytes } from 'node:crypto'
import net from 'node:net'
import { monitorEventLoopDelay, performance } from 'node:perf_hooks'
import * as decoding from 'lib0/decoding'
import * as encoding from 'lib0/encoding'
import WebSocket from 'ws'
import * as Y from 'yjs'

const cfg = {
  url: 'ws://127.0.0.1:1234',
  protocol: 'y-websocket',
  room_prefix: 'bench',
  rooms: 1,
  clients_per_room: 2,
  writers_per_room: 1,
  probes_per_room: 1,
  rate: 1, // edits per second per writer
  payload: 32, // bytes of filler in each edit
  warmup: 1, // seconds of editing before the window opens
  duration: 3, // seconds of the measurement window
  drain: 5, // seconds to wait after the window for late deliveries
  hold: 0, // seconds to keep idle connections open after connecting (idle scenario)
  connect_concurrency: 100,
  connect_timeout: 30,
  deadline: 300, // hard limit on the whole run, seconds
  url_b: null, // cluster: readers (probes and drainers) connect here, writers to url
  cursor_rate: 0, // awareness moves per second per client (0: no cursors)
  cursor_ok_ms: 100, // a move counts as on time if its state reached a probe within this
  all_at_once: false, // connect every client together (cold start) instead of room by room
  seed_bytes: 0, // before the window, writer 0 of each room adds a string this long
  seed_elements: 0, // ... or this many canvas elements (a Y.Map of Y.Maps)
  seed_only: false, // seed, wait for the server to take it, and stop (cold start, phase 1)
  seed_settle: 2, // seconds to wait after seeding for the server to persist it
  joins_after_seed: 0, // fresh clients per room that join one by one after seeding, timed
  // A reader counts as synced once it had the SyncStep2 and this many bytes (cold start: a
  // server that answers before its store loaded the room sends the content after the step 2).
  synced_bytes: 0,
  ...JSON.parse(process.argv[2] ?? '{}'),
}

const MSG_SYNC = 0
const MSG_AWARENESS = 1
const MSG_AUTH = 2
const MSG_SYNC_REPLY = 4 // hocuspocus: a sync message that asks for no SyncStep1 back
const STEP1 = 0
const STEP2 = 1
const UPDATE = 2
const EMPTY_UPDATE = new Uint8Array([0, 0])
const HOCUS = cfg.protocol === 'hocuspocus'

const emit = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')
const now = () => performance.now()
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

setTimeout(() => {
  emit({ event: 'error', error: `deadline of ${cfg.deadline} s reached` })
  process.exit(3)
}, cfg.deadline * 1000).unref()

// -- framing ----------------------------------------------------------------------------------

function frame(room, type, writeBody) {
  const enc = encoding.createEncoder()
  if (HOCUS) encoding.writeVarString(enc, room)
  encoding.writeVarUint(enc, type)
  writeBody(enc)
  return encoding.toUint8Array(enc)
}

const authFrame = (room) =>
  frame(room, MSG_AUTH, (enc) => {
    encoding.writeVarUint(enc, 0) // token
    encoding.writeVarString(enc, '')
  })

const syncFrame = (room, subtype, payload, type = MSG_SYNC) =>
  frame(room, type, (enc) => {
    encoding.writeVarUint(enc, subtype)
    encoding.writeVarUint8Array(enc, payload)
  })

// -- measurement state ------------------------------------------------------------------------

let windowStart = Infinity
let windowEnd = Infinity
let expected = 0 // deliveries owed to probes for edits sent inside the window
let delivered = 0
let sentInWindow = 0
let sentTotal = 0
const latencies = []
let unexpectedCloses = 0
const closeCodes = {}
const errors = []
// Cursors: each client moves (an awareness state with its send time) at cursor_rate; a probe
// credits every move of a client up to the clock it receives (a server may coalesce moves and
// send only the latest state: the moves it replaced count as delivered at that moment).
const byAwarenessId = new Map() // clientID -> client
let cursorMoves = 0 // moves sent inside the window
let cursorExpected = 0 // (move, probe) pairs owed
let cursorDelivered = 0
let cursorOnTime = 0
const cursorLatencies = []
let syncBytesMin = Infinity // smallest SyncStep2 a reader was sent (cold start: was it loaded?)
const noteError = (msg) => {
  if (errors.length < 10) errors.push(msg)
}

// -- shared by writers and readers ---------------------------------------------------------

// Opens `client` with `open(fail)`; resolves with the ms until `markSynced(client)`, or null
// when it fails or connect_timeout passes first.
function connectClient(client, open) {
  return new Promise((resolve) => {
    const started = now()
    let done = false
    const finish = (ok, why) => {
      if (done) return
      done = true
      clearTimeout(timer)
      if (!ok) noteError(`connect ${client.room.name}: ${why}`)
      resolve(ok ? now() - started : null)
    }
    const timer = setTimeout(() => finish(false, 'timeout'), cfg.connect_timeout * 1000)
    client.onSynced = () => finish(true)
    open((why) => finish(false, why))
  })
}

function markSynced(client) {
  client.synced = true
  client.room.live.add(client)
  client.onSynced()
}

// The connection is gone: counted unless we closed it.
function noteClosed(client, code) {
  if (client.closedByUs) return
  unexpectedCloses++
  closeCodes[code] = (closeCodes[code] ?? 0) + 1
  client.room.live.delete(client)
}

// A sync message's subtype and a decoder at its payload; null for any other message
// (awareness, auth, sync status).
function readSync(data) {
  const dec = decoding.createDecoder(data)
  if (HOCUS) decoding.readVarString(dec)
  const type = decoding.readVarUint(dec)
  if (type !== MSG_SYNC && type !== MSG_SYNC_REPLY) return null
  return { subtype: decoding.readVarUint(dec), dec }
}

const STEP2_TYPE = HOCUS ? MSG_SYNC_REPLY : MSG_SYNC // what our SyncStep2 answers are sent as

// -- cursors (awareness) ------------------------------------------------------------------

// One awareness entry, as y-protocols encodes an update: count, then clientID, clock, JSON.
function awarenessFrame(room, clientId, clock, state) {
  const inner = encoding.createEncoder()
  encoding.writeVarUint(inner, 1)
  encoding.writeVarUint(inner, clientId)
  encoding.writeVarUint(inner, clock)
  encoding.writeVarString(inner, state)
  return frame(room, MSG_AWARENESS, (enc) => encoding.writeVarUint8Array(enc, encoding.toUint8Array(inner)))
}

function initCursor(client) {
  let id
  do id = 1 + Math.floor(Math.random() * 0x7ffffffe)
  while (byAwarenessId.has(id))
  byAwarenessId.set(id, client)
  client.awarenessId = id
  client.clock = 0
  client.firstWindowClock = 0 // the clock of its first move inside the window (0: none yet)
  client.moveTimes = [] // send time of each window move, by clock - firstWindowClock
  client.seen = new Map() // probes: clientID -> the highest clock credited
}

// Move `client`'s cursor: a new awareness state carrying its send time.
function moveCursor(client, send) {
  if (!client.synced) return
  const t = now()
  client.clock++
  const x = Math.floor(Math.random() * 1920)
  const y = Math.floor(Math.random() * 1080)
  const state = `{"user":{"name":"u${client.index}"},"cursor":{"x":${x},"y":${y}},"sent":${t.toFixed(3)}}`
  send(awarenessFrame(client.room.name, client.awarenessId, client.clock, state))
  if (t >= windowStart && t < windowEnd) {
    if (!client.firstWindowClock) client.firstWindowClock = client.clock
    client.moveTimes.push(t)
    cursorMoves++
    for (const c of client.room.live) if (c.role === 'probe' && c !== client) cursorExpected++
  }
}

// A probe got an awareness update: credit every window move up to each entry's clock.
function creditMoves(probe, dec) {
  const t = now()
  const update = decoding.createDecoder(decoding.readVarUint8Array(dec))
  const count = decoding.readVarUint(update)
  for (let i = 0; i < count; i++) {
    const id = decoding.readVarUint(update)
    const clock = decoding.readVarUint(update)
    const state = decoding.readVarString(update)
    const sender = byAwarenessId.get(id)
    if (!sender || sender === probe || !sender.firstWindowClock || state === 'null') continue
    const first = sender.firstWindowClock
    const upto = Math.min(clock, first + sender.moveTimes.length - 1)
    const from = Math.max(first, (probe.seen.get(id) ?? 0) + 1)
    for (let c = from; c <= upto; c++) {
      const ms = t - sender.moveTimes[c - first]
      cursorDelivered++
      cursorLatencies.push(ms)
      if (ms <= cfg.cursor_ok_ms) cursorOnTime++
    }
    if (upto >= from) probe.seen.set(id, upto)
  }
}

const randomText = (n) => randomBytes(Math.ceil((n * 3) / 4)).toString('base64').slice(0, n)

const SENT_MARK = '@sent:' // precedes an edit's send time in its value; ';' ends the time
const SENT_MARK_BYTES = Buffer.from(SENT_MARK)

// A writer: a real Yjs client on the ws library, whose edits are the load.
class Writer {
  constructor(room, index) {
    this.room = room
    this.role = 'writer'
    this.index = index
    this.doc = new Y.Doc()
    this.synced = false
    this.closedByUs = false
    this.framesIn = 0
    this.bytesIn = 0
    this.doc.on('update', (update) => this.sendRaw(syncFrame(this.room.name, UPDATE, update)))
    initCursor(this)
  }

  moveCursor() {
    moveCursor(this, (bytes) => this.sendRaw(bytes))
  }

  // The room's starting content: one long string, or a canvas of elements (Y.Map of Y.Maps).
  seed() {
    this.doc.transact(() => {
      if (cfg.seed_bytes > 0) this.doc.getMap('seed').set('blob', randomText(cfg.seed_bytes))
      const elements = this.doc.getMap('elements')
      for (let i = 0; i < cfg.seed_elements; i++) {
        const el = new Y.Map()
        elements.set(`el${i}`, el)
        el.set('type', 'rect')
        el.set('x', i % 1000)
        el.set('y', Math.floor(i / 1000))
        el.set('w', 40)
        el.set('fill', '#3366cc')
      }
    })
  }

  connect() {
    return connectClient(this, (fail) => {
      const path = HOCUS ? '' : '/' + this.room.name
      const ws = (this.ws = new WebSocket(cfg.url + path, { perMessageDeflate: false }))
      ws.binaryType = 'nodebuffer'
      ws.on('open', () => {
        if (HOCUS) this.sendRaw(authFrame(this.room.name))
        this.sendRaw(syncFrame(this.room.name, STEP1, Y.encodeStateVector(this.doc)))
      })
      ws.on('message', (data) => this.onMessage(data))
      ws.on('error', (err) => fail(err.message))
      ws.on('close', (code) => {
        fail(`closed ${code}`)
        noteClosed(this, code)
      })
    })
  }

  sendRaw(bytes) {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(bytes)
  }

  onMessage(data) {
    this.framesIn++
    this.bytesIn += data.length
    const sync = readSync(data)
    if (sync === null) return
    if (sync.subtype === STEP1) {
      // Answer the server's SyncStep1 with what it lacks.
      const update = Y.encodeStateAsUpdate(this.doc, decoding.readVarUint8Array(sync.dec))
      this.sendRaw(syncFrame(this.room.name, STEP2, update, STEP2_TYPE))
    } else if (sync.subtype === STEP2 && !this.synced) {
      markSynced(this)
    }
  }

  edit() {
    if (!this.synced || this.ws.readyState !== WebSocket.OPEN) return
    const t = now()
    const value = SENT_MARK + t.toFixed(3) + ';' + this.room.filler
    this.doc.getMap('e').set(String(this.index), value) // → 'update' → send
    sentTotal++
    if (t >= windowStart && t < windowEnd) {
      sentInWindow++
      for (const c of this.room.live) if (c.role === 'probe') expected++
    }
  }

  close() {
    this.closedByUs = true
    if (this.ws) this.ws.terminate()
  }
}

// Every send time in an update's bytes (a server may merge several edits into one update).
function timeEdits(payload) {
  const t = now()
  let at = payload.indexOf(SENT_MARK_BYTES)
  while (at >= 0) {
    const start = at + SENT_MARK_BYTES.length
    const end = payload.indexOf(0x3b, start) // ';'
    const sent = end > start ? Number(payload.toString('latin1', start, end)) : NaN
    if (sent >= windowStart && sent < windowEnd) {
      delivered++
      latencies.push(t - sent)
    }
    at = payload.indexOf(SENT_MARK_BYTES, start)
  }
}

// -- probes and drainers: raw sockets ---------------------------------------------------------------------

const ZERO_MASK = Buffer.alloc(4) // a zero mask leaves the payload as is; servers must accept it

function clientFrame(opcode, payload) {
  const n = payload.length
  const header = n < 126 ? Buffer.from([0x80 | opcode, 0x80 | n]) : Buffer.alloc(4)
  if (n >= 126) {
    header[0] = 0x80 | opcode
    header[1] = 0x80 | 126
    header.writeUInt16BE(n, 2) // handshake messages are far below 64 KiB
  }
  return Buffer.concat([header, ZERO_MASK, payload])
}

// A reader: a probe (times every edit it receives) or a drainer (drops what it receives).
class Reader {
  constructor(room, role, index) {
    this.room = room
    this.role = role // 'probe' | 'drain'
    this.index = index
    this.synced = false
    this.closedByUs = false
    this.framesIn = 0
    this.bytesIn = 0
    this.socket = null
    this.fail = null // ends connect() unsuccessfully
    this.head = null // the HTTP response, until its end arrives
    this.pending = null // bytes of an incomplete frame header
    this.skip = 0 // payload bytes of the current frame still to come
    this.keep = null // the current frame's payload, when it must be read (see onData)
    this.keepOpcode = 0
    this.closeCode = 'tcp' // the server's close code, once it sends one
    initCursor(this)
  }

  moveCursor() {
    moveCursor(this, (bytes) => this.send(0x2, bytes))
  }

  connect() {
    return connectClient(this, (fail) => {
      this.fail = fail
      const url = new URL(cfg.url_b ?? cfg.url)
      const path = HOCUS ? '/' : '/' + this.room.name
      const socket = (this.socket = net.connect({ host: url.hostname, port: Number(url.port) }))
      socket.setNoDelay(true)
      this.head = Buffer.alloc(0)
      socket.on('connect', () => {
        const key = randomBytes(16).toString('base64')
        socket.write(
          `GET ${path} HTTP/1.1\r\nHost: ${url.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
            `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
        )
      })
      socket.on('data', (chunk) => this.onData(chunk))
      socket.on('error', (err) => fail(err.message))
      socket.on('close', () => {
        fail('closed')
        noteClosed(this, this.closeCode)
      })
    })
  }

  send(opcode, payload) {
    if (!this.socket.destroyed) this.socket.write(clientFrame(opcode, payload))
  }

  onData(chunk) {
    if (this.head !== null) {
      const head = Buffer.concat([this.head, chunk])
      const end = head.indexOf('\r\n\r\n')
      if (end < 0) {
        this.head = head
        return
      }
      this.head = null
      if (!head.subarray(0, 12).toString().startsWith('HTTP/1.1 101')) {
        this.fail(head.subarray(0, head.indexOf('\r\n')).toString())
        this.socket.destroy()
        return
      }
      if (HOCUS) this.send(0x2, authFrame(this.room.name))
      this.send(0x2, syncFrame(this.room.name, STEP1, new Uint8Array([0])))
      chunk = head.subarray(end + 4)
    }
    this.bytesIn += chunk.length
    if (this.pending) {
      chunk = Buffer.concat([this.pending, chunk]) // a header split across reads (rare)
      this.pending = null
    }
    let i = 0
    const n = chunk.length
    while (i < n) {
      if (this.skip > 0) {
        const take = Math.min(this.skip, n - i)
        if (this.keep) this.keep.push(chunk.subarray(i, i + take))
        this.skip -= take
        i += take
        if (this.skip === 0 && this.keep) this.onFrame(this.keepOpcode, Buffer.concat(this.keep))
        continue
      }
      // A frame header: 2 bytes, then 0, 2 or 8 bytes of length (server frames are unmasked).
      const len7 = n - i >= 2 ? chunk[i + 1] & 0x7f : 0
      const size = len7 === 126 ? 4 : len7 === 127 ? 10 : 2
      if (n - i < size) {
        this.pending = Buffer.from(chunk.subarray(i))
        return
      }
      const opcode = chunk[i] & 0x0f
      const length =
        len7 === 126 ? chunk.readUInt16BE(i + 2) : len7 === 127 ? Number(chunk.readBigUInt64BE(i + 2)) : len7
      i += size
      this.framesIn++
      // Read the payload only when it matters: control frames, until synced, and for probes.
      this.keep = opcode >= 0x8 || !this.synced || this.role === 'probe' ? [] : null
      this.keepOpcode = opcode
      this.skip = length
      if (length === 0 && this.keep) this.onFrame(opcode, Buffer.alloc(0))
    }
  }

  onFrame(opcode, payload) {
    this.keep = null
    if (opcode === 0x9) return this.send(0xa, payload) // ping → pong
    if (opcode === 0x8) {
      if (payload.length >= 2) this.closeCode = payload.readUInt16BE(0)
      return this.socket.end()
    }
    if (opcode !== 0x2) return
    if (this.synced) {
      if (cfg.cursor_rate > 0) {
        const dec = decoding.createDecoder(payload)
        if (HOCUS) decoding.readVarString(dec)
        if (decoding.readVarUint(dec) === MSG_AWARENESS) return creditMoves(this, dec)
      }
      return timeEdits(payload)
    }
    const sync = readSync(payload)
    if (sync?.subtype === STEP1) {
      this.send(0x2, syncFrame(this.room.name, STEP2, EMPTY_UPDATE, STEP2_TYPE)) // nothing to add
    } else if (sync?.subtype === STEP2) {
      syncBytesMin = Math.min(syncBytesMin, payload.length)
      this.syncBytes = payload.length
      this.step2Seen = true
      if (this.bytesIn >= cfg.synced_bytes) markSynced(this)
    } else if (this.step2Seen && this.bytesIn >= cfg.synced_bytes) {
      markSynced(this) // the rest of the room came as updates
    }
  }

  close() {
    this.closedByUs = true
    if (this.socket) this.socket.destroy()
  }
}

class Room {
  constructor(name) {
    this.name = name
    this.live = new Set() // clients synced and still open
    this.filler = 'x'.repeat(cfg.payload)
    this.clients = []
  }
}

// -- run --------------------------------------------------------------------------------------

function percentile(sorted, p) {
  if (!sorted.length) return null
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[i]
}

// How late the generator's own event loop ran its timers during the window: if this is
// high, the latencies measure the generator too.
// The histogram holds whole timer intervals (ns): the lag is what exceeds the resolution.
const LAG_RESOLUTION_MS = 10
const loopDelay = monitorEventLoopDelay({ resolution: LAG_RESOLUTION_MS })
const lag = (pick) =>
  loopDelay.count ? round(Math.max(0, pick(loopDelay) / 1e6 - LAG_RESOLUTION_MS)) : null

const round = (x) => (x === null ? null : Math.round(x * 1000) / 1000)

let connectTimes = []

function mergeConnect(a, b) {
  connectTimes.sort((x, y) => x - y)
  return {
    ok: a.ok + b.ok,
    failed: a.failed + b.failed,
    seconds: round(a.seconds + b.seconds),
    p50_ms: round(percentile(connectTimes, 50)),
    p99_ms: round(percentile(connectTimes, 99)),
    max_ms: round(connectTimes.at(-1) ?? null),
  }
}

async function connectAll(clients) {
  const times = []
  let failed = 0
  let next = 0
  const started = now()
  const worker = async () => {
    while (next < clients.length) {
      const c = clients[next++]
      const ms = await c.connect()
      if (ms === null) failed++
      else times.push(ms)
    }
  }
  await Promise.all(Array.from({ length: Math.min(cfg.connect_concurrency, clients.length) }, worker))
  connectTimes = connectTimes.concat(times)
  return { ok: times.length, failed, seconds: (now() - started) / 1000 }
}

const sum = (clients, key) => clients.reduce((s, c) => s + c[key], 0)

// Writer 0 of each room adds the room's starting content; resolves once every socket has
// sent it and the server had seed_settle seconds to take it (and store it).
async function seedRooms(rooms) {
  const seeders = rooms.map((r) => r.clients.find((c) => c.role === 'writer' && c.synced)).filter(Boolean)
  const started = now()
  for (const w of seeders) w.seed()
  const until = started + cfg.deadline * 1000
  while (seeders.some((w) => w.ws.bufferedAmount > 0) && now() < until) await sleep(20)
  const seconds = (now() - started) / 1000
  await sleep(cfg.seed_settle * 1000)
  emit({ event: 'seeded', rooms: seeders.length, seconds: round(seconds) })
  return seeders.length
}

// Fresh clients join each room one at a time after seeding: how long a join takes.
async function timedJoins(rooms) {
  const times = []
  const sizes = []
  for (const room of rooms) {
    for (let i = 0; i < cfg.joins_after_seed; i++) {
      const c = new Reader(room, 'drain', cfg.clients_per_room + i)
      room.clients.push(c)
      const ms = await c.connect()
      if (ms !== null) {
        times.push(round(ms))
        sizes.push(c.syncBytes)
      }
    }
  }
  return { times, sizes }
}

function cursorResult() {
  cursorLatencies.sort((a, b) => a - b)
  return {
    moves_in_window: cursorMoves,
    expected: cursorExpected,
    delivered: cursorDelivered,
    on_time: cursorOnTime,
    latency_ms: {
      count: cursorLatencies.length,
      p50: round(percentile(cursorLatencies, 50)),
      p95: round(percentile(cursorLatencies, 95)),
      p99: round(percentile(cursorLatencies, 99)),
      max: round(cursorLatencies.at(-1) ?? null),
    },
  }
}

async function main() {
  const rooms = []
  const clients = []
  for (let r = 0; r < cfg.rooms; r++) {
    const room = new Room(`${cfg.room_prefix}-${r}`)
    for (let i = 0; i < cfg.clients_per_room; i++) {
      const role =
        i < cfg.writers_per_room ? 'writer' : i < cfg.writers_per_room + cfg.probes_per_room ? 'probe' : 'drain'
      const c = role === 'writer' ? new Writer(room, i) : new Reader(room, role, i)
      room.clients.push(c)
      clients.push(c)
    }
    rooms.push(room)
  }
  let connect
  if (cfg.all_at_once) {
    connect = mergeConnect(await connectAll(clients), { ok: 0, failed: 0, seconds: 0 })
  } else {
    // Open every room with one client before the rest arrive: pycrdt-websocket drops clients that
    // join a room while it is being created, and the benchmark measures the steady state.
    const first = await connectAll(rooms.map((r) => r.clients[0]))
    const rest = await connectAll(rooms.flatMap((r) => r.clients.slice(1)))
    connect = mergeConnect(first, rest)
  }
  emit({ event: 'connected', ...connect })

  const seeded = cfg.seed_bytes > 0 || cfg.seed_elements > 0 ? await seedRooms(rooms) : 0
  const joins = cfg.joins_after_seed > 0 ? await timedJoins(rooms) : { times: [], sizes: [] }
  if (cfg.hold > 0) {
    emit({ event: 'hold_start' })
    await sleep(cfg.hold * 1000)
    emit({ event: 'hold_end' })
  }

  const writers = clients.filter((c) => c.role === 'writer')
  const editing = !cfg.seed_only && writers.length > 0 && cfg.rate > 0
  const moving = !cfg.seed_only && cfg.cursor_rate > 0
  const timers = []
  let windowFrames = null
  let windowBytes = null
  // Each client acts every `period` ms from a random phase, so the load is smooth.
  const every = (period, act) => {
    timers.push(
      setTimeout(() => {
        act()
        timers.push(setInterval(act, period))
      }, Math.random() * period),
    )
  }
  if (editing || moving) {
    const t0 = now()
    windowStart = t0 + cfg.warmup * 1000
    windowEnd = windowStart + cfg.duration * 1000
    if (editing) for (const w of writers) every(1000 / cfg.rate, () => w.edit())
    if (moving) for (const c of clients) every(1000 / cfg.cursor_rate, () => c.moveCursor())
    await sleep(windowStart - now())
    loopDelay.enable()
    const frames0 = sum(clients, 'framesIn')
    const bytes0 = sum(clients, 'bytesIn')
    emit({ event: 'measure_start' })
    await sleep(windowEnd - now())
    emit({ event: 'measure_end' })
    windowFrames = sum(clients, 'framesIn') - frames0
    windowBytes = sum(clients, 'bytesIn') - bytes0
    loopDelay.disable()
    for (const t of timers) clearTimeout(t)
    const drainUntil = now() + cfg.drain * 1000
    while ((delivered < expected || cursorDelivered < cursorExpected) && now() < drainUntil) await sleep(20)
  }

  latencies.sort((a, b) => a - b)
  emit({
    event: 'result',
    connect,
    edits_sent: sentTotal,
    edits_in_window: sentInWindow,
    window_s: cfg.duration,
    expected,
    delivered,
    latency_ms: {
      count: latencies.length,
      p50: round(percentile(latencies, 50)),
      p95: round(percentile(latencies, 95)),
      p99: round(percentile(latencies, 99)),
      max: round(latencies.at(-1) ?? null),
    },
    cursors: moving ? cursorResult() : null,
    seeded_rooms: seeded,
    joins_ms: joins.times,
    joins_sync_bytes: joins.sizes,
    sync_bytes_min: Number.isFinite(syncBytesMin) ? syncBytesMin : null,
    loop_lag_ms: {
      p50: lag((h) => h.percentile(50)),
      p99: lag((h) => h.percentile(99)),
      max: lag((h) => h.max),
    },
    frames_in: sum(clients, 'framesIn'),
    bytes_in: sum(clients, 'bytesIn'),
    window_frames_in: windowFrames,
    window_bytes_in: windowBytes,
    unexpected_closes: unexpectedCloses,
    close_codes: closeCodes,
    errors,
  })
  for (const c of clients) c.close()
  await sleep(50)
  process.exit(0)
}

main().catch((err) => {
  emit({ event: 'error', error: String(err?.stack ?? err) })
  process.exit(2)
})
